"""End to end through the CLI: normalise -> simulate -> marginalise -> sample (background
only, then signal with the Bayes factor); every truth inside its central 99 % interval.
Fractions mode on config/ci.yaml (200 events), rates mode on tests/configs/ci_rates.yaml
(Poisson counts, ~1.3e4 events)."""

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from gammadm.config import load_schema

from .conftest import ROOT


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run([sys.executable, "-m", "gammadm.cli", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _campaign(tmp_path, cfg, campaign):
    obs = tmp_path / campaign / "gc"
    c = ["--config", str(cfg)]
    _cli("normalise", *c, "--out", str(obs / "norm.zarr"))
    _cli("simulate", *c, "--out", str(obs / "events.fits"))
    _cli("marginalise", *c, "--events", str(obs / "events.fits"), "--out",
         str(obs / "marginals.zarr"))
    out = tmp_path / campaign / "posterior"
    _cli("sample", *c, "--results", str(tmp_path), "--out", str(out), "--background-only")
    _cli("sample", *c, "--results", str(tmp_path), "--out", str(out), "--bkg-evidence",
         str(out / "evidence.json"))
    s = json.loads((out / "summary.json").read_text())
    jsonschema.validate(s, load_schema("summary"))
    # the workflow's path: the two runs' files joined afterwards give the same summary
    _cli("bayes-factor", "--signal", str(out / "summary.json"), "--bkg-only",
         str(out / "evidence.json"), "--out", str(out / "joined.json"))
    assert json.loads((out / "joined.json").read_text()) == s
    return s, out


def _truths_inside(s):
    checked = 0
    for name, p in s["parameters"].items():
        if p["truth"] is not None:
            assert p["p0.5"] <= p["truth"] <= p["p99.5"], (name, p)
            checked += 1
    return checked


@pytest.mark.slow
def test_fractions_campaign_end_to_end(tmp_path):
    s, out = _campaign(tmp_path, ROOT / "config" / "ci.yaml", "ci")
    assert _truths_inside(s) == 6  # mass, DM, bkg, CCR, HGPS, diffuse
    assert s["parameters"]["DM"]["realised"] == pytest.approx(0.5)  # fixed mode: 100 of 200
    assert s["log_bayes_factor"] > 5  # 100 dark-matter events of 200
    assert (out / "corner.png").exists() and (out / "samples.npz").exists()


@pytest.mark.slow
def test_rates_campaign_end_to_end(tmp_path):
    s, _ = _campaign(tmp_path, ROOT / "tests" / "configs" / "ci_rates.yaml", "ci_rates")
    assert s["mode"] == "rates"
    assert _truths_inside(s) == 5  # mass, <sigma v>, three background scales
    assert s["priors"]["sigmav_cm3_s"] == "log_uniform(1e-27, 1e-22)"
    sv = s["parameters"]["sigmav_cm3_s"]
    assert sv["p99.5"] / sv["p0.5"] < 10 and s["log_bayes_factor"] > 5  # detected


def test_bayes_factor_join_names_a_missing_or_wrong_file(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))

    def join(signal, bkg):
        return subprocess.run([sys.executable, "-m", "gammadm.cli", "bayes-factor", "--signal",
                               str(signal), "--bkg-only", str(bkg), "--out",
                               str(tmp_path / "summary.json")], env=env, capture_output=True,
                              text=True, timeout=60)

    signal = tmp_path / "signal.json"
    signal.write_text(json.dumps({"log_evidence": -10.0}))
    r = join(signal, tmp_path / "missing.json")
    assert r.returncode == 2 and "missing.json does not exist" in r.stderr
    # a signal summary given as the background-only evidence
    r = join(signal, signal)
    assert r.returncode == 2 and "signal.json: not the evidence.json" in r.stderr
    # a background-only evidence given as the signal summary (it fails the schema)
    bkg = tmp_path / "evidence.json"
    bkg.write_text(json.dumps({"model": "background_only", "log_evidence": -12.0}))
    r = join(bkg, bkg)
    assert r.returncode == 2 and "evidence.json: not a valid summary" in r.stderr
    assert not (tmp_path / "summary.json").exists()
    # gammadm sample checks its --bkg-evidence the same way, before sampling
    r = subprocess.run([sys.executable, "-m", "gammadm.cli", "sample", "--config",
                        str(ROOT / "config" / "ci.yaml"), "--results", str(tmp_path),
                        "--bkg-evidence", str(signal)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "signal.json: not the evidence.json" in r.stderr
