"""Per-event marginalisation: arrays for the numba kernels and lambda per component.

`KernelInputs` tabulates, once per observation, what the kernels need on the energy
sub-intervals and true cells (exposure, PSF terms, offset-column mix, migration
support and tables). `event_terms` evaluates, per event, the dark-matter energy kernel
G_e[s] (so that lambda_DM(e | m) = amplitude sum_s S_s(m) G_e[s] for any mass) and
lambda of every background component at its nominal normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from .expected import gaussian_cell_mass, spectral_average
from .instrument.normalisation import cell_offsets, psf_cells
from .instrument.reach import angular_offset
from .kernels.marginal import (
    energy_kernel_batch,
    line_kernel,
    pack_migration,
    point_kernel,
    template_kernel,
)
from .observation import fov_coordinates

__all__ = ["KernelInputs", "event_terms", "create_store", "fill_chunk"]


def _support(mig, rows, tail_mass: float):
    """For each lower migration row in ``rows`` (mixed with the next one), the mu range
    holding all but tail_mass of the two rows' migration (empty if both are undefined)."""
    edges = mig.edges
    lo = np.empty(len(rows))
    hi = np.empty(len(rows))
    for k, r in enumerate(rows):
        c = mig.cdf[r:r + 2].reshape(-1, edges.size)
        c = c[c[:, -1] > 0]
        if c.size == 0:
            lo[k], hi[k] = np.inf, -np.inf
            continue
        i_lo = np.min(np.argmax(c > 0.5 * tail_mass, axis=1))
        i_hi = np.max(edges.size - 1 - np.argmax(c[:, ::-1] < 1 - 0.5 * tail_mass, axis=1))
        lo[k] = edges[max(i_lo - 1, 0)]
        hi[k] = edges[min(i_hi + 1, edges.size - 1)]
    return lo, hi


def _psf_window(obs, energies, theta):
    """PSF terms at energies x cells for the kernels (unused terms dropped, weight 0 where
    undefined, width 1 where unused) and the window radius per energy [deg]."""
    sig, w, d = psf_cells(obs.irf, energies, theta)
    w = np.where(d[..., None], w, 0.0)
    used = np.flatnonzero((w > 0).any(axis=(0, 1, 2)))
    sig, w = sig[..., used], w[..., used]
    reach = float(norm.isf(0.5 * obs.tail_mass)) * np.max(np.where(w > 0, sig, 0.0),
                                                            axis=(1, 2, 3))
    return np.ascontiguousarray(np.where(w > 0, sig, 1.0)), np.ascontiguousarray(w), reach


@dataclass
class KernelInputs:
    """Observation-level arrays of the marginalisation kernels."""

    sub_edges: np.ndarray
    sub_row: np.ndarray
    row_ln_e: np.ndarray
    mig_arrays: tuple
    col0: np.ndarray
    col_t: np.ndarray
    mu_lo: np.ndarray
    mu_hi: np.ndarray
    sigma: np.ndarray
    weight: np.ndarray
    eps: np.ndarray
    l_edges: np.ndarray
    b_edges: np.ndarray
    reach: np.ndarray
    offset_nodes: np.ndarray
    pointing: tuple

    @classmethod
    def build(cls, ctx) -> KernelInputs:
        obs, quad, mig = ctx.obs, ctx.quad, ctx.mig
        theta = cell_offsets(obs.true, obs.pointing)
        c0, _, ct = mig.theta_mix(theta)
        ec = quad.centres
        sig, w, reach = _psf_window(obs, ec, theta)
        eps = obs.irf.exposure(ec[:, None, None], theta[None], obs.livetime_s, zero_fill=True)
        lo, hi = _support(mig, quad.row, obs.tail_mass)
        return cls(quad.edges, quad.row.astype(np.int64), quad.row_log_energy,
                   pack_migration(mig), c0.astype(np.int64), ct, lo, hi, sig, w, eps,
                   obs.true.lon.edges, obs.true.lat.edges, reach, mig.table.offset_nodes,
                   obs.pointing)

    def energy_kernel(self, er, theta_r, sources_theta=()) -> np.ndarray:
        """K[event, sub, offset column]: the exact energy kernel, shared by components,
        for the offset columns that the event's PSF windows (and the point sources at
        offsets ``sources_theta``) can touch."""
        k, k1, dens, medges = self.mig_arrays
        # cells within the widest window, plus half a cell diagonal
        r = float(self.reach.max()) + 0.75 * float(np.max(np.diff(self.l_edges)))
        lo = np.asarray(theta_r) - r
        hi = np.asarray(theta_r) + r
        for th in sources_theta:
            lo, hi = np.minimum(lo, th), np.maximum(hi, th)
        nodes = self.offset_nodes
        c_lo = np.clip(np.searchsorted(nodes, lo) - 1, 0, nodes.size - 1)
        c_hi = np.clip(np.searchsorted(nodes, hi), 0, nodes.size - 1)
        out = np.empty((er.size, self.sub_row.size, k.shape[1]))
        return energy_kernel_batch(er, c_lo.astype(np.int64), c_hi.astype(np.int64),
                                   self.sub_edges, self.sub_row, self.row_ln_e, k, k1, dens,
                                   medges, self.mu_lo, self.mu_hi, out)

    def templates(self, er, lr, br, templates: np.ndarray, kern=None) -> np.ndarray:
        """G[event, template, sub] for cell templates [n_tpl, l, b]."""
        if kern is None:
            kern = self.energy_kernel(er, angular_offset(lr, br, *self.pointing))
        out = np.zeros((er.size, templates.shape[0], self.sub_row.size))
        return template_kernel(er, lr, br, kern, self.col0, self.col_t, self.sigma,
                               self.weight, self.eps, self.l_edges, self.b_edges, self.reach,
                               np.ascontiguousarray(templates), out)


