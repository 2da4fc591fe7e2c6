"""IRF normalisation N and the energy kernel of lambda, integrated exactly (PHYSICS.md s. 4).

N(E_t, x_t) = P(E_r in ROI | E_t, theta) x P(x_r in ROI | E_t, x_t).

**Energy quadrature.** The true-energy axis is cut into *sub-intervals*: the true
cells, further cut at the migration rows' nodes. Inside a sub-interval the migration
is an exact linear mix (in ln E_t) of two rows, each a histogram in mu = E_r / E_t,
so the E_t integrals below are done in closed form with per-row cumulative tables
(`MigrationTables`):

- N, energy part: integral C(a / E) dE over the sub-interval, C the migration CDF
  (piecewise linear in mu), a in {E_min, E_max};
- lambda, energy kernel at fixed E_r: integral R_E(E_r | E_t) dE_t =
  integral M(mu) / mu dmu (never a CDF difference).

Smooth factors (the source intensity, exposure, PSF widths, the offset used for the
migration rows) are taken at the sub-interval's centre and the cell's centre. Since
N and lambda share those factors, integral_ROI lambda dE_r dOmega_r = mu exactly.

**Sky.** Per Gaussian PSF term, the cell average of the normal-CDF difference over the
ROI rectangle, in closed form (integral Phi(z) dz = z Phi(z) + phi(z)), in the tangent
plane at the cell (dx = dl cos b, dy = db).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from ..geometry import ROI, Grid
from .reach import angular_offset
from .response import InstrumentResponse, NodeTable

__all__ = ["MigrationTables", "EnergyQuadrature", "cell_average_containment",
           "energy_containment_sub", "energy_cdf_sub", "energy_containment_points",
           "energy_kernel_sub", "spatial_containment_cells", "normalisation_sub",
           "cell_offsets", "psf_cells", "psf_node_mix"]

_SQRT2PI = np.sqrt(2 * np.pi)


@dataclass(frozen=True)
class MigrationTables:
    """Per-row cumulative tables of the migration, at the migra edges.

    Arrays of shape (n_e, n_theta, n_edges) for the IRF's (filled) rows:
    ``cdf`` C(mu); ``q`` integral C / mu^2; ``q1`` integral C ln(mu) / mu^2;
    ``k`` integral M / mu; ``k1`` integral M ln(mu) / mu. All but ``cdf`` are anchored
    at the first positive edge (only differences are used).
    """

    edges: np.ndarray
    density: np.ndarray
    cdf: np.ndarray
    q: np.ndarray
    q1: np.ndarray
    k: np.ndarray
    k1: np.ndarray
    table: NodeTable

    @classmethod
    def from_irf(cls, irf: InstrumentResponse) -> MigrationTables:
        edges = irf.migra_edges
        dens = irf.edisp.values
        zeros = np.zeros(dens.shape[:-1] + (1,))
        cdf = np.concatenate([zeros, np.cumsum(dens * np.diff(edges), axis=-1)], axis=-1)
        lo, hi = edges[:-1], edges[1:]
        pos = lo > 0
        lo_s = np.where(pos, lo, 1.0)
        alpha = cdf[..., :-1] - dens * lo  # C = alpha + M mu on the bin
        lh, ll = np.log(hi), np.log(lo_s)
        bins = {
            "q": alpha * (1 / lo_s - 1 / hi) + dens * (lh - ll),
            "q1": alpha * ((ll + 1) / lo_s - (lh + 1) / hi) + dens * (lh**2 - ll**2) / 2,
            "k": dens * (lh - ll),
            "k1": dens * (lh**2 - ll**2) / 2,
        }
        cum = {}
        for name, b in bins.items():
            b = np.where(pos, b, 0.0)
            cum[name] = np.concatenate([zeros, np.cumsum(b, axis=-1)], axis=-1)
        return cls(edges, dens, cdf, cum["q"], cum["q1"], cum["k"], cum["k1"], irf.edisp)

    def value(self, kind: str, row_e, row_t, mu) -> np.ndarray:
        """A table of the given rows at mu (arrays broadcast together)."""
        edges = self.edges
        mu = np.asarray(mu, float)
        mu_c = np.clip(mu, edges[0], edges[-1])
        i = np.clip(np.searchsorted(edges, mu_c, side="right") - 1, 0, edges.size - 2)
        lo = edges[i]
        m = self.density[row_e, row_t, i]
        c0 = self.cdf[row_e, row_t, i]
        if kind == "cdf":
            val = c0 + m * (mu_c - lo)
            return np.where(mu <= edges[0], 0.0, val)
        base = getattr(self, kind)[row_e, row_t, i]
        alpha = c0 - m * lo
        with np.errstate(divide="ignore", invalid="ignore"):
            lm = np.log(mu_c)
            ll = np.log(np.where(lo > 0, lo, 1.0))
            lo_s = np.where(lo > 0, lo, 1.0)
            if kind == "q":
                inner = alpha * (1 / lo_s - 1 / mu_c) + m * (lm - ll)
            elif kind == "q1":
                inner = alpha * ((ll + 1) / lo_s - (lm + 1) / mu_c) + m * (lm**2 - ll**2) / 2
            elif kind == "k":
                inner = m * (lm - ll)
            else:
                inner = m * (lm**2 - ll**2) / 2
            # inside a first bin [0, mu_1): alpha = 0, anchored at mu_1
            l1 = np.log(edges[1])
            first = m * ((lm - l1) if kind in ("q", "k") else (lm**2 - l1**2) / 2)
            val = np.where(lo > 0, base + inner, np.where(m > 0, first, 0.0))
            if kind in ("q", "q1"):  # beyond the last edge C stays at its top value
                top = self.cdf[row_e, row_t, -1]
                le = np.log(edges[-1])
                lmu = np.log(np.maximum(mu, edges[-1]))
                beyond = (top * (1 / edges[-1] - 1 / np.maximum(mu, edges[-1])) if kind == "q"
                          else top * ((le + 1) / edges[-1] - (lmu + 1) / np.maximum(mu, edges[-1])))
                val = np.where(mu > edges[-1], getattr(self, kind)[row_e, row_t, -1] + beyond,
                               val)
        return val

    def theta_mix(self, offset):
        """Linear mix of offset columns: (col0, col1, weight of col1)."""
        tab = self.table
        return tab._weights(np.clip(np.asarray(offset, float), 0, tab.offset_edges[-1]),
                            tab.offset_nodes)

    def mix(self, energy, offset) -> list[tuple]:
        """The bilinear row mix at (E [TeV], theta [deg]): four (row_e, row_t, weight),
        clipped to the table (no range error)."""
        return self.table.corners(energy, offset, zero_fill=True)[0]

    def evaluate(self, kind: str, energy, offset, mu) -> np.ndarray:
        """A table of the bilinear row mix at (E [TeV], theta [deg]), at mu (pointwise)."""
        return sum(w * self.value(kind, re_, rt, mu) for re_, rt, w in self.mix(energy, offset))


@dataclass(frozen=True)
class EnergyQuadrature:
    """True-energy sub-intervals: the true cells cut at the migration rows' nodes.

    Attributes
    ----------
    edges : ndarray [TeV]
        Sub-interval edges (every true-cell edge is one).
    cell : ndarray of int
        True cell of each sub-interval.
    row : ndarray of int
        Lower migration row of each sub-interval (the mix is linear in ln E between
        ``row`` and ``row + 1``).
    """

    edges: np.ndarray
    cell: np.ndarray
    row: np.ndarray
    row_log_energy: np.ndarray  # ln E of the migration row nodes

    @classmethod
    def build(cls, cell_edges, mig: MigrationTables,
              irf: InstrumentResponse | None = None) -> EnergyQuadrature:
        """Cut the cells at the migration rows' nodes and, with ``irf``, at the IRF bin
        edges where the response starts or stops existing (so that every
        sub-interval is wholly defined or undefined)."""
        cell_edges = np.asarray(cell_edges, float)
        nodes = mig.table.energy_nodes
        cuts = [nodes]
        if irf is not None:
            for tab in (irf.edisp, irf.psf_sigma):
                change = np.any(tab.defined[1:] != tab.defined[:-1], axis=1)
                cuts.append(tab.energy_edges[1:-1][change])
        cuts = np.concatenate(cuts)
        inner = cuts[(cuts > cell_edges[0] * (1 + 1e-12)) & (cuts < cell_edges[-1] * (1 - 1e-12))]
        # drop row nodes that (nearly) coincide with a cell edge
        near = np.min(np.abs(np.log(inner)[:, None] - np.log(cell_edges)[None, :]), axis=1) < 1e-9
        edges = np.union1d(cell_edges, inner[~near])
        edges = edges[np.concatenate([[True], np.diff(np.log(edges)) > 1e-9])]
        centre = np.sqrt(edges[1:] * edges[:-1])
        cell = np.clip(np.searchsorted(cell_edges, centre) - 1, 0, cell_edges.size - 2)
        row = np.clip(np.searchsorted(nodes, centre) - 1, 0, nodes.size - 2)
        return cls(edges, cell, row, np.log(nodes))

    @property
    def centres(self) -> np.ndarray:
        return np.sqrt(self.edges[1:] * self.edges[:-1])

    @property
    def widths(self) -> np.ndarray:
        return np.diff(self.edges)

    def __len__(self) -> int:
        return self.edges.size - 1

    def subset(self, cells: slice) -> np.ndarray:
        """Indices of the sub-intervals of a slice of true cells."""
        idx = np.arange(self.cell.max() + 1)[cells]
        return np.flatnonzero(np.isin(self.cell, idx))


def _mixed_integral(mig: MigrationTables, kind: str, row, ln_e0, dln, offset, mu_lo, mu_hi,
                    ln_a):
    """integral over a sub-interval of the linearly mixed rows, for one kind of table.

    kind "q": returns (1/a) integral_{E_a}^{E_b} C(a / E) dE with mu = a / E;
    kind "k": returns integral M(mu) / mu dmu; both over mu in [mu_lo, mu_hi], with
    t(E) = (ln E - ln E_0) / dln and ln E = ln a - ln mu.
    """
    it0, it1, tt = mig.theta_mix(offset)
    return ((1 - tt) * _column_integral(mig, kind, row, it0, ln_e0, dln, mu_lo, mu_hi, ln_a)
            + tt * _column_integral(mig, kind, row, it1, ln_e0, dln, mu_lo, mu_hi, ln_a))


def energy_containment_sub(mig: MigrationTables, quad: EnergyQuadrature, roi: ROI, offset,
                           sub=None) -> np.ndarray:
    """Average over each sub-interval of P(E_min <= E_r <= E_max | E_t), exact.

    ``offset`` (any shape) is the offset used for the migration rows; result
    (n_sub,) + offset.shape. The integral is linear in the rows, so it is computed once
    per offset column and then mixed.
    """
    sub = np.arange(len(quad)) if sub is None else np.asarray(sub)
    n_cols = mig.density.shape[1]
    ea, eb = quad.edges[sub][:, None], quad.edges[sub + 1][:, None]
    row = quad.row[sub][:, None]
    ln_e0 = quad.row_log_energy[row]
    dln = quad.row_log_energy[row + 1] - ln_e0
    cols = np.arange(n_cols)[None, :]
    per_col = 0.0
    for a, sign in ((roi.energy_tev[1], 1.0), (roi.energy_tev[0], -1.0)):
        per_col = per_col + sign * a * _column_integral(mig, "q", row, cols, ln_e0, dln,
                                                        a / eb, a / ea, np.log(a))
    per_col = per_col / (eb - ea)  # (n_sub, n_cols)
    c0, c1, tt = mig.theta_mix(offset)
    return (1 - tt)[None] * per_col[:, c0] + tt[None] * per_col[:, c1]


def energy_cdf_sub(mig: MigrationTables, quad: EnergyQuadrature, thresholds,
                   sub=None) -> np.ndarray:
    """Average over each sub-interval of P(E_r <= a | E_t) per migration offset column,
    exact, for thresholds a [TeV]; shape (n_sub, n_a, n_cols).

    Differences between thresholds give the recon-energy bins of the binned mode; the
    difference between E_max and E_min is `energy_containment_sub` before its offset
    mix.
    """
    sub = np.arange(len(quad)) if sub is None else np.asarray(sub)
    ea, eb = quad.edges[sub][:, None, None], quad.edges[sub + 1][:, None, None]
    row = quad.row[sub][:, None, None]
    ln_e0 = quad.row_log_energy[row]
    dln = quad.row_log_energy[row + 1] - ln_e0
    a = np.asarray(thresholds, float)[None, :, None]
    cols = np.arange(mig.density.shape[1])[None, None, :]
    return a * _column_integral(mig, "q", row, cols, ln_e0, dln, a / eb, a / ea,
                                np.log(a)) / (eb - ea)


def _column_integral(mig, kind, row, col, ln_e0, dln, mu_lo, mu_hi, ln_a):
    """One offset column of `_mixed_integral` (same conventions)."""
    first = "q1" if kind == "q" else "k1"
    a0 = mig.value(kind, row, col, mu_hi) - mig.value(kind, row, col, mu_lo)
    b0 = mig.value(kind, row + 1, col, mu_hi) - mig.value(kind, row + 1, col, mu_lo)
    a1 = mig.value(first, row, col, mu_hi) - mig.value(first, row, col, mu_lo)
    b1 = mig.value(first, row + 1, col, mu_hi) - mig.value(first, row + 1, col, mu_lo)
    return a0 + ((b0 - a0) * (ln_a - ln_e0) - (b1 - a1)) / dln


def energy_kernel_sub(mig: MigrationTables, quad: EnergyQuadrature, energy_r, offset,
                      sub) -> np.ndarray:
    """integral over sub-interval(s) of R_E(E_r | E_t) dE_t (exact), broadcast over
    ``energy_r`` [TeV], ``offset`` [deg] and ``sub`` (sub-interval indices)."""
    er, th, sub = np.broadcast_arrays(np.asarray(energy_r, float), np.asarray(offset, float),
                                      np.asarray(sub))
    ea, eb = quad.edges[sub], quad.edges[sub + 1]
    row = quad.row[sub]
    ln_e0 = quad.row_log_energy[row]
    dln = quad.row_log_energy[row + 1] - ln_e0
    return _mixed_integral(mig, "k", row, ln_e0, dln, th, er / eb, er / ea, np.log(er))


def energy_containment_points(mig: MigrationTables, roi: ROI, energy, offset) -> np.ndarray:
    """P(E_min <= E_r <= E_max | E_t) at points (pointwise row mix; for lines)."""
    e = np.asarray(energy, float)
    emin, emax = roi.energy_tev
    return mig.evaluate("cdf", e, offset, emax / e) - mig.evaluate("cdf", e, offset, emin / e)


def _F(z):
    """Antiderivative of the standard normal CDF: z Phi(z) + phi(z)."""
    return z * ndtr(z) + np.exp(-0.5 * z * z) / _SQRT2PI


def cell_average_containment(x0, x1, X0, X1, s) -> np.ndarray:
    """Average over x in [x0, x1] of P(X0 <= x + s N(0,1) <= X1), in closed form.

    For s -> 0 it is the overlap fraction of [x0, x1] with [X0, X1].
    """
    x0, x1, X0, X1, s = np.broadcast_arrays(*(np.asarray(v, float) for v in (x0, x1, X0, X1, s)))
    w = x1 - x0
    sp = np.where(s > 0, s, 1.0)
    val = sp / w * (_F((X1 - x0) / sp) - _F((X1 - x1) / sp) - _F((X0 - x0) / sp)
                    + _F((X0 - x1) / sp))
    overlap = np.clip(np.minimum(x1, X1) - np.maximum(x0, X0), 0, None) / w
    return np.clip(np.where(s > 0, val, overlap), 0.0, 1.0)


def cell_offsets(true: Grid, pointing) -> np.ndarray:
    """Offsets [deg] of the true cells' centres, shape (n_l, n_b)."""
    L, B = np.meshgrid(true.lon.nodes, true.lat.nodes, indexing="ij")
    return angular_offset(L, B, *pointing)


