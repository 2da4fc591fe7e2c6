"""Expected counts: mu_k (ROI events) and Lambda_k (true photons on the true grid).

mu_k = integral Phi_k eps N dE_t dOmega_t and Lambda_k = integral Phi_k eps over the true
grid, on the energy sub-intervals of `EnergyQuadrature` (smooth factors at their
centres, N exact within them) and the true cells (PHYSICS.md section 4). Everything is
kept per sub-interval so that chunk jobs can fill their own slices:

- dark matter, per unit amplitude (<sigma v> or 1/tau): the energy kernel
  H_s = sum_cells J eps N dOmega [GeV^2 cm^-5 x cm^2 s]; mu(m, A) = A sum_s dE_s S_s(m)
  H_s + lines, with S_s(m) the spectral factor averaged over the sub-interval;
- diffuse and HGPS sources: mu per sub-interval;
- CCR: a recon-space integral of B T over the ROI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import cell_solid_angle
from .instrument.normalisation import (
    EnergyQuadrature,
    MigrationTables,
    cell_offsets,
    energy_containment_points,
    energy_containment_sub,
    normalisation_sub,
    spatial_containment_cells,
)
from .instrument.containment import spatial_containment
from .instrument.reach import angular_offset
from .observation import Observation, fov_coordinates

__all__ = ["SubIntervalTerms", "subinterval_terms", "ccr_expected", "ccr_binned",
           "spectral_average", "gaussian_cell_mass", "line_energy_grid", "dm_points_kernel",
           "dm_expected", "dm_subinterval_spectrum"]

_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


def spectral_average(fn, a, b, upper=np.inf) -> np.ndarray:
    """Average of fn(E) over [a, b] (arrays), with fn = 0 above ``upper``; Gauss-Legendre
    (8 nodes) in ln E on [a, min(b, upper)], so a spectrum's end at E = m is exact."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    top = np.minimum(b, upper)
    ok = top > a
    la, lt = np.log(a), np.log(np.where(ok, top, a * (1 + 1e-12)))
    x = 0.5 * (la + lt)[..., None] + 0.5 * (lt - la)[..., None] * _GL_X
    e = np.exp(x)
    integral = 0.5 * (lt - la) * np.sum(_GL_W * fn(e) * e, axis=-1)
    return np.where(ok, integral / (b - a), 0.0)


def gaussian_cell_mass(l_edges, b_edges, l0: float, b0: float, sigma: float) -> np.ndarray:
    """Fraction of a 2-D Gaussian (width sigma [deg] at (l0, b0)) in each (l, b) cell
    (tangent plane at the source)."""
    from scipy.special import ndtr

    c = np.cos(np.radians(b0))
    dl = (np.asarray(l_edges) - l0) * c
    fl = np.diff(ndtr(dl / sigma))
    fb = np.diff(ndtr((np.asarray(b_edges) - b0) / sigma))
    return fl[:, None] * fb[None, :]


@dataclass
class SubIntervalTerms:
    """Per-sub-interval expected-count terms of one slice of sub-intervals."""

    sub: np.ndarray
    n: np.ndarray  # N [sub, l, b]
    dm_h: np.ndarray  # [sub] GeV2 cm-5 sr-1 x sr x cm2 s
    dm_lambda: np.ndarray  # [sub] the same without N
    background_mu: dict  # name -> [sub] counts (already x dE)
    background_lambda: dict
    hgps_mu: np.ndarray  # [src, sub]
    hgps_lambda: np.ndarray


def subinterval_terms(obs: Observation, mig: MigrationTables, quad: EnergyQuadrature,
                      spatial_dm: np.ndarray, diffuse_morph: np.ndarray | None,
                      diffuse_intensity, hgps_sources: list, sub) -> SubIntervalTerms:
    """Compute N and the expected-count terms for the sub-intervals ``sub``.

    ``spatial_dm``: cell-averaged dJ/dOmega (or dD/dOmega) [l, b]; ``diffuse_morph``:
    morphology S [l, b]; ``diffuse_intensity``: function E -> intensity at S = 1;
    ``hgps_sources``: `CatalogueSource` list.
    """
    sub = np.asarray(sub)
    true = obs.true
    theta = cell_offsets(true, obs.pointing)
    omega = true.solid_angle
    ec, de = quad.centres[sub], quad.widths[sub]
    n = normalisation_sub(obs.irf, mig, quad, obs.roi, true, obs.pointing, sub)
    eps = obs.irf.exposure(ec[:, None, None], theta[None], obs.livetime_s, zero_fill=True)
    w_mu = eps * n * omega[None]
    w_lam = eps * omega[None]
    dm_h = np.einsum("slb,lb->s", w_mu, spatial_dm)
    dm_lambda = np.einsum("slb,lb->s", w_lam, spatial_dm)
    bmu, blam = {}, {}
    if diffuse_morph is not None:
        phi = spectral_average(diffuse_intensity, quad.edges[sub], quad.edges[sub + 1]) * de
        bmu["diffuse"] = phi * np.einsum("slb,lb->s", w_mu, diffuse_morph)
        blam["diffuse"] = phi * np.einsum("slb,lb->s", w_lam, diffuse_morph)
    hmu = np.zeros((len(hgps_sources), sub.size))
    hlam = np.zeros_like(hmu)
    for k, src in enumerate(hgps_sources):
        flux = spectral_average(src.dnde, quad.edges[sub], quad.edges[sub + 1]) * de
        if src.is_point:
            th = float(angular_offset(src.l_deg, src.b_deg, *obs.pointing))
            e_src = obs.irf.exposure(ec, th, obs.livetime_s, zero_fill=True)
            ne = energy_containment_sub(mig, quad, obs.roi, np.array(th), sub)
            nx = spatial_containment(obs.irf, obs.roi, ec, src.l_deg, src.b_deg, th)
            hmu[k] = flux * e_src * np.clip(ne, 0, 1) * nx
            hlam[k] = flux * e_src
        else:
            mass = gaussian_cell_mass(true.lon.edges, true.lat.edges, src.l_deg, src.b_deg,
                                      src.sigma_deg)
            hmu[k] = flux * np.einsum("slb,lb->s", eps * n, mass)
            hlam[k] = flux * np.einsum("slb,lb->s", eps, mass)
    return SubIntervalTerms(sub, n, dm_h, dm_lambda, bmu, blam, hmu, hlam)


