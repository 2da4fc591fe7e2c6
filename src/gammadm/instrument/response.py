"""CTAO instrument response tabulated as plain numpy arrays.

A GADF full-enclosure IRF file is read once through gammapy and turned into arrays
with documented units (PHYSICS.md section 2):

- effective area A(E_t, theta) [cm^2];
- migration density M(mu; E_t, theta) [1 per unit mu], mu = E_r / E_t, detected per
  row (density or probability per migra bin) and renormalised to 1 in float64;
- PSF as a sum of normalised 2-D Gaussians: sigma_k [deg] and weights w_k (sum 1),
  from SIGMA_k and AMPL_k (SCALE is not the normalisation);
- residual cosmic-ray rate B(E_r, fov_lon, fov_lat) [s^-1 TeV^-1 sr^-1].

Rows where the file has no response (all-zero migration, every PSF sigma zero) are
*undefined*. Interpolation uses defined rows only; a query inside an undefined IRF bin
returns a response of zero and ``defined = False``. Interpolation is linear in
(ln E, theta), as gammapy's, extrapolating linearly from the outermost nodes up to the
file's bin edges; a query beyond the edges is an error unless ``zero_fill=True``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["IRFError", "InstrumentResponse", "NodeTable"]

log = logging.getLogger(__name__)

_TINY = float(np.finfo(np.float32).tiny)

#: Tolerance of the per-row normalisation test that tells density from per-bin probability.
CONVENTION_TOL = 1e-3


class IRFError(InputError, ValueError):
    """An IRF file that cannot serve this analysis, or a request outside its range."""


def _fill_undefined(values: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """Copy each undefined node's value from the nearest defined node.

    Search along energy in the same offset column first, then along offset. Values
    from undefined rows therefore never enter an interpolation; between the last
    defined node and an undefined bin the response is held flat.
    ``values`` has the node axes (energy, offset) first.
    """
    out = values.copy()
    n_e, n_t = defined.shape
    for j in range(n_t):
        good = np.flatnonzero(defined[:, j])
        if good.size == 0:
            continue
        for i in np.flatnonzero(~defined[:, j]):
            out[i, j] = values[good[np.argmin(np.abs(good - i))], j]
    col_ok = defined.any(axis=0)
    good_cols = np.flatnonzero(col_ok)
    for j in np.flatnonzero(~col_ok):
        if good_cols.size:
            out[:, j] = out[:, good_cols[np.argmin(np.abs(good_cols - j))]]
    return out


@dataclass(frozen=True)
class NodeTable:
    """Values on (energy, offset) nodes with bilinear interpolation in (ln E, theta).

    Attributes
    ----------
    energy_edges : ndarray [TeV]
        IRF energy bin edges; nodes are the geometric bin centres.
    offset_edges : ndarray [deg]
        IRF offset bin edges; nodes are the bin centres.
    values : ndarray, shape (n_e, n_theta, ...)
        Values at the nodes (undefined nodes already filled, see `_fill_undefined`).
    defined : ndarray of bool, shape (n_e, n_theta)
        Whether the file has a response in each IRF bin.
    extrapolate : bool
        Extrapolate linearly beyond the outer nodes (up to the edges), as gammapy does;
        False holds the outer node's value (used for the migration histograms).
    """

    energy_edges: np.ndarray
    offset_edges: np.ndarray
    values: np.ndarray
    defined: np.ndarray
    extrapolate: bool = True

    @property
    def energy_nodes(self) -> np.ndarray:
        return np.sqrt(self.energy_edges[1:] * self.energy_edges[:-1])

    @property
    def offset_nodes(self) -> np.ndarray:
        return 0.5 * (self.offset_edges[1:] + self.offset_edges[:-1])

    def _weights(self, x: np.ndarray, nodes: np.ndarray):
        if nodes.size == 1:
            z = np.zeros(x.shape, dtype=np.intp)
            return z, z, np.zeros(x.shape)
        i = np.clip(np.searchsorted(nodes, x) - 1, 0, nodes.size - 2)
        t = (x - nodes[i]) / (nodes[i + 1] - nodes[i])
        return i, i + 1, (t if self.extrapolate else np.clip(t, 0.0, 1.0))

    def _locate(self, energy, offset, zero_fill: bool, what: str):
        """The inputs as float arrays (each in its own shape: an outer grid is searched
        per axis, not per grid point) and the defined mask (their broadcast shape)."""
        e = np.asarray(energy, float)
        th = np.asarray(offset, float)
        e0, e1 = self.energy_edges[[0, -1]]
        t1 = self.offset_edges[-1]
        inside = ((e >= e0 * (1 - 1e-9)) & (e <= e1 * (1 + 1e-9))) & ((th >= 0) & (th <= t1 + 1e-9))
        if not zero_fill and not np.all(inside):
            bad = np.flatnonzero(~inside.ravel())[0]
            eb, tb = np.broadcast_arrays(e, th)
            raise IRFError(
                f"{what} requested at E = {eb.ravel()[bad]:.4g} TeV, offset = "
                f"{tb.ravel()[bad]:.4g} deg, outside the file's range "
                f"[{e0:.4g}, {e1:.4g}] TeV x [0, {t1:.4g}] deg (pass zero_fill=True to accept zeros)"
            )
        # the IRF bin that holds the query decides whether the response exists there
        be = np.clip(np.searchsorted(self.energy_edges, e, side="right") - 1, 0,
                     self.energy_edges.size - 2)
        bt = np.clip(np.searchsorted(self.offset_edges, th, side="right") - 1, 0,
                     self.offset_edges.size - 2)
        return e, th, self.defined[be, bt] & inside

    def defined_at(self, energy, offset, zero_fill: bool = False, what: str = "IRF"):
        """Whether the file has a response at (energy [TeV], offset [deg])."""
        return self._locate(energy, offset, zero_fill, what)[2]

    def defined_grid(self, energy, offset) -> np.ndarray:
        """`defined_at` (with zero_fill) on the outer grid of energies (n_e,) [TeV] and
        offsets of any shape [deg]."""
        th = np.asarray(offset, float)
        e = np.asarray(energy, float).reshape((-1,) + (1,) * th.ndim)
        return self._locate(e, th[None], True, "")[2]

    def _node_weights(self, e, th):
        e0, e1 = self.energy_edges[[0, -1]]
        return (self._weights(np.log(np.clip(e, e0, e1)), np.log(self.energy_nodes)),
                self._weights(np.clip(th, 0, self.offset_edges[-1]), self.offset_nodes))

    def corners(self, energy, offset, zero_fill: bool = False, what: str = "IRF"):
        """The bilinear interpolation at (energy [TeV], offset [deg]): its four
        (energy node, offset node, weight) and the defined mask. Node indices keep
        their input's shape; weights and mask have the broadcast shape."""
        e, th, defined = self._locate(energy, offset, zero_fill, what)
        (ie0, ie1, te), (it0, it1, tt) = self._node_weights(e, th)
        return [(ie0, it0, (1 - te) * (1 - tt)), (ie1, it0, te * (1 - tt)),
                (ie0, it1, (1 - te) * tt), (ie1, it1, te * tt)], defined

    def __call__(self, energy, offset, zero_fill: bool = False, what: str = "IRF"):
        """Interpolated values and the defined mask at (energy [TeV], offset [deg]).

        Returns ``(values, defined)`` with values of shape ``broadcast + trailing``;
        values are zero where undefined or (with ``zero_fill``) out of range. Offset
        first, then energy; on an outer grid (the energy's axes before the offset's)
        the offset step runs once per energy node, not per grid point, with the same
        arithmetic per value.
        """
        e, th, defined = self._locate(energy, offset, zero_fill, what)
        (ie0, ie1, te), (it0, it1, tt) = self._node_weights(e, th)
        v = self.values
        trail = (None,) * (v.ndim - 2)
        shape = defined.shape
        n = len(shape)
        e_axes = [k for k, d in enumerate((1,) * (n - e.ndim) + e.shape) if d > 1]
        t_axes = [k for k, d in enumerate((1,) * (n - th.ndim) + th.shape) if d > 1]
        if e_axes and t_axes and max(e_axes) < min(t_axes):  # an outer grid
            ones = (1,) * len(trail)
            tt = tt.reshape((1, -1) + ones)
            v1 = (1 - tt) * v[:, it0.ravel()] + tt * v[:, it1.ravel()]
            te = te.reshape((-1, 1) + ones)
            out = ((1 - te) * v1[ie0.ravel()] + te * v1[ie1.ravel()]).reshape(shape + v.shape[2:])
        else:
            tt, te = tt[(...,) + trail], te[(...,) + trail]
            out = ((1 - te) * ((1 - tt) * v[ie0, it0] + tt * v[ie0, it1])
                   + te * ((1 - tt) * v[ie1, it0] + tt * v[ie1, it1]))
            out = np.broadcast_to(out, shape + v.shape[2:])
        return np.where(defined[(...,) + trail], out, 0.0), defined


