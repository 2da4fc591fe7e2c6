"""Benchmark: binned-mode expected counts nu_{k,b} on the seed campaign's grids.

Prints the time to compute every factor of binned.zarr (warm numba cache, one chunk),
the size of each array against the dense dark-matter kernel nuh[s, b], the time to
assemble nu_k from the factors (per dark-matter mass, per background) and the peak
memory of the run. Usage: .venv/bin/python benchmarks/bench_binned.py [config]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def _timed(fn, *a):
    t = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t


def main(config: str = "config/config.yaml") -> None:
    import numba

    from gammadm import binned
    from gammadm.config import load_config
    from gammadm.normalise import NormContext

    ctx = NormContext(load_config(config), None)
    obs, quad = ctx.obs, ctx.quad
    n_sub, n_pts = len(quad), ctx.line_energies.size
    n_cols = ctx.mig.density.shape[1]
    print(f"{config}: recon bins {obs.recon.shape} (E x l x b), true grid {obs.true.shape}, "
          f"{n_sub} energy sub-intervals, {n_pts} line-energy points, {n_cols} migration "
          f"offset columns; threads {numba.get_num_threads()}")

    sub = np.arange(n_sub)
    binned.sky_factors(ctx, sub[:2])  # compile / load the numba cache
    energy, t_e = _timed(binned.energy_factors, ctx, sub)
    sky, t_s = _timed(binned.sky_factors, ctx, sub)
    pts_e, t_pe = _timed(binned.point_energy_factors, ctx, ctx.line_energies)
    from gammadm.expected import ccr_binned

    _, t_c = _timed(ccr_binned, obs)
    print(f"compute (warm): energy factors {t_e:.2f} s, sky factors of {list(sky)} "
          f"{t_s:.2f} s, line-point energy factors {t_pe:.2f} s, CCR per bin {t_c:.2f} s")

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "binned.zarr"
        events = SimpleNamespace(energy=np.zeros(0), l=np.zeros(0), b=np.zeros(0), n=0,
                                 n_cut_roi=0, n_cut_gti=0)
        t = time.perf_counter()
        binned.create(ctx, path, 1, events)
        binned.fill_chunk(ctx, path, 0, 1)
        t_store = time.perf_counter() - t
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        model, t_load = _timed(binned.load, path)
    print(f"binned.zarr (create + fill, 1 chunk): {t_store:.2f} s, {disk / 1e6:.1f} MB on "
          f"disk; load {t_load:.2f} s")

    mb = 1e-6 * 8
    per_sky = sky["dm"].size * mb
    total = (energy.size + pts_e.size + sum(v.size for v in sky.values())
             + model.points_sky.size) * mb
    dense = n_sub * int(np.prod(obs.recon.shape)) * mb
    nonzero = np.count_nonzero(energy.any(axis=2)) / energy[..., 0].size
    print(f"memory: energy {energy.size * mb:.1f} MB, sky {per_sky:.1f} MB per component, "
          f"line points {(pts_e.size + model.points_sky.size) * mb:.1f} MB; all factors "
          f"{total:.1f} MB | dense nuh[s, b] would be {dense:.0f} MB "
          f"({100 * nonzero:.0f} % of the (s, E bin) pairs nonzero)")

    dm = ctx.models.dm
    model.nu_dm(dm, 1.0)
    t = time.perf_counter()
    masses = np.geomspace(0.2, 50.0, 20)
    for m in masses:
        model.nu_dm(dm, float(m), 3e-26)
    t_dm = (time.perf_counter() - t) / masses.size
    _, t_bkg = _timed(model.nu, "diffuse")
    occupied = np.arange(0, int(np.prod(obs.recon.shape)), 7)
    _, t_ker = _timed(model.dm_kernel, occupied)
    print(f"assemble: nu_DM(m) {1e3 * t_dm:.1f} ms per mass (continuum + lines), one "
          f"background {1e3 * t_bkg:.1f} ms; dm_kernel for {occupied.size} bins "
          f"[{n_sub} x {occupied.size}] {t_ker:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this run: {peak:.0f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:2])
