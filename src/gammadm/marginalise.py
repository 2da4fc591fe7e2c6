"""Per-event marginalisation: arrays for the numba kernels and lambda per component.

`KernelInputs` tabulates, once per observation, what the fused kernel needs on the
energy sub-intervals and true cells (exposure and PSF coefficients, offset-column mix,
migration support and tables, templates with their spectra, line-energy grid, point
sources). `event_terms` evaluates, per event, the dark-matter energy kernel G_e[s] on
its band of sub-intervals (lambda_DM(e | m) = amplitude sum_s S_s(m) G_e[s] for any
mass), the pointwise kernel for lines, and lambda of every background component at its
nominal normalisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
from scipy.special import ndtri

from .expected import gaussian_cell_mass, spectral_average
from .instrument.normalisation import cell_offsets, psf_cells
from .instrument.reach import angular_offset
from .kernels.marginal import (active_ranges, kernel_layout, marginal_kernel, pack_migration,
                               visit_order)
from .observation import fov_coordinates

__all__ = ["KernelInputs", "band_matvec", "band_to_dense", "event_terms", "create_store",
           "fill_chunk"]


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


def _psf_window(obs, energies, theta, l_edges, b_edges):
    """PSF terms at energies x cells for the kernels (unused terms dropped, weight 0 where
    undefined, width 1 where unused) and the window radius [deg] per (energy, cell of the
    event), see `_local_reach`."""
    sig, w_irf, d = psf_cells(obs.irf, energies, theta)
    w = np.where(d[..., None], w_irf, 0.0)
    used = np.flatnonzero((w > 0).any(axis=(0, 1, 2)))
    sig, w, w_irf = sig[..., used], w[..., used], w_irf[..., used]
    # the widest used term as a function of offset: piecewise linear between the IRF's
    # offset nodes, so a grid holding them brackets its maxima
    nodes = obs.irf.psf_sigma.offset_nodes
    top = float(theta.max()) + 0.1
    grid = np.union1d(np.linspace(0.0, top, 301), nodes[nodes < top])
    sig_g = psf_cells(obs.irf, energies, grid[None, :])[0][:, 0][..., used]
    reach = _local_reach(sig_g.max(axis=-1, initial=0.0), grid, theta,
                         float(-ndtri(0.5 * obs.tail_mass)), l_edges, b_edges)
    # a cell where the response is undefined contributes nothing (w = 0) but keeps the
    # IRF's interpolated widths: an event there takes them as the reference widths of
    # its windows (a placeholder of 1 deg made every neighbour's first-order width
    # correction wrong: 1.6e-2 in lambda at the ROI's corners at 0.12 TeV)
    sig = np.where((w_irf > 0) & (sig > 0), sig, 1.0)
    return np.ascontiguousarray(sig), np.ascontiguousarray(w), reach


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[s, lo[s, i]:hi[s, i] + 1]) for every (s, i) (a sparse table of maxima
    over power-of-two runs; lo <= hi)."""
    table = [values]
    while 2 ** len(table) <= values.shape[1]:
        half = 2 ** (len(table) - 1)
        table.append(np.maximum(table[-1][:, :-half], table[-1][:, half:]))
    level = np.floor(np.log2(hi - lo + 1)).astype(np.int64)
    rows = np.broadcast_to(np.arange(values.shape[0])[:, None], lo.shape)
    out = np.empty(lo.shape)
    for j in np.unique(level):
        sel = level == j
        t = table[j]
        out[sel] = np.maximum(t[rows[sel], lo[sel]], t[rows[sel], hi[sel] - 2**j + 1])
    return out