def _check_full_enclosure(hdul, path: Path) -> None:
    for hdu in hdul[1:]:
        clas3 = str(hdu.header.get("HDUCLAS3", "")).strip().upper()
        if clas3 == "POINT-LIKE" or "RAD_MAX" in hdu.name.upper():
            raise IRFError(
                f"{path}: POINT-LIKE IRF (HDU {hdu.name}, HDUCLAS3={clas3 or 'RAD_MAX'}); "
                "this full-enclosure analysis needs FULL-ENCLOSURE effective area, PSF, "
                "energy dispersion and background"
            )


#: GADF HDUCLAS4 of each component these kernels read
_GADF_CLASSES = {"aeff": "AEFF_2D", "psf": "PSF_3GAUSS", "edisp": "EDISP_2D", "bkg": "BKG_3D"}
_GADF_CLAS2 = {"aeff": "EFF_AREA", "psf": "PSF", "edisp": "EDISP", "bkg": "BKG"}


def _irf_hdus(hdul, path: Path) -> dict:
    """The four IRF HDUs by HDUCLAS2, each checked to be the GADF class needed."""
    found = {}
    for hdu in hdul[1:]:
        clas2 = str(hdu.header.get("HDUCLAS2", "")).strip().upper()
        for key, want in _GADF_CLAS2.items():
            if clas2 == want and key not in found:
                found[key] = hdu
    missing = [k for k in _GADF_CLAS2 if k not in found]
    if missing:
        raise IRFError(f"{path}: lacks the IRF component(s) {missing}")
    for key, hdu in found.items():
        clas4 = str(hdu.header.get("HDUCLAS4", "")).strip().upper()
        if clas4 != _GADF_CLASSES[key]:
            raise IRFError(f"{path}: HDU {hdu.name} is {clas4 or 'unclassified'}; these "
                           f"kernels need {_GADF_CLASSES[key]}")
    return found


