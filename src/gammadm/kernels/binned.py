"""numba kernel: the Gaussian PSF of true cells integrated over recon pixels (binned mode).

For a true cell [x0, x1] and a Gaussian width s, the cell average of
P(x + s N(0,1) <= e) is G(e) = s / w (F((e - x0) / s) - F((e - x1) / s)) with
F(z) = z Phi(z) + phi(z); a pixel [e_j, e_j+1] gets G(e_j+1) - G(e_j). The pixel values
telescope to the cell's ROI containment of `cell_containment` (same 9 sigma cut-offs),
so summing the recon pixels gives N back.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .marginal import _ndtr_pdf

__all__ = ["pixel_columns"]

_CUT = 9.0  # sigma beyond which G is 0 or 1 (as in `cell_containment`)


@numba.njit(cache=True)
def _F(z):
    """z Phi(z) + phi(z), from the tabulated normal CDF and pdf (absolute error about
    1e-11, far inside the tests' 1e-9 closure of the recon bins on N)."""
    c, p = _ndtr_pdf(z)
    return z * c + p


@numba.njit(cache=True)
def _cum_average(x0, x1, e, s):
    """Average over x in [x0, x1] of P(x + s N(0,1) <= e)."""
    if s <= 0.0:
        return min(max((e - x0) / (x1 - x0), 0.0), 1.0)
    if e - x1 > _CUT * s:
        return 1.0
    if x0 - e > _CUT * s:
        return 0.0
    return s / (x1 - x0) * (_F((e - x0) / s) - _F((e - x1) / s))


@numba.njit(cache=True)
def _pixel_factors(x0, x1, s, edges, out):
    """out[j - j0] = the cell-averaged probability of pixel j for the pixels j0 <= j < j1
    that the cell's window reaches; returns (j0, j1) (j1 <= j0: none)."""
    n = edges.shape[0] - 1
    reach = _CUT * s if s > 0.0 else 0.0
    j0 = max(np.searchsorted(edges, x0 - reach, side="right") - 1, 0)
    j1 = min(np.searchsorted(edges, x1 + reach, side="left"), n)
    if j1 <= j0:
        return j0, j0
    prev = _cum_average(x0, x1, edges[j0], s)
    for j in range(j0, j1):
        c = _cum_average(x0, x1, edges[j + 1], s)
        out[j - j0] = max(c - prev, 0.0)
        prev = c
    return j0, j1


@numba.njit(parallel=True, cache=True)
def pixel_columns(sigma, weight, cell_w, col0, col_t, templates, spec, target, l_edges,
                  b_edges, pl_edges, pb_edges, out):
    """Sky factors of the binned expected counts, per energy point and offset column.

    out[target[t], s, c, j, m] = sum over true cells of templates[t, cell] spec[t, s]
    cell_w[s, cell] a_c(cell) P_s(pixel (j, m) | cell), with a_c the cell's linear mix
    of migration offset columns (col0, col0 + 1 with weight col_t) and P_s the
    cell-averaged PSF mass of the pixel (sum over Gaussian terms; tangent plane at the
    cell: dl scaled by cos b of its centre).

    Shapes: sigma, weight (n_s, n_l, n_b, n_terms) [deg]; cell_w (n_s, n_l, n_b); col0,
    col_t (n_l, n_b); templates (n_t, n_l, n_b); spec (n_t, n_s); target (n_t,);
    out (n_out, n_s, n_cols, n_pl, n_pb), accumulated into (zero it first). Parallel over
    s (each s writes only out[:, s]), serial sums: thread-count independent.
    """
    n_s, n_l, n_b, n_terms = sigma.shape
    n_t = templates.shape[0]
    n_pl = pl_edges.shape[0] - 1
    n_pb = pb_edges.shape[0] - 1
    for s in numba.prange(n_s):
        fl = np.empty(n_pl)
        fb = np.empty(n_pb)
        for ib in range(n_b):
            cb = math.cos(math.radians(0.5 * (b_edges[ib] + b_edges[ib + 1])))
            for il in range(n_l):
                cw = cell_w[s, il, ib]
                if cw == 0.0:
                    continue
                c0 = col0[il, ib]
                tt = col_t[il, ib]
                for q in range(n_terms):
                    w = weight[s, il, ib, q]
                    if w == 0.0:
                        continue
                    sg = sigma[s, il, ib, q]
                    jl0, jl1 = _pixel_factors(l_edges[il], l_edges[il + 1], sg / cb,
                                              pl_edges, fl)
                    if jl1 <= jl0:
                        continue
                    jb0, jb1 = _pixel_factors(b_edges[ib], b_edges[ib + 1], sg, pb_edges, fb)
                    if jb1 <= jb0:
                        continue
                    for t in range(n_t):
                        v = templates[t, il, ib] * spec[t, s] * cw * w
                        if v == 0.0:
                            continue
                        o = target[t]
                        for k in range(2):
                            vc = v * (1.0 - tt) if k == 0 else v * tt
                            if vc == 0.0:
                                continue
                            c = c0 + k
                            for j in range(jl0, jl1):
                                vl = vc * fl[j - jl0]
                                for m in range(jb0, jb1):
                                    out[o, s, c, j, m] += vl * fb[m - jb0]
    return out
