"""Simulated event lists from the continuous model (PHYSICS.md section 5).

True photons are drawn per component from Phi eps over the true grid: a cell and an
energy sub-interval by their expected share, the energy inside it from the intensity's
own shape there (`draw_in_intervals`), the direction uniformly in the cell
(templates), from J(psi) by rejection (dark matter, so the cusp is resolved), exactly
(point sources) or from the Gaussian (extended sources). Then the migration (a row of
the IRF's mix, inverse CDF of its histogram) and the PSF (a Gaussian term, tangent
plane) give the reconstructed event; those inside the ROI are kept. CCR events are
drawn in reconstructed space from B T over the ROI.

Poisson mode draws Poisson(Lambda_k) true photons per component (the kept count is
then Poisson(mu_k)); fixed mode draws until n_k events of component k are in the ROI;
multinomial mode does the same with (n_k) ~ Multinomial(n, W), the generative model of
the fractions likelihood (each event's component drawn with the leaf weights W_k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..expected import ccr_expected, gaussian_cell_mass, spectral_average
from ..geometry import cell_solid_angle, wrap_lon
from ..instrument.normalisation import EnergyQuadrature, MigrationTables, cell_offsets
from ..instrument.reach import angular_offset
from ..observation import Observation, fov_coordinates
from .dl3 import EventData

__all__ = ["TrueComponent", "build_components", "draw_in_intervals", "draw_true",
           "apply_irf", "draw_ccr", "simulate", "fixed_counts", "multinomial_counts",
           "simulate_observation"]


@dataclass
class TrueComponent:
    """A true-space component ready to be sampled.

    ``weights`` [sub, l, b]: expected true photons per sub-interval and cell (Phi eps
    dE dOmega, integrated); ``intensity``: E -> spectral shape (for the energy draw);
    ``direction``: "cells", "j" (rejection from the radial table), "point" or
    "gaussian"; ``lines``: (E, expected photons per cell [l, b]) pairs.
    """

    name: str
    weights: np.ndarray
    intensity: object
    direction: str
    l0: float = 0.0
    b0: float = 0.0
    sigma: float = 0.0
    j_table: object = None
    lines: list | None = None
    upper_energy: float = np.inf

    @property
    def total(self) -> float:
        return float(self.weights.sum() + sum(w.sum() for _, w in (self.lines or [])))


def _power_law_draw(rng, a, b, fa, fb, u):
    """Inverse CDF of a power law through (a, fa), (b, fb) on [a, b]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.log(np.maximum(fb, 1e-300) / np.maximum(fa, 1e-300)) / np.log(b / a)
    g = np.where(np.isfinite(g), g, 0.0)
    p = g + 1.0
    flat = np.abs(p) < 1e-8
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e_pow = (a**p + u * (b**p - a**p)) ** (1 / np.where(flat, 1.0, p))
    e_log = a * (b / a) ** u
    return np.where(flat, e_log, e_pow)


def draw_in_intervals(rng: np.random.Generator, intensity, a: np.ndarray, b: np.ndarray,
                      nodes: int = 32) -> np.ndarray:
    """Energies [TeV] from ``intensity`` (E -> dN/dE, vectorised) restricted to [a_i, b_i]
    per photon: the intensity piecewise linear in E between ``nodes`` + 1 log-spaced
    points of each distinct interval, drawn by its exact inverse CDF.

    A power law through the two ends alone fails where the spectrum ends inside the
    interval (a dark-matter continuum at E = m, where it falls to zero): it puts every
    photon at the lower edge.
    """
    e = np.empty(a.size)
    if a.size == 0:
        return e
    ends, inv = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True)
    inv = inv.ravel()
    frac = np.linspace(0.0, 1.0, nodes + 1)
    x = ends[:, :1] * (ends[:, 1:] / ends[:, :1]) ** frac  # [interval, node]
    x[:, -1] = ends[:, 1]
    f = np.asarray(intensity(np.minimum(x, ends[:, 1:] * (1 - 1e-12)).ravel()),
                   float).reshape(x.shape)
    f = np.maximum(f, 0.0)
    mass = 0.5 * (f[:, 1:] + f[:, :-1]) * np.diff(x, axis=1)  # [interval, segment]
    cum = np.cumsum(mass, axis=1)
    total = cum[:, -1:]
    cum = np.divide(cum, total, out=np.tile(frac[1:], (len(ends), 1)), where=total > 0)
    # segment, then the position inside it (linear density: exact inverse CDF)
    u = rng.random(a.size)
    seg = np.minimum(np.sum(cum[inv] < u[:, None], axis=1), nodes - 1)
    f0, f1 = f[inv, seg], f[inv, seg + 1]
    v = rng.random(a.size)
    den = f0 + np.sqrt(f0 * f0 + v * (f1 * f1 - f0 * f0))
    t = np.divide(v * (f0 + f1), den, out=v.copy(), where=den > 0)
    x0, x1 = x[inv, seg], x[inv, seg + 1]
    e[:] = x0 + np.clip(t, 0.0, 1.0) * (x1 - x0)
    return e


