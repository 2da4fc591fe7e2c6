"""numba kernels: per-event marginalisation over true energy and direction.

For an event (E_r, l_r, b_r) and a template T (e.g. the cell-averaged J, or a diffuse
morphology) the kernel returns, per energy sub-interval s,

    G[s] = sum_cells T_lb eps_s,lb K_s(E_r; theta_lb) M_s,lb(x_r)

with K_s the exact integral of R_E(E_r | E_t) over the sub-interval (linear row mix,
`gammadm.instrument.normalisation`) and M_s,lb the Gaussian PSF integrated over the
true cell (normal-CDF differences in the tangent plane). Then
lambda(e) = sum_s Phi_s G[s] for any spectrum Phi_s (averaged over each sub-interval):
the dark matter's mass enters only there. K depends on the cell only through its
offset column mix, so the spatial sums are kept per migration column and contracted
with K(E_r) afterwards; the dark matter's pointwise kernel for lines reuses them.

One fused kernel visits each event once (energy kernel, PSF windows of every
sub-interval, templates, lines, point sources) and writes banded outputs: only the
sub-intervals (and line-energy points) whose migration support reaches E_r.
Kernels take plain arrays, run in parallel over events with serial per-event sums and
no fastmath, so results do not depend on the thread count.

Divisions follow numpy's error model (no zero-divisor check and exception path;
the kernels divide by widths, energies and spacings that are never zero).
The helpers are inlined into the kernel (``inline="always"``): numba increments and
decrements the reference count of every array passed to a compiled call, atomically,
and at ~20 array arguments per sub-interval that bookkeeping took 22 % of the time.
Array views (``a[q]``) are new arrays and cost the same pair, so helpers take whole
buffers with an index. The kernel reads the PSF widths and exposure coefficients as
[sub-interval, term, l, b + ROW_PAD] (contiguous along a window row), see
`kernel_layout`. Short loops vectorise badly (one vector of 8, then a scalar
remainder), so an event's window factors are computed for all its sub-intervals in one
flat pass (`_flat_factors`) and window rows run in whole vectors over padded arrays.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["EVENT_BLOCK", "active_ranges", "kernel_layout", "marginal_kernel", "pack_migration",
           "visit_order"]

EVENT_BLOCK = 16  # events per parallel iteration of marginal_kernel (shared scratch)
# Window rows are computed in whole vectors of ROW_PAD cells: the arrays read along a row
# carry ROW_PAD cells of padding (at ~14 cells a row, the scalar remainder of the
# vectorised loop had held most of the work)
ROW_PAD = 8
VISIT_BIN_DEX = 0.05  # energy bins [decades] and sky tiles [deg] of `visit_order`
VISIT_TILE_DEG = 0.3

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


# The normal CDF and pdf from a table with cubic Hermite interpolation (the pdf is the
# CDF's derivative, and -z pdf the pdf's): absolute error < 1e-12 for both, about five
# times faster than erfc and exp, which dominated the PSF windows' cost.
_Z_MAX = 9.0
_Z_STEP = 1.0 / 256.0
_Z_NODES = np.linspace(-_Z_MAX, _Z_MAX, int(round(2 * _Z_MAX / _Z_STEP)) + 1)
_CDF_TAB = np.array([0.5 * math.erfc(-z * _INV_SQRT2) for z in _Z_NODES])
_PDF_TAB = np.exp(-0.5 * _Z_NODES**2) * _INV_SQRT2PI


@numba.njit(cache=True, inline="always", error_model="numpy")
def _ndtr_pdf(z):
    """(Phi(z), phi(z)) of the standard normal (0 or 1 and 0 beyond |z| = 9). Written
    without branches so that loops over it vectorise."""
    zc = min(max(z, -_Z_MAX), _Z_MAX)
    u = (zc + _Z_MAX) / _Z_STEP
    k = np.uint64(min(int(u), _CDF_TAB.shape[0] - 2))
    t = u - k
    t2 = t * t
    t3 = t2 * t
    h00 = 2.0 * t3 - 3.0 * t2 + 1.0
    h10 = (t3 - 2.0 * t2 + t) * _Z_STEP
    h01 = 3.0 * t2 - 2.0 * t3
    h11 = (t3 - t2) * _Z_STEP
    p0 = _PDF_TAB[k]
    p1 = _PDF_TAB[k + np.uint64(1)]
    z0 = k * _Z_STEP - _Z_MAX  # the table's node k, exactly
    z1 = z0 + _Z_STEP
    cdf = h00 * _CDF_TAB[k] + h10 * p0 + h01 * _CDF_TAB[k + np.uint64(1)] + h11 * p1
    pdf = h00 * p0 - h10 * z0 * p0 + h01 * p1 - h11 * z1 * p1
    outside = z <= -_Z_MAX or z >= _Z_MAX
    return (0.0 if z <= -_Z_MAX else (1.0 if z >= _Z_MAX else cdf)), (0.0 if outside else pdf)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _searchsorted(edges, v, right, scale):
    """np.searchsorted(edges, v, side="right" if right else "left"): the number of edges
    <= v (right) or < v (left), from a guess on a uniform spacing fixed by a walk (exact
    for any sorted edges; fast when uniform). ``scale`` = `_guess_scale` (edges)."""
    n = edges.shape[0]
    i = int((v - edges[0]) * scale) if v > edges[0] else 0
    i = min(max(i, 0), n)
    while i > 0 and (edges[i - 1] > v if right else edges[i - 1] >= v):
        i -= 1
    while i < n and (edges[i] <= v if right else edges[i] < v):
        i += 1
    return i


@numba.njit(cache=True, inline="always", error_model="numpy")
def _guess_scale(edges):
    """The number of spacings per unit of a uniform grid with these end edges (the
    searches' first guess; a multiplication where a division was 5 % of the time)."""
    n = edges.shape[0]
    return (n - 1) / (edges[n - 1] - edges[0]) if n > 1 else 0.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def _edge_values(k, k1, dens, edges, ln_edges, scale, row, mu, ln_mu, c_lo, c_hi, v):
    """v[c] = (K_row, K_row+1, K1_row, K1_row+1) at mu for columns c_lo..c_hi (anchored
    as in MigrationTables; ``ln_mu`` = ln(mu), passed in because the caller has it). The
    mu bin is located once for all rows and columns."""
    ne = edges.shape[0]
    if mu >= edges[ne - 1]:
        for c in range(c_lo, c_hi + 1):
            v[c, 0] = k[row, c, ne - 1]
            v[c, 1] = k[row + 1, c, ne - 1]
            v[c, 2] = k1[row, c, ne - 1]
            v[c, 3] = k1[row + 1, c, ne - 1]
        return
    if mu <= edges[0]:
        mu = edges[0] + 1e-300
        ln_mu = math.log(mu)
    i = _searchsorted(edges, mu, True, scale) - 1
    i = min(max(i, 0), ne - 2)
    if edges[i] > 0.0:
        ll = ln_edges[i]
        d1 = ln_mu - ll
        d2 = (ln_mu * ln_mu - ll * ll) * 0.5
        for c in range(c_lo, c_hi + 1):
            for r in range(2):
                m = dens[row + r, c, i]
                v[c, r] = k[row + r, c, i] + m * d1
                v[c, 2 + r] = k1[row + r, c, i] + m * d2
        return
    l1 = ln_edges[1]
    d1 = ln_mu - l1
    d2 = (ln_mu * ln_mu - l1 * l1) * 0.5
    for c in range(c_lo, c_hi + 1):
        for r in range(2):
            m = dens[row + r, c, i]
            v[c, r] = m * d1 if m != 0.0 else 0.0
            v[c, 2 + r] = m * d2 if m != 0.0 else 0.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def _energy_kernel(er, s0, s1, c_lo, c_hi, sub_edges, ln_sub_edges, sub_row, row_ln_e, k,
                   k1, dens, medges, ln_medges, m_scale, mu_lo, mu_hi, kc, v_hi, v_lo):
    """kc[s - s0, c] = integral over sub-interval s of R_E(E_r | E_t) dE_t for s in
    s0..s1 and offset columns c_lo..c_hi (linear mix of the two migration rows in
    ln E_t, exact through the tables K, K1). The table values at a shared edge are
    computed once for both neighbouring sub-intervals when they use the same rows."""
    ln_er = math.log(er)
    cached_row = -1
    for s in range(s0, s1 + 1):
        for c in range(kc.shape[1]):
            kc[s - s0, c] = 0.0
        ea = sub_edges[s]
        eb = sub_edges[s + 1]
        if er / ea < mu_lo[s] or er / eb > mu_hi[s]:
            cached_row = -1
            continue
        row = sub_row[s]
        if row != cached_row:  # values at mu = E_r / E_a (the sub-interval's lower edge)
            _edge_values(k, k1, dens, medges, ln_medges, m_scale, row, er / ea,
                         ln_er - ln_sub_edges[s], c_lo, c_hi, v_hi)
        else:
            for c in range(c_lo, c_hi + 1):
                for j in range(4):
                    v_hi[c, j] = v_lo[c, j]
        _edge_values(k, k1, dens, medges, ln_medges, m_scale, row, er / eb,
                     ln_er - ln_sub_edges[s + 1], c_lo, c_hi, v_lo)
        cached_row = row
        ln_e0 = row_ln_e[row]
        dln = row_ln_e[row + 1] - ln_e0
        for c in range(c_lo, c_hi + 1):
            a0 = v_hi[c, 0] - v_lo[c, 0]
            b0 = v_hi[c, 1] - v_lo[c, 1]
            a1 = v_hi[c, 2] - v_lo[c, 2]
            b1 = v_hi[c, 3] - v_lo[c, 3]
            kc[s - s0, c] = a0 + ((b0 - a0) * (ln_er - ln_e0) - (b1 - a1)) / dln


@numba.njit(cache=True, inline="always", error_model="numpy")
def _flat_factors(n, z, inv_sg, f, fp, fpp):
    """The PSF window factors of many windows at once: for entries i < n (runs of
    edges, one run per window, axis and PSF term) the normal CDF f = Phi(z), and fp =
    -z phi / sg, fpp = (2 z - z^3) phi / sg^2 its first and second derivatives with
    respect to the width sg (z = (edge - x) / sg, ``inv_sg`` = 1 / sg), then in place the
    differences of consecutive entries (the cells' factors; meaningless across runs, and
    never read there). One long loop vectorises well where a window's ~15 edges left
    most of the work to the scalar remainder: 2.1x."""
    for i in range(n):
        zi = z[i]
        c, pdf = _ndtr_pdf(zi)
        w = inv_sg[i]
        f[i] = c
        fp[i] = -zi * pdf * w
        fpp[i] = (2.0 - zi * zi) * zi * pdf * w * w
    for i in range(n - 1):
        f[i] = f[i + 1] - f[i]
        fp[i] = fp[i + 1] - fp[i]
        fpp[i] = fpp[i + 1] - fpp[i]


@numba.njit(cache=True, inline="always", error_model="numpy")
def _push_window(l_edges, b_edges, sl, sb, x_r, y_r, cb_r, r, sigma, s, jl, jb, cref, win, k,
                 z, inv_sg, nz):
    """Append a window's edges to the flat pass of `_flat_factors`: win[k] = (il0, il1,
    ib0, ib1, first entry) for the cells within r [deg] of (x_r, y_r), then per PSF term
    the z and 1 / width of its l edges (width in l: sigma / cos b of the event's row,
    ``cref``) and b edges, at the event cell's widths sigma[s, :, jl, jb]. Returns the
    new number of entries."""
    il0, il1, ib0, ib1 = _window_range(l_edges, b_edges, sl, sb, x_r, y_r, cb_r, r)
    win[k, 0], win[k, 1], win[k, 2], win[k, 3], win[k, 4] = il0, il1, ib0, ib1, nz
    for q in range(sigma.shape[1]):
        sq = sigma[s, q, jl, jb]
        inv_l = 1.0 / (sq / cref)
        for i in range(il0, il1 + 1):
            z[nz] = (l_edges[i] - x_r) * inv_l
            inv_sg[nz] = inv_l
            nz += 1
        inv_b = 1.0 / sq
        for i in range(ib0, ib1 + 1):
            z[nz] = (b_edges[i] - y_r) * inv_b
            inv_sg[nz] = inv_b
            nz += 1
    return nz


@numba.njit(cache=True, error_model="numpy")
def _row_cos(b_edges):
    """cos b at the centre of each latitude row (the tangent-plane scale of dl)."""
    n_b = b_edges.shape[0] - 1
    out = np.empty(n_b)
    for ib in range(n_b):
        out[ib] = math.cos(math.radians(0.5 * (b_edges[ib] + b_edges[ib + 1])))
    return out


@numba.njit(cache=True, inline="always", error_model="numpy")
def _window_range(l_edges, b_edges, sl, sb, x_r, y_r, cb_r, r):
    """The cells [il0, il1) x [ib0, ib1) within r [deg] of (x_r, y_r) per axis (empty
    when the window misses the grid); sl, sb: `_guess_scale` of the edges."""
    n_l = l_edges.shape[0] - 1
    n_b = b_edges.shape[0] - 1
    il0 = max(_searchsorted(l_edges, x_r - r / cb_r, False, sl) - 1, 0)
    il1 = min(_searchsorted(l_edges, x_r + r / cb_r, False, sl), n_l)
    ib0 = max(_searchsorted(b_edges, y_r - r, False, sb) - 1, 0)
    ib1 = min(_searchsorted(b_edges, y_r + r, False, sb), n_b)
    return il0, il1, ib0, ib1


def visit_order(er: np.ndarray, lr: np.ndarray, br: np.ndarray, n_threads: int) -> np.ndarray:
    """The order in which `marginal_kernel` visits events: by reconstructed energy in
    bins of VISIT_BIN_DEX, and within a bin by sky tiles of VISIT_TILE_DEG (neighbours
    then read the same sub-intervals' and cells' IRF arrays while they are in cache:
    1.1x over energy alone at 2e4 seed events), its blocks dealt round-robin to the
    threads' contiguous shares of the parallel loop. Low-energy events cost ~1.5x
    high-energy ones (wider PSF windows, more sub-intervals), so contiguous energy
    halves left one of two threads idle for ~15 % of the time."""
    by_key = np.lexsort((np.floor(np.asarray(br) / VISIT_TILE_DEG),
                            np.floor(np.asarray(lr) / VISIT_TILE_DEG),
                            np.floor(np.log10(er) / VISIT_BIN_DEX)))
    n_full = er.size // EVENT_BLOCK  # a partial last block stays last
    t = max(int(n_threads), 1)
    blocks = np.concatenate([np.arange(i, n_full, t) for i in range(t)])
    idx = (blocks[:, None] * EVENT_BLOCK + np.arange(EVENT_BLOCK)[None, :]).ravel()
    return np.concatenate([by_key[idx], by_key[n_full * EVENT_BLOCK:]])


def pack_migration(mig) -> tuple:
    """The migration tables as contiguous arrays for the kernels: K, K1, the density per
    mu bin, the mu edges and their logarithms (-inf at 0)."""
    with np.errstate(divide="ignore"):
        ln_edges = np.log(mig.edges)
    return (np.ascontiguousarray(mig.k), np.ascontiguousarray(mig.k1),
            np.ascontiguousarray(mig.density), np.ascontiguousarray(mig.edges), ln_edges)


def kernel_layout(sigma: np.ndarray, ca: np.ndarray, templates: np.ndarray,
                  col_t: np.ndarray, f_dj: np.ndarray) -> tuple:
    """The arrays of `marginal_kernel` from their natural layouts: PSF widths and
    exposure coefficients [sub-interval, l, b, term] -> [sub-interval, term, l, b +
    ROW_PAD] (padded with widths 1 and coefficients 0); the
    templates [t, l, b] mixed with the cells' column weights w = col_t into groups of
    four, [group, l, b, 8] = (T_t (1 - w) for the group's t, then T_t w; zero padding);
    the central J structure dJ [l, b] -> [b, l]."""
    n_tpl = templates.shape[0]
    mix = np.zeros(((n_tpl + 3) // 4,) + templates.shape[1:] + (8,))
    for t in range(n_tpl):
        mix[t // 4, ..., t % 4] = templates[t] * (1.0 - col_t)
        mix[t // 4, ..., 4 + t % 4] = templates[t] * col_t
    pad = ((0, 0), (0, 0), (0, 0), (0, ROW_PAD))
    return (np.pad(np.moveaxis(sigma, 3, 1), pad, constant_values=1.0),
            np.pad(np.moveaxis(ca, 3, 1), pad), mix, np.ascontiguousarray(f_dj.T))


@numba.njit(parallel=True, cache=True, error_model="numpy")
def active_ranges(er, sub_edges, mu_lo, mu_hi, pts_e, pts_mu_lo, pts_mu_hi, pts_sub, out):
    """Per event, the index ranges the kernel visits (first > last when empty):
    out[e] = (first, last) sub-interval whose migration support can reach E_r (the
    dark-matter band), (first, last) line-energy point likewise, and (first, last)
    sub-interval whose spatial sums are needed (the band plus the two sub-intervals
    around each line point, for the interpolation in ln E)."""
    n_sub = mu_lo.shape[0]
    for e in numba.prange(er.shape[0]):
        s0, s1 = n_sub, -1
        for s in range(n_sub):
            if er[e] / sub_edges[s] >= mu_lo[s] and er[e] / sub_edges[s + 1] <= mu_hi[s]:
                s0 = min(s0, s)
                s1 = s
        p0, p1 = pts_e.shape[0], -1
        for p in range(pts_e.shape[0]):
            mu = er[e] / pts_e[p]
            if pts_mu_lo[p] <= mu <= pts_mu_hi[p]:
                p0 = min(p0, p)
                p1 = p
        a0, a1 = s0, s1
        if p1 >= p0:
            a0 = min(a0, pts_sub[p0])
            a1 = max(a1, pts_sub[p1] + 1)
        out[e, 0], out[e, 1], out[e, 2], out[e, 3], out[e, 4], out[e, 5] = s0, s1, p0, p1, a0, a1
    return out


@numba.njit(cache=True, inline="always", error_model="numpy")
def _window_sums(s, il0, il1, ib0, ib1, off, cref, jl, jb, sigma, ca, col0, inv_cosb, tpl_mix,
                 f, fp, fpp, acc, vrow):
    """Sums over the cells [il0, il1) x [ib0, ib1) of the PSF window of sub-interval s,
    for an event in cell (jl, jb):

    acc[t // 4, c, t % 4] = sum T_t eps M_cell(x_r) w_c for every template t, split by
    the offset column c of the migration (a cell mixes its two nearest columns linearly
    with weights w_c), so that the energy kernel K(E_r; cell) = sum_c w_c K_c applies
    afterwards and the dark matter's sums stay per column for the line kernel.
    M_cell is the Gaussian PSF integrated over the cell: per term an l factor times a b
    factor at the width of the event's cell, corrected to second order for each cell's
    own width (the first order alone left 1.4e-3 at 4 deg offset, where the width
    changes by ~1 % per cell); ca = eps w per cell and term; ``tpl_mix`` [group, l, b,
    8] holds T_t (1 - w) then T_t w for the four templates of a group (see
    `kernel_layout`). The factors and their width derivatives are in f, fp, fpp from
    ``off`` (`_flat_factors`): per term, the l cells' then the b cells' (one more edge
    than cells each)."""
    for g in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            for j in range(acc.shape[2]):
                acc[g, c, j] = 0.0
    n_q = sigma.shape[1]
    nb = ib1 - ib0
    nbv = (nb + ROW_PAD - 1) // ROW_PAD * ROW_PAD  # whole vectors (see ROW_PAD)
    run = il1 - il0 + nb + 2  # entries per term
    for il in range(il0, il1):
        # the cells' eps x PSF masses of this row first (no reductions: vectorisable;
        # unsigned indices, else numba's negative-index wraparound turns the loads into
        # gathers), then the sums. The padding lanes (b >= nb) hold junk, never read.
        ibu = np.uint64(ib0)
        for q in range(n_q):
            la = off + q * run + il - il0
            fa = f[la]
            fpa = fp[la]
            hppa = 0.5 * fpp[la]
            ob = np.uint64(off + q * run + il1 - il0 + 1)
            sq = sigma[s, q, jl, jb]
            sq_l = sq / cref
            for b in range(nbv):
                ib = ibu + np.uint64(b)
                j = ob + np.uint64(b)
                sg = sigma[s, q, il, ib]
                d_l = sg * inv_cosb[ib] - sq_l
                d_b = sg - sq
                m = ca[s, q, il, ib] * (
                    f[j] * (fa + d_l * (fpa + d_l * hppa))
                    + d_b * (fp[j] * (fa + d_l * fpa) + 0.5 * d_b * fa * fpp[j]))
                vrow[b] = m if q == 0 else vrow[b] + m
        # along a run of cells on the same column pair, the eight products of a template
        # group accumulate in registers (through memory they were a dependency chain)
        for g in range(tpl_mix.shape[0]):
            b = 0
            while b < nb:
                c0 = col0[il, ibu + np.uint64(b)]
                r0 = r1 = r2 = r3 = r4 = r5 = r6 = r7 = 0.0
                while b < nb and col0[il, ibu + np.uint64(b)] == c0:
                    v = vrow[b]
                    ib = ibu + np.uint64(b)
                    r0 += v * tpl_mix[g, il, ib, 0]
                    r1 += v * tpl_mix[g, il, ib, 1]
                    r2 += v * tpl_mix[g, il, ib, 2]
                    r3 += v * tpl_mix[g, il, ib, 3]
                    r4 += v * tpl_mix[g, il, ib, 4]
                    r5 += v * tpl_mix[g, il, ib, 5]
                    r6 += v * tpl_mix[g, il, ib, 6]
                    r7 += v * tpl_mix[g, il, ib, 7]
                    b += 1
                acc[g, c0, 0] += r0
                acc[g, c0, 1] += r1
                acc[g, c0, 2] += r2
                acc[g, c0, 3] += r3
                acc[g, c0 + 1, 0] += r4
                acc[g, c0 + 1, 1] += r5
                acc[g, c0 + 1, 2] += r6
                acc[g, c0 + 1, 3] += r7


@numba.njit(cache=True, inline="always", error_model="numpy")
def _run_end(parent, off, i, n):
    """End of the run of sub-cells from i (< n) that share parent[off + i]."""
    j = i + 1
    while j < n and parent[off + j] == parent[off + i]:
        j += 1
    return j


@numba.njit(cache=True, inline="always", error_model="numpy")
def _fine_dm_sums(s, il0, il1, ib0, ib1, off, cref, jl, jb, sigma, ca, col0, col_t, inv_cosb,
                  f_pl, f_pb, f_djt, f, fp, acc, rb, rp):
    """Add to acc[0, c, 0] the dark matter's structure inside the central true cells:
    sub-cells (parent cells f_pl, f_pb) carry dJ = J(sub-cell) - J(parent cell), both
    exact solid-angle averages (``f_djt`` [b, l], transposed so that the inner loop runs
    along l), with the parent's exposure, PSF widths and column mix; the PSF is
    integrated over each sub-cell as in `_window_sums`, corrected to first order for the
    parent's widths. The window is sub-cells [il0, il1) x [ib0, ib1), its factors in f,
    fp from ``off`` as in `_window_sums`."""
    na = il1 - il0
    nb = ib1 - ib0
    run = na + nb + 2  # entries per term
    # per parent cell, sum_sub dJ M_sub is bilinear in the sub-cells' l and b factors
    # (the parent's eps, widths and mix are common): three block sums per PSF term
    for q in range(sigma.shape[1]):
        sq = sigma[s, q, jl, jb]
        ol = off + q * run
        ob = ol + na + 1
        b = 0
        while b < nb:
            ib = f_pb[ib0 + b]
            b_end = _run_end(f_pb, ib0, b, nb)
            # rb[aa] = sum_bb dJ fb, rp[aa] = sum_bb dJ fb' over this parent row's sub-cells
            for aa in range(na):
                rb[aa] = 0.0
                rp[aa] = 0.0
            ilu = np.uint64(il0)
            for bb in range(b, b_end):
                fv = f[ob + bb]
                fpv = fp[ob + bb]
                row = ib0 + bb
                for aa in range(np.uint64(na)):
                    d = f_djt[row, ilu + aa]
                    rb[aa] += d * fv
                    rp[aa] += d * fpv
            a = 0
            while a < na:
                il = f_pl[il0 + a]
                a_end = _run_end(f_pl, il0, a, na)
                w = ca[s, q, il, ib]
                if w != 0.0:
                    s_ab = 0.0  # sum dJ f_l f_b
                    s_pb = 0.0  # sum dJ f_l' f_b
                    s_ap = 0.0  # sum dJ f_l f_b'
                    for aa in range(a, a_end):
                        s_ab += f[ol + aa] * rb[aa]
                        s_pb += fp[ol + aa] * rb[aa]
                        s_ap += f[ol + aa] * rp[aa]
                    sg = sigma[s, q, il, ib]  # the parent's widths minus the reference
                    val = w * (s_ab + (sg * inv_cosb[ib] - sq / cref) * s_pb + (sg - sq) * s_ap)
                    c0 = col0[il, ib]
                    tt = col_t[il, ib]
                    acc[0, c0, 0] += (1.0 - tt) * val
                    acc[0, c0 + 1, 0] += tt * val
                a = a_end
            b = b_end


@numba.njit(cache=True, inline="always", error_model="numpy")
def _point_sources(er_kc, s0, s1, dx2, src_col0, src_t, src_sigma, src_weight, src_eps,
                   src_flux, src_far2):
    """sum over point sources and sub-intervals s0..s1 of flux eps K P(x_r | x_src)
    [sr^-1]; dx2[i] the squared tangent-plane distance [deg^2] to source i."""
    deg2 = (math.pi / 180.0) ** 2
    total = 0.0
    for i in range(src_col0.shape[0]):
        if dx2[i] > src_far2[i]:
            continue
        c0 = src_col0[i]
        t = src_t[i]
        for s in range(s0, s1 + 1):
            ep = src_eps[i, s]
            if ep == 0.0:
                continue
            kk = (1.0 - t) * er_kc[s - s0, c0] + t * er_kc[s - s0, c0 + 1]
            if kk == 0.0:
                continue
            dens_psf = 0.0
            for q in range(src_sigma.shape[2]):
                w = src_weight[i, s, q]
                if w == 0.0:
                    continue
                sg2 = src_sigma[i, s, q] ** 2
                dens_psf += w / (2.0 * math.pi * sg2) * math.exp(-0.5 * dx2[i] / sg2)
            total += src_flux[i, s] * ep * kk * dens_psf / deg2
    return total


@numba.njit(parallel=True, cache=True, error_model="numpy")
def marginal_kernel(er, lr, br, order, ranges, col_lo, col_hi,
                    sub_edges, ln_sub_edges, sub_row, row_ln_e, k, k1, dens, medges,
                    ln_medges, mu_lo, mu_hi,
                    sigma, ca, col0, col_t, l_edges, b_edges, reach, tpl_mix, phi,
                    f_l, f_b, f_pl, f_pb, f_djt, fine_sigma,
                    pts_e, pts_row, pts_t, pts_sub, pts_u, pts_rho,
                    src_lb, src_col0, src_t, src_sigma, src_weight, src_eps, src_flux,
                    dm_out, line_out, tpl_out, pt_out):
    """Per-event marginal terms of all components in one pass (see module docstring).

    Outputs (zeroed here): dm_out[e, s - ranges[e, 0]] = G_e[s] of template 0 (the dark
    matter) on its band of sub-intervals; line_out[e, p - ranges[e, 2]] = the pointwise
    dark-matter kernel at line energy pts_e[p] [TeV^-1 ...], from the column-resolved
    spatial sums interpolated linearly in ln E between sub-interval centres (pts_sub,
    pts_u) and the migration density at mu = E_r / E_p (row mix pts_row, pts_t);
    tpl_out[e, t] = sum_s phi[t, s] G_e,t[s] for templates t >= 1 (backgrounds with
    their spectra); pt_out[e] = lambda of the point sources (src_flux per sub-interval).
    The dark matter's J is resolved inside the central cells (`_fine_dm_sums`) where the
    PSF width at the event's cell is below ``fine_sigma`` [deg] (wider PSFs average the
    structure inside a cell away). ``sigma``, ``ca``, ``tpl_mix`` and ``f_djt`` are in
    the layout of `kernel_layout`; a point source is skipped for events more than 9 of
    its widest PSF widths away (its density there is below 3e-18 of its peak).
    Events are visited in ``order`` (a permutation, see `visit_order`: by reconstructed
    energy and sky tile, so that neighbours use the same IRF arrays while they are in
    cache, 1.6x at 2e4 seed events) in blocks of EVENT_BLOCK that share scratch buffers;
    per-event sums are serial, so the order changes no result.
    """
    n = er.shape[0]
    n_l = l_edges.shape[0] - 1
    n_b = b_edges.shape[0] - 1
    n_cols = k.shape[1]
    n_terms = sigma.shape[1]
    n_tpl = phi.shape[0]
    n_sub = sub_row.shape[0]
    ne = medges.shape[0]
    cosb = _row_cos(b_edges)
    inv_cosb = np.ones(n_b + ROW_PAD)
    inv_cosb[:n_b] = 1.0 / cosb
    block = EVENT_BLOCK
    sl, sb, sm = _guess_scale(l_edges), _guess_scale(b_edges), _guess_scale(medges)
    sfl, sfb = _guess_scale(f_l), _guess_scale(f_b)
    src_far2 = np.zeros(src_col0.shape[0])
    for i in range(src_col0.shape[0]):
        for s in range(n_sub):
            for q in range(src_sigma.shape[2]):
                if src_weight[i, s, q] > 0.0:
                    src_far2[i] = max(src_far2[i], 81.0 * src_sigma[i, s, q] ** 2)
    for blk in numba.prange((n + block - 1) // block):
        kc = np.empty((n_sub, n_cols))
        sdm = np.empty((n_sub, n_cols))
        lsdm = np.empty((n_sub, n_cols))
        acc = np.empty((tpl_mix.shape[0], n_cols, 4))
        rb = np.empty(f_l.shape[0])
        rp = np.empty(f_l.shape[0])
        vrow = np.zeros(n_b + ROW_PAD)
        win = np.empty((n_sub, 5), dtype=np.int64)
        winf = np.empty((n_sub, 5), dtype=np.int64)
        n_flat = n_sub * n_terms * (n_l + n_b + f_l.shape[0] + f_b.shape[0] + 2) + ROW_PAD
        zf, wf = np.empty(n_flat), np.empty(n_flat)
        ff, ffp, ffpp = np.empty(n_flat), np.empty(n_flat), np.empty(n_flat)
        v_hi = np.empty((n_cols, 4))
        v_lo = np.empty((n_cols, 4))
        dx2 = np.empty(src_col0.shape[0])
        need = np.empty(n_sub, dtype=np.bool_)
        rline = np.empty((pts_e.shape[0], n_cols))
        for i_ord in range(blk * block, min(n, (blk + 1) * block)):
            e = order[i_ord]
            for j in range(dm_out.shape[1]):
                dm_out[e, j] = 0.0
            for j in range(line_out.shape[1]):
                line_out[e, j] = 0.0
            for t in range(n_tpl):
                tpl_out[e, t] = 0.0
            pt_out[e] = 0.0
            d0, d1, p0, p1, a0, a1 = (ranges[e, 0], ranges[e, 1], ranges[e, 2], ranges[e, 3],
                                      ranges[e, 4], ranges[e, 5])
            if a1 < a0:
                continue
            c_lo = col_lo[e]
            c_hi = col_hi[e]
            if d1 >= d0:
                _energy_kernel(er[e], d0, d1, c_lo, c_hi, sub_edges, ln_sub_edges, sub_row,
                               row_ln_e, k, k1, dens, medges, ln_medges, sm, mu_lo, mu_hi, kc,
                               v_hi, v_lo)
            # which sub-intervals need spatial sums: non-zero K, or around a line point
            # with a non-zero migration density
            for s in range(a0, a1 + 1):
                need[s - a0] = False
                if d0 <= s <= d1:
                    for c in range(c_lo, c_hi + 1):
                        if kc[s - d0, c] != 0.0:
                            need[s - a0] = True
                            break
            for p in range(p0, p1 + 1):
                mu = er[e] / pts_e[p]
                nonzero = False
                if medges[0] < mu < medges[ne - 1]:
                    i = _searchsorted(medges, mu, True, sm) - 1
                    row = pts_row[p]
                    t = pts_t[p]
                    for c in range(c_lo, c_hi + 1):
                        r = (1.0 - t) * dens[row, c, i] + t * dens[row + 1, c, i]
                        rline[p - p0, c] = r
                        nonzero = nonzero or r != 0.0
                if nonzero:
                    need[pts_sub[p] - a0] = True
                    need[pts_sub[p] + 1 - a0] = True
                else:
                    rline[p - p0, c_lo] = np.nan  # marks the point as empty
            x_r = lr[e]
            y_r = br[e]
            cb_r = math.cos(math.radians(y_r))
            jl = min(max(_searchsorted(l_edges, x_r, False, sl) - 1, 0), n_l - 1)
            jb = min(max(_searchsorted(b_edges, y_r, False, sb) - 1, 0), n_b - 1)
            # every needed sub-interval's window, and its edges' z and 1 / width per PSF
            # term (l: the width in l, sigma / cos b), for one pass of `_flat_factors`
            cref = cosb[jb]
            nz = 0
            for s in range(a0, a1 + 1):
                if not need[s - a0]:
                    continue
                r = reach[s, jl, jb]
                nz = _push_window(l_edges, b_edges, sl, sb, x_r, y_r, cb_r, r, sigma, s, jl,
                                  jb, cref, win, s - a0, zf, wf, nz)
                # the central J structure where the PSF resolves it and the window
                # reaches the central cells (`_fine_dm_sums`)
                winf[s - a0, 4] = -1
                rl = r / cb_r
                if (f_djt.shape[0] > 0 and sigma[s, 0, jl, jb] < fine_sigma
                        and x_r + rl >= f_l[0] and x_r - rl <= f_l[f_l.shape[0] - 1]
                        and y_r + r >= f_b[0] and y_r - r <= f_b[f_b.shape[0] - 1]):
                    nz = _push_window(f_l, f_b, sfl, sfb, x_r, y_r, cb_r, r, sigma, s, jl, jb,
                                      cref, winf, s - a0, zf, wf, nz)
            _flat_factors(nz, zf, wf, ff, ffp, ffpp)
            for s in range(a0, a1 + 1):
                if not need[s - a0]:
                    for c in range(n_cols):
                        sdm[s - a0, c] = 0.0
                    continue
                with_k = d0 <= s <= d1
                _window_sums(s, win[s - a0, 0], win[s - a0, 1], win[s - a0, 2], win[s - a0, 3],
                             win[s - a0, 4], cref, jl, jb, sigma, ca, col0, inv_cosb, tpl_mix,
                             ff, ffp, ffpp, acc, vrow)
                if winf[s - a0, 4] >= 0:
                    _fine_dm_sums(s, winf[s - a0, 0], winf[s - a0, 1], winf[s - a0, 2],
                                  winf[s - a0, 3], winf[s - a0, 4], cref, jl, jb, sigma, ca,
                                  col0, col_t, inv_cosb, f_pl, f_pb, f_djt, ff, ffp, acc, rb,
                                  rp)
                for c in range(n_cols):
                    sdm[s - a0, c] = acc[0, c, 0]
                if not with_k:
                    continue
                g = 0.0
                for c in range(c_lo, c_hi + 1):
                    g += kc[s - d0, c] * acc[0, c, 0]
                dm_out[e, s - d0] = g
                for t in range(1, n_tpl):
                    gg = t // 4
                    tj = t % 4
                    bt = 0.0
                    for c in range(c_lo, c_hi + 1):
                        bt += kc[s - d0, c] * acc[gg, c, tj]
                    tpl_out[e, t] += phi[t, s] * bt
            if p1 >= p0:  # logs of the spatial sums once per sub-interval, for the lines
                for j in range(pts_sub[p0] - a0, pts_sub[p1] + 2 - a0):
                    for c in range(c_lo, c_hi + 1):
                        lsdm[j, c] = math.log(sdm[j, c]) if sdm[j, c] > 0.0 else 0.0
            for p in range(p0, p1 + 1):
                if math.isnan(rline[p - p0, c_lo]):
                    continue
                j = pts_sub[p] - a0
                u = pts_u[p]
                g = 0.0
                for c in range(c_lo, c_hi + 1):
                    r = rline[p - p0, c]
                    if r == 0.0:
                        continue
                    g0 = sdm[j, c]
                    g1 = sdm[j + 1, c]
                    if g0 > 0.0 and g1 > 0.0:  # as likelihood.interp_geometric, logs kept
                        g += r * math.exp((1.0 - u) * lsdm[j, c] + u * lsdm[j + 1, c])
                    else:
                        g += r * ((1.0 - u) * g0 + u * g1)
                line_out[e, p - p0] = g * pts_rho[jl, jb, p] / pts_e[p]
            if src_col0.shape[0] > 0 and d1 >= d0:
                for i in range(src_col0.shape[0]):
                    dx = (x_r - src_lb[i, 0]) * math.cos(math.radians(src_lb[i, 1]))
                    dy = y_r - src_lb[i, 1]
                    dx2[i] = dx * dx + dy * dy
                pt_out[e] = _point_sources(kc, d0, d1, dx2, src_col0, src_t, src_sigma,
                                           src_weight, src_eps, src_flux, src_far2)
    return dm_out

