"""The calibration sweep as Snakemake runs it: jobs only for a campaign with an `sbc`
section (one per replica, sharing norm.zarr), and a small sweep run for real in a
temporary directory, through to the rank histograms in the Snakemake report."""

from __future__ import annotations

import json

import pytest
import yaml

from .workflow_helpers import ROOT, dry_run_jobs, run_snakemake, snakemake_env

SBC = ROOT / "config" / "sbc.yaml"


def _small_sweep(tmp_path, replicas: int) -> str:
    """config/sbc.yaml on smaller grids, fewer events and live points."""
    cfg = yaml.safe_load(SBC.read_text())
    cfg["roi"].update(energy_tev=[1.0, 10.0], energy_bins_per_decade=5, l_deg=[-0.5, 0.5],
                      b_deg=[-0.5, 0.5])
    cfg["true_grid"] = {"energy_bins_per_decade": 10, "pixel_deg": 0.2}
    cfg["priors"]["mass_TeV"] = {"type": "log_uniform", "low": 1.0, "high": 20.0}
    cfg["simulation"]["n_events"] = 80
    cfg["sampler"].update(nlive=40, dlogz=1.0)
    cfg["normalisation"]["chunks"] = 1
    cfg["sbc"].update(replicas=replicas, posterior_draws=19, bins=5)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_only_a_sweep_campaign_has_replica_jobs(tmp_path):
    proc = run_snakemake(tmp_path, "-n", "-p", "-c2", "--configfile", str(SBC))
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    replicas = sorted(int(j["shell"].split("--replica ")[1].split()[0])
                      for j in jobs["sbc_replica"])
    assert replicas == list(range(200))
    assert all("--norm results/sbc/gc/norm.zarr " in j["shell"] for j in jobs["sbc_replica"])
    assert len(jobs["sbc_ranks"]) == 1 and len(jobs["normalise_chunk"]) == 2
    # the replicas simulate and marginalise in-process: no campaign event list or posterior
    assert not {"events", "marginalise_create", "sample", "report"} & set(jobs)
    proc = run_snakemake(tmp_path, "-n", "-c2", "--configfile", str(ROOT / "config" / "ci.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not {"sbc_replica", "sbc_ranks"} & set(dry_run_jobs(proc.stdout + proc.stderr))


@pytest.mark.slow
def test_small_sweep_runs_and_reports_rank_histograms(tmp_path, data_root):
    cfg = _small_sweep(tmp_path, 3)
    env = snakemake_env(data_root)
    run = run_snakemake(tmp_path, "-c2", "--configfile", cfg, env=env, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    out = tmp_path / "results" / "sbc" / "sbc"
    summary = json.loads((out / "ranks.json").read_text())
    assert summary["replicas"] == 3 and summary["replica_ids"] == [0, 1, 2]
    assert list(summary["parameters"]) == ["mass_TeV", "DM", "CCR", "HGPS"]
    for p in summary["parameters"].values():
        assert all(0 <= r <= 19 for r in p["ranks"]) and sum(p["histogram"]) == 3
        assert 0.0 <= p["ks_pvalue"] <= 1.0
    truths = set()
    for i in range(3):
        rec = json.loads((out / "replicas" / f"{i}.json").read_text())
        assert 1.0 <= rec["truth"]["mass_TeV"] <= 20.0
        assert sum(rec["counts"].values()) == rec["n_events"] == 80
        truths.add(rec["truth"]["mass_TeV"])
    assert len(truths) == 3  # every replica draws its own truth
    assert (out / "rank_histograms.png").stat().st_size > 10_000
    html = tmp_path / "report.html"
    rep = run_snakemake(tmp_path, "--configfile", cfg, "--report", str(html), env=env)
    assert rep.returncode == 0, (rep.stdout + rep.stderr)[-3000:]
    assert "rank_histograms.png" in html.read_text()