def draw_true(rng: np.random.Generator, obs: Observation, quad: EnergyQuadrature,
              comp: TrueComponent, n: int):
    """n true photons (E [TeV], l, b [deg]) of a component."""
    true = obs.true
    w = comp.weights
    n_line = 0
    line_tot = sum(lw.sum() for _, lw in (comp.lines or []))
    if line_tot > 0:
        n_line = rng.binomial(n, line_tot / (w.sum() + line_tot))
    idx = rng.choice(w.size, size=n - n_line, p=(w / w.sum()).ravel())
    s, il, ib = np.unravel_index(idx, w.shape)
    a, b = quad.edges[s], np.minimum(quad.edges[s + 1], comp.upper_energy)
    e = draw_in_intervals(rng, comp.intensity, a, b)
    cells = [(e, il, ib)]
    for e_line, lw in comp.lines or []:
        k = rng.binomial(n_line, min(1.0, lw.sum() / line_tot)) if line_tot > 0 else 0
        n_line -= k
        line_tot -= lw.sum()
        cidx = rng.choice(lw.size, size=k, p=(lw / lw.sum()).ravel())
        jl, jb = np.unravel_index(cidx, lw.shape)
        cells.append((np.full(k, e_line), jl, jb))
    e = np.concatenate([c[0] for c in cells])
    il = np.concatenate([c[1] for c in cells])
    ib = np.concatenate([c[2] for c in cells])
    if comp.direction == "point":
        return e, np.full(e.size, comp.l0), np.full(e.size, comp.b0)
    if comp.direction == "gaussian":
        return (e, *_gaussian_in_cells(rng, true, comp, il, ib))
    l, bb = _uniform_in_cells(rng, true, il, ib)
    if comp.direction == "j":
        l, bb = _reject_by_j(rng, true, comp.j_table, il, ib, l, bb)
    return e, l, bb


def _gaussian_in_cells(rng, true, comp: TrueComponent, il, ib):
    """Positions from the source's Gaussian (tangent plane at the source) truncated to
    the drawn cells: the cell was drawn with its own exposure, so the exposure
    gradient across the source is followed."""
    c = np.cos(np.radians(comp.b0))
    le, be = true.lon.edges, true.lat.edges
    x = truncated_normal(rng, (le[il] - comp.l0) * c / comp.sigma,
                         (le[il + 1] - comp.l0) * c / comp.sigma)
    y = truncated_normal(rng, (be[ib] - comp.b0) / comp.sigma, (be[ib + 1] - comp.b0) / comp.sigma)
    return wrap_lon(comp.l0 + x * comp.sigma / c), comp.b0 + y * comp.sigma


def truncated_normal(rng, a, b) -> np.ndarray:
    """Standard normal draws truncated to [a, b] (arrays, a < b), by the inverse CDF on
    the side of zero where the normal CDF keeps its relative precision."""
    from scipy.special import ndtr, ndtri

    a, b = np.asarray(a, float), np.asarray(b, float)
    flip = a > 0
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    p0, p1 = ndtr(lo), ndtr(hi)
    x = np.clip(ndtri(p0 + rng.random(lo.shape) * (p1 - p0)), lo, hi)
    return np.where(flip, -x, x)


def _uniform_in_cells(rng, true, il, ib):
    le, be = true.lon.edges, true.lat.edges
    l = le[il] + rng.random(il.size) * (le[il + 1] - le[il])
    s0, s1 = np.sin(np.radians(be[ib])), np.sin(np.radians(be[ib + 1]))
    return l, np.degrees(np.arcsin(s0 + rng.random(ib.size) * (s1 - s0)))


