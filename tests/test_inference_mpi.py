"""gammadm sample in its three modes on synthetic stores: MPI runs (mpiexec -n 2 from the
venv's PyPI MPICH) against serial runs; world-size checks; summary.json contents."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gammadm.config import load_config, load_schema

from . import inference_toys as toy
from .conftest import ROOT

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), NUMBA_NUM_THREADS="1")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A synthetic fractions-mode campaign (301 events, 3 chunks) and a config writer."""
    base = tmp_path_factory.mktemp("toy")
    raw = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    raw["campaign"] = "toy"
    raw["priors"] = {"mass_TeV": {"type": "log_uniform", "low": 0.8, "high": 1.25}}
    raw["sampler"] = {"nlive": 40, "dlogz": 1.0, "seed": 5, "queue_size": 2, "tasks": 1}
    toy.write_toy_stores(base / "results", load_config(raw))

    def write(name, **sampler):
        cfg = {**raw, "sampler": {**raw["sampler"], **sampler}}
        path = base / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path
    return base, write


def _sample(cfg, base, out, *extra, ranks=None):
    cmd = [sys.executable, "-m", "gammadm.cli", "sample", "--config", str(cfg), "--results",
           str(base / "results"), "--out", str(out), *extra]
    if ranks:
        cmd = [str(MPIEXEC), "-n", str(ranks)] + cmd
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)


def test_data_parallel_loglike_equals_serial(campaign):
    base, write = campaign
    r = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-m",
                        "tests.inference_mpi_script", str(write("dp")), str(base / "results")],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["mode"] for row in rows] == ["fractions", "rates"]
    for row in rows:
        assert row["n_local"] == 151 and row["n_serial"] == 301  # rank 0: ceil(301 / 2)
        assert row["max_rel"] < 1e-12


def test_proposal_mpi_run_equals_serial(campaign):
    base, write = campaign
    serial = _sample(write("serial"), base, base / "serial")
    assert serial.returncode == 0, serial.stderr
    mpi = _sample(write("proposal", tasks=2, parallel="proposal"), base, base / "proposal",
                  ranks=2)
    assert mpi.returncode == 0, mpi.stderr
    a = np.load(base / "serial" / "samples.npz")
    b = np.load(base / "proposal" / "samples.npz")
    np.testing.assert_array_equal(a["samples"], b["samples"])
    np.testing.assert_array_equal(a["log_weights"], b["log_weights"])
    s = json.loads((base / "proposal" / "summary.json").read_text())
    assert s["sampler"]["parallel"] == "proposal" and s["sampler"]["ranks"] == 2


def test_data_mode_run_and_bayes_factor(campaign):
    """Data mode through the CLI; the summary validates, states the priors, and counts
    only the signal run's likelihood calls (the background-only run has its own)."""
    import jsonschema

    base, write = campaign
    cfg = write("data", tasks=2, parallel="data")
    out = base / "data"
    bkg = _sample(cfg, base, out, "--background-only", ranks=2)
    assert bkg.returncode == 0, bkg.stderr
    ev = json.loads((out / "evidence.json").read_text())
    sig = _sample(cfg, base, out, "--bkg-evidence", str(out / "evidence.json"), ranks=2)
    assert sig.returncode == 0, sig.stderr
    s = json.loads((out / "summary.json").read_text())
    jsonschema.validate(s, load_schema("summary"))
    assert s["sampler"] == {"name": "dynesty", "nlive": 40, "dlogz": 1.0, "queue_size": 2,
                            "seed": 5, "parallel": "data", "ranks": 2}
    assert s["log_bayes_factor"] == pytest.approx(s["log_evidence"] - ev["log_evidence"])
    assert s["priors"]["mass_TeV"] == "log_uniform(0.8, 1.25)"
    res = np.load(out / "samples.npz")
    # the signal run's own count (that it counts real calls: test_inference_sampler); the
    # background-only run's count stays in evidence.json
    assert len(res["logl"]) - 40 <= s["n_likelihood_calls"] != ev["n_likelihood_calls"] > 0
    assert (out / "corner.png").stat().st_size > 0
    assert s["observations"] == [{"name": "gc", "n_events": 301, "n_cut": 0,
                                  "livetime_s": 18000.0}]


def test_world_size_must_match_tasks(campaign):
    base, write = campaign
    r = _sample(write("two", tasks=2, parallel="proposal"), base, base / "x")
    assert r.returncode == 2 and "sampler.tasks is 2 but the MPI world has 1 rank" in r.stderr
    r = _sample(write("one"), base, base / "y", ranks=2)
    assert r.returncode == 2 and "sampler.tasks is 1" in r.stderr


def test_missing_stores_and_evidence_are_one_line_errors(campaign, tmp_path):
    base, write = campaign
    cfg = write("missing")
    r = subprocess.run([sys.executable, "-m", "gammadm.cli", "sample", "--config", str(cfg),
                        "--results", str(tmp_path), "--out", str(tmp_path / "o")], cwd=ROOT,
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "marginals.zarr does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _sample(cfg, base, tmp_path / "o", "--bkg-evidence", str(tmp_path / "none.json"))
    assert r.returncode == 2 and "--bkg-evidence" in r.stderr


@pytest.mark.slow
def test_data_mode_sigterm_and_resume(tmp_path):
    """mpiexec forwards SIGTERM to both ranks: the worker ignores it, rank 0 finishes the
    iteration, saves and exits with EXIT_CHECKPOINTED; the same command resumes."""
    from gammadm.inference.sampler import EXIT_CHECKPOINTED

    raw = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    raw["campaign"] = "toy"
    raw["priors"] = {"mass_TeV": {"type": "log_uniform", "low": 0.8, "high": 1.25}}
    raw["sampler"] = {"nlive": 60, "dlogz": 1.0, "seed": 5, "queue_size": 2, "tasks": 2,
                      "parallel": "data"}
    cfg = tmp_path / "dp.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    toy.write_toy_stores(tmp_path / "results", load_config(raw), n_events=30000, n_chunks=2)
    out = tmp_path / "post"
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "gammadm.cli", "sample", "--config",
           str(cfg), "--results", str(tmp_path / "results"), "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stderr=subprocess.PIPE, text=True)
    rc, err = toy.terminate_when_sampling(p, out, 2.0)
    assert rc == EXIT_CHECKPOINTED and "stopped by SIGTERM" in err, err
    assert (out / ".ckpt" / "signal.pkl").stat().st_size < 1e6  # paths, not 30000 events
    assert not (out / "summary.json").exists()
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["sampler"]["parallel"] == "data" and s["n_events"] == 30000