def _column(hdu, name: str, unit: str | None = None) -> np.ndarray:
    """The first row of a GADF column as float64, in ``unit`` when given."""
    import astropy.units as u

    col = hdu.columns[name]
    value = np.asarray(hdu.data[name][0], np.float64)
    if unit is None:
        return value
    return value * u.Unit(col.unit or "").to(unit)


def _edges(hdu, prefix: str, unit: str | None) -> np.ndarray:
    lo, hi = _column(hdu, f"{prefix}_LO", unit), _column(hdu, f"{prefix}_HI", unit)
    if not np.allclose(lo[1:], hi[:-1], rtol=1e-5, atol=0):
        raise ValueError(f"{prefix}_LO/HI of HDU {hdu.name} are not contiguous bins")
    return np.append(lo, hi[-1])


def _read_aeff(hdu) -> NodeTable:
    """Effective area [cm^2] on (E_t, theta) nodes; FITS rows are (theta, E)."""
    area = _column(hdu, "EFFAREA", "cm2").T
    return NodeTable(_edges(hdu, "ENERG", "TeV"), _edges(hdu, "THETA", "deg"), area,
                     np.ones(area.shape, bool))


def _read_psf_terms(hdu, path: Path):
    """SIGMA_k [deg] and AMPL_k (AMPL_1 = 1) as stored, shape (n_e, n_theta, n_terms),
    and the energy [TeV] and offset [deg] edges.

    Taken as stored (gammapy replaces sigma = 0 by 1 deg on reading, which would turn
    undefined rows into 1-degree Gaussians).
    """
    sig, amp = [], []
    for k in (1, 2, 3):
        if f"SIGMA_{k}" not in hdu.columns.names:
            continue
        s = _column(hdu, f"SIGMA_{k}", "deg").T
        a = np.ones_like(s) if k == 1 else _column(hdu, f"AMPL_{k}").T
        sig.append(s)
        amp.append(a)
    if not sig:
        raise IRFError(f"{path}: the PSF HDU has no SIGMA_k columns")
    return (np.stack(sig, axis=-1), np.stack(amp, axis=-1), _edges(hdu, "ENERG", "TeV"),
            _edges(hdu, "THETA", "deg"))


