"""Astrophysical backgrounds: H.E.S.S. HGPS sources and the Fermi-Gaggero diffuse.

Intensities in true space: point-source fluxes dN/dE [TeV^-1 cm^-2 s^-1], diffuse
intensity [TeV^-1 cm^-2 s^-1 sr^-1] (PHYSICS.md section 3). The CCR background is a
recon-space rate and lives in the instrument room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import ROI, Grid, cell_solid_angle, wrap_lon
from ..instrument.containment import point_containment
from ..instrument.response import InstrumentResponse
from ..instrument.reach import angular_offset

__all__ = ["CatalogueSource", "CutoffPowerLaw", "HGPSSelection", "select_hgps", "FermiGaggeroDiffuse",
           "DiffuseError", "DIFFUSE_NORM_REGION", "DIFFUSE_INDEX", "DIFFUSE_NORM_TEV"]

log = logging.getLogger(__name__)

#: Fermi-Gaggero normalisation: 1.36e-8 (E/TeV)^-2.41 S(x) TeV^-1 cm^-2 s^-1 sr^-1,
#: with S the template morphology of mean 1 over |l| < 0.8 deg, |b| < 0.3 deg.
DIFFUSE_NORM_TEV = 1.36e-8
DIFFUSE_INDEX = 2.41
DIFFUSE_NORM_REGION = ((-0.8, 0.8), (-0.3, 0.3))
DIFFUSE_MIN_ENERGY_GEV = 100.0
HGPS_THRESHOLD_TEV = 0.4  # typical HGPS threshold, for sources that do not give one


@dataclass(frozen=True)
class CutoffPowerLaw:
    """dN/dE = amplitude (E / reference)^-index exp(-lambda E) [TeV^-1 cm^-2 s^-1]: the
    HGPS catalogue's PL (lambda = 0) and ECPL models, as gammapy defines them."""

    amplitude: float  # TeV^-1 cm^-2 s^-1 at the reference energy
    index: float
    reference_tev: float
    lambda_per_tev: float = 0.0

    def __call__(self, energy_tev) -> np.ndarray:
        e = np.asarray(energy_tev, float)
        return (self.amplitude * (e / self.reference_tev) ** -self.index
                * np.exp(-self.lambda_per_tev * e))


@dataclass
class CatalogueSource:
    """One HGPS source: position [deg], Gaussian width [deg] (0 for a point) and its
    catalogue spectrum."""

    name: str
    l_deg: float
    b_deg: float
    sigma_deg: float
    spatial: str
    spectral: CutoffPowerLaw
    threshold_tev: float
    roi_fraction: float = 0.0
    expected_weight: float = 0.0

    @property
    def is_point(self) -> bool:
        return self.sigma_deg == 0.0

    def dnde(self, energy_tev) -> np.ndarray:
        """dN/dE [TeV^-1 cm^-2 s^-1] at true energies [TeV]."""
        return self.spectral(energy_tev)

    @property
    def extrapolated_below_tev(self) -> float:
        """Energy below which the catalogue spectrum is an extrapolation (threshold)."""
        return self.threshold_tev


@dataclass
class HGPSSelection:
    """Sources kept (ROI contribution above the threshold) and those considered."""

    kept: list[CatalogueSource]
    considered: list[CatalogueSource]
    threshold: float
    flagged: list[str] = field(default_factory=list)

    @property
    def negligible(self) -> list[CatalogueSource]:
        names = {s.name for s in self.kept}
        return [s for s in self.considered if s.name not in names]


def _number(row, key: str, unit: str | None = None) -> float:
    val = row[key]
    if np.ma.is_masked(val):
        return np.nan
    if unit is not None and getattr(row.columns[key], "unit", None) is not None:
        return float((val * row.columns[key].unit).to_value(unit))
    return float(val)


def _catalogue_spectrum(row, path: Path) -> CutoffPowerLaw:
    """The catalogue's best spectral model (column Spectral_Model: PL or ECPL)."""
    kind = str(row["Spectral_Model"]).strip().upper()
    if kind not in ("PL", "ECPL"):
        raise ValueError(f"{path}: source {str(row['Source_Name']).strip()} has spectral "
                         f"model {kind!r}; PL or ECPL expected")
    lam = _number(row, "Lambda_Spec_ECPL", "TeV-1") if kind == "ECPL" else 0.0
    return CutoffPowerLaw(_number(row, f"Flux_Spec_{kind}_Diff_Pivot", "TeV-1 cm-2 s-1"),
                          _number(row, f"Index_Spec_{kind}"),
                          _number(row, f"Energy_Spec_{kind}_Pivot", "TeV"), lam)


