"""Simulation-based calibration (SBC) of fractions mode (Talts et al., arXiv:1804.06788).

A replica draws the parameters theta = (mass, tree fractions) from the campaign's priors,
simulates an event list from exactly the likelihood's generative model (n_events ROI
events, component counts Multinomial(n_events, W(theta)), each event from its
component's ROI density at that mass), marginalises it, samples the posterior with
dynesty and records the rank of each true parameter among L equally weighted posterior
draws: the number of draws below the truth, 0..L. A calibrated inference makes each
parameter's ranks uniform on {0, ..., L} over replicas; `rank_statistics` tests that
with a rank histogram and a Kolmogorov-Smirnov test.

The replicas share the campaign's norm.zarr: the instrument response, the geometry and
the models' shapes do not depend on theta (the mass enters through the spectral table,
the fractions through the mixture weights).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .inference.priors import PriorSet
from .inference.tree import MixtureTree

__all__ = ["parameter_prior", "replica_config", "posterior_draws", "ranks", "run_replica",
           "rank_statistics", "uniform_band", "summarise", "plot_rank_histograms",
           "read_records"]


def parameter_prior(cfg: dict) -> tuple[MixtureTree, PriorSet]:
    """The signal model's mixture tree and prior (the likelihood's, same order:
    mass_TeV, then the tree's sampled fractions)."""
    from .inference.api import build_priors

    tree = MixtureTree(cfg["mixture"])
    return tree, build_priors(cfg, ["mass_TeV"] + tree.sampled_names, tree, 0)


def replica_config(cfg: dict, tree: MixtureTree, theta: np.ndarray) -> dict:
    """The campaign with its simulation truth set to ``theta``: ``simulation.mass_TeV``
    = theta[0] [TeV], every mixture node's value from the sampled fractions theta[1:],
    multinomial counts (the fractions likelihood's generative model)."""
    values = {n: v for g, vals in zip(tree.groups, tree.group_values(theta[1:]))
              for n, v in zip(g.names, vals)}
    out = copy.deepcopy(cfg)

    def walk(nodes):
        for node in nodes:
            node["value"] = values.get(node["name"], node["value"])  # an only child: 1
            walk(node.get("children", []))

    walk(out["mixture"])
    out["simulation"].update(mode="multinomial", mass_TeV=float(theta[0]))
    return out


def posterior_draws(x: np.ndarray, w: np.ndarray, n: int,
                    rng: np.random.Generator) -> np.ndarray:
    """n equally weighted draws (rows of x [samples, p]) from weighted samples (weights
    w [samples]), with replacement."""
    w = np.asarray(w, float)
    return np.asarray(x)[rng.choice(w.size, size=n, p=w / w.sum())]


