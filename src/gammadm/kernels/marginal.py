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

__all__ = ["template_kernel", "point_kernel", "pack_migration"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


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
    i = np.searchsorted(edges, mu, side="right") - 1
    if i < 0:
        i = 0
    if i > ne - 2:
        i = ne - 2
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
def _energy_kernel_cols(k, k1, dens, edges, row, ln_e0, dln, er, ea, eb, out):
    """integral of R_E(E_r|E_t) over [ea, eb] for every offset column (into out)."""
    mu_lo = er / eb
    mu_hi = er / ea
    ln_er = math.log(er)
    for c in range(out.shape[0]):
        a0 = _table_k(k, k1, dens, edges, row, c, mu_hi, 0) - _table_k(k, k1, dens, edges, row, c, mu_lo, 0)
        b0 = (_table_k(k, k1, dens, edges, row + 1, c, mu_hi, 0)
              - _table_k(k, k1, dens, edges, row + 1, c, mu_lo, 0))
        a1 = _table_k(k, k1, dens, edges, row, c, mu_hi, 1) - _table_k(k, k1, dens, edges, row, c, mu_lo, 1)
        b1 = (_table_k(k, k1, dens, edges, row + 1, c, mu_hi, 1)
              - _table_k(k, k1, dens, edges, row + 1, c, mu_lo, 1))
        out[c] = a0 + ((b0 - a0) * (ln_er - ln_e0) - (b1 - a1)) / dln


@numba.njit(parallel=True, cache=True)
def template_kernel(er, lr, br, sub_edges, sub_row, row_ln_e, k, k1, dens, medges,
                    col0, col_t, sub_mu_lo, sub_mu_hi, sigma, weight, eps, l_edges, b_edges,
                    reach_deg, templates, out):
    """G[event, template, sub] for cell templates (see module docstring).

    Shapes: events (n,); sub_edges (n_sub+1,); sub_row (n_sub,); row_ln_e (n_rows,);
    k, k1 (n_rows, n_cols, n_edges); dens (n_rows, n_cols, n_bins); col0, col_t
    (n_l, n_b) offset-column mix of each cell; sub_mu_lo/hi (n_sub,) migration support;
    sigma, weight (n_sub, n_l, n_b, n_terms); eps (n_sub, n_l, n_b); reach_deg (n_sub,)
    PSF window radius; templates (n_tpl, n_l, n_b); out (n, n_tpl, n_sub) (zeroed here).
    """
    n = er.shape[0]
    n_sub = sub_row.shape[0]
    n_l = l_edges.shape[0] - 1
    n_b = b_edges.shape[0] - 1
    n_cols = k.shape[1]
    n_tpl = templates.shape[0]
    n_terms = sigma.shape[3]
    for e in numba.prange(n):
        kcols = np.empty(n_cols)
        for t in range(n_tpl):
            for s in range(n_sub):
                out[e, t, s] = 0.0
        x_r = lr[e]
        y_r = br[e]
        for s in range(n_sub):
            ea = sub_edges[s]
            eb = sub_edges[s + 1]
            # skip sub-intervals the migration cannot reach from this E_r
            if er[e] / ea < sub_mu_lo[s] or er[e] / eb > sub_mu_hi[s]:
                continue
            row = sub_row[s]
            _energy_kernel_cols(k, k1, dens, medges, row, row_ln_e[row],
                                row_ln_e[row + 1] - row_ln_e[row], er[e], ea, eb, kcols)
            r = reach_deg[s]
            cb = math.cos(math.radians(y_r))
            il0 = max(np.searchsorted(l_edges, x_r - r / cb) - 1, 0)
            il1 = min(np.searchsorted(l_edges, x_r + r / cb), n_l)
            ib0 = max(np.searchsorted(b_edges, y_r - r) - 1, 0)
            ib1 = min(np.searchsorted(b_edges, y_r + r), n_b)
            for il in range(il0, il1):
                for ib in range(ib0, ib1):
                    ep = eps[s, il, ib]
                    if ep == 0.0:
                        continue
                    c0 = col0[il, ib]
                    tt = col_t[il, ib]
                    kk = (1.0 - tt) * kcols[c0] + tt * kcols[c0 + 1]
                    if kk == 0.0:
                        continue
                    bc = 0.5 * (b_edges[ib] + b_edges[ib + 1])
                    cbc = math.cos(math.radians(bc))
                    mass = 0.0
                    for q in range(n_terms):
                        w = weight[s, il, ib, q]
                        if w == 0.0:
                            continue
                        sg = sigma[s, il, ib, q]
                        fl = (_ndtr((l_edges[il + 1] - x_r) * cbc / sg)
                              - _ndtr((l_edges[il] - x_r) * cbc / sg))
                        fb = _ndtr((b_edges[ib + 1] - y_r) / sg) - _ndtr((b_edges[ib] - y_r) / sg)
                        mass += w * fl * fb
                    val = ep * kk * mass
                    for t in range(n_tpl):
                        out[e, t, s] += templates[t, il, ib] * val
    return out


@numba.njit(parallel=True, cache=True)
def point_kernel(er, lr, br, sub_edges, sub_row, row_ln_e, k, k1, dens, medges, col0, col_t,
                 sub_mu_lo, sub_mu_hi, sigma, weight, eps, l0, b0, out):
    """G[event, sub] = eps_s K_s(E_r) P(x_r | x_src) [sr^-1] for a point source.

    ``sigma``, ``weight`` (n_sub, n_terms) and ``eps`` (n_sub,) at the source; col0,
    col_t scalars of its offset-column mix."""
    n = er.shape[0]
    n_sub = sub_row.shape[0]
    n_cols = k.shape[1]
    n_terms = sigma.shape[1]
    deg2 = (math.pi / 180.0) ** 2
    for e in numba.prange(n):
        kcols = np.empty(n_cols)
        dx = (lr[e] - l0) * math.cos(math.radians(b0))
        dy = br[e] - b0
        r2 = dx * dx + dy * dy
        for s in range(n_sub):
            out[e, s] = 0.0
            ea = sub_edges[s]
            eb = sub_edges[s + 1]
            if er[e] / ea < sub_mu_lo[s] or er[e] / eb > sub_mu_hi[s] or eps[s] == 0.0:
                continue
            row = sub_row[s]
            _energy_kernel_cols(k, k1, dens, medges, row, row_ln_e[row],
                                row_ln_e[row + 1] - row_ln_e[row], er[e], ea, eb, kcols)
            kk = (1.0 - col_t) * kcols[col0] + col_t * kcols[col0 + 1]
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