def _local_reach(widest: np.ndarray, grid: np.ndarray, theta: np.ndarray, n_sigma: float,
                 l_edges, b_edges) -> np.ndarray:
    """Window radius [deg] per (energy, event cell): n_sigma times the widest PSF of any
    cell the window can hold, so that every cell whose PSF puts more than the tail mass
    on the event (per axis) is inside it.

    ``widest`` [energy, offset]: the widest PSF term at the offsets ``grid`` [deg]
    (linear between grid points); ``theta`` [l, b]: the cells' offsets. The widest PSF
    of the whole grid (at the largest offsets, or where the IRF extrapolates) is 2-4x
    the local one at 1 TeV in the seed, and a window's cell count goes as its radius
    squared. The PSF depends on the offset only, and a window of radius r around an
    event in a cell holds cells whose offsets differ from that cell's by at most
    D(r) = sqrt(2) r / cos b + one cell diagonal. Starting from the global radius,
    each pass takes the widest PSF over that offset range, per energy and bin of the
    offset grid: every cell that matters lies inside the previous radius, hence
    inside the new one, so the radius only shrinks and stays sufficient.
    """
    cos_min = float(np.cos(np.radians(np.max(np.abs(b_edges)))))
    diag = float(np.hypot(np.max(np.diff(l_edges)), np.max(np.diff(b_edges))))
    n_g = grid.size
    r = np.broadcast_to(n_sigma * widest.max(axis=1, keepdims=True),
                        (widest.shape[0], n_g - 1)).copy()  # per bin [grid_i, grid_i+1]
    for _ in range(50):
        reach_theta = np.sqrt(2.0) * r / cos_min + diag
        lo = np.clip(np.searchsorted(grid, grid[None, :-1] - reach_theta, "right") - 1, 0,
                     n_g - 1)
        hi = np.clip(np.searchsorted(grid, grid[None, 1:] + reach_theta, "left"), 0, n_g - 1)
        new = np.minimum(r, n_sigma * _range_max(widest, lo, hi))
        if np.array_equal(new, r):
            break
        r = new
    bins = np.clip(np.searchsorted(grid, theta, "right") - 1, 0, n_g - 2)
    return r[:, bins]


def _point_source_arrays(ctx, sources: list, lo, hi):
    """Point sources for the kernel (those of ``sources``; empty arrays for none):
    positions, offset-column mix, PSF terms, exposure and flux per sub-interval at the
    exact source position."""
    obs, quad, mig = ctx.obs, ctx.quad, ctx.mig
    pts = [s for s in sources if s.is_point]
    n_sub = len(quad)
    lb = np.array([[s.l_deg, s.b_deg] for s in pts], dtype=float).reshape(-1, 2)
    theta = angular_offset(lb[:, 0], lb[:, 1], *obs.pointing)
    c0, _, ct = mig.theta_mix(theta)
    sig, w = [], []
    for th in theta:
        s_, w_, _ = obs.irf.psf(quad.centres, th, zero_fill=True)
        sig.append(np.where(w_ > 0, s_, 1.0))
        w.append(w_)
    n_terms = max([x.shape[-1] for x in w], default=1)
    sigma = np.ones((len(pts), n_sub, n_terms))
    weight = np.zeros((len(pts), n_sub, n_terms))
    for i in range(len(pts)):
        sigma[i, :, :sig[i].shape[-1]] = sig[i]
        weight[i, :, :w[i].shape[-1]] = w[i]
    eps = np.array([obs.irf.exposure(quad.centres, th, obs.livetime_s, zero_fill=True)
                    for th in theta]).reshape(len(pts), n_sub)
    flux = np.array([spectral_average(s.dnde, lo, hi) for s in pts]).reshape(len(pts), n_sub)
    return (lb, np.asarray(c0, np.int64).reshape(-1), np.asarray(ct, float).reshape(-1),
            sigma, weight, eps, flux, theta)


