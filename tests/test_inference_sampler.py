"""The dynesty adapter: SIGTERM saves a checkpoint and exits with the documented code;
the resumed run's posterior equals an uninterrupted one within errors; the reported
call count is the number of likelihood calls."""

import os
import subprocess
import sys

import numpy as np
import pytest

from gammadm.inference.api import model_from_arrays
from gammadm.inference.sampler import EXIT_CHECKPOINTED, SamplerSettings, run_dynesty

from . import inference_toys as toy
from .conftest import ROOT


def _run(out, delay):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), NUMBA_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "tests.inference_sigterm_script", str(out),
                             str(delay)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def test_sigterm_checkpoint_and_resume(tmp_path):
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    rc, err = toy.terminate_when_sampling(_run(stopped, 0.002), stopped, 1.5)
    assert rc == EXIT_CHECKPOINTED, err
    assert (stopped / ".ckpt" / "signal.pkl").exists()
    assert not (stopped / "result.npz").exists()
    ref = _run(whole, 0.0)
    resumed = _run(stopped, 0.0)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    a, b = np.load(stopped / "result.npz"), np.load(whole / "result.npz")
    assert abs(a["logz"] - b["logz"]) < 3 * np.hypot(a["logzerr"], b["logzerr"])
    for j in range(a["samples"].shape[1]):
        ma, mb = (np.sum(r["weights"] * r["samples"][:, j]) for r in (a, b))
        sd = np.sqrt(np.sum(b["weights"] * (b["samples"][:, j] - mb) ** 2))
        assert abs(ma - mb) < 0.3 * sd, j


def test_reported_calls_are_likelihood_calls():
    x = toy.draw(np.random.default_rng(1), 100, 140, 60, 0.5)
    model = model_from_arrays([toy.arrays(x)], toy.config(), [toy.SPECTRUM])
    calls = []

    def counted(theta):
        calls.append(1)
        return model.loglike(theta)

    _, n = run_dynesty(counted, model.prior, model.ndim, model.names,
                       SamplerSettings(nlive=50, dlogz=1.0, seed=3))
    assert n == len(calls)


def test_stale_checkpoint_is_set_aside_and_the_run_starts_afresh(tmp_path):
    from gammadm.inference.sampler import checkpoint_path

    x = toy.draw(np.random.default_rng(1), 50, 70, 30, 0.5)
    model = model_from_arrays([toy.arrays(x)], toy.config(), [toy.SPECTRUM])
    args = (model.loglike, model.prior, model.ndim, model.names)
    ck = checkpoint_path(tmp_path, "signal")
    old, _ = run_dynesty(*args, SamplerSettings(nlive=30, dlogz=2.0, seed=3), ck)
    fresh, n_fresh = run_dynesty(*args, SamplerSettings(nlive=31, dlogz=2.0, seed=3))
    # same settings, other data: the finished checkpoint must not be resumed
    new, n_new = run_dynesty(*args, SamplerSettings(nlive=31, dlogz=2.0, seed=3), ck,
                             fingerprint_extra="store re-made")
    assert ck.with_name("signal.stale.pkl").exists()
    assert ck.with_name("signal.stale.json").exists()
    assert new.logz[-1] == fresh.logz[-1] and n_new == n_fresh
    assert new.logz[-1] != old.logz[-1]
    # and the new checkpoint resumes as the finished run it is
    again, _ = run_dynesty(*args, SamplerSettings(nlive=31, dlogz=2.0, seed=3), ck,
                           fingerprint_extra="store re-made")
    assert again.logz[-1] == new.logz[-1]


def test_checkpoint_fingerprint_ignores_sections_the_posterior_does_not_read():
    import copy

    from gammadm.config import load_config
    from gammadm.inference.run import checkpoint_fingerprint

    cfg = load_config(ROOT / "config" / "ci.yaml")
    stores = (("gc", "n.zarr", "m.zarr"),)
    base = checkpoint_fingerprint(cfg, stores)
    other = copy.deepcopy(cfg)
    other["upper_limits"] = {"masses_TeV": [1.0, 3.0], "credibility": 0.9}
    other["sbc"] = {"replicas": 10}
    assert checkpoint_fingerprint(other, stores) == base
    other["priors"]["mass_TeV"]["high"] *= 2
    assert checkpoint_fingerprint(other, stores) != base
    assert checkpoint_fingerprint(cfg, (("gc", "n.zarr", "other.zarr"),)) != base


def test_checkpoint_fingerprint_follows_the_stores_contents(tmp_path):
    """A store re-made (same path, new files) makes an older checkpoint stale; reading
    it does not."""
    import time

    from gammadm.config import load_config
    from gammadm.inference.run import checkpoint_fingerprint
    from gammadm.store import create_store, read_complete, write_region

    cfg = load_config(ROOT / "config" / "ci.yaml")
    norm, marg = tmp_path / "n.zarr", tmp_path / "m.zarr"
    for p in (norm, marg):
        create_store(p, {"x": ((4,), 0, None, "")}, {}, 2)
        write_region(p, "x", (slice(0, 2),), np.ones(2))
        write_region(p, "x", (slice(2, 4),), np.ones(2))
    stores = (("gc", str(norm), str(marg)),)
    base = checkpoint_fingerprint(cfg, stores)
    read_complete(marg)
    assert checkpoint_fingerprint(cfg, stores) == base
    time.sleep(0.05)  # beyond a coarse file-system clock
    write_region(marg, "x", (slice(2, 4),), np.ones(2))  # a chunk job run again
    assert checkpoint_fingerprint(cfg, stores) != base
    # binned mode also reads binned.zarr beside norm.zarr
    assert checkpoint_fingerprint(cfg, stores, binned=True) != checkpoint_fingerprint(cfg, stores)


def test_long_runs_print_progress(capsys):
    x = toy.draw(np.random.default_rng(1), 50, 70, 30, 0.5)
    model = model_from_arrays([toy.arrays(x)], toy.config(), [toy.SPECTRUM])
    run_dynesty(model.loglike, model.prior, model.ndim, model.names,
                SamplerSettings(nlive=30, dlogz=2.0, seed=3), progress_every=0.0)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "sampling" in ln]
    assert len(lines) > 10 and "remaining dlogz" in lines[-1] and "stops below 2" in lines[-1]
    run_dynesty(model.loglike, model.prior, model.ndim, model.names,
                SamplerSettings(nlive=30, dlogz=2.0, seed=3))
    assert "sampling" not in capsys.readouterr().out  # a short run prints none
