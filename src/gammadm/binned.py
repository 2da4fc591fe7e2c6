"""Binned mode: expected counts per recon bin, nu_{k,b} (PHYSICS.md sections 4 and 5).

nu_k,b = integral over recon bin b of lambda_k = integral Phi_k eps N_b dE_t dOmega_t,
with N_b the probability that a true photon lands in bin b. It is N with the ROI
replaced by the bin, on the same energy sub-intervals and true cells with the same
smooth factors: the migration CDF over the bin's recon-energy interval (exact per
sub-interval) times, per Gaussian PSF term, the closed-form cell averages over the
pixel's l and b intervals. lambda is never evaluated at a bin centre. The recon edges
telescope: summed over the bins, nu_k = mu_k.

**Factorised storage (exact).** The energy part of N_b depends on a true cell only
through its linear mix of the migration's offset columns c, so

    nu_k[i, j, m] = sum_{s, c} energy[s, i, c] sky_k[s, c, j, m]

with energy[s, i, c] the average over sub-interval s of P(E_r in bin i | E_t, column
c) and sky_k[s, c, j, m] = sum over true cells of (Phi_k eps dE dOmega)_s,cell x (the
cell's weight of column c) x P(pixel (j, m) | cell). The dark matter's sky is per unit
amplitude and spectral factor (like H in norm.zarr), so nu_DM(m) = A sum_s S_s(m) dE_s
sum_c energy sky_DM + lines, for any mass; lines use the same factors at the
line-energy grid (pointwise in E_t): their per-bin shape is interpolated linearly in
ln E, their total as `dm_expected` interpolates H (in ln H), so that sum_b nu = mu.
Seed: 302 x 6 x 30 x 30 float64 = 13 MB per component, where the dense nuh[s, b]
would take 130 MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from . import __version__
from .config import ConfigError
from .expected import ccr_binned, dm_subinterval_spectrum, gaussian_cell_mass, spectral_average
from .instrument.normalisation import cell_offsets, energy_cdf_sub, psf_cells
from .instrument.reach import angular_offset
from .kernels.binned import pixel_columns
from .store import chunk_range, create_store, read_complete, write_region

__all__ = ["AUTO_BINNED_EVENTS", "use_binned", "recon_edges", "histogram", "energy_factors",
           "point_energy_factors", "sky_factors", "point_sky_factors", "create", "fill_chunk",
           "BinnedModel", "load"]

#: ``likelihood.binned: auto`` bins above this many events.
AUTO_BINNED_EVENTS = 1_000_000


def use_binned(setting, n_events: int) -> bool:
    """Whether the likelihood is binned: ``likelihood.binned`` (True, False or "auto")
    and the number of events (auto: binned above `AUTO_BINNED_EVENTS`)."""
    if setting is True or setting is False:
        return setting
    if setting == "auto":
        return n_events > AUTO_BINNED_EVENTS
    raise ConfigError("likelihood.binned", f"{setting!r} is not allowed; allowed values: "
                      '"auto", true, false')


def recon_edges(obs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recon-bin edges (E [TeV], l [deg], b [deg]) with the outer ones exactly the ROI's."""
    rec, roi = obs.recon, obs.roi
    out = []
    for edges, ends in ((rec.energy.edges, roi.energy_tev), (rec.lon.edges, roi.l_deg),
                        (rec.lat.edges, roi.b_deg)):
        e = np.array(edges, float)
        e[[0, -1]] = ends
        out.append(e)
    return tuple(out)


def histogram(obs, energy, l, b) -> np.ndarray:
    """Counts per recon bin (n_E, n_l, n_b) of events inside the closed ROI (events on
    an outer edge, within its tolerance, go to the edge bin); events outside the ROI
    are an error (select them first, as `read_events` does)."""
    outside = ~obs.roi.contains(energy, l, b)
    if outside.any():
        raise ValueError(f"{int(outside.sum())} events lie outside the ROI of observation "
                         f"{obs.name}; select them first")
    idx = []
    for edges, x in zip(recon_edges(obs), (energy, l, b)):
        i = np.searchsorted(edges, np.asarray(x, float), side="right") - 1
        idx.append(np.clip(i, 0, edges.size - 2))
    shape = obs.recon.shape
    flat = np.ravel_multi_index(tuple(idx), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)


def _bin_probabilities(cdf) -> np.ndarray:
    """Bin probabilities from a CDF at the bin edges (axis 1): rounding negatives are
    set to 0 and the rest rescaled so that the bins keep the CDF's ROI total exactly.

    The closed forms difference cumulative tables, so a narrow sub-interval (the seed
    has some of relative width 5e-8, where a cell edge nearly meets an IRF node) carries
    absolute rounding errors of 1e-10 or more; clipping alone would bias sum_b nu
    upward by ~1e-9.
    """
    p = np.clip(np.diff(cdf, axis=1), 0.0, None)
    total = np.clip(cdf[:, -1] - cdf[:, 0], 0.0, None)
    kept = p.sum(axis=1)
    return p * np.where(kept > 0, total / np.where(kept > 0, kept, 1.0), 0.0)[:, None]