@dataclass
class KernelInputs:
    """Observation-level arrays of the fused marginalisation kernel: energy
    sub-intervals and migration tables, premultiplied PSF and exposure coefficients per
    (sub-interval, true cell), the templates with their spectra, the line-energy grid and
    the point sources."""

    energy: tuple      # sub_edges, ln_sub_edges, sub_row, row_ln_e, *migration, mu_lo, mu_hi
    spatial: tuple     # sigma, ca, col0, col_t, l_edges, b_edges, reach
    templates: np.ndarray  # [n_tpl, l, b]: 0 = dark matter, then the backgrounds' maps
    phi: np.ndarray        # [n_tpl, n_sub] spectra averaged over each sub-interval
    tpl_names: list        # background component of each template t >= 1
    fine: tuple        # f_l, f_b, f_pl, f_pb, f_dj, fine_sigma: J inside the central cells
    lines: tuple       # pts_e, pts_row, pts_t, pts_sub, pts_u, pts_rho [l, b, point]
    line_support: tuple  # pts_mu_lo, pts_mu_hi
    sources: tuple     # lb, col0, t, sigma, weight, eps, flux (point sources)
    source_theta: np.ndarray
    offset_nodes: np.ndarray
    pointing: tuple

    @classmethod
    def build(cls, ctx) -> KernelInputs:
        obs, quad, mig = ctx.obs, ctx.quad, ctx.mig
        true = obs.true
        theta = cell_offsets(true, obs.pointing)
        c0, _, ct = mig.theta_mix(theta)
        ec = quad.centres
        sig, w, reach = _psf_window(obs, ec, theta, true.lon.edges, true.lat.edges)
        eps = obs.irf.exposure(ec[:, None, None], theta[None], obs.livetime_s, zero_fill=True)
        ca = eps[..., None] * w
        lo, hi = _support(mig, quad.row, obs.tail_mass)
        e_lo, e_hi = quad.edges[:-1], quad.edges[1:]
        names = []
        tpl = [ctx.spatial_dm]
        phi = [np.zeros(len(quad))]
        bkg = {model: name for name, model in ctx.backgrounds.items()}
        if ctx.diffuse_morph is not None and "fermi_gaggero" in bkg:
            tpl.append(ctx.diffuse_morph)
            phi.append(spectral_average(ctx.models.diffuse.spectrum, e_lo, e_hi))
            names.append(bkg["fermi_gaggero"])
        for s in ctx.sources:
            if not s.is_point and "hgps" in bkg:
                mass = gaussian_cell_mass(true.lon.edges, true.lat.edges, s.l_deg, s.b_deg,
                                          s.sigma_deg)
                tpl.append(mass / true.solid_angle)
                phi.append(spectral_average(s.dnde, e_lo, e_hi))
                names.append(bkg["hgps"])
        # line-energy grid: migration row mix and support at each point, and the two
        # sub-interval centres around it (spatial sums are interpolated in ln E)
        e = ctx.line_energies
        tab = mig.table
        r0, _, t = tab._weights(np.log(np.clip(e, *tab.energy_edges[[0, -1]])),
                                np.log(tab.energy_nodes))
        p_lo, p_hi = _support(mig, r0, obs.tail_mass)
        ln_c = np.log(ec)
        j = np.clip(np.searchsorted(ln_c, np.log(e)) - 1, 0, len(quad) - 2)
        u = np.clip((np.log(e) - ln_c[j]) / (ln_c[j + 1] - ln_c[j]), 0.0, 1.0)
        # the exposure has kinks at the IRF's energy nodes: correct the interpolated
        # spatial sums by the exact exposure ratio at the event's cell
        eps_p = obs.irf.exposure(e[:, None, None], theta[None], obs.livetime_s, zero_fill=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            ea, eb = eps[j], eps[j + 1]
            geo = np.where((ea > 0) & (eb > 0), ea * (eb / ea) ** u[:, None, None],
                           (1 - u[:, None, None]) * ea + u[:, None, None] * eb)
            rho = np.where(geo > 0, eps_p / geo, 1.0)
        # [l, b, point]: an event reads its cell's ratios for a run of points, in order
        # (as [point, l, b] each point was 48 kB from the last)
        rho = np.moveaxis(rho, 0, -1)
        src = _point_source_arrays(ctx, ctx.sources if "hgps" in bkg else [], e_lo, e_hi)
        c = np.ascontiguousarray
        templates = c(np.array(tpl))
        return cls(
            (quad.edges, np.log(quad.edges), quad.row.astype(np.int64), quad.row_log_energy,
             *pack_migration(mig), lo, hi),
            (c(sig), c(ca), c0.astype(np.int64), ct, true.lon.edges, true.lat.edges, reach),
            templates, c(np.array(phi)), names, _central_structure(ctx),
            (e, r0.astype(np.int64), t, j.astype(np.int64), u, c(rho)), (p_lo, p_hi),
            src[:7], src[7], mig.table.offset_nodes, obs.pointing)

    @cached_property
    def _kernel_arrays(self) -> tuple:
        """sigma, ca, the templates' column mix and dJ in the kernel's layout (made once
        per instance; `dataclasses.replace` makes a new one)."""
        sigma, ca, _, col_t = self.spatial[:4]
        return kernel_layout(sigma, ca, self.templates, col_t, self.fine[4])

    def ranges(self, er) -> np.ndarray:
        """Per event: the dark-matter band, the line-point band and the sub-intervals
        whose spatial sums are needed (see `active_ranges`)."""
        er = np.ascontiguousarray(er, dtype=float)
        sub_edges, mu_lo, mu_hi = self.energy[0], self.energy[-2], self.energy[-1]
        pts_e, pts_sub = self.lines[0], self.lines[3]
        return active_ranges(er, sub_edges, mu_lo, mu_hi, pts_e, *self.line_support, pts_sub,
                             np.empty((er.size, 6), dtype=np.int64))

    def columns(self, er, lr, br) -> tuple[np.ndarray, np.ndarray]:
        """Offset columns of the migration each event's PSF windows (and the point
        sources) can touch."""
        reach, l_edges = self.spatial[6], self.spatial[4]
        theta_r = angular_offset(lr, br, *self.pointing)
        # cells within the widest window, plus half a cell diagonal
        r = float(reach.max()) + 0.75 * float(np.max(np.diff(l_edges)))
        lo, hi = theta_r - r, theta_r + r
        for th in self.source_theta:
            lo, hi = np.minimum(lo, th), np.maximum(hi, th)
        nodes = self.offset_nodes
        c_lo = np.clip(np.searchsorted(nodes, lo) - 1, 0, nodes.size - 1)
        c_hi = np.clip(np.searchsorted(nodes, hi), 0, nodes.size - 1)
        return c_lo.astype(np.int64), c_hi.astype(np.int64)

    def run(self, er, lr, br, widths: tuple[int, int] | None = None) -> dict:
        """All per-event terms: ``dm_g`` [event, band] from sub-interval ``dm_first``,
        ``line_g`` [event, band] from line point ``line_first``, ``templates`` [event,
        t] (t >= 1: backgrounds with their spectra) and ``points`` [event]."""
        er, lr, br = (np.ascontiguousarray(v, dtype=float) for v in (er, lr, br))
        rng = self.ranges(er)
        need = (int(max(1, np.max(rng[:, 1] - rng[:, 0] + 1, initial=1))),
                int(max(1, np.max(rng[:, 3] - rng[:, 2] + 1, initial=1))))
        w, wl = widths or need
        if need[0] > w or need[1] > wl:
            raise ValueError(f"band widths {need} exceed the store's {(w, wl)}")
        n = er.size
        dm = np.empty((n, w))
        line = np.empty((n, wl))
        tpl = np.empty((n, self.templates.shape[0]))
        pts = np.empty(n)
        c_lo, c_hi = self.columns(er, lr, br)
        order = visit_order(er, lr, br, numba.get_num_threads())
        sigma, ca, mix, f_djt = self._kernel_arrays
        col0, col_t, l_edges, b_edges, reach = self.spatial[2:]
        f_l, f_b, f_pl, f_pb, _, fine_sigma = self.fine
        marginal_kernel(er, lr, br, order, rng, c_lo, c_hi, *self.energy, sigma, ca, col0,
                        col_t, l_edges, b_edges, reach, mix, self.phi, f_l, f_b, f_pl, f_pb,
                        f_djt, fine_sigma, *self.lines, *self.sources, dm, line, tpl, pts)
        first = np.where(rng[:, 1] >= rng[:, 0], rng[:, 0], 0)
        lfirst = np.where(rng[:, 3] >= rng[:, 2], rng[:, 2], 0)
        return {"dm_g": dm, "dm_first": first, "line_g": line, "line_first": lfirst,
                "templates": tpl, "points": pts}


def _central_structure(ctx, radius_deg: float = 0.2, sub_cell_deg: float = 0.0125) -> tuple:
    """Sub-cells of the true cells within ``radius_deg`` of the Galactic Centre, with the
    exact J average of each sub-cell minus its parent cell's (the dark matter's cusp
    varies strongly inside a 0.1 deg cell, which a PSF of 0.02-0.05 deg resolves), the
    parents' indices, and the PSF width below which the kernel adds them (one cell)."""
    from .models.profiles import cell_average_map

    true = ctx.obs.true
    le, be = true.lon.edges, true.lat.edges
    lc = 0.5 * (le[1:] + le[:-1])
    bc = 0.5 * (be[1:] + be[:-1])
    il = np.flatnonzero(np.abs(lc) < radius_deg)
    ib = np.flatnonzero(np.abs(bc) < radius_deg)
    cell = float(np.max(np.diff(le)))
    if il.size == 0 or ib.size == 0:
        return (np.zeros(2), np.zeros(2), np.zeros(1, np.int64), np.zeros(1, np.int64),
                np.zeros((0, 0)), 0.0)
    f = int(np.ceil(cell / sub_cell_deg - 1e-9))

    def split(edges, idx):
        fine = np.concatenate([np.linspace(edges[i], edges[i + 1], f + 1)[:-1] for i in idx]
                              + [[edges[idx[-1] + 1]]])
        return fine, np.repeat(idx, f).astype(np.int64)

    f_l, f_pl = split(le, il)
    f_b, f_pb = split(be, ib)
    fine = cell_average_map(ctx.models.dm.los, f_l, f_b)
    dj = fine - ctx.spatial_dm[f_pl][:, f_pb]
    return f_l, f_b, f_pl, f_pb, np.ascontiguousarray(dj), cell


def band_matvec(band: np.ndarray, first: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sum_j band[e, j] v[first[e] + j] (a banded row times a vector, per event; the
    band may run past the end of v only where it is zero)."""
    v = np.concatenate([np.asarray(v, float), np.zeros(band.shape[1])])
    idx = np.asarray(first, np.int64)[:, None] + np.arange(band.shape[1])[None, :]
    return np.sum(band * v[idx], axis=1)


def event_terms(ctx, inputs: KernelInputs, er, lr, br, widths=None) -> dict:
    """Per-event terms: the dark matter's banded kernels (``dm_g``, ``dm_first``,
    ``line_g``, ``line_first``; see `KernelInputs.run`) and lambda [event] of each
    background at its nominal normalisation (TeV^-1 sr^-1)."""
    out = inputs.run(er, lr, br, widths)
    for name, model in ctx.backgrounds.items():
        if model == "ccr":
            fx, fy = fov_coordinates(np.asarray(lr, float), np.asarray(br, float),
                                     ctx.obs.pointing, ctx.obs.irf.fov_alignment)
            out[name] = ctx.obs.irf.ccr_rate(er, fx, fy, zero_fill=True) * ctx.obs.livetime_s
        else:
            sel = [t + 1 for t, nm in enumerate(inputs.tpl_names) if nm == name]
            out[name] = out["templates"][:, sel].sum(axis=1)
            if model == "hgps":
                out[name] = out[name] + out["points"]
    return out


def band_to_dense(band: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
    """Dense [event, n] from a band starting at ``first`` (for checks and small data)."""
    out = np.zeros((band.shape[0], n + band.shape[1]))
    idx = np.asarray(first, np.int64)[:, None] + np.arange(band.shape[1])[None, :]
    np.put_along_axis(out, idx, band, axis=1)
    if np.any(out[:, n:]):
        raise ValueError("band runs past the last column with non-zero values")
    return out[:, :n]


def create_store(ctx, inputs: KernelInputs, events, path, n_chunks: int) -> None:
    """Create ``marginals.zarr`` for an event list: events, axes, NaN-filled per-event
    arrays chunked along the events so that job i owns chunk i. The dark matter's
    kernels are banded: row e holds sub-intervals (line points) first[e] onwards; the
    band widths are the widest over all events."""
    from . import __version__
    from .store import create_store as _create

    n = events.n
    n_sub = len(ctx.quad)
    rng = inputs.ranges(events.energy)
    w = int(max(1, np.max(rng[:, 1] - rng[:, 0] + 1, initial=1)))
    wl = int(max(1, np.max(rng[:, 3] - rng[:, 2] + 1, initial=1)))
    dm_unit = (f"TeV-1 sr-1 per ({ctx.models.dm.amplitude_unit}) per (TeV-1 cm-2 s-1 sr-1 "
               "per amplitude unit per spatial unit)")
    arrays = {
        "events/energy": ((n,), None, events.energy, "TeV"),
        "events/l": ((n,), None, events.l, "deg"),
        "events/b": ((n,), None, events.b, "deg"),
        "axes/sub_edges": ((n_sub + 1,), None, ctx.quad.edges, "TeV"),
        "axes/line_energies": ((ctx.line_energies.size,), None, ctx.line_energies, "TeV"),
        "dm/g": ((n, w), 0, None, dm_unit + "; sub-intervals dm/g_first + column"),
        "dm/g_first": ((n,), 0, None, "index of the first sub-interval of the row"),
        "dm/line_g": ((n, wl), 0, None,
                      "pointwise kernel at axes/line_energies[dm/line_first + column] "
                      "(interpolate in ln E)"),
        "dm/line_first": ((n,), 0, None, "index of the first line energy of the row"),
    }
    for name in ctx.backgrounds:
        arrays[f"bkg/{name}"] = ((n,), 0, None, "TeV-1 sr-1")
    attrs = {"gammadm_version": __version__, "observation": ctx.obs.name,
             "n_events": n, "n_read": events.n_read, "n_cut_roi": events.n_cut_roi,
             "n_cut_gti": events.n_cut_gti, "livetime_s": events.livetime_s,
             "backgrounds": ctx.backgrounds, "dark_matter": ctx.models.dm.name,
             "band_widths": [w, wl], "tail_mass": ctx.obs.tail_mass,
             "description": "lambda_k(e) of the backgrounds at nominal normalisation; "
                            "dm/g: lambda_DM(e) = amplitude sum_j S_(first+j)(m) g[e, j], "
                            "S_s the spectral factor averaged over sub-interval s"}
    _create(path, arrays, attrs, n_chunks)


#: events per kernel call of a chunk job: a progress line after each (per-event terms
#: do not depend on the batching; the chunk is still written once, whole)
PROGRESS_BATCH = 65_536


def _batched_terms(ctx, inputs: KernelInputs, er, lr, br, widths, what: str,
                   batch: int = PROGRESS_BATCH) -> dict:
    """`event_terms` of many events in batches, with a progress line (events done, rate)
    on stdout after each batch when there is more than one."""
    n = er.size
    if n <= batch:
        return event_terms(ctx, inputs, er, lr, br, widths)
    out = None
    t0 = time.monotonic()
    for a in range(0, n, batch):
        b = min(a + batch, n)
        part = event_terms(ctx, inputs, er[a:b], lr[a:b], br[a:b], widths)
        if out is None:
            out = {k: np.empty((n,) + v.shape[1:], v.dtype) for k, v in part.items()}
        for k, v in part.items():
            out[k][a:b] = v
        dt = time.monotonic() - t0
        print(f"  {what}: marginalised {b} of {n} events ({b / dt:.0f} events/s)", flush=True)
    return out


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
    terms = _batched_terms(ctx, inputs, er, lr, br, tuple(root.attrs["band_widths"]),
                           f"chunk {i}/{n_chunks}")
    # the central J corrections (sub-cell minus cell) leave round-off negatives of at
    # most ~1e-9 of an event's largest entry (seed); a density kernel is >= 0
    write_region(path, "dm/g", (sl, slice(None)), np.maximum(terms["dm_g"], 0.0))
    write_region(path, "dm/g_first", (sl,), terms["dm_first"].astype(float))
    write_region(path, "dm/line_g", (sl, slice(None)), np.maximum(terms["line_g"], 0.0))
    write_region(path, "dm/line_first", (sl,), terms["line_first"].astype(float))
    for name in ctx.backgrounds:
        write_region(path, f"bkg/{name}", (sl,), terms[name])
    return sl.stop - sl.start
