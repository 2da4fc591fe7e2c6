"""numba kernel: cell-averaged ROI containment of the Gaussian PSF terms."""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["cell_containment"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@numba.njit(cache=True)
def _F(z):
    """integral of the normal CDF: z Phi(z) + phi(z)."""
    return z * 0.5 * math.erfc(-z * _INV_SQRT2) + _INV_SQRT2PI * math.exp(-0.5 * z * z)


@numba.njit(cache=True)
def _average(x0, x1, lo, hi, s):
    """Average over x in [x0, x1] of P(lo <= x + s N(0,1) <= hi)."""
    w = x1 - x0
    if s <= 0.0:
        return max(min(x1, hi) - max(x0, lo), 0.0) / w
    if x0 - lo > 9.0 * s and hi - x1 > 9.0 * s:
        return 1.0  # deep inside
    if x0 - hi > 9.0 * s or lo - x1 > 9.0 * s:
        return 0.0  # far outside
    v = s / w * (_F((hi - x0) / s) - _F((hi - x1) / s) - _F((lo - x0) / s) + _F((lo - x1) / s))
    return min(max(v, 0.0), 1.0)


@numba.njit(parallel=True, cache=True)
def cell_containment(sig_nodes, w_nodes, i0, i1, t, defined, l_edges, b_edges, l_lo, l_hi,
                     b_lo, b_hi, out):
    """out[s, l, b] = sum_k w_k A_l(sigma_k / cos b) A_b(sigma_k), the cell-averaged ROI
    containment (0 where not ``defined``). The PSF terms are mixed here from the
    offset-node tables ``sig_nodes, w_nodes`` (n_s, n_nodes, n_terms) [deg] with each
    cell's nodes ``i0, i1`` and weight ``t`` (n_l, n_b), so that no (n_s, n_l, n_b,
    n_terms) arrays are built."""
    n_s = sig_nodes.shape[0]
    n_t = sig_nodes.shape[2]
    n_l, n_b = i0.shape
    for s in numba.prange(n_s):
        for j in range(n_b):
            cb = math.cos(math.radians(0.5 * (b_edges[j] + b_edges[j + 1])))
            for i in range(n_l):
                if not defined[s, i, j]:
                    out[s, i, j] = 0.0
                    continue
                a, c, u = i0[i, j], i1[i, j], t[i, j]
                tot = 0.0
                for q in range(n_t):
                    w = (1.0 - u) * w_nodes[s, a, q] + u * w_nodes[s, c, q]
                    if w == 0.0:
                        continue
                    sg = (1.0 - u) * sig_nodes[s, a, q] + u * sig_nodes[s, c, q]
                    tot += (w * _average(l_edges[i], l_edges[i + 1], l_lo, l_hi, sg / cb)
                            * _average(b_edges[j], b_edges[j + 1], b_lo, b_hi, sg))
                out[s, i, j] = tot
    return out
