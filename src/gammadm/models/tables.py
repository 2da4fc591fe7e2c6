"""Per-observation tables on the derived true grid, written to ``tables.zarr``.

Layout (units in each array's ``unit`` attribute; provenance in the root attributes):

    axes/          true_energy_edges, true_l_edges, true_b_edges, recon_* (TeV, deg)
    exposure       [E_t, l, b] A T at cell centres (cm2 s); 0 where the IRF is undefined
    defined        [E_t, l, b] whether the IRF has a response there
    dropped_exposure [E_t, l, b] the file's own exposure where it is undefined (cm2 s)
    dark_matter/   spatial [l, b] cell-averaged dJ/dOmega (or dD/dOmega); radial_psi_deg,
                   radial_values, radial_cumulative (the table about the GC);
                   mass_tev [m]; spectral_factor [m, E_t] (see DarkMatterModel);
                   dnde [m, E_t] photons per annihilation (TeV-1); lines [m, 2, 2]
    diffuse/       morphology [l, b] (mean 1 over |l| < 0.8, |b| < 0.3 deg);
                   intensity [E_t] at unit morphology (TeV-1 cm-2 s-1 sr-1)
    hgps/          l_deg, b_deg, sigma_deg [src]; dnde [src, E_t] (TeV-1 cm-2 s-1)
    ccr/           rate [E_r, l_r, b_r] at recon cell centres (s-1 TeV-1 sr-1)

The store is written to a temporary directory and moved into place, so a killed job
never leaves a half-written store behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..data import resolve_data_file
from ..observation import Observation, fov_coordinates
from .backgrounds import FermiGaggeroDiffuse, select_hgps
from .dark_matter import DarkMatterModel
from .profiles import cell_average_map

__all__ = ["ObservationModels", "build_models", "mass_grid", "tabulate", "write_tables"]

N_MASS = 121


def mass_grid(cfg: dict, dm: DarkMatterModel, n: int = N_MASS) -> np.ndarray:
    """Log-spaced masses [TeV] over the mass prior, clipped to the model's range."""
    prior = cfg["priors"]["mass_TeV"]
    lo, hi = dm.mass_range_tev
    lo, hi = max(prior.get("low", lo), lo), min(prior.get("high", hi), hi)
    return np.geomspace(lo, hi, n)


class ObservationModels:
    """Source models evaluated for one observation (plain arrays)."""

    def __init__(self, cfg: dict, obs: Observation):
        self.cfg = cfg
        self.obs = obs
        self.dm = DarkMatterModel.from_config(cfg)
        kinds = {b["model"] for b in cfg["backgrounds"]}
        self.hgps = None
        self.diffuse = None
        self.hgps_path = self.diffuse_path = None
        if "hgps" in kinds:
            self.hgps_path = resolve_data_file(cfg, "hgps_catalogue")
            self.hgps = select_hgps(self.hgps_path, obs.irf, obs.roi, obs.true, obs.pointing,
                                    obs.livetime_s)
        if "fermi_gaggero" in kinds:
            self.diffuse_path = resolve_data_file(cfg, "fermi_iem")
            self.diffuse = FermiGaggeroDiffuse(self.diffuse_path)


def build_models(cfg: dict, obs_name: str | None = None) -> ObservationModels:
    return ObservationModels(cfg, Observation.from_config(cfg, obs_name))


def _array(group, name: str, data, unit: str = "", **attrs):
    data = np.asarray(data)
    arr = group.create_array(name, data=data, chunks=data.shape or "auto")
    arr.attrs.update({"unit": unit, **attrs})
    return arr


