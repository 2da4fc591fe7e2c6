"""Credible upper limits on <sigma v> at fixed dark-matter masses (rates mode).

PHYSICS.md section 6: an upper limit is read per mass with the mass fixed, not from
mass bins of the joint (m, <sigma v>) posterior. For each mass in
``upper_limits.masses_TeV`` a nested-sampling run samples <sigma v> and every
background scale factor (marginalised) at that mass, once with a uniform prior on
[0, high] (the reference choice: the limit then does not depend on an arbitrary lower
cut) and once with the log-uniform prior on [low, high] beside it, where low and high
are the bounds of ``priors.sigmav_cm3_s``. The limit is the ``credibility`` quantile of
the weighted <sigma v> samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .priors import LogUniform, PriorSet, Uniform
from .sampler import SamplerSettings, checkpoint_path, run_dynesty
from .summary import weighted_quantile

__all__ = ["FixedMass", "fixed_mass_priors", "upper_limits"]

SIGMAV = "sigmav_cm3_s"


class FixedMass:
    """A rates-mode signal likelihood with the mass fixed.

    Parameters
    ----------
    like : callable
        ln L of ``[mass_TeV, sigmav_cm3_s, scales...]``; picklable if the run is pooled
        or checkpointed (a store-backed likelihood pickles as its store paths).
    mass_tev : float
        The fixed mass [TeV].
    """

    def __init__(self, like, mass_tev: float):
        self.like = like
        self.mass_tev = float(mass_tev)

    def __call__(self, theta) -> float:
        return self.like(np.concatenate(([self.mass_tev], np.asarray(theta, float))))


def fixed_mass_priors(prior: PriorSet, sigmav_prior) -> PriorSet:
    """The signal model's prior without the mass and with ``sigmav_prior`` for
    <sigma v>; the scale factors keep theirs."""
    entries = [([SIGMAV], sigmav_prior)]
    entries += [(names, p) for names, p in prior.entries
                if names[0] not in ("mass_TeV", SIGMAV)]
    return PriorSet(entries)


def upper_limits(like, prior: PriorSet, cfg: dict, settings: SamplerSettings,
                 out: str | Path, fingerprint: str = "", pool=None) -> dict | None:
    """summary.json's ``upper_limits``: per mass, the uniform-prior and log-uniform-prior
    credible upper limits on <sigma v> [cm^3 s^-1].

    Parameters
    ----------
    like : callable
        The signal likelihood of the campaign run (see `FixedMass`).
    prior : PriorSet
        The signal model's prior (names ``mass_TeV, sigmav_cm3_s, scale_...``).
    cfg : dict
        The validated campaign (``upper_limits``, ``priors.sigmav_cm3_s``).
    settings : SamplerSettings
        As for the signal run (same nlive, dlogz, seed and queue size).
    out : path
        The run's output folder; checkpoints go to ``out/.ckpt/ul_{prior}_m{mass}.pkl``.
    fingerprint : str
        What identifies the data (the checkpoint's guard, as in `run_dynesty`).
    pool : object with ``map``, optional
        The run's pool (MPI proposal mode); default serial.

    Returns
    -------
    dict or None
        None without masses; else ``{parameter, credibility, priors: {uniform,
        log_uniform}, limits: [{mass_TeV, uniform, log_uniform, n_likelihood_calls}]}``.
    """
    spec = cfg["upper_limits"]
    if not spec["masses_TeV"]:
        return None
    sv = cfg["priors"][SIGMAV]
    variants = {"uniform": Uniform(0.0, float(sv["high"])),
                "log_uniform": LogUniform(float(sv["low"]), float(sv["high"]))}
    q = float(spec["credibility"])
    limits = []
    for mass in spec["masses_TeV"]:
        entry = {"mass_TeV": float(mass), "n_likelihood_calls": 0}
        for label, sv_prior in variants.items():
            pri = fixed_mass_priors(prior, sv_prior)
            ckpt = checkpoint_path(out, f"ul_{label}_m{mass:g}")
            extra = f"{fingerprint} upper limit at m = {mass!r} TeV, {sv_prior.describe()}"
            res, n_calls = run_dynesty(FixedMass(like, mass), pri, pri.ndim, pri.names,
                                       settings, ckpt, pool=pool, fingerprint_extra=extra)
            lw = np.asarray(res.logwt, float)
            w = np.exp(lw - lw.max())
            entry[label] = weighted_quantile(np.asarray(res.samples)[:, 0], w, q)
            entry["n_likelihood_calls"] += int(n_calls)
        limits.append(entry)
    return {"parameter": SIGMAV, "credibility": q,
            "priors": {k: v.describe() for k, v in variants.items()}, "limits": limits}
