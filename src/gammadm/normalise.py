"""The normalisation stage: N and the expected-count terms into ``norm.zarr``.

``create`` (one job) writes the store: axes, attributes, the CCR expectation and
NaN-filled arrays; ``fill_chunk`` (job i of n) computes its own slice of energy
sub-intervals (and of the line-energy grid) and writes only those chunks. Chunked
and unchunked runs give identical stores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .expected import ccr_expected, dm_points_kernel, line_energy_grid, subinterval_terms
from .instrument.normalisation import EnergyQuadrature, MigrationTables
from .store import chunk_range, create_store, read_complete, write_region

if TYPE_CHECKING:
    from .models.tables import ObservationModels

__all__ = ["NormContext", "create", "fill_chunk", "load"]

log = logging.getLogger(__name__)


class NormContext:
    """Observation, models and quadrature shared by the creator and the chunk jobs.

    Parameters
    ----------
    cfg : dict
        The validated campaign.
    obs_name : str, optional
        The observation (default: the first); ignored when ``models`` is given.
    models : ObservationModels, optional
        The observation's models if already built (they hold the observation), so that
        a script does not read the IRF and the catalogues twice.
    """

    def __init__(self, cfg: dict, obs_name: str | None = None,
                 models: ObservationModels | None = None):
        from .models.profiles import cell_average_map
        from .models.tables import build_models

        self.models = models if models is not None else build_models(cfg, obs_name)
        self.obs = self.models.obs
        self.mig = MigrationTables.from_irf(self.obs.irf)
        self.quad = EnergyQuadrature.build(self.obs.true.energy.edges, self.mig, self.obs.irf)
        true = self.obs.true
        self.spatial_dm = cell_average_map(self.models.dm.los, true.lon.edges, true.lat.edges)
        d = self.models.diffuse
        self.diffuse_morph = d.morphology(true.lon.edges, true.lat.edges,
                                          f"observation {self.obs.name}") if d else None
        self.sources = self.models.hgps.kept if self.models.hgps else []
        self.line_energies = line_energy_grid(self.quad, 100)
        self.backgrounds = {b["name"]: b["model"] for b in cfg["backgrounds"]}


def create(ctx: NormContext, path: str | Path, n_chunks: int) -> None:
    obs, quad = ctx.obs, ctx.quad
    n_sub = len(quad)
    shape = obs.true.shape[1:]
    n_src = len(ctx.sources)
    dm_unit = f"{ctx.models.dm.spatial_unit} x sr x cm2 s"
    arrays = {
        "axes/sub_edges": ((n_sub + 1,), None, quad.edges, "TeV"),
        "axes/sub_cell": ((n_sub,), None, quad.cell, ""),
        "axes/line_energies": ((ctx.line_energies.size,), None, ctx.line_energies, "TeV"),
        "n": ((n_sub,) + shape, 0, None, ""),
        "dm/h": ((n_sub,), 0, None, dm_unit),
        "dm/lambda": ((n_sub,), 0, None, dm_unit),
        "dm/points": ((ctx.line_energies.size,), 0, None, dm_unit),
        "hgps/mu": ((n_src, n_sub), 1, None, "counts"),
        "hgps/lambda": ((n_src, n_sub), 1, None, "photons"),
        "ccr/mu": ((1,), None, [ccr_expected(obs)], "counts"),
    }
    for name, model in ctx.backgrounds.items():
        if model == "fermi_gaggero":
            arrays[f"{name}/mu"] = ((n_sub,), 0, None, "counts")
            arrays[f"{name}/lambda"] = ((n_sub,), 0, None, "photons")
    attrs = {
        "gammadm_version": __version__, "observation": obs.name,
        "livetime_s": obs.livetime_s, "irf_file": str(obs.irf.path),
        "hgps_names": [s.name for s in ctx.sources],
        "backgrounds": ctx.backgrounds, "dark_matter": ctx.models.dm.name,
        "description": "N per (energy sub-interval, l, b); expected-count terms per "
                       "sub-interval (already multiplied by the sub-interval width)",
    }
    create_store(path, arrays, attrs, n_chunks)


def fill_chunk(ctx: NormContext, path: str | Path, i: int, n: int) -> None:
    """Compute and write chunk i of n (sub-intervals and line-energy points)."""
    quad = ctx.quad
    sl = chunk_range(len(quad), i, n)
    sub = np.arange(len(quad))[sl]
    if sub.size:
        terms = subinterval_terms(ctx.obs, ctx.mig, quad, ctx.spatial_dm, ctx.diffuse_morph,
                                  ctx.models.diffuse.spectrum if ctx.models.diffuse else None,
                                  ctx.sources, sub)
        write_region(path, "n", (sl,), terms.n)
        write_region(path, "dm/h", (sl,), terms.dm_h)
        write_region(path, "dm/lambda", (sl,), terms.dm_lambda)
        if ctx.sources:
            write_region(path, "hgps/mu", (slice(None), sl), terms.hgps_mu)
            write_region(path, "hgps/lambda", (slice(None), sl), terms.hgps_lambda)
        for name, model in ctx.backgrounds.items():
            if model == "fermi_gaggero":
                write_region(path, f"{name}/mu", (sl,), terms.background_mu["diffuse"])
                write_region(path, f"{name}/lambda", (sl,), terms.background_lambda["diffuse"])
    psl = chunk_range(ctx.line_energies.size, i, n)
    if psl.stop > psl.start:
        write_region(path, "dm/points", (psl,),
                     dm_points_kernel(ctx.obs, ctx.mig, ctx.spatial_dm, ctx.line_energies[psl]))


def load(path: str | Path) -> dict:
    """Read a complete norm store (raises `IncompleteStoreError` naming a missing chunk)."""
    return read_complete(path)