def energy_factors(ctx, sub) -> np.ndarray:
    """energy[s, i, c]: average over sub-interval s of P(E_r in recon bin i | E_t) for
    migration offset column c (exact, see `_bin_probabilities` for rounding)."""
    cdf = energy_cdf_sub(ctx.mig, ctx.quad, recon_edges(ctx.obs)[0], np.asarray(sub))
    return _bin_probabilities(cdf)


def point_energy_factors(ctx, energies) -> np.ndarray:
    """P(E_r in recon bin i | E_t) per offset column at true energies (pointwise row mix
    in ln E, as `energy_containment_points`); shape (n_pts, n_E, n_cols)."""
    mig = ctx.mig
    tab = mig.table
    e = np.asarray(energies, float)
    i0, i1, t = tab._weights(np.log(np.clip(e, *tab.energy_edges[[0, -1]])),
                             np.log(tab.energy_nodes))
    mu = recon_edges(ctx.obs)[0][None, :, None] / e[:, None, None]
    cols = np.arange(mig.density.shape[1])[None, None, :]
    t = t[:, None, None]
    cdf = ((1 - t) * mig.value("cdf", i0[:, None, None], cols, mu)
           + t * mig.value("cdf", i1[:, None, None], cols, mu))
    return _bin_probabilities(cdf)


def _cell_sky(obs, mig, energies, templates: list, spec: list, target: list, n_out: int):
    """`pixel_columns` for cell templates at true energies (sub-interval centres or
    points): PSF terms and exposure there, zero where the response is undefined."""
    true = obs.true
    theta = cell_offsets(true, obs.pointing)
    c0, _, ct = mig.theta_mix(theta)
    sig, w, d = psf_cells(obs.irf, energies, theta)
    eps = obs.irf.exposure(energies[:, None, None], theta[None], obs.livetime_s,
                           zero_fill=True)
    cell_w = np.where(d, eps, 0.0)
    _, pl, pb = recon_edges(obs)
    out = np.zeros((n_out, energies.size, mig.density.shape[1], pl.size - 1, pb.size - 1))
    return pixel_columns(np.ascontiguousarray(sig), np.ascontiguousarray(w), cell_w,
                         c0.astype(np.int64), np.ascontiguousarray(ct, dtype=float),
                         np.ascontiguousarray(templates, dtype=float),
                         np.ascontiguousarray(spec, dtype=float), np.asarray(target, np.int64),
                         true.lon.edges, true.lat.edges, pl, pb, out)


def point_sky_factors(obs, mig, src, energies, flux) -> np.ndarray:
    """sky[s, c, j, m] of a point source at its exact position: flux x eps x (its column
    weight c) x the PSF mass of each pixel (normal-CDF differences in the tangent plane
    at the source), at the given true energies."""
    th = float(angular_offset(src.l_deg, src.b_deg, *obs.pointing))
    c0, c1, ct = mig.theta_mix(np.array(th))
    sig, w, d = obs.irf.psf(energies, th, zero_fill=True)  # (n_s, n_terms)
    eps = obs.irf.exposure(energies, th, obs.livetime_s, zero_fill=True)
    s = np.where(sig > 0, sig, 1.0)[..., None]
    _, pl, pb = recon_edges(obs)
    fl = np.diff(ndtr((pl - src.l_deg) * np.cos(np.radians(src.b_deg)) / s), axis=-1)
    fb = np.diff(ndtr((pb - src.b_deg) / s), axis=-1)
    px = np.einsum("st,stj,stm->sjm", w, fl, fb) * (d * flux * eps)[:, None, None]
    out = np.zeros((energies.size, mig.density.shape[1]) + px.shape[1:])
    out[:, int(c0)] += (1 - float(ct)) * px
    out[:, int(c1)] += float(ct) * px
    return out