def _reject_by_j(rng, true, table, il, ib, l, b):
    """Redraw positions inside each cell until accepted with J / J_max(cell)."""
    le, be = true.lon.edges, true.lat.edges
    # largest J in a cell: at its point closest to the GC
    cl = np.clip(0.0, le[il], le[il + 1])
    cb = np.clip(0.0, be[ib], be[ib + 1])
    jmax = table(angular_offset(cl, cb, 0.0, 0.0)) * (1 + 1e-9)
    todo = np.ones(l.size, bool)
    for _ in range(10000):
        j = table(angular_offset(l[todo], b[todo], 0.0, 0.0))
        acc = rng.random(j.size) * jmax[todo] <= j
        idx = np.flatnonzero(todo)
        todo[idx[acc]] = False
        if not todo.any():
            return l, b
        nl, nb = _uniform_in_cells(rng, true, il[todo], ib[todo])
        l[todo], b[todo] = nl, nb
    raise RuntimeError("J rejection sampling did not converge")


def apply_irf(rng: np.random.Generator, obs: Observation, mig: MigrationTables, e, l, b):
    """Reconstructed (E_r, l_r, b_r) of true photons; NaN where the IRF is undefined."""
    theta = angular_offset(l, b, *obs.pointing)
    defined = obs.irf.defined(e, theta, zero_fill=True)
    # migration: pick one of the four mixed rows by its weight, then its histogram
    mix = mig.mix(e, theta)
    u = rng.random(e.size)
    cum = np.cumsum([w for _, _, w in mix], axis=0)
    k = np.argmax(u[None, :] <= cum * (1 + 1e-12), axis=0)
    re_ = np.choose(k, [m[0] for m in mix])
    rt = np.choose(k, [m[1] for m in mix])
    cdf = mig.cdf[re_, rt]  # [n, edges]
    v = rng.random(e.size)
    i = np.clip(np.sum(cdf <= v[:, None], axis=1) - 1, 0, mig.edges.size - 2)
    lo, hi = cdf[np.arange(e.size), i], cdf[np.arange(e.size), i + 1]
    frac = np.where(hi > lo, (v - lo) / np.where(hi > lo, hi - lo, 1.0), 0.5)
    mu = mig.edges[i] + frac * (mig.edges[i + 1] - mig.edges[i])
    e_r = mu * e
    # PSF: a term by weight, then a 2-D Gaussian in the tangent plane
    sig, w, _ = obs.irf.psf(e, theta, zero_fill=True)
    cw = np.cumsum(w, axis=-1)
    t = np.argmax(rng.random(e.size)[:, None] <= cw * (1 + 1e-12), axis=-1)
    s = sig[np.arange(e.size), t]
    x, y = rng.normal(0.0, 1.0, (2, e.size)) * s
    b_r = b + y
    l_r = wrap_lon(l + x / np.cos(np.radians(b)))
    bad = ~defined
    return np.where(bad, np.nan, e_r), np.where(bad, np.nan, l_r), np.where(bad, np.nan, b_r)


def draw_ccr(rng: np.random.Generator, obs: Observation, n: int, sub_pixels: int = 4,
             per_bin: int = 8):
    """n CCR events in reconstructed space, from B T over the ROI."""
    rec = obs.recon
    le = np.log(rec.energy.edges)
    e_edges = np.exp(np.concatenate([np.linspace(le[i], le[i + 1], per_bin + 1)[:-1]
                                     for i in range(rec.energy.nbin)] + [[le[-1]]]))
    l_e = np.linspace(rec.lon.edges[0], rec.lon.edges[-1], rec.lon.nbin * sub_pixels + 1)
    b_e = np.linspace(rec.lat.edges[0], rec.lat.edges[-1], rec.lat.nbin * sub_pixels + 1)
    L, B = np.meshgrid(0.5 * (l_e[1:] + l_e[:-1]), 0.5 * (b_e[1:] + b_e[:-1]), indexing="ij")
    fx, fy = fov_coordinates(L, B, obs.pointing, obs.irf.fov_alignment)
    ec = np.sqrt(e_edges[1:] * e_edges[:-1])
    rate = obs.irf.ccr_rate(ec[:, None, None], fx[None], fy[None], zero_fill=True)
    w = rate * np.diff(e_edges)[:, None, None] * cell_solid_angle(l_e, b_e)[None]
    idx = rng.choice(w.size, size=n, p=(w / w.sum()).ravel())
    s, il, ib = np.unravel_index(idx, w.shape)
    a, bb = e_edges[s], e_edges[s + 1]
    fa = obs.irf.ccr_rate(a, fx[il, ib], fy[il, ib], zero_fill=True)
    fb = obs.irf.ccr_rate(bb * (1 - 1e-12), fx[il, ib], fy[il, ib], zero_fill=True)
    e = _power_law_draw(rng, a, bb, fa, fb, rng.random(n))
    l = l_e[il] + rng.random(n) * (l_e[il + 1] - l_e[il])
    s0, s1 = np.sin(np.radians(b_e[ib])), np.sin(np.radians(b_e[ib + 1]))
    b = np.degrees(np.arcsin(s0 + rng.random(n) * (s1 - s0)))
    return e, wrap_lon(l), b


