"""One observation's set-up from a campaign config: IRF, ROI, grids, pointing, livetime."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ConfigError
from .data import data_dir
from .geometry import ROI, Grid, wrap_lon
from .instrument import InstrumentResponse, derive_true_grid, resolve_irf_file
from .instrument.reach import Reach

__all__ = ["Observation", "fov_coordinates", "pointing_from_config", "roi_from_config"]


# ICRS unit vectors of the Galactic x, y, z axes (columns), as astropy's Galactic frame
# defines them: v_icrs = _GAL_TO_ICRS @ v_gal (the test checks it against astropy/gammapy)
_GAL_TO_ICRS = np.array([
    [-0.05487565771259218, 0.49410943719272665, -0.8676661375596585],
    [-0.8734370519556162, -0.4448297212232957, -0.19807633727300056],
    [-0.4838350736167156, 0.7469821839866677, 0.45598381368730206],
])


def _unit_vectors(lon_deg, lat_deg) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def fov_coordinates(l_deg, b_deg, pointing: tuple[float, float], alignment: str = "RADEC"):
    """Field-of-view coordinates [deg] of Galactic positions, as the background IRF uses.

    RADEC alignment (gammapy's ``sky_to_fov``): spherical offsets from the pointing in
    ICRS, longitude counted positive towards decreasing RA. Plain numpy rotations, so
    that kernel jobs need neither astropy's coordinate machinery nor gammapy.
    """
    if alignment.upper() != "RADEC":
        raise ValueError(f"background FoV alignment {alignment} needs pointing times; "
                         "only RADEC is supported")
    v = np.tensordot(_GAL_TO_ICRS, _unit_vectors(l_deg, b_deg), axes=1)
    p = _GAL_TO_ICRS @ _unit_vectors(pointing[0], pointing[1])
    ra0, dec0 = np.arctan2(p[1], p[0]), np.arcsin(np.clip(p[2], -1.0, 1.0))
    east = np.array([-np.sin(ra0), np.cos(ra0), 0.0])
    north = np.array([-np.sin(dec0) * np.cos(ra0), -np.sin(dec0) * np.sin(ra0), np.cos(dec0)])
    x = np.tensordot(p, v, axes=1)
    y = np.tensordot(east, v, axes=1)
    z = np.tensordot(north, v, axes=1)
    lon = -np.degrees(np.arctan2(y, x))
    lat = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    return lon, lat


def roi_from_config(cfg: dict) -> ROI:
    """The campaign's reconstructed-space ROI (no IRF needed)."""
    r = cfg["roi"]
    return ROI(tuple(r["energy_tev"]), tuple(wrap_lon(r["l_deg"]).tolist()), tuple(r["b_deg"]))


def pointing_from_config(obs: dict) -> tuple[float, float]:
    """(l, b) [deg] of one observation's config entry, l wrapped to (-180, 180]."""
    return (float(wrap_lon(obs["pointing"]["l_deg"])), float(obs["pointing"]["b_deg"]))


@dataclass
class Observation:
    """Everything about one pointing that does not depend on source models."""

    name: str
    pointing: tuple[float, float]
    livetime_s: float
    irf: InstrumentResponse
    roi: ROI
    recon: Grid
    true: Grid
    reach: Reach
    tail_mass: float

    @classmethod
    def from_config(cls, cfg: dict, name: str | None = None) -> Observation:
        """Build the named observation (default: the first) of a validated config."""
        obs_list = cfg["observations"]
        if name is None:
            obs = obs_list[0]
        else:
            match = [o for o in obs_list if o["name"] == name]
            if not match:
                raise ConfigError("observations", f"no observation named '{name}'; have "
                                  f"{[o['name'] for o in obs_list]}")
            obs = match[0]
        irf = InstrumentResponse.read(resolve_irf_file(obs["irf"], data_dir(cfg["data_dir"])))
        r = cfg["roi"]
        roi = roi_from_config(cfg)
        pnt = pointing_from_config(obs)
        tail = cfg["marginalisation"]["tail_mass"]
        true, reach = derive_true_grid(irf, roi, pnt, cfg["true_grid"], tail)
        recon = roi.recon_grid(r["energy_bins_per_decade"], r["pixel_deg"])
        return cls(obs["name"], pnt, obs["livetime_h"] * 3600.0, irf, roi, recon, true,
                   reach, tail)

    def true_offsets(self) -> np.ndarray:
        """Offsets [deg] of the true-grid cell centres from the pointing, shape (n_l, n_b)."""
        from .instrument.reach import angular_offset

        L, B = np.meshgrid(self.true.lon.nodes, self.true.lat.nodes, indexing="ij")
        return angular_offset(L, B, *self.pointing)
