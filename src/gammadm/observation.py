"""One observation's set-up from a campaign config: IRF, ROI, grids, pointing, livetime."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ConfigError
from .data import data_dir
from .geometry import ROI, Grid, wrap_lon
from .instrument import InstrumentResponse, derive_true_grid, resolve_irf_file
from .instrument.reach import Reach

__all__ = ["Observation", "fov_coordinates"]


def fov_coordinates(l_deg, b_deg, pointing: tuple[float, float], alignment: str = "RADEC"):
    """Field-of-view coordinates [deg] of Galactic positions, as the background IRF uses.

    RADEC alignment: gammapy's ``sky_to_fov`` in ICRS about the pointing.
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from gammapy.utils.coordinates import sky_to_fov

    if alignment.upper() != "RADEC":
        raise ValueError(f"background FoV alignment {alignment} needs pointing times; "
                         "only RADEC is supported")
    pos = SkyCoord(np.asarray(l_deg) * u.deg, np.asarray(b_deg) * u.deg, frame="galactic").icrs
    pnt = SkyCoord(pointing[0] * u.deg, pointing[1] * u.deg, frame="galactic").icrs
    lon, lat = sky_to_fov(pos.ra, pos.dec, pnt.ra, pnt.dec)
    return lon.to_value("deg"), lat.to_value("deg")


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
        roi = ROI(tuple(r["energy_tev"]), tuple(wrap_lon(r["l_deg"]).tolist()),
                  tuple(r["b_deg"]))
        pnt = (float(wrap_lon(obs["pointing"]["l_deg"])), float(obs["pointing"]["b_deg"]))
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
