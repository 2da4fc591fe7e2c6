"""numba kernels of the hyper-likelihood: one pass over events (or bins).

Every likelihood of PHYSICS.md section 6 is, per observation, a weighted sum

    sum_e w_e ln( a_DM lambda_DM(e | m) + sum_k a_k lambda_k(e) )

with w_e = 1 for events and w_e = n_b for Poisson bins (lambda -> nu), and with
amplitudes a = W / mu (fractions mode) or a = (<sigma v>, scale factors) (rates mode).
The dark matter's term is a banded contraction with the mass-dependent spectral
factors S_s(m),

    lambda_DM(e | m) = sum_j S[first_e + j] band_e[j] + sum_lines f_l g_line(e, E_l),

(rows of any length stored back to back; a dense [n, n_sub] kernel is first = 0, every
row n_sub long), and the line kernel is interpolated in ln E between its two nodes
(geometrically where both are positive, as `gammadm.expected.dm_expected` does on the mu
side).

The per-event logarithms are computed in parallel into a buffer and summed serially in
event order, without fastmath: results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["mixture_log_sum", "banded_dm_lambda", "pchip_rows", "line_nodes",
           "interp_geometric"]


@numba.njit(cache=True, inline="always")
def interp_geometric(g0, g1, t):
    """Between two nodes at fraction t of ln E: geometric where both values are positive
    (exposures, PSF peaks and kernels vary as powers of E), else linear."""
    if g0 > 0.0 and g1 > 0.0:
        return math.exp((1.0 - t) * math.log(g0) + t * math.log(g1))
    return (1.0 - t) * g0 + t * g1


@numba.njit(cache=True, inline="always")
def _row_value(ptr, values, e, i):
    """Entry i of row e stored back to back (zero outside the row)."""
    return values[ptr[e] + i] if 0 <= i < ptr[e + 1] - ptr[e] else 0.0


@numba.njit(cache=True, inline="always")
def _dm_event(e, first, ptr, values, s, line_i, line_t, line_f, lfirst, lptr, lvalues):
    f0, p0 = first[e], ptr[e]
    acc = 0.0
    for j in range(min(ptr[e + 1] - p0, s.shape[0] - f0)):  # zero beyond the last sub
        acc += s[f0 + j] * values[p0 + j]
    for q in range(line_i.shape[0]):
        i = line_i[q] - lfirst[e]
        acc += line_f[q] * interp_geometric(_row_value(lptr, lvalues, e, i),
                                            _row_value(lptr, lvalues, e, i + 1), line_t[q])
    return acc


@numba.njit(cache=True, parallel=True)
def banded_dm_lambda(first, ptr, values, s, line_i, line_t, line_f, lfirst, lptr, lvalues,
                     out):
    """lambda_DM(e) per unit amplitude for every event into ``out`` [n]."""
    for e in numba.prange(first.shape[0]):
        out[e] = _dm_event(e, first, ptr, values, s, line_i, line_t, line_f, lfirst, lptr,
                           lvalues)
    return out


@numba.njit(cache=True, parallel=True)
def mixture_log_sum(first, ptr, values, s, line_i, line_t, line_f, lfirst, lptr, lvalues,
                    a_dm, bkg, a_bkg, weight, buf):
    """sum_e weight_e ln(a_dm lambda_DM(e) + sum_k a_bkg[k] bkg[e, k]).

    Parameters
    ----------
    first : int64 [n]; ptr : int64 [n + 1]; values : float [ptr[-1]]
        Banded dark-matter kernel, rows back to back: row e is ``values[ptr[e]:ptr[e+1]]``
        from sub-interval ``first[e]`` on (`gammadm.inference.data.compact_band`).
    s : float [n_sub]
        Spectral factors S_s(m) (sub-interval averages).
    line_i : int64 [n_lines]; line_t, line_f : float [n_lines]
        Lower line-grid node, fraction in ln E to the next one, line factor.
    lfirst, lptr, lvalues
        Pointwise line kernel stored the same way: entry j of row e is at line-grid point
        lfirst[e] + j (rows may be empty, e.g. if there are no lines).
    a_dm : float
        Dark-matter amplitude (0 drops the term without evaluating it).
    bkg : float [n, n_bkg]; a_bkg : float [n_bkg]
        Background lambdas at nominal normalisation and their amplitudes.
    weight : float [n]
        1 per event, or the counts of Poisson bins (0 skips the bin).
    buf : float [n]
        Work space for the per-event terms.

    Returns
    -------
    float
        The weighted log sum; -inf if an event with weight > 0 has zero density.
    """
    n = first.shape[0]
    for e in numba.prange(n):
        if weight[e] == 0.0:
            buf[e] = 0.0
            continue
        tot = 0.0
        if a_dm != 0.0:
            tot = a_dm * _dm_event(e, first, ptr, values, s, line_i, line_t, line_f,
                                   lfirst, lptr, lvalues)
        for k in range(bkg.shape[1]):
            tot += a_bkg[k] * bkg[e, k]
        buf[e] = weight[e] * math.log(tot) if tot > 0.0 else -np.inf
    acc = 0.0
    for e in range(n):  # serial, in event order: independent of the thread count
        acc += buf[e]
    return acc


@numba.njit(cache=True)
def pchip_rows(x, coef, xv, out):
    """Evaluate piecewise cubics (scipy PPoly layout: coef [4, n_x - 1, n_col]) at xv,
    clamped to [x[0], x[-1]], into ``out`` [n_col]."""
    nx = x.shape[0]
    if xv <= x[0]:
        j = 0
        xv = x[0]
    elif xv >= x[nx - 1]:
        j = nx - 2
        xv = x[nx - 1]
    else:
        j = np.searchsorted(x, xv, side="right") - 1
    d = xv - x[j]
    for c in range(coef.shape[2]):
        out[c] = ((coef[0, j, c] * d + coef[1, j, c]) * d + coef[2, j, c]) * d + coef[3, j, c]
    return out


@numba.njit(cache=True)
def line_nodes(ln_grid, energy_factor, idx, t, f):
    """For lines given as (E, factor) pairs in ``energy_factor`` [2 n_lines]: the lower
    node on the ln E grid, the fraction to the next node, and the factor (0 for a line
    outside the grid, which then contributes nothing, as on the mu side)."""
    ng = ln_grid.shape[0]
    for q in range(idx.shape[0]):
        e = energy_factor[2 * q]
        le = math.log(e) if e > 0.0 else -np.inf
        i = np.searchsorted(ln_grid, le) - 1
        i = min(max(i, 0), ng - 2)
        idx[q] = i
        if ln_grid[0] <= le <= ln_grid[ng - 1]:
            t[q] = (le - ln_grid[i]) / (ln_grid[i + 1] - ln_grid[i])
            f[q] = energy_factor[2 * q + 1]
        else:
            t[q] = 0.0
            f[q] = 0.0
