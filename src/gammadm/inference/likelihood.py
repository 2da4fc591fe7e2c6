"""Hyper-likelihoods of PHYSICS.md section 6 as callables of the parameter vector.

- `FractionsLikelihood` (one observation): ln L = sum_e ln sum_k W_k lambda_k / mu_k,
  W_k from the mixture tree; binned: sum_b n_b ln sum_k W_k nu_k,b / mu_k.
- `RatesLikelihood` (any number of observations, shared <sigma v> and mass, a scale
  factor per background and observation): ln L = sum_obs [-sum_k A_k mu_k +
  sum_e ln sum_k A_k lambda_k(e)]; binned: Poisson per bin (with -ln n_b!).

Both split into a global part (expected counts; computed once) and a per-observation
event sum (`local`), which the data-parallel mode computes on event shards.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from ..kernels.likelihood import mixture_log_sum
from .data import ObservationArrays, compact_band
from .spectral import DMTerms, SpectralTable
from .tree import MixtureTree

__all__ = ["ObservationTerm", "FractionsLikelihood", "RatesLikelihood", "finite"]


class ObservationTerm:
    """One observation's arrays with a work buffer: the weighted log sum and mu_DM."""

    def __init__(self, arrays: ObservationArrays, spectral: SpectralTable | None,
                 poisson: bool = False):
        self.a = arrays
        self.spectral = spectral
        self._buf = np.empty(arrays.n)
        # both kernels without their zero ends: the likelihood reads every value per call
        self._dm = compact_band(arrays.dm_first, arrays.dm_band)
        self._lines = compact_band(arrays.line_first, arrays.line_g)
        self._ln_pts = np.log(np.maximum(arrays.dm_points, 1e-300))
        # ln n_b! of Poisson bins in rates mode (a shard's own bins: part of the local sum)
        self._lfact = (float(np.sum(gammaln(arrays.weight + 1.0)))
                       if arrays.binned and poisson else 0.0)

    def dm_terms(self, mass_tev: float) -> DMTerms:
        return self.spectral.terms(mass_tev)

    def mu_dm(self, t: DMTerms) -> float:
        """mu_DM per unit amplitude at the mass of ``t`` (same S and line rule as lambda)."""
        mu = float(t.s @ self.a.dm_mu_kernel)
        for i, w, f in zip(t.line_i, t.line_t, t.line_f):
            if f:
                mu += f * float(np.exp((1 - w) * self._ln_pts[i] + w * self._ln_pts[i + 1]))
        return mu

    def log_sum(self, t: DMTerms | None, a_dm: float, a_bkg: np.ndarray) -> float:
        """sum_e w_e ln(a_dm lambda_DM(e) + sum_k a_bkg[k] lambda_k(e))."""
        a = self.a
        if t is None:
            t = _NO_DM
        return mixture_log_sum(*self._dm, t.s, t.line_i, t.line_t, t.line_f, *self._lines,
                               float(a_dm), a.bkg, np.asarray(a_bkg, float), a.weight,
                               self._buf) - self._lfact


_NO_DM = DMTerms(np.zeros(1), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


def finite(value: float) -> float:
    """dynesty needs finite values: -inf (an event with zero density) -> -1e300."""
    return float(value) if np.isfinite(value) else -1e300


class _Base:
    """Shared call protocol: ``__call__(theta) = global_part + sum of local parts``."""

    names: list[str]
    terms: list[ObservationTerm]

    def __call__(self, theta) -> float:
        g, amps = self.prepare(np.asarray(theta, float))
        return finite(g + self.local(amps))

    def local(self, amps) -> float:
        """Event (or bin) sums of every observation held here, in observation order
        (none outside the parameter space, where `prepare` gives -inf and no amps)."""
        if amps is None:
            return 0.0
        return float(sum(term.log_sum(*amp) for term, amp in zip(self.terms, amps)))


class FractionsLikelihood(_Base):
    """Fractions mode on one observation (the seed tutorial).

    Parameter vector: [mass_TeV] (signal model only) + the sampled tree fractions
    (`MixtureTree.sampled_names`). Leaves pair with components by name: the dark matter
    (``dm_name``) and ``arrays.bkg_names``.
    """

    def __init__(self, arrays: ObservationArrays, tree: MixtureTree, spectral, dm_name: str,
                 signal: bool = True):
        self.terms = [ObservationTerm(arrays, spectral)]
        self.tree, self.signal, self.dm_name = tree, signal, dm_name
        known = set(arrays.bkg_names) | ({dm_name} if signal else set())
        if set(tree.leaves) != known:
            raise ValueError(f"mixture leaves {sorted(tree.leaves)} do not match the "
                             f"components {sorted(known)} of observation {arrays.name}")
        self._bkg_leaf = [tree.leaves.index(k) for k in arrays.bkg_names]
        self._dm_leaf = tree.leaves.index(dm_name) if signal else None
        self.names = (["mass_TeV"] if signal else []) + tree.sampled_names
        self._mu_bkg = arrays.mu_bkg

    def prepare(self, theta):
        x = theta[1:] if self.signal else theta
        if not self.tree.inside(x):  # fractions off the simplex: an unnormalised mixture
            return -np.inf, None
        w = self.tree.leaf_weights(x)
        a_bkg = w[self._bkg_leaf] / self._mu_bkg
        if not self.signal:
            return 0.0, [(None, 0.0, a_bkg)]
        term = self.terms[0]
        t = term.dm_terms(theta[0])
        mu = term.mu_dm(t)
        a_dm = w[self._dm_leaf] / mu if mu > 0 else 0.0
        return 0.0, [(t, a_dm, a_bkg)]


class RatesLikelihood(_Base):
    """Rates mode (extended likelihood) over one or more observations.

    Parameter vector: [mass_TeV, sigmav_cm3_s] (signal model only) + one scale factor per
    background and observation, named ``scale_{background}_{observation}``.
    """

    def __init__(self, observations: list[ObservationArrays], spectral: list, signal=True):
        self.terms = [ObservationTerm(a, s, poisson=True) for a, s in zip(observations, spectral)]
        self.signal = signal
        self.names = (["mass_TeV", "sigmav_cm3_s"] if signal else []) + [
            f"scale_{k}_{a.name}" for a in observations for k in a.bkg_names]

    def prepare(self, theta):
        i = 2 if self.signal else 0
        g = 0.0
        amps = []
        for term in self.terms:
            nb = len(term.a.bkg_names)
            scale = theta[i:i + nb]
            i += nb
            g -= float(scale @ term.a.mu_bkg)
            if self.signal:
                t = term.dm_terms(theta[0])
                g -= theta[1] * term.mu_dm(t)
                amps.append((t, theta[1], scale))
            else:
                amps.append((None, 0.0, scale))
        return g, amps