def write_tables(models: ObservationModels, out: str | Path) -> Path:
    """Tabulate everything one observation needs and write ``out`` (a Zarr v3 store)."""
    import zarr

    cfg, obs, dm = models.cfg, models.obs, models.dm
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        root = zarr.open_group(tmp / "store.zarr", mode="w")
        ax = root.create_group("axes")
        for kind, grid in (("true", obs.true), ("recon", obs.recon)):
            _array(ax, f"{kind}_energy_edges", grid.energy.edges, "TeV")
            _array(ax, f"{kind}_l_edges", grid.lon.edges, "deg")
            _array(ax, f"{kind}_b_edges", grid.lat.edges, "deg")
        e_t = obs.true.energy.nodes
        theta = obs.true_offsets()
        E = e_t[:, None, None]
        T = theta[None, :, :]
        _array(root, "exposure", obs.irf.exposure(E, T, obs.livetime_s, zero_fill=True),
               "cm2 s", description="A T at true cell centres; 0 where the IRF is undefined")
        _array(root, "defined", obs.irf.defined(E, T, zero_fill=True))
        _array(root, "dropped_exposure",
               obs.irf.dropped_exposure(E, T, obs.livetime_s, zero_fill=True), "cm2 s")

        g = root.create_group("dark_matter")
        g.attrs.update({"name": dm.name, "process": dm.process,
                        "profile": dm.profile.as_dict(), "spatial_unit": dm.spatial_unit,
                        "amplitude_unit": dm.amplitude_unit,
                        "spectrum": cfg["dark_matter"]["spectrum"]})
        _array(g, "spatial", cell_average_map(dm.los, obs.true.lon.edges, obs.true.lat.edges),
               dm.spatial_unit, description="solid-angle average over each true cell")
        _array(g, "radial_psi_deg", dm.los.psi_deg, "deg")
        _array(g, "radial_values", dm.los.values, dm.spatial_unit)
        _array(g, "radial_cumulative", dm.los.cumulative(dm.los.psi_deg),
               f"deg2 {dm.spatial_unit}", description="integral_0^psi J psi' dpsi' (flat sky)")
        masses = mass_grid(cfg, dm)
        _array(g, "mass_tev", masses, "TeV")
        _array(g, "spectral_factor", dm.spectral_factor(e_t[None, :], masses[:, None]),
               f"TeV-1 cm-2 s-1 sr-1 per ({dm.amplitude_unit}) per ({dm.spatial_unit})")
        _array(g, "dnde", dm.spectrum.dnde(e_t[None, :], masses[:, None]), "TeV-1",
               description="photons per annihilation (or decay), continuum only")
        lines = np.zeros((masses.size, 2, 2))
        for i, m in enumerate(masses):
            for k, (e_line, n) in enumerate(dm.spectrum.lines(float(m))[:2]):
                lines[i, k] = (e_line, n)
        _array(g, "lines", lines, "TeV, photons",
               description="[mass, line, (energy, photons per annihilation)]")

        if models.diffuse is not None:
            g = root.create_group("diffuse")
            _array(g, "morphology", models.diffuse.morphology(
                obs.true.lon.edges, obs.true.lat.edges, f"observation {obs.name}"), "")
            _array(g, "intensity", models.diffuse.spectrum(e_t), "TeV-1 cm-2 s-1 sr-1")
            g.attrs.update({"template": str(models.diffuse_path),
                            "planes_gev": models.diffuse.planes_used_gev.tolist()})
        if models.hgps is not None:
            g = root.create_group("hgps")
            kept = models.hgps.kept
            _array(g, "l_deg", [s.l_deg for s in kept], "deg")
            _array(g, "b_deg", [s.b_deg for s in kept], "deg")
            _array(g, "sigma_deg", [s.sigma_deg for s in kept], "deg",
                   description="Gaussian width; 0 for a point source")
            _array(g, "dnde", np.array([s.dnde(e_t) for s in kept]).reshape(len(kept), -1),
                   "TeV-1 cm-2 s-1")
            g.attrs.update({
                "names": [s.name for s in kept],
                "spatial": [s.spatial for s in kept],
                "threshold_tev": [s.threshold_tev for s in kept],
                "extrapolated_below_threshold": models.hgps.flagged,
                "considered_negligible": {s.name: s.expected_weight / max(
                    sum(x.expected_weight for x in models.hgps.considered), 1e-300)
                    for s in models.hgps.negligible},
                "selection_threshold": models.hgps.threshold,
                "catalogue": str(models.hgps_path)})

        g = root.create_group("ccr")
        Lr, Br = np.meshgrid(obs.recon.lon.nodes, obs.recon.lat.nodes, indexing="ij")
        fx, fy = fov_coordinates(Lr, Br, obs.pointing, obs.irf.fov_alignment)
        rate = obs.irf.ccr_rate(obs.recon.energy.nodes[:, None, None], fx[None], fy[None],
                                zero_fill=True)
        _array(g, "rate", rate, "s-1 TeV-1 sr-1", description="at recon cell centres")

        root.attrs.update({
            "gammadm_version": __version__,
            "campaign": cfg["campaign"],
            "observation": obs.name,
            "pointing_l_deg": obs.pointing[0], "pointing_b_deg": obs.pointing[1],
            "livetime_s": obs.livetime_s,
            "irf_file": str(obs.irf.path),
            "tail_mass": obs.tail_mass,
            "reach": json.loads(json.dumps(obs.reach.__dict__)),
            "r_halo_kpc": dm.profile.r_halo_kpc,
        })
        if out.exists():
            shutil.rmtree(out)
        (tmp / "store.zarr").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def tabulate(cfg: dict, obs_name: str | None, out: str | Path) -> Path:
    return write_tables(build_models(cfg, obs_name), out)
