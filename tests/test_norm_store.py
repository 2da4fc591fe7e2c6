"""norm.zarr: chunk jobs own whole chunks; chunked == unchunked; faults are detected."""

import copy
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from gammadm.normalise import load
from gammadm.store import IncompleteStoreError, chunk_range, parse_chunk

from .conftest import ROOT

CI = ROOT / "config" / "ci.yaml"


def _config(tmp_path, chunks):
    raw = yaml.safe_load(CI.read_text())
    raw = copy.deepcopy(raw)
    raw["normalisation"]["chunks"] = chunks
    p = tmp_path / f"ci_{chunks}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _run(cfg, out, *extra, wait=True):
    cmd = [sys.executable, "-m", "gammadm.cli", "normalise", "--config", str(cfg), "--out",
           str(out), *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)


def _same(a, b):
    assert set(a) == set(b)
    for k in a:
        if k == "attrs":
            assert {x: y for x, y in a[k].items() if x != "n_chunks"} == {
                x: y for x, y in b[k].items() if x != "n_chunks"}
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    out = d / "norm.zarr"
    _run(_config(d, 1), out)
    return load(out)


def test_chunk_arithmetic():
    assert parse_chunk("2/5") == (2, 5)
    with pytest.raises(ValueError):
        parse_chunk("5/5")
    parts = [chunk_range(145, i, 3) for i in range(3)]
    assert [p.start for p in parts] == [0, 49, 98] and parts[-1].stop == 145


def test_chunked_equals_unchunked_and_concurrent_jobs(tmp_path, reference):
    cfg = _config(tmp_path, 3)
    out = tmp_path / "norm.zarr"
    _run(cfg, out, "--create")
    # two chunk jobs at once, then the third
    procs = [_run(cfg, out, "--chunk", f"{i}/3", wait=False) for i in (2, 0)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    with pytest.raises(IncompleteStoreError, match="chunk 1 .*re-run chunk job 1/3"):
        load(out)
    _run(cfg, out, "--chunk", "1/3", "--sentinel", str(tmp_path / "done" / "1"))
    assert (tmp_path / "done" / "1").exists()
    _same(load(out), reference)


def test_killed_chunk_job_rerun_gives_the_same_store(tmp_path, reference):
    cfg = _config(tmp_path, 3)
    out = tmp_path / "norm.zarr"
    _run(cfg, out, "--create")
    for i in (0, 2):
        _run(cfg, out, "--chunk", f"{i}/3")
    # Kill as soon as the job's first array chunk lands (the others are still to be
    # written); a job too quick to catch that way is killed after half its run time.
    first = out / "n" / "c" / "1"
    t0 = time.monotonic()
    p = _run(cfg, out, "--chunk", "1/3", wait=False)
    while p.poll() is None and not first.exists():
        time.sleep(0.0005)
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    else:
        assert p.returncode == 0, p.stderr.read()
        run_time = time.monotonic() - t0
        _run(cfg, out, "--create")  # a fresh store: chunks 0 and 2 again, then kill 1
        for i in (0, 2):
            _run(cfg, out, "--chunk", f"{i}/3")
        p = _run(cfg, out, "--chunk", "1/3", wait=False)
        time.sleep(run_time / 2)
        assert p.poll() is None, "chunk job ended before it could be killed"
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL
    with pytest.raises(IncompleteStoreError):
        load(out)
    _run(cfg, out, "--chunk", "1/3")
    _same(load(out), reference)


def test_expected_counts_are_positive_and_finite(reference):
    r = reference
    assert r["n"].min() >= 0 and r["n"].max() <= 1 + 1e-12
    assert r["ccr/mu"][0] > 0 and np.all(r["dm/h"] >= 0)
    assert np.all(r["dm/lambda"] >= r["dm/h"])  # N <= 1
    assert np.all(r["diffuse/lambda"] >= r["diffuse/mu"])


def test_wrong_chunk_count_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gammadm.cli", "normalise", "--config",
                           str(CI), "--out", str(tmp_path / "x.zarr"), "--chunk", "0/2"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "normalisation.chunks" in proc.stderr
