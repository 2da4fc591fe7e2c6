"""ROI containment of a true photon: the IRF normalisation N at a point.

N(E_t, x_t) = integral_ROI R_E(E_r|E_t) P(x_r|x_t) dE_r dOmega_r factorises into the
migration CDF over [E_min / E_t, E_max / E_t] and, per Gaussian PSF term, products of
normal-CDF differences over the ROI rectangle in the tangent plane at x_t
(dx = dl cos b, dy = db; PHYSICS.md section 0). A Gaussian source of width
sigma_src convolves each term to sqrt(sigma_k^2 + sigma_src^2).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ..geometry import ROI, wrap_lon
from .reach import angular_offset
from .response import InstrumentResponse

__all__ = ["energy_containment", "spatial_containment", "point_containment"]


def energy_containment(irf: InstrumentResponse, roi: ROI, energy, offset,
                       zero_fill: bool = True) -> np.ndarray:
    """P(E_min <= E_r <= E_max | E_t, theta); zero where the response is undefined."""
    e = np.asarray(energy, float)
    lo, hi = roi.energy_tev
    p = (irf.migration_cdf(hi / e, e, offset, zero_fill)
         - irf.migration_cdf(lo / e, e, offset, zero_fill))
    return np.maximum(p, 0.0)


def spatial_containment(irf: InstrumentResponse, roi: ROI, energy, l_deg, b_deg, offset,
                        sigma_src_deg=0.0, zero_fill: bool = True) -> np.ndarray:
    """P(x_r in the ROI rectangle | E_t, x_t) for the PSF (and a Gaussian source)."""
    sig, w, d = irf.psf(energy, offset, zero_fill)
    l = wrap_lon(l_deg)
    b = np.asarray(b_deg, float)
    cosb = np.cos(np.radians(b))[..., None]
    x0 = (roi.l_deg[0] - l)[..., None] * cosb
    x1 = (roi.l_deg[1] - l)[..., None] * cosb
    y0 = (roi.b_deg[0] - b)[..., None]
    y1 = (roi.b_deg[1] - b)[..., None]
    s = np.sqrt(sig**2 + np.asarray(sigma_src_deg, float)[..., None] ** 2)
    s = np.where(s > 0, s, 1.0)
    terms = w * (ndtr(x1 / s) - ndtr(x0 / s)) * (ndtr(y1 / s) - ndtr(y0 / s))
    return np.where(d, terms.sum(axis=-1), 0.0)


def point_containment(irf: InstrumentResponse, roi: ROI, energy, l_deg, b_deg,
                      pointing: tuple[float, float], sigma_src_deg=0.0) -> np.ndarray:
    """N at true energy [TeV] and position (l, b) [deg] (broadcast), for a point or a
    Gaussian source of width ``sigma_src_deg``; zero where the IRF is undefined."""
    e, l, b = np.broadcast_arrays(*(np.asarray(v, float) for v in (energy, l_deg, b_deg)))
    theta = angular_offset(l, b, *pointing)
    return (energy_containment(irf, roi, e, theta)
            * spatial_containment(irf, roi, e, l, b, theta, np.broadcast_to(sigma_src_deg, e.shape)))
