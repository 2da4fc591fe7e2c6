"""numba kernels: per-event marginalisation over true energy and direction.

For an event (E_r, l_r, b_r) and a template T (e.g. the cell-averaged J, or a diffuse
morphology) the kernel returns, per energy sub-interval s,

    G[s] = sum_cells T_lb eps_s,lb K_s(E_r; theta_lb) M_s,lb(x_r)

with K_s the exact integral of R_E(E_r | E_t) over the sub-interval (linear row mix,
`gammadm.instrument.normalisation`) and M_s,lb the Gaussian PSF integrated over the
true cell (normal-CDF differences in the tangent plane). Then
lambda(e) = sum_s Phi_s G[s] for any spectrum Phi_s (averaged over each sub-interval):
the dark matter's mass enters only there.

Kernels take plain arrays, run in parallel over events with serial per-event sums and
no fastmath, so results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["energy_kernel_batch", "template_kernel", "point_kernel", "pack_migration"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@numba.njit(cache=True)
def _ndtr(x):
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@numba.njit(cache=True)
def _table_k(k, k1, dens, edges, row, col, mu, which):
    """K (which=0) or K1 (which=1) of one row at mu (anchored as in MigrationTables)."""
    ne = edges.shape[0]
    if mu <= edges[0]:
        mu = edges[0] + 1e-300
    if mu >= edges[ne - 1]:
        return k[row, col, ne - 1] if which == 0 else k1[row, col, ne - 1]
    # first guess from a uniform spacing, then fix it (exact for any edges)
    i = int((mu - edges[0]) / (edges[ne - 1] - edges[0]) * (ne - 1))
    if i < 0:
        i = 0
    if i > ne - 2:
        i = ne - 2
    while i > 0 and edges[i] > mu:
        i -= 1
    while i < ne - 2 and edges[i + 1] <= mu:
        i += 1
    lo = edges[i]
    m = dens[row, col, i]
    lm = math.log(mu)
    if lo > 0.0:
        ll = math.log(lo)
        if which == 0:
            return k[row, col, i] + m * (lm - ll)
        return k1[row, col, i] + m * (lm * lm - ll * ll) * 0.5
    if m == 0.0:
        return 0.0
    l1 = math.log(edges[1])
    if which == 0:
        return m * (lm - l1)
    return m * (lm * lm - l1 * l1) * 0.5


@numba.njit(cache=True)
def _energy_kernel_cols(k, k1, dens, edges, row, ln_e0, dln, er, ea, eb, out, c_lo, c_hi):
    """integral of R_E(E_r|E_t) over [ea, eb] for offset columns c_lo..c_hi (into out)."""
    mu_lo = er / eb
    mu_hi = er / ea
    ln_er = math.log(er)
    for c in range(c_lo, c_hi + 1):
        a0 = _table_k(k, k1, dens, edges, row, c, mu_hi, 0) - _table_k(k, k1, dens, edges, row, c, mu_lo, 0)
        b0 = (_table_k(k, k1, dens, edges, row + 1, c, mu_hi, 0)
              - _table_k(k, k1, dens, edges, row + 1, c, mu_lo, 0))
        a1 = _table_k(k, k1, dens, edges, row, c, mu_hi, 1) - _table_k(k, k1, dens, edges, row, c, mu_lo, 1)
        b1 = (_table_k(k, k1, dens, edges, row + 1, c, mu_hi, 1)
              - _table_k(k, k1, dens, edges, row + 1, c, mu_lo, 1))
        out[c] = a0 + ((b0 - a0) * (ln_er - ln_e0) - (b1 - a1)) / dln


@numba.njit(parallel=True, cache=True)
def energy_kernel_batch(er, col_lo, col_hi, sub_edges, sub_row, row_ln_e, k, k1, dens,
                        medges, sub_mu_lo, sub_mu_hi, out):
    """out[event, sub, column] = integral over the sub-interval of R_E(E_r | E_t) for
    the offset columns col_lo[e]..col_hi[e] an event's windows can touch (0 elsewhere
    and where the migration cannot reach); shared by all components."""
    n = er.shape[0]
    n_sub = sub_row.shape[0]
    n_cols = k.shape[1]
    for e in numba.prange(n):
        kcols = np.zeros(n_cols)
        for s in range(n_sub):
            for c in range(n_cols):
                out[e, s, c] = 0.0
            ea = sub_edges[s]
            eb = sub_edges[s + 1]
            if er[e] / ea < sub_mu_lo[s] or er[e] / eb > sub_mu_hi[s]:
                continue
            row = sub_row[s]
            _energy_kernel_cols(k, k1, dens, medges, row, row_ln_e[row],
                                row_ln_e[row + 1] - row_ln_e[row], er[e], ea, eb, kcols,
                                col_lo[e], col_hi[e])
            for c in range(col_lo[e], col_hi[e] + 1):
                out[e, s, c] = kcols[c]
    return out


@numba.njit(cache=True)
def _edge_factors(edges, i0, i1, x, scale, sg, f, fp):
    """Per cell i in [i0, i1): f[i - i0] = Phi((e_{i+1} - x) scale / sg) - Phi((e_i - x)
    scale / sg) and fp = its derivative with respect to sg (at fixed scale)."""
    prev_c = _ndtr((edges[i0] - x) * scale / sg)
    z = (edges[i0] - x) * scale / sg
    prev_d = -z * math.exp(-0.5 * z * z) * _INV_SQRT2PI / sg
    for i in range(i0, i1):
        z = (edges[i + 1] - x) * scale / sg
        c = _ndtr(z)
        d = -z * math.exp(-0.5 * z * z) * _INV_SQRT2PI / sg
        f[i - i0] = c - prev_c
        fp[i - i0] = d - prev_d
        prev_c, prev_d = c, d


@numba.njit(cache=True)
def _row_cos(b_edges):
    """cos b at the centre of each latitude row (the tangent-plane scale of dl)."""
    n_b = b_edges.shape[0] - 1
    out = np.empty(n_b)
    for ib in range(n_b):
        out[ib] = math.cos(math.radians(0.5 * (b_edges[ib] + b_edges[ib + 1])))
    return out


@numba.njit(cache=True)
def _scratch(n_terms, n_l, n_b):
    """Per-event buffers of the window factors (l, dl/dsigma, b, db/dsigma)."""
    return (np.empty((n_terms, n_l)), np.empty((n_terms, n_l)), np.empty((n_terms, n_b)),
            np.empty((n_terms, n_b)))


@numba.njit(cache=True)
def _window_factors(l_edges, b_edges, x_r, y_r, cb_r, r, sigma_ref, cref, fl, flp, fb, fbp):
    """Cells within r [deg] of (x_r, y_r) and, per PSF term, the l and b factors of their
    PSF masses at the reference widths ``sigma_ref`` (see `template_kernel`)."""
    n_l = l_edges.shape[0] - 1
    n_b = b_edges.shape[0] - 1
    il0 = max(np.searchsorted(l_edges, x_r - r / cb_r) - 1, 0)
    il1 = min(np.searchsorted(l_edges, x_r + r / cb_r), n_l)
    ib0 = max(np.searchsorted(b_edges, y_r - r) - 1, 0)
    ib1 = min(np.searchsorted(b_edges, y_r + r), n_b)
    for q in range(sigma_ref.shape[0]):
        _edge_factors(l_edges, il0, il1, x_r, 1.0, sigma_ref[q] / cref, fl[q], flp[q])
        _edge_factors(b_edges, ib0, ib1, y_r, 1.0, sigma_ref[q], fb[q], fbp[q])
    return il0, il1, ib0, ib1


@numba.njit(cache=True)
def _cell_mass(w_cell, s_cell, s_ref, cb, cref, fl, flp, fb, fbp, a, b):
    """PSF mass of one cell from the window factors (index a in l, b in b), corrected to
    first order for its widths ``s_cell`` against the reference ``s_ref``."""
    mass = 0.0
    for q in range(w_cell.shape[0]):
        w = w_cell[q]
        if w == 0.0:
            continue
        fa = fl[q, a]
        fbb = fb[q, b]
        mass += w * (fa * fbb + (s_cell[q] / cb - s_ref[q] / cref) * flp[q, a] * fbb
                     + (s_cell[q] - s_ref[q]) * fa * fbp[q, b])
    return mass


@numba.njit(parallel=True, cache=True)
def template_kernel(er, lr, br, kern, col0, col_t, sigma, weight, eps, l_edges, b_edges,
                    reach_deg, templates, out):
    """G[event, template, sub] for cell templates (see module docstring).

    The PSF mass of a cell factorises into an l and a b factor for one width; the
    widths of the cells in a window differ slightly (the PSF widens with offset, and
    dl cos b differs between rows), so the factors are taken at the width of the cell
    holding the event and corrected to first order in each cell's width difference
    (second-order error ~ (d sigma / sigma)^2 ~ 1e-4 across a window).

    Shapes: events (n,); kern (n, n_sub, n_cols) from `energy_kernel_batch`; col0,
    col_t (n_l, n_b) offset-column mix of each cell; sigma, weight (n_sub, n_l, n_b,
    n_terms); eps (n_sub, n_l, n_b); reach_deg (n_sub,) PSF window radius; templates
    (n_tpl, n_l, n_b); out (n, n_tpl, n_sub) (zeroed here).
    """
    n = er.shape[0]
    n_sub = kern.shape[1]
    n_l = l_edges.shape[0] - 1
    n_b = b_edges.shape[0] - 1
    n_cols = kern.shape[2]
    n_tpl = templates.shape[0]
    n_terms = sigma.shape[3]
    cosb = _row_cos(b_edges)
    for e in numba.prange(n):
        kcols = np.empty(n_cols)
        fl, flp, fb, fbp = _scratch(n_terms, n_l, n_b)
        for t in range(n_tpl):
            for s in range(n_sub):
                out[e, t, s] = 0.0
        x_r = lr[e]
        y_r = br[e]
        cb_r = math.cos(math.radians(y_r))
        jl = min(max(np.searchsorted(l_edges, x_r) - 1, 0), n_l - 1)
        jb = min(max(np.searchsorted(b_edges, y_r) - 1, 0), n_b - 1)
        for s in range(n_sub):
            for c in range(n_cols):
                kcols[c] = kern[e, s, c]
            nonzero = False
            for c in range(n_cols):
                if kcols[c] != 0.0:
                    nonzero = True
            if not nonzero:
                continue
            cref = cosb[jb]
            il0, il1, ib0, ib1 = _window_factors(l_edges, b_edges, x_r, y_r, cb_r,
                                                 reach_deg[s], sigma[s, jl, jb], cref,
                                                 fl, flp, fb, fbp)
            for il in range(il0, il1):
                for ib in range(ib0, ib1):
                    cbc = cosb[ib]
                    ep = eps[s, il, ib]
                    if ep == 0.0:
                        continue
                    c0 = col0[il, ib]
                    tt = col_t[il, ib]
                    kk = (1.0 - tt) * kcols[c0] + tt * kcols[c0 + 1]
                    if kk == 0.0:
                        continue
                    mass = _cell_mass(weight[s, il, ib], sigma[s, il, ib], sigma[s, jl, jb],
                                      cbc, cref, fl, flp, fb, fbp, il - il0, ib - ib0)
                    val = ep * kk * mass
                    for t in range(n_tpl):
                        out[e, t, s] += templates[t, il, ib] * val
    return out


@numba.njit(parallel=True, cache=True)
def point_kernel(er, lr, br, kern, col0, col_t, sigma, weight, eps, l0, b0, out):
    """G[event, sub] = eps_s K_s(E_r) P(x_r | x_src) [sr^-1] for a point source.

    ``sigma``, ``weight`` (n_sub, n_terms) and ``eps`` (n_sub,) at the source; col0,
    col_t scalars of its offset-column mix."""
    n = er.shape[0]
    n_sub = kern.shape[1]
    n_terms = sigma.shape[1]
    deg2 = (math.pi / 180.0) ** 2
    for e in numba.prange(n):
        dx = (lr[e] - l0) * math.cos(math.radians(b0))
        dy = br[e] - b0
        r2 = dx * dx + dy * dy
        for s in range(n_sub):
            out[e, s] = 0.0
            if eps[s] == 0.0:
                continue
            kk = (1.0 - col_t) * kern[e, s, col0] + col_t * kern[e, s, col0 + 1]
            if kk == 0.0:
                continue
            dens_psf = 0.0
            for q in range(n_terms):
                w = weight[s, q]
                if w == 0.0:
                    continue
                sg2 = sigma[s, q] ** 2
                dens_psf += w / (2.0 * math.pi * sg2) * math.exp(-0.5 * r2 / sg2)
            out[e, s] = eps[s] * kk * dens_psf / deg2  # deg^-2 -> sr^-1
    return out


def pack_migration(mig) -> tuple:
    """The migration tables as contiguous arrays for the kernels."""
    return (np.ascontiguousarray(mig.k), np.ascontiguousarray(mig.k1),
            np.ascontiguousarray(mig.density), np.ascontiguousarray(mig.edges))


@numba.njit(parallel=True, cache=True)
def line_kernel(er, lr, br, pts_e, pts_row, pts_t, dens, medges, col0, col_t, mu_lo, mu_hi,
                sigma, weight, eps, l_edges, b_edges, reach_deg, template, out):
    """out[event, point] = sum_cells T eps R_E(E_r | E_pt) M_cell(x_r) at true energies
    E_pt (pointwise, for lines): the migration row mix at E_pt, its histogram at
    mu = E_r / E_pt, divided by E_pt. PSF masses as in `template_kernel` (separable,
    first-order width correction). Shapes: pts_* (n_pts,); sigma, weight
    (n_pts, n_l, n_b, n_terms); eps (n_pts, n_l, n_b); template (n_l, n_b)."""
    n = er.shape[0]
    n_pts = pts_e.shape[0]
    n_l = l_edges.shape[0] - 1
    n_b = b_edges.shape[0] - 1
    n_terms = sigma.shape[3]
    ne = medges.shape[0]
    cosb = _row_cos(b_edges)
    for e in numba.prange(n):
        fl, flp, fb, fbp = _scratch(n_terms, n_l, n_b)
        x_r = lr[e]
        y_r = br[e]
        cb_r = math.cos(math.radians(y_r))
        jl = min(max(np.searchsorted(l_edges, x_r) - 1, 0), n_l - 1)
        jb = min(max(np.searchsorted(b_edges, y_r) - 1, 0), n_b - 1)
        for p in range(n_pts):
            out[e, p] = 0.0
            mu = er[e] / pts_e[p]
            if mu < mu_lo[p] or mu > mu_hi[p] or mu >= medges[ne - 1] or mu <= medges[0]:
                continue
            i = np.searchsorted(medges, mu, side="right") - 1
            row = pts_row[p]
            t = pts_t[p]
            cref = cosb[jb]
            il0, il1, ib0, ib1 = _window_factors(l_edges, b_edges, x_r, y_r, cb_r,
                                                 reach_deg[p], sigma[p, jl, jb], cref,
                                                 fl, flp, fb, fbp)
            acc = 0.0
            for il in range(il0, il1):
                for ib in range(ib0, ib1):
                    ep = eps[p, il, ib]
                    if ep == 0.0:
                        continue
                    c0 = col0[il, ib]
                    tt = col_t[il, ib]
                    m = ((1 - t) * ((1 - tt) * dens[row, c0, i] + tt * dens[row, c0 + 1, i])
                         + t * ((1 - tt) * dens[row + 1, c0, i] + tt * dens[row + 1, c0 + 1, i]))
                    if m == 0.0:
                        continue
                    mass = _cell_mass(weight[p, il, ib], sigma[p, il, ib], sigma[p, jl, jb],
                                      cosb[ib], cref, fl, flp, fb, fbp, il - il0, ib - ib0)
                    acc += template[il, ib] * ep * m * mass
            out[e, p] = acc / pts_e[p]
    return out