def sky_factors(ctx, sub) -> dict:
    """sky_k[s, c, j, m] of every cell-integrated component for sub-intervals ``sub``:
    ``dm`` per unit amplitude and spectral factor, backgrounds (except CCR) as counts
    at nominal normalisation."""
    obs, quad = ctx.obs, ctx.quad
    sub = np.asarray(sub)
    lo, hi = quad.edges[sub], quad.edges[sub + 1]
    de = hi - lo
    omega = obs.true.solid_angle
    names = ["dm"]
    templates, spec, target = [ctx.spatial_dm * omega], [np.ones(sub.size)], [0]
    points = []
    for name, model in ctx.backgrounds.items():
        if model == "fermi_gaggero":
            names.append(name)
            templates.append(ctx.diffuse_morph * omega)
            spec.append(spectral_average(ctx.models.diffuse.spectrum, lo, hi) * de)
            target.append(len(names) - 1)
        elif model == "hgps":
            names.append(name)
            for src in ctx.sources:
                flux = spectral_average(src.dnde, lo, hi) * de
                if src.is_point:
                    points.append((name, src, flux))
                    continue
                templates.append(gaussian_cell_mass(obs.true.lon.edges, obs.true.lat.edges,
                                                    src.l_deg, src.b_deg, src.sigma_deg))
                spec.append(flux)
                target.append(len(names) - 1)
    ec = quad.centres[sub]
    sky = dict(zip(names, _cell_sky(obs, ctx.mig, ec, templates, spec, target, len(names))))
    for name, src, flux in points:
        sky[name] += point_sky_factors(obs, ctx.mig, src, ec, flux)
    return sky


def _cell_components(ctx) -> list[str]:
    """Names of the components stored as sky factors (all but CCR)."""
    return ["dm"] + [n for n, m in ctx.backgrounds.items() if m in ("fermi_gaggero", "hgps")]


def create(ctx, path: str | Path, n_chunks: int, events, events_path: str = "") -> None:
    """Create ``binned.zarr``: axes, the counts histogram of ``events``, nu of the CCR,
    NaN-filled per-sub-interval factors chunked so that job i owns chunk i."""
    obs = ctx.obs
    n_sub, n_pts = len(ctx.quad), ctx.line_energies.size
    n_cols = ctx.mig.density.shape[1]
    shape = obs.recon.shape
    e_edges, l_edges, b_edges = recon_edges(obs)
    dm_unit = f"{ctx.models.dm.spatial_unit} x sr x cm2 s"
    arrays = {
        "axes/energy_edges": ((shape[0] + 1,), None, e_edges, "TeV"),
        "axes/l_edges": ((shape[1] + 1,), None, l_edges, "deg"),
        "axes/b_edges": ((shape[2] + 1,), None, b_edges, "deg"),
        "axes/sub_edges": ((n_sub + 1,), None, ctx.quad.edges, "TeV"),
        "axes/line_energies": ((n_pts,), None, ctx.line_energies, "TeV"),
        "counts": (shape, None, histogram(obs, events.energy, events.l, events.b), "events"),
        "energy": ((n_sub, shape[0], n_cols), 0, None, "probability (sub-interval average)"),
        "points_energy": ((n_pts, shape[0], n_cols), 0, None, "probability"),
        "dm/points_sky": ((n_pts, n_cols) + shape[1:], 0, None, dm_unit),
    }
    for name in _cell_components(ctx):
        arrays[f"{name}/sky"] = ((n_sub, n_cols) + shape[1:], 0, None,
                                 dm_unit if name == "dm" else "counts")
    for name, model in ctx.backgrounds.items():
        if model == "ccr":
            arrays[f"{name}/nu"] = (shape, None, ccr_binned(obs), "counts")
    attrs = {
        "gammadm_version": __version__, "observation": obs.name,
        "livetime_s": obs.livetime_s, "irf_file": str(obs.irf.path),
        "events_file": str(events_path), "n_events": int(events.n),
        "n_cut_roi": int(events.n_cut_roi), "n_cut_gti": int(events.n_cut_gti),
        "hgps_names": [s.name for s in ctx.sources], "backgrounds": ctx.backgrounds,
        "dark_matter": ctx.models.dm.name,
        "description": "expected counts per recon bin (E_r, l, b): nu_k[i, j, m] = "
                       "sum_{s,c} energy[s, i, c] k/sky[s, c, j, m] (s: energy "
                       "sub-interval, c: migration offset column); dm/sky per unit "
                       "amplitude and spectral factor (x S_s(m) dE_s); lines from "
                       "points_energy and dm/points_sky at axes/line_energies "
                       "(interpolate linearly in ln E); CCR: ccr/nu directly",
    }
    create_store(path, arrays, attrs, n_chunks)


def fill_chunk(ctx, path: str | Path, i: int, n: int) -> None:
    """Compute and write chunk i of n (sub-intervals and line-energy points)."""
    sl = chunk_range(len(ctx.quad), i, n)
    sub = np.arange(len(ctx.quad))[sl]
    if sub.size:
        write_region(path, "energy", (sl,), energy_factors(ctx, sub))
        for name, sky in sky_factors(ctx, sub).items():
            write_region(path, f"{name}/sky", (sl,), sky)
    psl = chunk_range(ctx.line_energies.size, i, n)
    if psl.stop > psl.start:
        e = ctx.line_energies[psl]
        write_region(path, "points_energy", (psl,), point_energy_factors(ctx, e))
        ones = np.ones((1, e.size))
        write_region(path, "dm/points_sky", (psl,),
                     _cell_sky(ctx.obs, ctx.mig, e, [ctx.spatial_dm * ctx.obs.true.solid_angle],
                               ones, [0], 1)[0])