def line_energy_grid(quad: EnergyQuadrature, per_decade: int = 200) -> np.ndarray:
    """Energies [TeV] at which the pointwise dark-matter kernel is tabulated (for lines)."""
    lo, hi = quad.edges[0], quad.edges[-1]
    n = int(np.ceil(np.log10(hi / lo) * per_decade)) + 1
    return np.geomspace(lo, hi * (1 - 1e-12), n)


def dm_points_kernel(obs: Observation, mig: MigrationTables, spatial_dm: np.ndarray,
                     energies) -> np.ndarray:
    """Pointwise H(E) = sum_cells J eps N dOmega at the given energies (for lines)."""
    e = np.asarray(energies, float)
    theta = cell_offsets(obs.true, obs.pointing)
    ne = energy_containment_points(mig, obs.roi, e[:, None, None], theta[None])
    nx = spatial_containment_cells(obs.irf, obs.roi, e, obs.true.lon.edges,
                                   obs.true.lat.edges, theta)
    eps = obs.irf.exposure(e[:, None, None], theta[None], obs.livetime_s, zero_fill=True)
    return np.einsum("elb,lb->e", eps * np.clip(ne, 0, 1) * nx * obs.true.solid_angle[None],
                     spatial_dm)


def dm_subinterval_spectrum(dm, edges, mass_tev: float) -> np.ndarray:
    """S_s(m): the dark matter's spectral factor averaged over each interval of
    ``edges`` [TeV] (continuum; it ends at m, or m / 2 for decay)."""
    edges = np.asarray(edges, float)
    return spectral_average(lambda e: dm.spectral_factor(e, mass_tev), edges[:-1], edges[1:],
                            upper=mass_tev if dm.process == "annihilation" else 0.5 * mass_tev)


def dm_expected(dm, quad: EnergyQuadrature | np.ndarray, h_sub, line_energies, h_points,
                mass_tev: float, amplitude: float = 1.0) -> float:
    """mu (or Lambda) of the dark-matter component for one mass and amplitude; ``quad``
    the energy quadrature or just its sub-interval edges [TeV] (norm.zarr's
    axes/sub_edges)."""
    edges = np.asarray(quad.edges if isinstance(quad, EnergyQuadrature) else quad, float)
    sf = dm_subinterval_spectrum(dm, edges, mass_tev)
    mu = float(np.sum(sf * np.diff(edges) * h_sub))
    for e_line, factor in dm.line_factors(mass_tev):
        if line_energies[0] <= e_line <= line_energies[-1]:
            mu += factor * float(np.exp(np.interp(np.log(e_line), np.log(line_energies),
                                                  np.log(np.maximum(h_points, 1e-300)))))
    return amplitude * mu


def ccr_binned(obs: Observation, sub_pixels: int = 4, gl_nodes: int = 4) -> np.ndarray:
    """nu_CCR per recon bin, shape (n_E, n_l, n_b): T times the integral of B(E_r, x_r)
    over each bin, by Gauss-Legendre in ln E_r per recon energy bin and sub_pixels x
    sub_pixels sub-pixels (exact solid angles) per recon pixel."""
    rec = obs.recon
    x, w = np.polynomial.legendre.leggauss(gl_nodes)
    le = np.log(rec.energy.edges)
    mid, half = 0.5 * (le[1:] + le[:-1]), 0.5 * np.diff(le)
    e_nodes = np.exp(mid[:, None] + half[:, None] * x)  # [bin, node]
    e_w = half[:, None] * w * e_nodes  # dE weights
    n_l, n_b = rec.lon.nbin, rec.lat.nbin
    l_e = np.linspace(rec.lon.edges[0], rec.lon.edges[-1], n_l * sub_pixels + 1)
    b_e = np.linspace(rec.lat.edges[0], rec.lat.edges[-1], n_b * sub_pixels + 1)
    om = cell_solid_angle(l_e, b_e)
    L, B = np.meshgrid(0.5 * (l_e[1:] + l_e[:-1]), 0.5 * (b_e[1:] + b_e[:-1]), indexing="ij")
    fx, fy = fov_coordinates(L, B, obs.pointing, obs.irf.fov_alignment)
    out = np.empty(rec.shape)
    for i in range(rec.energy.nbin):  # one energy bin at a time keeps memory small
        rate = obs.irf.ccr_rate(e_nodes[i][:, None, None], fx[None], fy[None], zero_fill=True)
        per_sub = np.einsum("elb,e->lb", rate, e_w[i]) * om
        out[i] = per_sub.reshape(n_l, sub_pixels, n_b, sub_pixels).sum(axis=(1, 3))
    return out * obs.livetime_s


def ccr_expected(obs: Observation, sub_pixels: int = 4, gl_nodes: int = 4) -> float:
    """mu_CCR = T integral_ROI B(E_r, x_r) dE_r dOmega_r: the sum of `ccr_binned`."""
    return float(ccr_binned(obs, sub_pixels, gl_nodes).sum())