def _read_edisp(hdu):
    """Migration edges, the matrix as (E_t, mu, theta) (FITS rows: theta, mu, E_t) and
    the energy [TeV] and offset [deg] edges."""
    matrix = np.transpose(_column(hdu, "MATRIX"), (2, 1, 0))
    return (_edges(hdu, "MIGRA", None), matrix, _edges(hdu, "ENERG", "TeV"),
            _edges(hdu, "THETA", "deg"))


def _read_bkg(hdu):
    """Background axes, rate [s^-1 TeV^-1 sr^-1] as (E, fov_lon, fov_lat) (FITS rows:
    DETY, DETX, E) and the field-of-view alignment."""
    rate = np.transpose(_column(hdu, "BKG", "s-1 TeV-1 sr-1"), (2, 1, 0))
    align = str(hdu.header.get("FOVALIGN", "RADEC")).strip().upper() or "RADEC"
    return (_edges(hdu, "ENERG", "TeV"), _edges(hdu, "DETX", "deg"),
            _edges(hdu, "DETY", "deg"), rate, align)


def _migration_density(matrix: np.ndarray, migra_edges: np.ndarray, path: Path):
    """Per-row convention detection and float64 renormalisation.

    ``matrix`` has shape (n_e, n_mu, n_theta). Returns (density, defined, max raw
    deviation of the detected normalisation from 1, conventions found).
    """
    m = np.asarray(matrix, dtype=np.float64)
    dmu = np.diff(migra_edges)
    per_bin = m.sum(axis=1)
    as_density = np.einsum("imj,m->ij", m, dmu)
    defined = per_bin > 0
    is_density = np.abs(as_density - 1) <= CONVENTION_TOL
    is_per_bin = np.abs(per_bin - 1) <= CONVENTION_TOL
    bad = defined & ~is_density & ~is_per_bin
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise IRFError(
            f"{path}: energy-dispersion row (E_true index {i}, offset index {j}) integrates "
            f"to {as_density[i, j]:.6g} as a density and sums to {per_bin[i, j]:.6g} as "
            "per-bin probabilities: neither convention holds"
        )
    density = np.where((defined & ~is_density)[:, None, :], m / dmu[None, :, None], m)
    norm = np.einsum("imj,m->ij", density, dmu)
    deviation = float(np.max(np.abs(norm[defined] - 1))) if defined.any() else 0.0
    density = np.where(defined[:, None, :], density / np.where(defined, norm, 1)[:, None, :], 0.0)
    conventions = sorted({"density" if d else "probability per migra bin"
                          for d in is_density[defined].ravel()})
    return density, defined, deviation, conventions