def _hgps_sources(path: Path) -> list[CatalogueSource]:
    """HGPS sources from the catalogue's HGPS_SOURCES table (astropy alone: jobs that
    build the models do not pay gammapy's import; tests compare with gammapy's
    catalogue)."""
    from astropy.table import Table

    table = Table.read(path, hdu="HGPS_SOURCES")
    out = []
    for row in table:
        name = str(row["Source_Name"]).strip()
        spatial = str(row["Spatial_Model"]).strip()
        if spatial not in ("Point-Like", "Gaussian"):
            # shells and multi-Gaussians: we keep Gaussian-like widths
            log.info("%s: spatial model %s approximated by its catalogue size", name, spatial)
        size = _number(row, "Size", "deg") if spatial != "Point-Like" else 0.0
        size = size if np.isfinite(size) else 0.0
        # the catalogue's threshold, else the low end of its spectral fit, else ~0.4 TeV
        thr = _number(row, "Energy_Threshold", "TeV")
        if not np.isfinite(thr):
            thr = _number(row, "Energy_Range_Spec_Min", "TeV")
        if not np.isfinite(thr):
            thr = HGPS_THRESHOLD_TEV
        out.append(CatalogueSource(name, float(wrap_lon(_number(row, "GLON", "deg"))),
                                   _number(row, "GLAT", "deg"), size, spatial,
                                   _catalogue_spectrum(row, path), thr))
    return out


def select_hgps(path: str | Path, irf: InstrumentResponse, roi: ROI, grid: Grid,
                pointing: tuple[float, float], livetime_s: float,
                threshold: float = 1e-6) -> HGPSSelection:
    """HGPS sources whose expected ROI counts exceed ``threshold`` of the component's.

    A source is *considered* when its centre lies within the true grid widened by five
    times its width. Its expected ROI count is the integral over true energy of
    dN/dE eps(E, theta_src) N(E, x_src) with the Gaussian width folded into the PSF
    (exact for a point source; for a Gaussian the exposure gradient across the source
    is neglected, which is harmless for a 1e-6 selection).
    """
    sources = _hgps_sources(Path(path))
    e_nodes = grid.energy.nodes
    widths = grid.energy.widths
    considered = []
    for s in sources:
        pad = 5 * s.sigma_deg
        if not (grid.lon.edges[0] - pad <= s.l_deg <= grid.lon.edges[-1] + pad
                and grid.lat.edges[0] - pad <= s.b_deg <= grid.lat.edges[-1] + pad):
            continue
        theta = float(angular_offset(s.l_deg, s.b_deg, *pointing))
        eps = irf.exposure(e_nodes, theta, livetime_s, zero_fill=True)
        n = point_containment(irf, roi, e_nodes, s.l_deg, s.b_deg, pointing, s.sigma_deg)
        flux = s.dnde(e_nodes)
        s.expected_weight = float(np.sum(flux * eps * n * widths))
        total_flux = float(np.sum(flux * eps * widths))
        s.roi_fraction = s.expected_weight / total_flux if total_flux > 0 else 0.0
        considered.append(s)
    total = sum(s.expected_weight for s in considered)
    kept = [s for s in considered if total > 0 and s.expected_weight > threshold * total]
    flagged = [s.name for s in kept if np.isfinite(s.threshold_tev) and s.threshold_tev > e_nodes[0]]
    return HGPSSelection(kept, considered, threshold, flagged)


class DiffuseError(InputError, ValueError):
    """A true grid outside the diffuse template."""


