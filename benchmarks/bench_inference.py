"""Benchmark of the inference stage; prints figures.

1. The seed campaign (config/config.yaml, fractions mode, 500 events): likelihood calls
   to converge and sampling wall time (signal run), beside GammaBayes 0.1.9's anchor
   (623k calls at 0.83 % efficiency, 304 s nested sampling; PLATFORM.md).
2. Time per likelihood call at 7e5 synthetic events (banded dark-matter kernel of width
   26 on 250 sub-intervals, three backgrounds), serial and data-parallel on 2 ranks.
3. With ``--stores ROOT`` (a finished ``config/rates_seed.yaml`` campaign under ROOT):
   time per call on its ~7e5 real events, the kernels read as stored (whole band rows,
   the baseline) and without their zero ends (what the likelihood does).

Usage (from the project root)::

    python benchmarks/bench_inference.py [--results DIR] [--skip-seed] [--skip-synthetic]
                                         [--stores results]

The data-parallel figure runs ``mpiexec -n 2 python benchmarks/bench_inference.py
--dp-worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_EVENTS = 700_000
N_SUB, WIDTH, N_BKG = 250, 26, 3


def _cli(*args, cwd=ROOT) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), NUMBA_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "gammadm.cli", *args], cwd=cwd, env=env,
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"gammadm {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout.strip()


def bench_seed(results: Path) -> None:
    cfg = str(ROOT / "config" / "config.yaml")
    obs = results / "seed" / "gc"
    obs.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    if not (obs / "marginals.zarr").exists():
        _cli("normalise", "--config", cfg, "--out", str(obs / "norm.zarr"))
        _cli("simulate", "--config", cfg, "--out", str(obs / "events.fits"))
        _cli("marginalise", "--config", cfg, "--events", str(obs / "events.fits"),
             "--out", str(obs / "marginals.zarr"))
    print(f"seed stages (normalise, simulate, marginalise): {time.monotonic() - t:.1f} s")
    out = results / "seed" / "posterior"
    shutil.rmtree(out, ignore_errors=True)
    print(_cli("sample", "--config", cfg, "--results", str(results), "--out", str(out),
               "--background-only"))
    print(_cli("sample", "--config", cfg, "--results", str(results), "--out", str(out),
               "--bkg-evidence", str(out / "evidence.json")))
    s = json.loads((out / "summary.json").read_text())
    calls, wall = s["n_likelihood_calls"], s["wall_seconds"]["sample"]
    print(f"seed signal run: {calls} likelihood calls (target <= 60000; GammaBayes 623k), "
          f"sampling {wall:.1f} s (GammaBayes nested sampling 304 s), "
          f"ln B = {s['log_bayes_factor']:.2f}")
    for name, p in s["parameters"].items():
        print(f"  {name:10s} median {p['p50']:.4g}  99% [{p['p0.5']:.4g}, {p['p99.5']:.4g}]"
              f"  truth {p['truth']}  realised {p['realised']}")


def synthetic(n: int, seed: int):
    """Synthetic arrays (a shard of n events) for the timing."""
    from gammadm.inference.data import ObservationArrays

    rng = np.random.default_rng(seed)
    first = rng.integers(0, N_SUB - WIDTH, n).astype(np.int64)
    edges = np.geomspace(0.04, 190.0, N_SUB + 1)
    return ObservationArrays(
        name="synthetic", dm_first=first, dm_band=rng.random((n, WIDTH)),
        line_g=rng.random((n, 2)), line_energies=np.array([0.1, 100.0]),
        bkg=rng.random((n, N_BKG)), bkg_names=["CCR", "HGPS", "diffuse"],
        mu_bkg=np.full(N_BKG, n / 3.0), dm_mu_kernel=np.full(N_SUB, 1.0),
        dm_points=np.ones(2), sub_edges=edges, weight=np.ones(n))


def _model(arrays):
    from gammadm.inference.api import FunctionSpectrum, model_from_arrays

    cfg = {"likelihood": {"mode": "rates"}, "dark_matter": {"name": "DM"},
           "priors": {"mass_TeV": {"type": "log_uniform", "low": 0.1, "high": 100.0},
                      "sigmav_cm3_s": {"type": "log_uniform", "low": 0.1, "high": 10.0},
                      "background_scale": {"type": "log_normal", "mean": 0.0, "sigma": 0.1}}}
    spec = FunctionSpectrum(lambda m: np.full(N_SUB, 1.0 / m))
    return model_from_arrays([arrays], cfg, [spec])


def _time_calls(like, prior, ndim, n_calls=30) -> float:
    rng = np.random.default_rng(1)
    thetas = [prior(rng.random(ndim)) for _ in range(n_calls + 2)]
    like(thetas[0])
    like(thetas[1])  # compile and warm
    t = time.perf_counter()
    for th in thetas[2:]:
        like(th)
    return (time.perf_counter() - t) / n_calls


def bench_serial() -> None:
    model = _model(synthetic(N_EVENTS, 0))
    dt = _time_calls(model.loglike, model.prior, model.ndim)
    print(f"likelihood call, {N_EVENTS} events, serial (1 thread): {dt * 1e3:.2f} ms")


def bench_stores(root: Path, n_calls: int = 20) -> None:
    """The rates seed's real stores: whole band rows against compacted rows."""
    from gammadm.config import load_config
    from gammadm.inference.api import model_from_results

    model = model_from_results(load_config(ROOT / "config" / "rates_seed.yaml"), root)
    like = model.loglike.inner
    term = like.terms[0]
    a = term.a
    n, w = a.dm_band.shape
    nl, wl = a.line_g.shape
    compact = term._dm, term._lines
    whole = ((a.dm_first, np.arange(n + 1) * w, a.dm_band.ravel()),
             (a.line_first, np.arange(nl + 1) * wl, a.line_g.ravel()))
    kept = (compact[0][2].size + compact[1][2].size) / (a.dm_band.size + a.line_g.size)
    figures = {}
    for label, (dm, lines) in (("whole rows", whole), ("compacted", compact)) * 2:
        term._dm, term._lines = dm, lines  # same values, same sums (bit for bit)
        figures.setdefault(label, []).append(_time_calls(like, model.prior, model.ndim,
                                                         n_calls))
    term._dm, term._lines = compact
    base, new = min(figures["whole rows"]), min(figures["compacted"])
    print(f"likelihood call, rates seed ({n} events, bands {w} and {wl} wide, "
          f"{kept:.0%} of the values kept), 1 thread: whole rows {base * 1e3:.1f} ms, "
          f"compacted {new * 1e3:.1f} ms ({base / new:.1f}x)")