@dataclass(frozen=True)
class InstrumentResponse:
    """Tabulated IRF of one GADF file. Build with `InstrumentResponse.read`.

    Attributes
    ----------
    path : Path
    aeff : NodeTable
        Effective area [cm^2], nodes (E_t, theta).
    psf_sigma : NodeTable
        Gaussian widths [deg], trailing axis = term (1 to 3 terms; unused terms have
        weight 0).
    psf_weight : NodeTable
        Term weights (sum 1 where defined).
    migra_edges : ndarray
        Migration bin edges (mu = E_r / E_t).
    edisp : NodeTable
        Migration density [per unit mu], trailing axis = migra bin.
    edisp_raw_deviation : float
        Largest deviation from 1 of a row's normalisation in the file (logged).
    edisp_conventions : list of str
        Storage conventions detected in the file.
    bkg_energy_edges, bkg_lon_edges, bkg_lat_edges : ndarray
        Background axes [TeV], [deg], [deg] (field-of-view coordinates).
    bkg_rate : ndarray, shape (n_e, n_lon, n_lat)
        Residual cosmic-ray rate [s^-1 TeV^-1 sr^-1] of reconstructed events.
    fov_alignment : str
        Alignment of the background's field-of-view frame (``RADEC`` or ``ALTAZ``).
    """

    path: Path
    aeff: NodeTable
    psf_sigma: NodeTable
    psf_weight: NodeTable
    migra_edges: np.ndarray
    edisp: NodeTable
    edisp_raw_deviation: float
    edisp_conventions: list
    bkg_energy_edges: np.ndarray
    bkg_lon_edges: np.ndarray
    bkg_lat_edges: np.ndarray
    bkg_rate: np.ndarray
    fov_alignment: str

    @classmethod
    def read(cls, path: str | Path) -> InstrumentResponse:
        """Read a GADF full-enclosure IRF file (astropy only: jobs that read it do not
        pay gammapy's import; tests check the arrays against gammapy's reading)."""
        from astropy.io import fits

        path = Path(path)
        try:
            with fits.open(path) as hdul:
                _check_full_enclosure(hdul, path)
                hdus = _irf_hdus(hdul, path)
                aeff_tab = _read_aeff(hdus["aeff"])
                sig, amp, p_e, p_t = _read_psf_terms(hdus["psf"], path)
                mig, matrix, e_e, e_t = _read_edisp(hdus["edisp"])
                b_e, b_x, b_y, rate, align = _read_bkg(hdus["bkg"])
        except OSError as exc:
            raise IRFError(f"{path}: not a readable FITS file ({exc})") from None
        except (KeyError, ValueError) as exc:
            raise IRFError(f"{path}: cannot be read as a GADF IRF file ({exc})") from None

        # a 2-D Gaussian exp(-r^2 / 2 sigma^2) integrates to 2 pi sigma^2: weight ~ A sigma^2
        raw_w = np.where((amp > 0) & (sig > 0), amp * sig**2, 0.0)
        tot = raw_w.sum(axis=-1)
        psf_defined = tot > 0
        weight = np.where(psf_defined[..., None], raw_w / np.where(psf_defined, tot, 1)[..., None], 0.0)
        sig = np.where(weight > 0, sig, 0.0)
        psf_sigma = NodeTable(p_e, p_t, _fill_undefined(sig, psf_defined), psf_defined)
        psf_weight = NodeTable(p_e, p_t, _fill_undefined(weight, psf_defined), psf_defined)

        density, ed_defined, deviation, conventions = _migration_density(matrix, mig, path)
        log.info("%s: migration stored as %s; raw row normalisation deviates from 1 by "
                 "up to %.3g (renormalised)", path.name, " and ".join(conventions), deviation)
        # nodes first: (E, theta, mu)
        dens_nodes = np.moveaxis(density, 1, -1)
        # histograms are never extrapolated (a linear extrapolation turns negative):
        # beyond the outer nodes the nearest row is used
        edisp_tab = NodeTable(e_e, e_t, _fill_undefined(dens_nodes, ed_defined), ed_defined,
                              extrapolate=False)
        return cls(path, aeff_tab, psf_sigma, psf_weight, mig, edisp_tab, deviation,
                   conventions, b_e, b_x, b_y, rate, align)

    # --- evaluation -------------------------------------------------------------
    def effective_area(self, energy, offset, zero_fill: bool = False) -> np.ndarray:
        """Effective area [cm^2] at true energy [TeV] and offset [deg] (clipped at 0)."""
        v, _ = self.aeff(energy, offset, zero_fill, "effective area")
        return np.maximum(v, 0.0)

    def exposure(self, energy, offset, livetime_s: float, zero_fill: bool = False) -> np.ndarray:
        """Exposure A T [cm^2 s]; zero where the PSF or migration is undefined."""
        a = self.effective_area(energy, offset, zero_fill)
        return a * livetime_s * self.defined(energy, offset, zero_fill)

    def dropped_exposure(self, energy, offset, livetime_s: float,
                         zero_fill: bool = False) -> np.ndarray:
        """Exposure [cm^2 s] the file assigns where its PSF or migration is undefined.

        Inside an undefined bin the response is zero (see `exposure`); what is lost
        there is measured with the file's own effective area for that bin (its
        nearest offset node, linear in ln E), not with a linear interpolation from a
        defined neighbour, which would carry the neighbour's area into a region where
        the simulation kept (almost) no events. Zero where the response is defined.
        """
        e, th = np.broadcast_arrays(np.asarray(energy, float), np.asarray(offset, float))
        tab = self.aeff
        k = np.clip(np.searchsorted(tab.offset_edges, th, side="right") - 1, 0,
                    tab.offset_nodes.size - 1)
        a = np.maximum(tab(e, tab.offset_nodes[k], zero_fill, "effective area")[0], 0.0)
        return np.where(self.defined(e, th, zero_fill), 0.0, a * livetime_s)

    def defined(self, energy, offset, zero_fill: bool = False) -> np.ndarray:
        """Whether both the PSF and the migration exist at (E_t, theta)."""
        return (self.psf_sigma.defined_at(energy, offset, zero_fill, "PSF")
                & self.edisp.defined_at(energy, offset, zero_fill, "energy dispersion"))

    def defined_grid(self, energy, offset) -> np.ndarray:
        """`defined` (zero_fill) on the outer grid energies (n_e,) x offsets (any shape)."""
        return self.psf_sigma.defined_grid(energy, offset) & self.edisp.defined_grid(energy, offset)

    def psf(self, energy, offset, zero_fill: bool = False):
        """PSF terms at (E_t [TeV], theta [deg]).

        Returns ``(sigma [deg], weight, defined)``; sigma and weight have a trailing
        term axis. The PSF is sum_k w_k / (2 pi sigma_k^2) exp(-r^2 / 2 sigma_k^2).
        """
        sig, d = self.psf_sigma(energy, offset, zero_fill, "PSF")
        w, _ = self.psf_weight(energy, offset, zero_fill, "PSF")
        return sig, w, d

    def psf_density(self, rad_deg, energy, offset, zero_fill: bool = False) -> np.ndarray:
        """PSF density [deg^-2] at angular distance ``rad_deg`` (broadcast)."""
        sig, w, _ = self.psf(energy, offset, zero_fill)
        r = np.asarray(rad_deg, float)[..., None]
        s2 = np.where(sig > 0, sig**2, 1.0)
        terms = np.where(w > 0, w / (2 * np.pi * s2) * np.exp(-0.5 * r**2 / s2), 0.0)
        return terms.sum(axis=-1)

    def migration(self, energy, offset, zero_fill: bool = False):
        """Migration density rows [per unit mu] at (E_t, theta), trailing axis = migra bin.

        Returns ``(density, defined)``; bins are `migra_edges`. R_E(E_r|E_t) = M(mu)/E_t.
        """
        return self.edisp(energy, offset, zero_fill, "energy dispersion")

    def migration_cdf(self, mu, energy, offset, zero_fill: bool = False) -> np.ndarray:
        """P(mu' <= mu | E_t, theta), exact for the piecewise-constant density.

        The CDF is linear in the density, so the bilinear row mix of CDFs is read at mu
        from the rows' cumulative table (one bin per point, not whole rows)."""
        mu, energy, offset = np.broadcast_arrays(*(np.asarray(v, float)
                                                   for v in (mu, energy, offset)))
        corners, defined = self.edisp.corners(energy, offset, zero_fill, "energy dispersion")
        edges = self.migra_edges
        mass, below = self._migration_mass
        dmu = np.diff(edges)
        k = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, dmu.size - 1)
        frac = np.clip((mu - edges[k]) / dmu[k], 0.0, 1.0)
        out = sum(w * (below[ie, it, k] + frac * mass[ie, it, k]) for ie, it, w in corners)
        return np.where(defined & (mu >= edges[0]), out, 0.0)

    @cached_property
    def _migration_mass(self) -> tuple[np.ndarray, np.ndarray]:
        """Per migration row: the mass of each mu bin and the mass below its lower edge."""
        mass = self.edisp.values * np.diff(self.migra_edges)
        return mass, np.cumsum(mass, axis=-1) - mass

    @cached_property
    def _ccr_log_table(self) -> tuple:
        """Nodes (ln E, lon, lat at bin centres) and ln B on them."""
        ee = self.bkg_energy_edges
        nodes = (np.log(np.sqrt(ee[1:] * ee[:-1])),
                 0.5 * (self.bkg_lon_edges[1:] + self.bkg_lon_edges[:-1]),
                 0.5 * (self.bkg_lat_edges[1:] + self.bkg_lat_edges[:-1]))
        # zeros floored at float32's tiny, as gammapy does, so that ln B stays finite
        return nodes, np.log(np.maximum(self.bkg_rate, _TINY))

    def _ccr_log_rate(self, log_e, x, y) -> np.ndarray:
        """ln B, linear in (ln E, lon, lat) between nodes and extrapolated linearly
        beyond the outer ones (scipy's RegularGridInterpolator with fill_value=None).
        Separable: bilinear in (lon, lat) at every energy node, then linear in ln E,
        which for a grid of energies times a map (the usual call) costs a fraction of
        the pointwise 8-corner evaluation."""
        (ne, nx, ny), table = self._ccr_log_table

        def cell(nodes, v):
            i = np.clip(np.searchsorted(nodes, v, side="right") - 1, 0, nodes.size - 2)
            return i, (v - nodes[i]) / (nodes[i + 1] - nodes[i])

        def bilinear(rows, ix, tx, iy, ty):
            return ((1 - tx) * (1 - ty) * table[rows, ix, iy]
                    + tx * (1 - ty) * table[rows, ix + 1, iy]
                    + (1 - tx) * ty * table[rows, ix, iy + 1]
                    + tx * ty * table[rows, ix + 1, iy + 1])

        x, y = np.broadcast_arrays(x, y)
        shape = np.broadcast_shapes(np.shape(log_e), x.shape)
        ie, te = cell(ne, log_e)
        if np.size(log_e) * x.size != math.prod(shape):  # not a grid: point by point
            ie, te, x, y = np.broadcast_arrays(ie, te, x, y)
            ix, tx = cell(nx, x)
            iy, ty = cell(ny, y)
            return ((1 - te) * bilinear(ie, ix, tx, iy, ty)
                    + te * bilinear(ie + 1, ix, tx, iy, ty))
        ix, tx = cell(nx, x)
        iy, ty = cell(ny, y)
        # the map at the energy nodes the energies fall between (all of them for a fine
        # energy grid, two for a single energy), then the gather per output element
        rows = np.unique(np.concatenate([np.ravel(ie), np.ravel(ie) + 1]))
        sky = bilinear(rows[:, None], ix.reshape(1, -1), tx.reshape(1, -1),
                       iy.reshape(1, -1), ty.reshape(1, -1))
        at = np.broadcast_to(np.searchsorted(rows, ie), shape)
        pos = np.broadcast_to(np.arange(x.size).reshape(x.shape), shape)
        te = np.broadcast_to(te, shape)
        return (1 - te) * sky[at, pos] + te * sky[at + 1, pos]

    def ccr_rate(self, energy, fov_lon, fov_lat, zero_fill: bool = False) -> np.ndarray:
        """Residual cosmic-ray rate [s^-1 TeV^-1 sr^-1] at reconstructed energy [TeV]
        and field-of-view coordinates [deg].

        Interpolated linearly in (ln E, lon, lat) of ln B, as gammapy does; zero where
        the file has zeros.
        """
        e_in, x_in, y_in = (np.asarray(v, float) for v in (energy, fov_lon, fov_lat))
        e, x, y = np.broadcast_arrays(e_in, x_in, y_in)
        ee = self.bkg_energy_edges
        inside = ((e >= ee[0] * (1 - 1e-9)) & (e <= ee[-1] * (1 + 1e-9))
                  & (x >= self.bkg_lon_edges[0]) & (x <= self.bkg_lon_edges[-1])
                  & (y >= self.bkg_lat_edges[0]) & (y <= self.bkg_lat_edges[-1]))
        if not zero_fill and not np.all(inside):
            raise IRFError(f"{self.path}: background requested outside its range "
                           f"[{ee[0]:.4g}, {ee[-1]:.4g}] TeV x fov "
                           f"[{self.bkg_lon_edges[0]}, {self.bkg_lon_edges[-1]}] deg")
        val = np.exp(self._ccr_log_rate(np.log(np.clip(e_in, ee[0], ee[-1])), x_in, y_in))
        val = np.where(val > 2 * _TINY, val, 0.0)
        return np.where(inside, val, 0.0)