def line_terms(ctx, inputs: KernelInputs, er, lr, br) -> np.ndarray:
    """g[event, point]: the dark matter's pointwise kernel at the line-energy grid
    ``ctx.line_energies`` (TeV^-1 sr^-1 per spatial unit per ...): a line at E_line gives
    lambda = amplitude x factor x g interpolated in ln E at E_line."""
    obs, mig = ctx.obs, ctx.mig
    e = ctx.line_energies
    theta = cell_offsets(obs.true, obs.pointing)
    tab = mig.table
    r0, _, t = tab._weights(np.log(np.clip(e, *tab.energy_edges[[0, -1]])),
                            np.log(tab.energy_nodes))
    sig, w, reach = _psf_window(obs, e, theta)
    eps = obs.irf.exposure(e[:, None, None], theta[None], obs.livetime_s, zero_fill=True)
    lo, hi = _support(mig, r0, obs.tail_mass)
    out = np.zeros((er.size, e.size))
    return line_kernel(er, lr, br, e, r0.astype(np.int64), t, inputs.mig_arrays[2],
                       inputs.mig_arrays[3], inputs.col0, inputs.col_t, lo, hi, sig, w, eps,
                       obs.true.lon.edges, obs.true.lat.edges, reach,
                       np.ascontiguousarray(ctx.spatial_dm), out)


def point_source_terms(ctx, inputs: KernelInputs, er, lr, br, src, kern=None) -> np.ndarray:
    """G[event, sub] of a point source: eps K P at the exact source position [sr^-1]."""
    obs, quad, mig = ctx.obs, ctx.quad, ctx.mig
    th = float(angular_offset(src.l_deg, src.b_deg, *obs.pointing))
    c0, _, ct = mig.theta_mix(np.array(th))
    sig, w, _ = obs.irf.psf(quad.centres, th, zero_fill=True)
    eps = obs.irf.exposure(quad.centres, th, obs.livetime_s, zero_fill=True)
    sig = np.where(w > 0, sig, 1.0)
    if kern is None:
        kern = inputs.energy_kernel(er, angular_offset(lr, br, *obs.pointing), [th])
    out = np.zeros((er.size, len(quad)))
    return point_kernel(er, lr, br, kern, int(c0), float(ct), np.ascontiguousarray(sig),
                        np.ascontiguousarray(w), eps, float(src.l_deg), float(src.b_deg), out)


