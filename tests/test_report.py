"""`gammadm report` and the workflow's report rule on a finished CI campaign: the files,
the data counts, the fitted model's expected counts (sum of nu_k = mu_k), the text
table, and `snakemake --report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gammadm.config import load_config
from gammadm.report import report_files

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

pytestmark = pytest.mark.slow


def _snakemake(work: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(work), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, data_root):
    """The CI campaign (one chunk per stage, to save job start-ups) run by Snakemake to
    the end, report included; returns (work dir, config, environment)."""
    work = tmp_path_factory.mktemp("campaign")
    raw = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    raw["normalisation"]["chunks"] = raw["marginalisation"]["chunks"] = 1
    cfg_path = work / "campaign.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "GAMMADM_DATA": str(data_root)}
    run = _snakemake(work, env, "-c2", "--configfile", str(cfg_path))
    assert run.returncode == 0, run.stderr[-4000:]
    return work, load_config(cfg_path), env, cfg_path


def test_report_files_exist(campaign):
    work, cfg, _, _ = campaign
    out = work / "results" / "ci" / "report"
    files = [out / p for p, _, _ in report_files(cfg)]
    assert any(f.name == "mc_truth.png" for f in files)  # the CI events are simulated
    for f in files:
        assert f.is_file() and f.stat().st_size > 0, f
    assert (out / "corner.png").read_bytes() == \
        (work / "results" / "ci" / "posterior" / "corner.png").read_bytes()
    assert (work / "results" / "ci" / "logs" / "report.log").is_file()


def test_counts_and_expected_counts(campaign):
    """The data map sums to the events; the fitted model's nu sums to its mu (1e-6), and
    in fractions mode the mu add up to the number of events."""
    from gammadm.events import read_events

    work, cfg, _, _ = campaign
    base = work / "results" / "ci"
    exp = json.loads((base / "report" / "gc" / "expected.json").read_text())
    n = read_events(base / "gc" / "events.fits").n
    summary = json.loads((base / "posterior" / "summary.json").read_text())
    assert exp["data_counts"] == exp["n_events"] == n == summary["n_events"]
    comps = exp["components"]
    assert set(comps) == {"DM", "CCR", "HGPS", "diffuse"}
    for name, c in comps.items():
        assert c["mu"] > 0, name
        assert c["sum_nu"] == pytest.approx(c["mu"], rel=1e-6), name
    assert sum(c["mu"] for c in comps.values()) == pytest.approx(n, rel=1e-9)
    assert sum(c["mc_truth"] for c in comps.values()) == n
    assert exp["parameters"]["mass_TeV"] == summary["parameters"]["mass_TeV"]["p50"]


def test_summary_txt_lists_every_parameter(campaign):
    work, _, _, _ = campaign
    base = work / "results" / "ci"
    text = (base / "report" / "summary.txt").read_text()
    summary = json.loads((base / "posterior" / "summary.json").read_text())
    lines = text.splitlines()
    for name, p in summary["parameters"].items():
        row = next(ln for ln in lines if ln.split()[:1] == [name])
        assert f"{p['p50']:.4g}" in row and f"{p['p16']:.4g}" in row, row
        assert f"{p['p2.5']:.4g}" in row and f"{p['p97.5']:.4g}" in row, row
    assert f"{summary['log_evidence']:.3f}" in text
    assert f"{summary['log_bayes_factor']:.4g}" in text


def test_snakemake_html_report_contains_the_figures(campaign):
    work, cfg, env, cfg_path = campaign
    html = work / "report.html"
    run = _snakemake(work, env, "--configfile", str(cfg_path), "--report", str(html))
    assert run.returncode == 0, run.stderr[-4000:]
    text = html.read_text()
    for path, category, _ in report_files(cfg):
        if category:
            assert Path(path).name in text, path
    assert "Data and fitted model" in text and "MC truth" in text
    # nothing left to do after the report
    dry = _snakemake(work, env, "-n", "--configfile", str(cfg_path))
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]


def test_missing_posterior_is_one_error_naming_the_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gammadm.cli", "report", "--config",
         str(ROOT / "config" / "ci.yaml"), "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert str(tmp_path / "ci" / "posterior" / "summary.json") in proc.stderr
    assert not np.any([p.exists() for p in (tmp_path / "ci" / "report").glob("*.png")])


def test_rates_mode_scales_by_sigmav_and_background_scales(campaign):
    """Rates mode: nu_DM = <sigma v> x nu per unit amplitude, backgrounds x their scales;
    the sums still equal the (scaled) mu of norm.zarr."""
    from gammadm.events import read_events
    from gammadm.normalise import NormContext, load
    from gammadm.report import _binned_model, fitted_expectations

    work, ci, _, _ = campaign
    cfg = load_config(ROOT / "tests" / "configs" / "ci_rates.yaml")  # the same grids
    base = work / "results" / "ci" / "gc"
    ctx = NormContext(cfg, "gc")
    events = read_events(base / "events.fits", ctx.obs.roi)
    model = _binned_model(base / "binned.zarr")  # the bin stage's, of every campaign
    norm = load(base / "norm.zarr")
    one = {"mass_TeV": 2.0, "sigmav_cm3_s": 1.0,
           **{f"scale_{k}_gc": 1.0 for k in ctx.backgrounds}}
    fit = {**one, "sigmav_cm3_s": 3e-25, **{f"scale_{k}_gc": 0.5 + i
                                            for i, k in enumerate(ctx.backgrounds)}}
    unit = fitted_expectations(cfg, "gc", ctx.models.dm, model, norm, one, events.n)
    got = fitted_expectations(cfg, "gc", ctx.models.dm, model, norm, fit, events.n)
    assert got["DM"]["mu"] == pytest.approx(3e-25 * unit["DM"]["mu"], rel=1e-12)
    for i, k in enumerate(ctx.backgrounds):
        assert got[k]["mu"] == pytest.approx((0.5 + i) * unit[k]["mu"], rel=1e-12)
    for k, c in got.items():
        assert c["nu"].sum() == pytest.approx(c["mu"], rel=1e-6), k
        assert c["nu"].min() >= 0, k


def test_corner_axes_follow_the_posterior_not_the_prior(tmp_path, caplog):
    """Nested sampling's dead points cover the prior; a narrow posterior among them
    must still fill the panels (corner then draws its contours without warnings)."""
    import logging

    from gammadm.inference.summary import write_corner

    rng = np.random.default_rng(2)
    x = np.vstack([rng.random((3000, 2)), rng.normal(0.5, 0.01, (3000, 2))])
    w = np.exp(-0.5 * (((x - 0.5) / 0.01) ** 2).sum(axis=1))
    with caplog.at_level(logging.WARNING):
        write_corner(tmp_path / "corner.png", x, w / w.sum(), ["a", "b"], {"a": 0.5})
    assert (tmp_path / "corner.png").stat().st_size > 10_000
    assert not [r for r in caplog.records if "contours" in r.getMessage()]