def dp_worker() -> None:
    """Run under mpiexec: each rank holds its own shard; rank 0 times the calls."""
    from mpi4py import MPI

    from gammadm.inference.parallel import DataParallelLikelihood, serve_data
    from gammadm.store import chunk_range

    comm = MPI.COMM_WORLD
    sl = chunk_range(N_EVENTS, comm.rank, comm.size)
    model = _model(synthetic(sl.stop - sl.start, comm.rank))
    if comm.rank:
        serve_data(model.loglike)
        return
    like = DataParallelLikelihood(model.loglike)
    dt = _time_calls(like, model.prior, model.ndim)
    like.release_workers()
    print(f"likelihood call, {N_EVENTS} events, data-parallel on {comm.size} ranks: "
          f"{dt * 1e3:.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", help="results root for the seed (default: a temp dir)")
    p.add_argument("--skip-seed", action="store_true")
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--stores", help="results root of a finished rates_seed campaign")
    p.add_argument("--dp-worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.dp_worker:
        dp_worker()
        return
    if a.stores:
        bench_stores(Path(a.stores))
    if not a.skip_synthetic:
        bench_serial()
        mpiexec = Path(sys.executable).parent / "mpiexec"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), NUMBA_NUM_THREADS="1")
        r = subprocess.run([str(mpiexec), "-n", "2", sys.executable, __file__, "--dp-worker"],
                           env=env, capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr)
    if not a.skip_seed:
        results = Path(a.results) if a.results else Path(tempfile.mkdtemp(prefix="bench_inf_"))
        bench_seed(results)


if __name__ == "__main__":
    main()
