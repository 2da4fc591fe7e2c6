"""Toy mixtures with exact densities on x in [0, 1] for the inference tests.

Dark matter: lambda_DM(x | m) = 2 (1 - m) 6x(1 - x) + m 3x^2 per unit amplitude (two
"sub-intervals" with S(m) = [2 (1 - m), m]; mu_DM = 2 - m); backgrounds:
b1 = 100 * 2x (mu 100), b2 = 50 * 2(1 - x) (mu 50).
"""

from __future__ import annotations

import numpy as np

from gammadm.inference.api import FunctionSpectrum
from gammadm.inference.data import ObservationArrays

MU_B = np.array([100.0, 50.0])
TREE = [{"name": "DM", "value": 0.3},
        {"name": "bkg", "value": 0.7, "children": [{"name": "b1", "value": 0.6},
                                                    {"name": "b2", "value": 0.4}]}]


def s_of_m(m):
    return np.array([2.0 * (1.0 - m), m])


SPECTRUM = FunctionSpectrum(s_of_m)


def kernels(x):
    """(g [n, 2], bkg [n, 2]) at x."""
    g = np.column_stack([6 * x * (1 - x), 3 * x**2])
    bkg = np.column_stack([MU_B[0] * 2 * x, MU_B[1] * 2 * (1 - x)])
    return g, bkg


def draw(rng, n_dm, n_b1, n_b2, m):
    """Events of each component (exact samplers of the densities)."""
    p_first = 2 * (1 - m) / (2 - m)
    k = rng.random(n_dm) < p_first
    dm = np.where(k, rng.beta(2, 2, n_dm), rng.beta(3, 1, n_dm))
    return np.concatenate([dm, rng.beta(2, 1, n_b1), rng.beta(1, 2, n_b2)])


def arrays(x, name="toy") -> ObservationArrays:
    g, bkg = kernels(x)
    n = x.size
    return ObservationArrays(
        name=name, dm_first=np.zeros(n, np.int64), dm_band=np.ascontiguousarray(g),
        line_g=np.zeros((n, 2)), line_energies=np.array([1.0, 2.0]), bkg=bkg,
        bkg_names=["b1", "b2"], mu_bkg=MU_B.copy(), dm_mu_kernel=np.ones(2),
        dm_points=np.zeros(2), sub_edges=np.array([1.0, 2.0, 3.0]), weight=np.ones(n),
        meta={"n_events": n, "n_cut": 0, "livetime_s": 1.0})


def config(mode="fractions"):
    return {"likelihood": {"mode": mode}, "dark_matter": {"name": "DM"}, "mixture": TREE,
            "priors": {"mass_TeV": {"type": "uniform", "low": 0.1, "high": 0.9},
                       "sigmav_cm3_s": {"type": "log_uniform", "low": 10.0, "high": 1e4},
                       "background_scale": {"type": "log_normal", "mean": 0.0,
                                            "sigma": 0.5}}}


class Slow:
    """A likelihood that sleeps ``delay`` seconds per call (to interrupt runs in tests);
    picklable, so it can sit in a checkpoint."""

    def __init__(self, like, delay: float):
        self.like, self.delay = like, delay

    def __call__(self, theta):
        import time

        time.sleep(self.delay)
        return self.like(theta)


def write_toy_stores(base, cfg: dict, n_events: int = 301, n_chunks: int = 3, seed: int = 0):
    """norm.zarr and marginals.zarr in the layout of the normalise and marginalise stages
    for cfg's first observation (synthetic, positive kernels on 40 sub-intervals)."""
    from pathlib import Path

    from gammadm.store import create_store, write_region

    rng = np.random.default_rng(seed)
    obs = Path(base) / cfg["campaign"] / cfg["observations"][0]["name"]
    obs.mkdir(parents=True, exist_ok=True)
    edges = np.geomspace(0.4, 25.0, 41)
    le = np.geomspace(0.4, 25.0 * (1 - 1e-12), 60)
    n_sub = edges.size - 1
    bk = {b["name"]: b["model"] for b in cfg["backgrounds"]}
    norm = {"axes/sub_edges": ((n_sub + 1,), None, edges, "TeV"),
            "axes/line_energies": ((le.size,), None, le, "TeV"),
            "dm/h": ((n_sub,), None, 1e13 * np.exp(-0.5 * np.log(edges[:-1]) ** 2), ""),
            "dm/points": ((le.size,), None, 1e13 * np.exp(-0.5 * np.log(le) ** 2), ""),
            "ccr/mu": ((1,), None, [2000.0], "counts"),
            "hgps/mu": ((2, n_sub), None, rng.random((2, n_sub)) * 10, "counts")}
    for name, model in bk.items():
        if model == "fermi_gaggero":
            norm[f"{name}/mu"] = ((n_sub,), None, rng.random(n_sub) * 5, "counts")
    create_store(obs / "norm.zarr", norm, {"backgrounds": bk}, 1)
    n = n_events
    # banded as the marginalisation stage writes them (here: dense, first = 0)
    values = {"dm/g": rng.random((n, n_sub)) * 1e13, "dm/g_first": np.zeros(n),
              "dm/line_g": rng.random((n, le.size)) * 1e13, "dm/line_first": np.zeros(n)}
    values.update({f"bkg/{name}": rng.random(n) * 100 for name in bk})
    # per-event arrays chunked along the events and filled afterwards, as the stage does
    marg = {"events/energy": ((n,), None, rng.uniform(0.5, 20, n), "TeV")}
    marg.update({k: (v.shape, 0, None, "") for k, v in values.items()})
    create_store(obs / "marginals.zarr", marg,
                 {"n_events": n, "livetime_s": 18000.0, "backgrounds": bk, "n_cut_roi": 0,
                  "n_cut_gti": 0, "observation": cfg["observations"][0]["name"],
                  "dark_matter": cfg["dark_matter"]["name"]}, n_chunks)
    for k, v in values.items():
        write_region(obs / "marginals.zarr", k, (slice(None),), v)
    return obs


def terminate_when_sampling(proc, out, delay: float) -> tuple[int, str]:
    """Wait until the run in ``proc`` writes its checkpoint stamp under ``out`` (sampling
    has started), let it run ``delay`` seconds, send SIGTERM (to its pid) and return
    (exit status, stderr)."""
    import signal
    import time

    stamp = out / ".ckpt" / "signal.json"
    t0 = time.monotonic()
    while not stamp.exists():
        if proc.poll() is not None or time.monotonic() - t0 > 120:
            raise AssertionError(f"the run did not start sampling: {proc.stderr.read()}")
        time.sleep(0.1)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    return rc, proc.stderr.read()
