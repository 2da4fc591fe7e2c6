"""The true grid derived from the reach of the IRF (PHYSICS.md section 4).

True photons outside the ROI still land inside it through the PSF and the migration,
so the true grid is wider than the ROI: in energy from E_min / mu_hi to
min(E_max / mu_lo, highest defined energy), where [mu_lo, mu_hi] holds all but
`REACH_MASS` of the migration at the ROI energy edges; on the sky the ROI widened by
n sigma_PSF at the lowest true energy, with n set by ``tail_mass``. Cell edges fall
on the ROI edges. A configured grid may enlarge this, never shrink it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from ..config import ConfigError
from ..geometry import ROI, EnergyAxis, Grid, SkyAxis, linear_edges, log_edges
from .response import InstrumentResponse, IRFError

__all__ = ["REACH_MASS", "Reach", "angular_offset", "derive_true_grid",
           "dropped_mass_fraction", "check_dropped_mass"]

#: Migration mass allowed outside [mu_lo, mu_hi] at the ROI energy edges (both tails).
REACH_MASS = 1e-6


def angular_offset(l_deg, b_deg, l0_deg: float, b0_deg: float) -> np.ndarray:
    """Great-circle distance [deg] of (l, b) from (l0, b0) (haversine, stable at 0)."""
    l, b = np.radians(l_deg), np.radians(b_deg)
    l0, b0 = np.radians(l0_deg), np.radians(b0_deg)
    h = np.sin((b - b0) / 2) ** 2 + np.cos(b) * np.cos(b0) * np.sin((l - l0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


@dataclass(frozen=True)
class Reach:
    """What the derivation found (all recorded with the tables)."""

    energy_lo_tev: float
    energy_hi_tev: float
    highest_defined_tev: float
    sigma_max_deg: float
    n_sigma: float
    margin_deg: float
    offset_max_deg: float


def _roi_offset_max(roi: ROI, pointing: tuple[float, float]) -> float:
    ls = np.linspace(*roi.l_deg, 61)
    bs = np.linspace(*roi.b_deg, 61)
    L, B = np.meshgrid(ls, bs)
    edge = (L == ls[0]) | (L == ls[-1]) | (B == bs[0]) | (B == bs[-1])
    return float(angular_offset(L[edge], B[edge], *pointing).max())


def _reach(irf: InstrumentResponse, roi: ROI, pointing, tail_mass: float) -> Reach:
    theta_roi = _roi_offset_max(roi, pointing)
    t_max = float(irf.edisp.offset_edges[-1])
    if theta_roi > t_max:
        raise IRFError(f"{irf.path}: the ROI reaches {theta_roi:.2f} deg from the pointing, "
                       f"beyond the IRF's {t_max:.2f} deg")
    thetas = np.linspace(0.0, theta_roi, 25)
    e_min, e_max = roi.energy_tev
    f_lo, f_hi = irf.edisp.energy_edges[[0, -1]]
    half = 0.5 * REACH_MASS

    # lowest true energy with more than half the reach mass above E_min
    e_scan = np.geomspace(max(f_lo, irf.psf_sigma.energy_edges[0]), e_min, 600)
    E, T = np.meshgrid(e_scan, thetas, indexing="ij")
    p_up = 1.0 - irf.migration_cdf(e_min / E, E, T, zero_fill=True)
    p_up = np.where(irf.defined(E, T, zero_fill=True), p_up, 0.0).max(axis=1)
    above = np.flatnonzero(p_up >= half)
    e_lo = float(e_scan[above[0]]) if above.size else e_min

    # highest energy where the response exists for every offset in the ROI: test each
    # interval between consecutive PSF / migration bin edges above E_max
    cuts = np.union1d(irf.edisp.energy_edges, irf.psf_sigma.energy_edges)
    cuts = cuts[(cuts > e_max) & (cuts <= min(f_hi, irf.psf_sigma.energy_edges[-1]))]
    cuts = np.concatenate([[e_max], cuts])
    mids = np.sqrt(cuts[1:] * cuts[:-1])
    E, T = np.meshgrid(mids, thetas, indexing="ij")
    ok = irf.defined(E, T, zero_fill=True).all(axis=1)
    e_def = float(cuts[np.flatnonzero(~ok)[0]]) if (~ok).any() else float(cuts[-1])

    e_scan = np.geomspace(e_max, min(f_hi, 50 * e_max), 600)
    E, T = np.meshgrid(e_scan, thetas, indexing="ij")
    p_dn = irf.migration_cdf(e_max / E, E, T, zero_fill=True)
    p_dn = np.where(irf.defined(E, T, zero_fill=True), p_dn, 0.0).max(axis=1)
    reach = np.flatnonzero(p_dn >= half)
    e_hi = min(float(e_scan[reach[-1]]) if reach.size else e_max, e_def)

    sig, w, d = irf.psf(np.full(thetas.shape, e_lo), thetas)
    sigma_max = float(np.max(np.where((w > 0) & d[:, None], sig, 0.0)))
    n_sigma = float(-ndtri(0.5 * tail_mass))
    return Reach(e_lo, e_hi, e_def, sigma_max, n_sigma, n_sigma * sigma_max, theta_roi)


def _merge(derived: np.ndarray, configured, reach: tuple[float, float], field: str, unit: str,
           build) -> np.ndarray:
    """Use the configured extent if it contains the reach, else fail naming the field."""
    if configured is None:
        return derived
    lo, hi = configured
    r_lo, r_hi = reach
    tol = 1e-9 * max(abs(r_lo), abs(r_hi), 1.0)
    if lo > r_lo + tol or hi < r_hi - tol:
        raise ConfigError(
            field, f"[{lo}, {hi}] {unit} is smaller than the IRF reach "
            f"[{r_lo:.6g}, {r_hi:.6g}] {unit} derived for this ROI; enlarge it or remove it"
        )
    return build(lo, hi)


def derive_true_grid(irf: InstrumentResponse, roi: ROI, pointing: tuple[float, float],
                     true_cfg: dict, tail_mass: float = 1e-7) -> tuple[Grid, Reach]:
    """The true grid of one observation and the reach it was derived from.

    Parameters
    ----------
    irf : InstrumentResponse
    roi : ROI
    pointing : (l, b) [deg]
    true_cfg : dict
        The config's ``true_grid`` section (bins per decade, pixel, optional extents).
    tail_mass : float
        Neglected PSF mass, sets the sky margin (5.33 sigma for 1e-7).
    """
    r = _reach(irf, roi, pointing, tail_mass)
    per_dec = true_cfg["energy_bins_per_decade"]
    pix = true_cfg["pixel_deg"]
    e0 = roi.energy_tev[0]

    def e_build(lo, hi):
        return log_edges(e0, lo, hi, per_dec)

    e_edges = e_build(r.energy_lo_tev, r.energy_hi_tev)
    if e_edges[-1] > r.highest_defined_tev * (1 + 1e-9):
        # never beyond the response: the last cell ends where the response ends
        e_edges = np.append(e_edges[e_edges < r.highest_defined_tev * (1 - 1e-6)],
                            r.highest_defined_tev)
    e_edges = _merge(e_edges, true_cfg.get("energy_tev"), (r.energy_lo_tev, r.energy_hi_tev),
                     "true_grid.energy_tev", "TeV", e_build)
    b_abs = max(abs(roi.b_deg[0]), abs(roi.b_deg[1])) + r.margin_deg
    margin_l = r.margin_deg / np.cos(np.radians(min(b_abs, 89.0)))  # dx = dl cos b
    l_reach = (roi.l_deg[0] - margin_l, roi.l_deg[1] + margin_l)
    l_edges = _merge(linear_edges(roi.l_deg[0], *l_reach, pix), true_cfg.get("l_deg"), l_reach,
                     "true_grid.l_deg", "deg", lambda lo, hi: linear_edges(roi.l_deg[0], lo, hi, pix))
    b_reach = (max(roi.b_deg[0] - r.margin_deg, -90.0), min(roi.b_deg[1] + r.margin_deg, 90.0))
    b_edges = _merge(linear_edges(roi.b_deg[0], *b_reach, pix), true_cfg.get("b_deg"), b_reach,
                     "true_grid.b_deg", "deg", lambda lo, hi: linear_edges(roi.b_deg[0], lo, hi, pix))
    return Grid(EnergyAxis(e_edges), SkyAxis(l_edges), SkyAxis(b_edges)), r


def dropped_mass_fraction(weights, defined) -> float:
    """Share of a component's weight (e.g. Phi eps N per true cell) where the IRF is undefined."""
    w = np.asarray(weights, float)
    tot = w.sum()
    return float(w[~np.asarray(defined, bool)].sum() / tot) if tot > 0 else 0.0


def check_dropped_mass(weights, defined, tail_mass: float, component: str,
                       irf_path) -> float:
    """Raise `IRFError` if the undefined IRF rows drop more than ``tail_mass`` of a component."""
    frac = dropped_mass_fraction(weights, defined)
    if frac > tail_mass:
        raise IRFError(
            f"{irf_path}: the IRF has no response where {frac:.3g} of component "
            f"'{component}' lies (more than tail_mass = {tail_mass:g}); restrict the ROI "
            "or choose an IRF defined there"
        )
    return frac