class FermiGaggeroDiffuse:
    """The Galactic diffuse background with the Fermi-LAT template's morphology.

    S(x) = sum_k T_k(x) E_k^2.41 dE_k / sum_k dE_k over the planes with E >= 100 GeV,
    reprojected by exact area overlap (flux conserving, in l and sin b) and normalised
    to a solid-angle mean of 1 over |l| < 0.8 deg, |b| < 0.3 deg. Intensity:
    1.36e-8 (E/TeV)^-2.41 S(x) TeV^-1 cm^-2 s^-1 sr^-1.
    """

    def __init__(self, path: str | Path):
        from astropy.io import fits
        from astropy.wcs import WCS

        path = Path(path)
        with fits.open(path) as hdul:
            cube = np.asarray(hdul[0].data, np.float64)  # (E, b, l)
            wcs = WCS(hdul[0].header).celestial
            en = hdul["ENERGIES"].data
            e_mev = np.asarray(en["ENERGY"], float)
            de = np.asarray(en["E_MAX"], float) - np.asarray(en["E_MIN"], float)
        if not wcs.wcs.ctype[0].startswith("GLON-CAR") or wcs.wcs.crval[1] != 0:
            raise DiffuseError(f"{path}: expected a GLON-CAR cube with CRVAL2 = 0")
        n_b, n_l = cube.shape[1:]
        lc, bc = wcs.wcs_pix2world(np.arange(n_l), np.zeros(n_l), 0)[0], \
            wcs.wcs_pix2world(np.zeros(n_b), np.arange(n_b), 0)[1]
        lc = np.unwrap(wrap_lon(lc), period=360.0)
        dl, db = wcs.wcs.cdelt
        self.l_edges = np.append(lc - dl / 2, lc[-1] + dl / 2)
        self.b_edges = np.append(bc - db / 2, bc[-1] + db / 2)
        if dl < 0:
            self.l_edges, cube = self.l_edges[::-1], cube[:, :, ::-1]
        sel = e_mev >= DIFFUSE_MIN_ENERGY_GEV * 1e3
        weighted = cube[sel] * (e_mev[sel] * 1e-6)[:, None, None] ** DIFFUSE_INDEX
        morph = np.tensordot(de[sel], weighted, axes=1) / de[sel].sum()  # (b, l)
        self.path = path
        self.planes_used_gev = e_mev[sel] * 1e-3
        self._raw = morph.T  # (l, b), arbitrary units
        norm = self._region_mean(self._raw, *DIFFUSE_NORM_REGION)
        self.template = self._raw / norm  # (l, b): mean 1 over the normalisation region

    def _overlap(self, src_edges, dst_edges, sine: bool) -> np.ndarray:
        f = (lambda x: np.sin(np.radians(x))) if sine else np.radians
        lo = np.maximum(dst_edges[:-1, None], src_edges[None, :-1])
        hi = np.minimum(dst_edges[1:, None], src_edges[None, 1:])
        return np.where(hi > lo, f(np.maximum(hi, lo)) - f(lo), 0.0)

    def _region_mean(self, values, l_range, b_range) -> float:
        wl = self._overlap(self.l_edges, np.asarray(l_range, float), False)
        wb = self._overlap(self.b_edges, np.asarray(b_range, float), True)
        return float((wl @ values @ wb.T)[0, 0] / (wl.sum() * wb.sum()))

    def morphology(self, l_edges, b_edges, where: str = "true grid") -> np.ndarray:
        """S averaged over each (l, b) cell (exact area overlap), shape (n_l, n_b)."""
        l_edges = np.asarray(l_edges, float)
        b_edges = np.asarray(b_edges, float)
        tol = 1e-9
        if (l_edges[0] < self.l_edges[0] - tol or l_edges[-1] > self.l_edges[-1] + tol
                or b_edges[0] < self.b_edges[0] - tol or b_edges[-1] > self.b_edges[-1] + tol):
            raise DiffuseError(
                f"{where}: l [{l_edges[0]:.3g}, {l_edges[-1]:.3g}], b [{b_edges[0]:.3g}, "
                f"{b_edges[-1]:.3g}] deg is outside the diffuse template {self.path.name} "
                f"(l [{self.l_edges[0]:.4g}, {self.l_edges[-1]:.4g}], b "
                f"[{self.b_edges[0]:.4g}, {self.b_edges[-1]:.4g}] deg)")
        wl = self._overlap(self.l_edges, l_edges, False)
        wb = self._overlap(self.b_edges, b_edges, True)
        return (wl @ self.template @ wb.T) / cell_solid_angle(l_edges, b_edges)

    @staticmethod
    def spectrum(energy_tev) -> np.ndarray:
        """Intensity at S = 1 [TeV^-1 cm^-2 s^-1 sr^-1]."""
        return DIFFUSE_NORM_TEV * np.asarray(energy_tev, float) ** -DIFFUSE_INDEX