def _draw_group(rng, obs, mig, quad, members, n):
    """n true photons from a group of components (mixed by their Lambda), with their
    reconstructed values."""
    tot = np.array([m.total for m in members])
    split = rng.multinomial(n, tot / tot.sum())
    out = []
    for m, k in zip(members, split):
        if k:
            e, l, b = draw_true(rng, obs, quad, m, int(k))
            out.append((*apply_irf(rng, obs, mig, e, l, b), e, l, b))
    if not out:
        return [np.zeros(0)] * 6
    cols = [np.concatenate([o[i] for o in out]) for i in range(6)]
    perm = rng.permutation(cols[0].size)
    return [c[perm] for c in cols]


def simulate(rng: np.random.Generator, obs: Observation, mig: MigrationTables,
             quad: EnergyQuadrature, components: list, counts: dict, mode: str,
             ccr_name: str | None = None, batch: int = 20000) -> EventData:
    """Simulate one observation.

    ``components``: `TrueComponent` list (several may share a name: one physical
    component made of sources); ``counts``: name -> n ROI events (fixed mode). In
    poisson mode Poisson(Lambda) true photons are drawn per component and the CCR count
    is Poisson(``counts[ccr_name]``) with counts[ccr_name] = mu_CCR.
    """
    groups: dict[str, list] = {}
    for c in components:
        groups.setdefault(c.name, []).append(c)
    names = list(groups) + ([ccr_name] if ccr_name else [])
    parts = []
    for k, (name, members) in enumerate(groups.items()):
        if mode == "poisson":
            cols = _draw_group(rng, obs, mig, quad, members,
                               rng.poisson(sum(m.total for m in members)))
            keep = obs.roi.contains(*cols[:3])
            parts.append((k, [c[keep] for c in cols]))
            continue
        want, have, got = counts[name], 0, []
        while have < want:
            cols = _draw_group(rng, obs, mig, quad, members, batch)
            keep = np.flatnonzero(obs.roi.contains(*cols[:3]))[: want - have]
            got.append([c[keep] for c in cols])
            have += keep.size
        parts.append((k, [np.concatenate([g[i] for g in got]) if got else np.zeros(0)
                          for i in range(6)]))
    if ccr_name:
        n = rng.poisson(counts[ccr_name]) if mode == "poisson" else counts[ccr_name]
        e, l, b = draw_ccr(rng, obs, n)
        nan = np.full(n, np.nan)
        parts.append((len(groups), [e, l, b, nan, nan, nan]))
    cat = [np.concatenate([p[1][i] for p in parts]) for i in range(6)]
    comp_idx = np.concatenate([np.full(p[1][0].size, p[0]) for p in parts])
    order = rng.permutation(comp_idx.size)
    livetime = obs.livetime_s
    t = np.sort(rng.uniform(0.0, livetime, comp_idx.size))
    mc = {"component": comp_idx[order], "energy": cat[3][order], "l": cat[4][order],
          "b": cat[5][order]}
    return EventData(cat[0][order], cat[1][order], cat[2][order], t, 1, livetime, livetime,
                     np.array([[0.0, livetime]]), obs.pointing, mc, names,
                     n_read=comp_idx.size, site="South")


def build_components(ctx, mass_tev: float, amplitude: float,
                     background_scale: float = 1.0) -> list[TrueComponent]:
    """The true-space components of a `NormContext` at physical normalisation.

    Gaussian HGPS sources take the exposure at their centre (the gradient across a
    0.2 deg source is neglected in the simulation; the likelihood keeps it).
    """
    obs, quad, dm = ctx.obs, ctx.quad, ctx.models.dm
    theta = cell_offsets(obs.true, obs.pointing)
    ec, de = quad.centres, quad.widths
    eps = obs.irf.exposure(ec[:, None, None], theta[None], obs.livetime_s, zero_fill=True)
    cell_w = eps * obs.true.solid_angle[None]
    upper = mass_tev if dm.process == "annihilation" else 0.5 * mass_tev
    sf = spectral_average(lambda e: dm.spectral_factor(e, mass_tev), quad.edges[:-1],
                          quad.edges[1:], upper=upper)
    lines = []
    for e_line, factor in dm.line_factors(mass_tev):
        if quad.edges[0] <= e_line <= quad.edges[-1]:
            eps_l = obs.irf.exposure(e_line, theta, obs.livetime_s, zero_fill=True)
            lines.append((e_line, amplitude * factor * eps_l * obs.true.solid_angle
                          * ctx.spatial_dm))
    comps = [TrueComponent(dm.name, amplitude * (sf * de)[:, None, None] * cell_w
                           * ctx.spatial_dm[None], lambda e: dm.spectral_factor(e, mass_tev),
                           "j", j_table=dm.los, lines=lines, upper_energy=upper)]
    for name, model in ctx.backgrounds.items():
        if model == "fermi_gaggero":
            f = ctx.models.diffuse.spectrum
            phi = spectral_average(f, quad.edges[:-1], quad.edges[1:]) * de
            comps.append(TrueComponent(name, background_scale * phi[:, None, None] * cell_w
                                       * ctx.diffuse_morph[None], f, "cells"))
        elif model == "hgps":
            comps.extend(_hgps_components(ctx, name, background_scale))
    return comps