def event_terms(ctx, inputs: KernelInputs, er, lr, br) -> dict:
    """Per-event terms: ``dm_g`` [event, sub] (continuum), ``dm_line_g`` [event,
    line-energy point] (lines) and lambda [event] of each background at its nominal
    normalisation (TeV^-1 sr^-1)."""
    quad = ctx.quad
    er, lr, br = (np.ascontiguousarray(v, dtype=float) for v in (er, lr, br))
    tpl = [ctx.spatial_dm]
    names = ["dm"]
    if ctx.diffuse_morph is not None:
        tpl.append(ctx.diffuse_morph)
        names.append("diffuse")
    gauss = [s for s in ctx.sources if not s.is_point]
    for s in gauss:
        mass = gaussian_cell_mass(ctx.obs.true.lon.edges, ctx.obs.true.lat.edges, s.l_deg,
                                  s.b_deg, s.sigma_deg)
        tpl.append(mass / ctx.obs.true.solid_angle)
        names.append(s.name)
    src_theta = [float(angular_offset(s.l_deg, s.b_deg, *ctx.obs.pointing))
                 for s in ctx.sources if s.is_point]
    kern = inputs.energy_kernel(er, angular_offset(lr, br, *ctx.obs.pointing), src_theta)
    g = inputs.templates(er, lr, br, np.array(tpl), kern)
    out = {"dm_g": g[:, 0, :], "dm_line_g": line_terms(ctx, inputs, er, lr, br)}
    lo, hi = quad.edges[:-1], quad.edges[1:]
    for name, model in ctx.backgrounds.items():
        if model == "fermi_gaggero":
            phi = spectral_average(ctx.models.diffuse.spectrum, lo, hi)
            out[name] = g[:, names.index("diffuse"), :] @ phi
        elif model == "hgps":
            lam = np.zeros(er.size)
            for src in ctx.sources:
                flux = spectral_average(src.dnde, lo, hi)
                if src.is_point:
                    lam += point_source_terms(ctx, inputs, er, lr, br, src, kern) @ flux
                else:
                    lam += g[:, names.index(src.name), :] @ flux
            out[name] = lam
        elif model == "ccr":
            fx, fy = fov_coordinates(lr, br, ctx.obs.pointing, ctx.obs.irf.fov_alignment)
            out[name] = ctx.obs.irf.ccr_rate(er, fx, fy, zero_fill=True) * ctx.obs.livetime_s
    return out


def create_store(ctx, events, path, n_chunks: int) -> None:
    """Create ``marginals.zarr`` for an event list: events, axes, NaN-filled per-event
    arrays chunked along the events so that job i owns chunk i."""
    from . import __version__
    from .store import create_store as _create

    n = events.n
    n_sub = len(ctx.quad)
    arrays = {
        "events/energy": ((n,), None, events.energy, "TeV"),
        "events/l": ((n,), None, events.l, "deg"),
        "events/b": ((n,), None, events.b, "deg"),
        "axes/sub_edges": ((n_sub + 1,), None, ctx.quad.edges, "TeV"),
        "axes/line_energies": ((ctx.line_energies.size,), None, ctx.line_energies, "TeV"),
        "dm/line_g": ((n, ctx.line_energies.size), 0, None,
                      "pointwise kernel at axes/line_energies (interpolate in ln E)"),
        "dm/g": ((n, n_sub), 0, None, f"TeV-1 sr-1 per ({ctx.models.dm.amplitude_unit}) per "
                                       "(TeV-1 cm-2 s-1 sr-1 per amplitude unit per spatial unit)"),
    }
    for name in ctx.backgrounds:
        arrays[f"bkg/{name}"] = ((n,), 0, None, "TeV-1 sr-1")
    attrs = {"gammadm_version": __version__, "observation": ctx.obs.name,
             "n_events": n, "n_read": events.n_read, "n_cut_roi": events.n_cut_roi,
             "n_cut_gti": events.n_cut_gti, "livetime_s": events.livetime_s,
             "backgrounds": ctx.backgrounds, "dark_matter": ctx.models.dm.name,
             "description": "lambda_k(e) of the backgrounds at nominal normalisation; "
                            "dm/g: lambda_DM(e) = amplitude sum_s S_s(m) g[e, s], S_s the "
                            "spectral factor averaged over sub-interval s"}
    _create(path, arrays, attrs, n_chunks)


def fill_chunk(ctx, inputs: KernelInputs, path, i: int, n_chunks: int) -> int:
    """Compute and write chunk i of n of the per-event terms; returns its event count."""
    import zarr

    from .store import chunk_range, write_region

    root = zarr.open_group(str(path), mode="r")
    n = int(root.attrs["n_events"])
    sl = chunk_range(n, i, n_chunks)
    if sl.stop <= sl.start:
        return 0
    er = root["events/energy"][sl]
    lr = root["events/l"][sl]
    br = root["events/b"][sl]
    terms = event_terms(ctx, inputs, er, lr, br)
    write_region(path, "dm/g", (sl, slice(None)), terms["dm_g"])
    write_region(path, "dm/line_g", (sl, slice(None)), terms["dm_line_g"])
    for name in ctx.backgrounds:
        write_region(path, f"bkg/{name}", (sl,), terms[name])
    return sl.stop - sl.start