def _contract(energy, sky) -> np.ndarray:
    """sum_{s, c} energy[s, i, c] sky[s, c, j, m] -> (n_E, n_l, n_b) (a matrix product)."""
    return np.tensordot(energy, sky, axes=([0, 2], [0, 1]))


@dataclass
class BinnedModel:
    """The contents of a complete ``binned.zarr`` and nu_k assembled from it."""

    counts: np.ndarray
    energy_edges: np.ndarray
    l_edges: np.ndarray
    b_edges: np.ndarray
    sub_edges: np.ndarray
    line_energies: np.ndarray
    energy: np.ndarray
    points_energy: np.ndarray
    sky: dict
    points_sky: np.ndarray
    direct: dict
    attrs: dict

    def nu(self, name: str) -> np.ndarray:
        """nu [n_E, n_l, n_b] (counts) of a background at nominal normalisation."""
        if name in self.direct:
            return self.direct[name]
        if name == "dm" or name not in self.sky:
            raise KeyError(f"no background '{name}' in this store; have "
                           f"{sorted(set(self.sky) - {'dm'} | set(self.direct))}")
        return _contract(self.energy, self.sky[name])

    def nu_dm(self, dm, mass_tev: float, amplitude: float = 1.0) -> np.ndarray:
        """nu_DM [n_E, n_l, n_b] (counts) at one mass [TeV] and amplitude (<sigma v> or
        1/tau); continuum per sub-interval, lines interpolated linearly in ln E."""
        sf = dm_subinterval_spectrum(dm, self.sub_edges, mass_tev) * np.diff(self.sub_edges)
        nu = _contract(sf[:, None, None] * self.energy, self.sky["dm"])
        le = self.line_energies
        for e_line, factor in dm.line_factors(mass_tev):
            if not le[0] <= e_line <= le[-1]:
                continue
            p = int(np.clip(np.searchsorted(le, e_line, side="right") - 1, 0, le.size - 2))
            t = np.log(e_line / le[p]) / np.log(le[p + 1] / le[p])
            pair = [_contract(self.points_energy[k:k + 1], self.points_sky[k:k + 1])
                    for k in (p, p + 1)]
            shape = (1 - t) * pair[0] + t * pair[1]
            # the total as `dm_expected` interpolates it (in ln H), so sum_b nu = mu
            h = np.log(np.maximum([pair[0].sum(), pair[1].sum()], 1e-300))
            total = np.exp((1 - t) * h[0] + t * h[1])
            if shape.sum() > 0:
                nu = nu + factor * total / shape.sum() * shape
        return amplitude * nu

    def dm_kernel(self, bins=None, block: int = 8192) -> np.ndarray:
        """nuh[s, b] = sum_c energy[s, i_b, c] sky_DM[s, c, j_b, m_b] for flat bin
        indices ``bins`` (default: all; the dense array is n_sub x n_bins float64, e.g.
        130 MB for the seed, so pass the occupied bins): then nu_DM[bins] = amplitude
        (S_s(m) dE_s) @ nuh + lines."""
        return self._dense(self.energy, self.sky["dm"], bins, block)

    def dm_points_kernel(self, bins=None, block: int = 8192) -> np.ndarray:
        """The same on the line-energy grid: nuh_points[p, b] (pointwise in E_t)."""
        return self._dense(self.points_energy, self.points_sky, bins, block)

    def _dense(self, energy, sky, bins, block: int) -> np.ndarray:
        n_e, n_l, n_b = self.counts.shape
        bins = np.arange(n_e * n_l * n_b) if bins is None else np.asarray(bins)
        i, jm = np.divmod(bins, n_l * n_b)
        sky = sky.reshape(sky.shape[:2] + (-1,))
        out = np.zeros((energy.shape[0], bins.size))
        for k in range(0, bins.size, block):
            sl = slice(k, k + block)
            for c in range(energy.shape[2]):
                out[:, sl] += energy[:, i[sl], c] * sky[:, c, jm[sl]]
        return out


def load(path: str | Path) -> BinnedModel:
    """Read a complete ``binned.zarr`` (raises `IncompleteStoreError` naming an
    unwritten chunk)."""
    d = read_complete(path)
    sky = {k.split("/")[0]: v for k, v in d.items() if k.endswith("/sky") and k != "dm/points_sky"}
    direct = {k.split("/")[0]: v for k, v in d.items() if k.endswith("/nu")}
    return BinnedModel(d["counts"], d["axes/energy_edges"], d["axes/l_edges"],
                       d["axes/b_edges"], d["axes/sub_edges"], d["axes/line_energies"],
                       d["energy"], d["points_energy"], sky, d["dm/points_sky"], direct,
                       d["attrs"])
