"""Continuous dark-matter mass: the spectral factors S_s(m) on a dense ln m grid.

Evaluating S_s(m) directly (8-node Gauss-Legendre per sub-interval over the tabulated
spectra) costs milliseconds per mass, far more than the likelihood; so S_s is tabulated
once per observation on a dense ln m grid over the prior's range and interpolated with
a monotone piecewise cubic (PCHIP, which keeps S_s >= 0 and the zero above m where it
starts). Line energies and factors are interpolated linearly in ln m. The
interpolation error of expected counts is measured by `SpectralTable.relative_error`
(tests/test_inference_spectral.py bounds it: < 1e-3 above 0.6 TeV on the CI grid).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..expected import spectral_average
from ..kernels.likelihood import line_nodes, pchip_rows

__all__ = ["SpectralTable", "DMTerms"]


class DMTerms:
    """S_s(m) and the line terms (node index, ln E fraction, factor) for one mass."""

    __slots__ = ("s", "line_i", "line_t", "line_f")

    def __init__(self, s, line_i, line_t, line_f):
        self.s, self.line_i, self.line_t, self.line_f = s, line_i, line_t, line_f


def _direct(dm, sub_edges: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """S_s(m) [n_mass, n_sub] by quadrature (the reference)."""
    cut = 1.0 if dm.process == "annihilation" else 0.5
    return np.array([spectral_average(lambda e, m=m: dm.spectral_factor(e, m),
                                      sub_edges[:-1], sub_edges[1:], upper=cut * m)
                     for m in masses])


class SpectralTable:
    """S_s(m) and lines of one dark-matter model on one observation's sub-intervals.

    Parameters
    ----------
    dm : DarkMatterModel
    sub_edges : ndarray [n_sub + 1]
        Energy sub-interval edges [TeV].
    line_energies : ndarray [n_points]
        Energies [TeV] of the pointwise line kernel.
    mass_range : (float, float)
        Masses [TeV] to cover (the prior's range).
    per_decade : int
        Grid nodes per decade of mass.
    """

    def __init__(self, dm, sub_edges, line_energies, mass_range, per_decade: int = 200):
        lo, hi = (float(v) for v in mass_range)
        n = max(int(np.ceil(np.log10(hi / lo) * per_decade)) + 1, 4)
        # S_s(m) has a kink where the spectrum's end (m, or m/2 for decay) crosses a
        # sub-interval edge: put nodes there so that each cubic piece is smooth
        cut = 1.0 if dm.process == "annihilation" else 0.5
        kinks = np.asarray(sub_edges, float) / cut
        nodes = np.union1d(np.geomspace(lo, hi, n), kinks[(kinks > lo) & (kinks < hi)])
        keep = np.append(np.diff(np.log(nodes)) > 1e-3 / per_decade, True)
        keep[-1] = True
        self.masses = nodes[keep | np.isin(nodes, kinks)]
        n = self.masses.size
        self.ln_m = np.log(self.masses)
        self.sub_edges = np.asarray(sub_edges, float)
        self.line_energies = np.asarray(line_energies, float)
        self._ln_le = np.log(self.line_energies)
        self.dm = dm
        table = _direct(dm, self.sub_edges, self.masses)
        lines = [dm.line_factors(float(m)) for m in self.masses]
        self.n_lines = max((len(v) for v in lines), default=0)
        # line energies and factors ride along as extra columns of the same table
        extra = np.zeros((n, 2 * self.n_lines))
        extra[:, 0::2] = 1.0
        for j, v in enumerate(lines):
            for q, (e, f) in enumerate(v):
                extra[j, 2 * q], extra[j, 2 * q + 1] = e, f
        self.n_sub = table.shape[1]
        self._coef = np.ascontiguousarray(
            PchipInterpolator(self.ln_m, np.hstack([table, extra]), axis=0).c)
        self._row = np.empty(self._coef.shape[2])

    @property
    def mass_range(self) -> tuple[float, float]:
        return float(self.masses[0]), float(self.masses[-1])

    def spectral_factors(self, mass_tev: float) -> np.ndarray:
        """S_s(m) [n_sub] by interpolation (a new array)."""
        row = pchip_rows(self.ln_m, self._coef, math.log(mass_tev), self._row)
        return row[:self.n_sub].copy()

    def terms(self, mass_tev: float) -> DMTerms:
        """Everything the likelihood kernel needs at one mass."""
        row = pchip_rows(self.ln_m, self._coef, math.log(mass_tev), self._row)
        idx = np.empty(self.n_lines, np.int64)
        t = np.zeros(self.n_lines)
        f = np.zeros(self.n_lines)
        line_nodes(self._ln_le, row[self.n_sub:], idx, t, f)
        return DMTerms(row[:self.n_sub].copy(), idx, t, f)

    def relative_error(self, weights: np.ndarray, masses=None) -> np.ndarray:
        """|S_interp . w - S_direct . w| / (S_direct . w) at ``masses`` (default: the
        midpoints between grid nodes): the error of an expected count mu = S . w, e.g.
        w = width x H per sub-interval."""
        if masses is None:
            masses = np.sqrt(self.masses[1:] * self.masses[:-1])
            masses = masses[np.diff(np.log(self.masses)) > 1e-6]
        ref = _direct(self.dm, self.sub_edges, np.asarray(masses)) @ weights
        got = np.array([self.spectral_factors(m) @ weights for m in masses])
        return np.abs(got - ref) / np.where(ref > 0, ref, 1.0)