def _hgps_components(ctx, name: str, scale: float) -> list[TrueComponent]:
    """One component per source, all named after the HGPS component."""
    obs, quad = ctx.obs, ctx.quad
    out = []
    eps_cells = None
    for src in ctx.sources:
        flux = spectral_average(src.dnde, quad.edges[:-1], quad.edges[1:]) * quad.widths
        if src.is_point:
            th = float(angular_offset(src.l_deg, src.b_deg, *obs.pointing))
            w = (scale * flux * obs.irf.exposure(quad.centres, th, obs.livetime_s,
                                                 zero_fill=True))[:, None, None]
        else:  # the Gaussian's mass per true cell with that cell's exposure (as the kernel)
            if eps_cells is None:
                eps_cells = obs.irf.exposure(quad.centres[:, None, None],
                                             cell_offsets(obs.true, obs.pointing)[None],
                                             obs.livetime_s, zero_fill=True)
            mass = gaussian_cell_mass(obs.true.lon.edges, obs.true.lat.edges, src.l_deg,
                                      src.b_deg, src.sigma_deg)
            w = scale * flux[:, None, None] * eps_cells * mass[None]
        out.append(TrueComponent(name, w, src.dnde,
                                 "point" if src.is_point else "gaussian",
                                 src.l_deg, src.b_deg, src.sigma_deg))
    return out


def _leaf_weights(mixture: list[dict]) -> dict:
    """W_k of every leaf of a config mixture tree: the product of the node values along
    its path."""
    weights = {}

    def walk(nodes, w):
        for node in nodes:
            if "children" in node:
                walk(node["children"], w * node["value"])
            else:
                weights[node["name"]] = w * node["value"]

    walk(mixture, 1.0)
    return weights


def fixed_counts(cfg: dict, n_events: int) -> dict:
    """ROI events per component from the mixture tree's nominal values (largest
    remainder rounding, so they sum to n_events)."""
    raw = {k: v * n_events for k, v in _leaf_weights(cfg["mixture"]).items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    rest = n_events - sum(counts.values())
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[:rest]:
        counts[k] += 1
    return counts


def multinomial_counts(rng: np.random.Generator, cfg: dict, n_events: int) -> dict:
    """ROI events per component drawn from Multinomial(n_events, W), W the mixture
    tree's leaf weights: the counts the fractions likelihood implies for n_events
    events (fixed counts would make the simulation tighter than the model)."""
    weights = _leaf_weights(cfg["mixture"])
    p = np.array(list(weights.values()))
    n = rng.multinomial(n_events, p / p.sum())
    return dict(zip(weights, n.tolist()))


def simulate_observation(rng: np.random.Generator, cfg: dict, ctx) -> EventData:
    """One observation's events as the campaign's ``simulation`` section asks (truth
    ``mass_TeV``; fixed, multinomial or Poisson counts), from a `NormContext`."""
    sim = cfg["simulation"]
    amp = sim["sigmav_cm3_s"] or 3e-26  # fractions: only the shapes matter
    comps = build_components(ctx, sim["mass_TeV"], amp, sim["background_scale"])
    ccr = next((b["name"] for b in cfg["backgrounds"] if b["model"] == "ccr"), None)
    if sim["mode"] == "fixed":
        counts = fixed_counts(cfg, sim["n_events"])
    elif sim["mode"] == "multinomial":
        counts = multinomial_counts(rng, cfg, sim["n_events"])
    else:
        counts = {ccr: ccr_expected(ctx.obs) * sim["background_scale"]} if ccr else {}
    mode = "poisson" if sim["mode"] == "poisson" else "fixed"
    return simulate(rng, ctx.obs, ctx.mig, ctx.quad, comps, counts, mode, ccr)