def psf_node_mix(irf: InstrumentResponse, energy, offset):
    """PSF terms interpolated in ln E at every offset node, and each cell's offset mix.

    Returns ``sigma_nodes, weight_nodes`` (n_e, n_nodes, n_terms), ``i0, i1, t``
    (shape of ``offset``: the two offset nodes and the weight of the second) and
    ``defined`` (n_e,) + offset.shape. Bilinear as `NodeTable`. Terms whose weight is
    zero at every node of the file are left out (prod5 stores three Gaussian terms
    and uses one: the per-cell arrays are then a third of the size).
    """
    e = np.asarray(energy, float)
    theta = np.asarray(offset, float)
    tab = irf.psf_sigma
    i0, i1, t = tab._weights(np.clip(theta, 0, tab.offset_edges[-1]), tab.offset_nodes)
    used = np.flatnonzero((irf.psf_weight.values > 0).any(axis=(0, 1)))
    used = used if used.size else np.arange(1)
    return (_energy_only(irf.psf_sigma, e)[..., used], _energy_only(irf.psf_weight, e)[..., used],
            i0, i1, t, tab.defined_grid(e, theta))


def psf_cells(irf: InstrumentResponse, energy, offset):
    """PSF terms at energies (n_e,) and cell offsets (n_l, n_b): sigma, weight
    (n_e, n_l, n_b, n_terms) and defined (n_e, n_l, n_b)."""
    sig_n, w_n, i0, i1, t, defined = psf_node_mix(irf, energy, offset)
    t_ = t[None, ..., None]
    return ((1 - t_) * sig_n[:, i0] + t_ * sig_n[:, i1],
            (1 - t_) * w_n[:, i0] + t_ * w_n[:, i1], defined)


