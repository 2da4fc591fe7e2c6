import copy
import subprocess
import sys

import pytest
import yaml

from gammadm.config import ConfigError, load_config, load_schema, mixture_leaves, validate_config

from .conftest import ROOT


def test_seed_config_is_the_tutorial_scenario(seed_config):
    c = seed_config
    assert c["campaign"] == "seed"
    (obs,) = c["observations"]
    assert (obs["pointing"]["l_deg"], obs["pointing"]["b_deg"]) == (0.0, 0.0)
    assert obs["livetime_h"] == 5.0
    assert obs["irf"] == {"site": "South", "zenith_deg": 20, "azimuth": "AverageAz",
                          "cut_time_s": 18000, "subarray": "full", "file": None}
    roi = c["roi"]
    assert roi["energy_tev"] == [0.1, 100.0] and roi["energy_bins_per_decade"] == 20
    assert roi["l_deg"] == [-3.0, 3.0] and roi["b_deg"] == [-3.0, 3.0] and roi["pixel_deg"] == 0.2
    assert c["true_grid"]["energy_bins_per_decade"] == 30 and c["true_grid"]["pixel_deg"] == 0.1
    assert c["true_grid"]["energy_tev"] is None  # derived from the IRF reach
    dm = c["dark_matter"]
    assert dm["spectrum"]["model"] == "z2_scalar_singlet" and dm["spectrum"]["lambda_hs"] == 0.1
    assert dm["profile"]["model"] == "einasto"
    assert [b["model"] for b in c["backgrounds"]] == ["ccr", "hgps", "fermi_gaggero"]
    assert c["likelihood"]["mode"] == "fractions"
    assert c["simulation"]["n_events"] == 500 and c["simulation"]["mass_TeV"] == 1.0
    dm_node, bkg = c["mixture"]
    assert dm_node["value"] == 0.5 and bkg["value"] == 0.5
    assert [(n["name"], n["value"]) for n in bkg["children"]] == [
        ("CCR", 0.7), ("HGPS", 0.2), ("diffuse", 0.1)]
    assert c["priors"]["mass_TeV"] == {"type": "log_uniform", "low": 0.12, "high": 80.0}
    assert c["sampler"]["nlive"] == 500 and c["sampler"]["dlogz"] == 0.8
    assert c["marginalisation"]["tail_mass"] == 1e-7


def test_defaults_filled_and_input_untouched():
    raw = {"campaign": "x", "observations": [{"name": "a"}]}
    before = copy.deepcopy(raw)
    cfg = validate_config(raw)
    assert raw == before
    assert cfg["observations"][0]["irf"]["cut_time_s"] == 18000
    assert cfg["roi"]["energy_tev"] == [0.1, 100.0]
    assert sorted(mixture_leaves(cfg["mixture"])) == ["CCR", "DM", "HGPS", "diffuse"]


def _seed_raw():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("mutate, field, words", [
    (lambda c: c["observations"][0]["irf"].update(site="Moon"),
     "observations[0].irf.site", ['allowed values: "South", "North"']),
    (lambda c: c["observations"][0]["irf"].update(cut_time_s=3600),
     "observations[0].irf.cut_time_s", ["1800, 18000, 180000"]),
    (lambda c: c["roi"].update(pixl_deg=0.2), "roi.pixl_deg", ["unknown field", "pixel_deg"]),
    (lambda c: c["sampler"].update(nlive="many"), "sampler.nlive", ["integer"]),
    (lambda c: c["roi"].update(energy_tev=[100.0, 0.1]), "roi.energy_tev", ["lower bound"]),
    (lambda c: c["mixture"][1]["children"][0].update(value=0.8), "mixture[1].children",
     ["sum to"]),
    (lambda c: c["mixture"][1]["children"][2].update(name="fermi"), "mixture", ["leaves"]),
    (lambda c: c["likelihood"].update(binned="sometimes"), "likelihood.binned",
     ['"auto", true, false']),
    (lambda c: c["dark_matter"]["profile"].update(model="gnfw", gamma=1.6),
     "dark_matter.profile.gamma", ["diverges"]),
    (lambda c: c["priors"]["mass_TeV"].update(low=0.0), "priors.mass_TeV.low", ["log-uniform"]),
    (lambda c: c.pop("observations"), "<top level>", ["observations"]),
])
def test_config_error_names_the_field(mutate, field, words):
    raw = _seed_raw()
    mutate(raw)
    with pytest.raises(ConfigError) as exc:
        validate_config(raw)
    assert exc.value.field == field, str(exc.value)
    for w in words:
        assert w in str(exc.value)


def test_cli_reports_one_line_and_exit_2(tmp_path):
    raw = _seed_raw()
    raw["observations"][0]["irf"]["azimuth"] = "EastAz"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "gammadm.cli", "validate", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "observations[0].irf.azimuth" in lines[0]
    assert "AverageAz" in lines[0]


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("campaign: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_schema_is_a_valid_json_schema():
    import jsonschema

    schema = load_schema("config")
    jsonschema.validators.validator_for(schema).check_schema(schema)
