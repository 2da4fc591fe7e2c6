"""Benchmark: IRF normalisation and per-event marginalisation on the seed campaign.

Prints the figures beside the GammaBayes 0.1.9 anchors measured on this machine
(../shared/docs/PLATFORM.md) and beside naive numpy references run here, in the same
run. Usage: .venv/bin/python benchmarks/bench_observation_model.py [n_events]
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

GAMMABAYES_NORM_S = 172.0  # IRF normalisation buffer, seed tutorial
GAMMABAYES_MARG_S_PER_EVENT = 12e-3  # per-event marginalisation


def main(n_events: int = 2000) -> None:
    import numba

    from gammadm.config import load_config
    from gammadm.events.simulate import build_components, fixed_counts, simulate
    from gammadm.instrument.containment import point_containment
    from gammadm.instrument.normalisation import normalisation_sub
    from gammadm.marginalise import KernelInputs, event_terms
    from gammadm.normalise import NormContext

    cfg = load_config("config/config.yaml")
    ctx = NormContext(cfg, None)
    obs, quad = ctx.obs, ctx.quad
    print(f"seed true grid: {obs.true.shape} cells (E x l x b), {len(quad)} energy "
          f"sub-intervals; threads {numba.get_num_threads()}")

    t = time.perf_counter()
    n = normalisation_sub(obs.irf, ctx.mig, quad, obs.roi, obs.true, obs.pointing)
    t_norm = time.perf_counter() - t
    code = ("import time; t=time.perf_counter(); from gammadm.config import load_config; "
            "from gammadm.observation import Observation; "
            "from gammadm.instrument.normalisation import *; "
            "c=load_config('config/config.yaml'); o=Observation.from_config(c); "
            "m=MigrationTables.from_irf(o.irf); q=EnergyQuadrature.build(o.true.energy.edges, m, o.irf); "
            "normalisation_sub(o.irf, m, q, o.roi, o.true, o.pointing); "
            "print(time.perf_counter()-t)")
    t_cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout.strip().splitlines()[-1])
    # naive reference: N by 4 x 4 x 4 point samples per cell (numpy), on 200 cells
    rng = np.random.default_rng(0)
    cells = [(rng.integers(len(quad)), rng.integers(obs.true.shape[1]),
              rng.integers(obs.true.shape[2])) for _ in range(200)]
    t = time.perf_counter()
    for s, i, j in cells:
        e = np.geomspace(quad.edges[s], quad.edges[s + 1], 4)
        l = np.linspace(*obs.true.lon.edges[i:i + 2], 4)
        b = np.linspace(*obs.true.lat.edges[j:j + 2], 4)
        E, L, B = np.meshgrid(e, l, b, indexing="ij")
        point_containment(obs.irf, obs.roi, E, L, B, obs.pointing).mean()
    t_naive = (time.perf_counter() - t) / len(cells) * n.size
    print(f"IRF normalisation N {n.shape}: {t_norm:.2f} s warm, {t_cold:.2f} s with imports "
          f"and IRF reading | naive numpy (64 samples per cell): {t_naive:.0f} s (extrapolated "
          f"from 200 cells) | GammaBayes: {GAMMABAYES_NORM_S:.0f} s")

    comps = build_components(ctx, 1.0, 3e-26)
    counts = fixed_counts(cfg, n_events)
    ev = simulate(np.random.default_rng(1), obs, ctx.mig, quad, comps, counts, "fixed", "CCR")
    inputs = KernelInputs.build(ctx)
    event_terms(ctx, inputs, ev.energy[:10], ev.l[:10], ev.b[:10])  # compile / load cache
    t = time.perf_counter()
    event_terms(ctx, inputs, ev.energy, ev.l, ev.b)
    t_marg = time.perf_counter() - t
    threads = numba.get_num_threads()
    rate = n_events / t_marg / threads
    print(f"marginalisation, seed model, {n_events} events: {t_marg:.2f} s = "
          f"{rate:.0f} events/s/core ({threads} threads) | GammaBayes: "
          f"{1 / GAMMABAYES_MARG_S_PER_EVENT:.0f} events/s | targets: >= 2e4 (goal 5e4) "
          "events/s/core")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