def _energy_only(tab: NodeTable, e) -> np.ndarray:
    """Values interpolated in ln E at every offset node (no definedness mask)."""
    lx = np.log(np.clip(e, *tab.energy_edges[[0, -1]]))
    i0, i1, t = tab._weights(lx, np.log(tab.energy_nodes))
    return (1 - t)[:, None, None] * tab.values[i0] + t[:, None, None] * tab.values[i1]


def spatial_containment_cells(irf: InstrumentResponse, roi: ROI, energy, l_edges, b_edges,
                              offset) -> np.ndarray:
    """Cell-averaged P(x_r in ROI | E_t, x_t) for each (energy, l cell, b cell).

    ``energy`` (n_e,) [TeV]; ``offset`` (n_l, n_b), each cell's centre offset (PSF
    widths are taken there). Result (n_e, n_l, n_b); zero where the PSF is undefined.
    """
    from ..kernels.containment import cell_containment

    sig_n, w_n, i0, i1, t, d = psf_node_mix(irf, energy, offset)
    out = np.empty(d.shape)
    cell_containment(np.ascontiguousarray(sig_n), np.ascontiguousarray(w_n),
                     np.ascontiguousarray(i0, np.int64), np.ascontiguousarray(i1, np.int64),
                     np.ascontiguousarray(t, np.float64), d,
                     np.asarray(l_edges, float), np.asarray(b_edges, float),
                     float(roi.l_deg[0]), float(roi.l_deg[1]), float(roi.b_deg[0]),
                     float(roi.b_deg[1]), out)
    return out


def normalisation_sub(irf: InstrumentResponse, mig: MigrationTables, quad: EnergyQuadrature,
                      roi: ROI, true: Grid, pointing, sub=None) -> np.ndarray:
    """N per (sub-interval, l cell, b cell), shape (n_sub, n_l, n_b); 0 where undefined."""
    sub = np.arange(len(quad)) if sub is None else np.asarray(sub)
    theta = cell_offsets(true, pointing)
    if sub.size == 0:
        return np.zeros((0,) + theta.shape)
    ne = energy_containment_sub(mig, quad, roi, theta, sub)
    ec = quad.centres[sub]
    nx = spatial_containment_cells(irf, roi, ec, true.lon.edges, true.lat.edges, theta)
    defined = irf.defined_grid(ec, theta)
    return np.where(defined, np.clip(ne, 0.0, 1.0) * nx, 0.0)