def ranks(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank of each true parameter among the draws [L, p]: the number of draws below it
    (0..L), per parameter [p]."""
    return np.sum(np.asarray(draws) < np.asarray(truth)[None, :], axis=0)


def _streams(seed: int, replica: int):
    """Independent random streams of a replica: prior draw, simulation, sampler seed,
    posterior draws (a replica gives the same result whatever ran before it)."""
    prior, sim, sampler, draws = np.random.SeedSequence([seed, replica]).spawn(4)
    return (np.random.default_rng(prior), np.random.default_rng(sim),
            int(sampler.generate_state(1)[0]), np.random.default_rng(draws))


def run_replica(cfg: dict, norm_path: str | Path, replica: int) -> dict:
    """One SBC replica: draw, simulate, marginalise, sample, rank.

    Parameters
    ----------
    cfg : dict
        The validated campaign (fractions mode, one observation, an ``sbc`` section).
    norm_path : path
        The observation's complete norm.zarr (shared by all replicas).
    replica : int
        Replica index; with ``sbc.seed`` it seeds everything the replica draws.

    Returns
    -------
    dict
        ``truth`` and ``ranks`` per sampled parameter, the simulated component counts,
        the posterior's effective sample size (Kish), evidence, likelihood calls and
        wall seconds per step.
    """
    from .events.simulate import simulate_observation
    from .inference.api import model_from_stores
    from .inference.sampler import SamplerSettings, run_dynesty
    from .inference.summary import weighted_samples
    from .marginalise import KernelInputs, create_store, fill_chunk
    from .normalise import NormContext

    t0 = time.monotonic()
    wall = {}
    sbc = cfg["sbc"]
    n_draws = sbc["posterior_draws"]
    obs = cfg["observations"][0]["name"]
    prior_rng, sim_rng, sampler_seed, draw_rng = _streams(sbc["seed"], replica)
    tree, prior = parameter_prior(cfg)
    theta = prior(prior_rng.random(prior.ndim))
    ctx = NormContext(cfg, obs)
    wall["setup"] = time.monotonic() - t0
    events = simulate_observation(sim_rng, replica_config(cfg, tree, theta), ctx)
    wall["simulate"] = time.monotonic() - t0 - sum(wall.values())
    with tempfile.TemporaryDirectory(prefix="gammadm-sbc-") as tmp:
        marg = Path(tmp) / "marginals.zarr"
        inputs = KernelInputs.build(ctx)
        create_store(ctx, inputs, events, marg, 1)
        fill_chunk(ctx, inputs, marg, 0, 1)
        # the likelihood is the campaign's, not the replica's: it knows nothing of theta
        model = model_from_stores(cfg, [(obs, norm_path, marg)])
        if model.names != prior.names:
            raise RuntimeError(f"likelihood parameters {model.names} differ from the "
                               f"prior's {prior.names}")
        wall["marginalise"] = time.monotonic() - t0 - sum(wall.values())
        settings = SamplerSettings.from_config({**cfg["sampler"], "seed": sampler_seed},
                                               "serial", 1)
        res, n_calls = run_dynesty(model.loglike, model.prior, model.ndim, model.names,
                                   settings)
    wall["sample"] = time.monotonic() - t0 - sum(wall.values())
    x, w, _, _ = weighted_samples(res, model)
    r = ranks(posterior_draws(x[:, :model.ndim], w, n_draws, draw_rng), theta)
    counts = np.bincount(events.mc["component"], minlength=len(events.mc_components))
    wall["total"] = time.monotonic() - t0
    return {
        "replica": int(replica), "seed": [sbc["seed"], int(replica)],
        "truth": dict(zip(model.names, theta.tolist())),
        "ranks": dict(zip(model.names, r.tolist())), "posterior_draws": n_draws,
        "n_events": events.n, "counts": dict(zip(events.mc_components, counts.tolist())),
        "effective_sample_size": float(1.0 / np.sum(w**2)),
        "log_evidence": float(res.logz[-1]), "n_likelihood_calls": int(n_calls),
        "sampler": settings.as_dict(),
        "wall_seconds": {k: round(v, 3) for k, v in wall.items()},
    }


def rank_statistics(r: np.ndarray, n_draws: int, bins: int) -> dict:
    """Rank histogram and KS test of one parameter's ranks over the replicas.

    Parameters
    ----------
    r : int array [replicas]
        Ranks in 0..n_draws.
    n_draws : int
        L, the posterior draws per replica.
    bins : int
        Histogram bins; must divide L + 1 (each bin then holds the same number of
        possible ranks, so the expected count is replicas / bins in every bin).

    Returns
    -------
    dict
        ``histogram`` (counts per bin), ``ks_statistic`` and ``ks_pvalue`` of the
        mid-rank u = (r + 0.5) / (L + 1) against the uniform distribution on [0, 1]
        (the discreteness moves the statistic by at most 0.5 / (L + 1)).
    """
    from scipy.stats import kstest

    r = np.asarray(r)
    if (n_draws + 1) % bins:
        raise ValueError(f"{bins} bins do not divide the {n_draws + 1} possible ranks")
    if r.size == 0 or r.min() < 0 or r.max() > n_draws:
        raise ValueError(f"ranks must lie in 0..{n_draws} (got {r.size} ranks)")
    hist = np.bincount(r // ((n_draws + 1) // bins), minlength=bins)
    ks = kstest((r + 0.5) / (n_draws + 1), "uniform")
    return {"histogram": hist.tolist(), "ks_statistic": float(ks.statistic),
            "ks_pvalue": float(ks.pvalue)}


def uniform_band(replicas: int, bins: int, level: float = 0.99) -> tuple[float, float]:
    """The central ``level`` interval of one bin's count under uniform ranks
    (Binomial(replicas, 1 / bins))."""
    from scipy.stats import binom

    lo, hi = binom.interval(level, replicas, 1.0 / bins)
    return float(lo), float(hi)


def summarise(records: list[dict], n_draws: int, bins: int) -> dict:
    """The sweep's result from its replica records (`run_replica`): per parameter the
    ranks, their histogram and KS test; the uniform expectation and its 99 % band per
    bin; the replicas' wall times."""
    records = sorted(records, key=lambda d: d["replica"])
    if not records:
        raise ValueError("no replicas")
    other = {d["posterior_draws"] for d in records} - {n_draws}
    if other:
        raise ValueError(f"replicas with {sorted(other)} posterior draws, expected {n_draws}")
    names = list(records[0]["ranks"])
    params = {}
    for name in names:
        r = np.array([d["ranks"][name] for d in records])
        params[name] = {**rank_statistics(r, n_draws, bins), "ranks": r.tolist()}
    wall = np.array([d["wall_seconds"]["total"] for d in records])
    ess = np.array([d["effective_sample_size"] for d in records])
    return {
        "replicas": len(records), "replica_ids": [d["replica"] for d in records],
        "posterior_draws": n_draws, "bins": bins, "expected_per_bin": len(records) / bins,
        "band_99": list(uniform_band(len(records), bins)),
        "parameters": params,
        "min_ks_pvalue": min(p["ks_pvalue"] for p in params.values()),
        "effective_sample_size": {"min": float(ess.min()), "median": float(np.median(ess))},
        "replica_wall_seconds": {"sum": float(wall.sum()), "mean": float(wall.mean()),
                                 "median": float(np.median(wall)), "max": float(wall.max())},
    }


def plot_rank_histograms(summary: dict, path: str | Path, title: str = "") -> Path:
    """One panel per parameter: its rank histogram, the uniform expectation and the
    99 % band of a bin's count under uniform ranks, with the KS p-value."""
    from .models.plots import _plt, _save

    plt = _plt()
    params = summary["parameters"]
    ncol = min(len(params), 2)
    nrow = -(-len(params) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol, 3.9 * nrow), squeeze=False)
    edges = np.linspace(0, summary["posterior_draws"] + 1, summary["bins"] + 1)
    lo, hi = summary["band_99"]
    for ax, (name, p) in zip(axes.ravel(), params.items()):
        ax.axhspan(lo, hi, color="0.88", zorder=0, label="99 % band per bin (uniform)")
        ax.axhline(summary["expected_per_bin"], color="0.35", lw=1, zorder=1,
                   label="expected (uniform)")
        ax.stairs(p["histogram"], edges, color="C0", lw=1.8, zorder=2, label="replicas")
        ax.set(xlabel=f"rank of the true {name} among {summary['posterior_draws']} draws",
               ylabel="replicas per bin", xlim=(edges[0], edges[-1]),
               ylim=(0, 1.25 * max(hi, max(p["histogram"]))),
               title=f"{name}: KS p = {p['ks_pvalue']:.3g}, mean rank "
                     f"{np.mean(p['ranks']):.1f} (uniform {summary['posterior_draws'] / 2:g})")
    for ax in axes.ravel()[len(params):]:
        ax.set_axis_off()
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title or f"SBC rank histograms, {summary['replicas']} replicas")
    return _save(plt, fig, Path(path))


def read_records(paths: list[str | Path]) -> list[dict]:
    """Replica records written by ``gammadm sbc-replica``."""
    return [json.loads(Path(p).read_text()) for p in paths]
