"""Run under mpiexec by the MPI tests: the data-parallel likelihood against the serial
one on the same parameters (prints JSON on rank 0)."""

import json
import sys

import numpy as np


def dp_check(cfg_path: str, results: str) -> None:
    from mpi4py import MPI

    from gammadm.config import load_config
    from gammadm.inference.api import StoreModelSpec, _build, store_paths
    from gammadm.inference.parallel import DataParallelLikelihood, serve_data

    comm = MPI.COMM_WORLD
    cfg = load_config(cfg_path)
    for mode in ("fractions", "rates"):
        cfg["likelihood"]["mode"] = mode
        stores = tuple(store_paths(cfg, results))
        cj = json.dumps(cfg, sort_keys=True)
        spec = StoreModelSpec(cj, stores, True, (comm.rank, comm.size))
        if comm.rank:
            serve_data(_build(spec).loglike)
            continue
        dp = DataParallelLikelihood.from_spec(spec)
        serial = _build(StoreModelSpec(cj, stores, True, (0, 1)))
        rng = np.random.default_rng(3)
        rel = []
        for _ in range(25):
            th = serial.prior(rng.random(serial.ndim))
            a, b = dp(th), serial.loglike(th)
            rel.append(abs(a - b) / abs(b))
        dp.release_workers()
        print(json.dumps({"mode": mode, "max_rel": max(rel), "n_local": dp.inner.terms[0].a.n,
                          "n_serial": serial.loglike.terms[0].a.n}), flush=True)


if __name__ == "__main__":
    dp_check(*sys.argv[1:])
