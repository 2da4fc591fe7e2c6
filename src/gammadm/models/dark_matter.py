"""The dark-matter component: spectrum x spatial factor, in physical units.

Annihilation (self-conjugate, k = 2):
    Phi = <sigma v> / (8 pi m^2) dN/dE(E; m) dJ/dOmega(psi)
Decay:
    Phi = 1 / (4 pi m tau) dN/dE_ann(E; m/2) dD/dOmega(psi)
with Phi in TeV^-1 cm^-2 s^-1 sr^-1, E and m in TeV, <sigma v> in cm^3 s^-1, tau in s;
J is converted from GeV^2 to TeV^2 (x1e-6) and D from GeV to TeV (x1e-3).
The intensity is written amplitude x spectral_factor(E; m) x spatial(psi), so that the
observation model can keep the (separable) energy and sky parts apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import resolve_data_file, singlet_cache_path
from ..data.fetch import data_dir
from .profiles import DensityProfile, LOSTable
from .spectra import ChannelSpectrum, DecaySpectrum, PPPCTable, SingletBranching, SingletSpectrum

__all__ = ["DarkMatterModel", "GEV2_TO_TEV2", "GEV_TO_TEV"]

GEV2_TO_TEV2 = 1e-6
GEV_TO_TEV = 1e-3


@dataclass
class DarkMatterModel:
    """Spectrum, profile and process of the dark-matter component."""

    name: str
    process: str  # "annihilation" or "decay"
    spectrum: SingletSpectrum | ChannelSpectrum | DecaySpectrum
    profile: DensityProfile
    los: LOSTable  # dJ/dOmega (annihilation) or dD/dOmega (decay), GeV units

    @classmethod
    def from_config(cls, cfg: dict) -> DarkMatterModel:
        dm = cfg["dark_matter"]
        spec_cfg = dm["spectrum"]
        table = PPPCTable(resolve_data_file(cfg, "pppc_table"))
        if spec_cfg["model"] == "channel":
            spectrum = ChannelSpectrum(table, spec_cfg["channel"])
            table.channel(spec_cfg["channel"])  # unknown channel: error now
        else:
            own = cfg.get("data_files", {}).get("singlet_table")
            src = own or singlet_cache_path(data_dir(cfg["data_dir"]), spec_cfg["singlet_grid"])
            if not own:
                resolve_data_file(cfg, "singlet_table")  # verify the published CSV
            spectrum = SingletSpectrum(table, SingletBranching(src), spec_cfg["lambda_hs"])
        if dm["process"] == "decay":
            spectrum = DecaySpectrum(spectrum)
        profile = DensityProfile.from_config(dm["profile"])
        los = LOSTable(profile, power=2 if dm["process"] == "annihilation" else 1)
        return cls(dm["name"], dm["process"], spectrum, profile, los)

    @property
    def spatial_unit(self) -> str:
        return "GeV2 cm-5 sr-1" if self.process == "annihilation" else "GeV cm-2 sr-1"

    @property
    def amplitude_unit(self) -> str:
        return "cm3 s-1" if self.process == "annihilation" else "s-1 (1 / tau)"

    def spectral_factor(self, energy_tev, mass_tev) -> np.ndarray:
        """Phi / (amplitude x spatial) [TeV^-1 cm^-2 s^-1 sr^-1 per amplitude unit per
        spatial unit]: includes the 1/(8 pi m^2) or 1/(4 pi m) and the GeV->TeV factor."""
        m = np.asarray(mass_tev, float)
        dnde = self.spectrum.dnde(energy_tev, m)
        if self.process == "annihilation":
            return dnde / (8 * np.pi * m**2) * GEV2_TO_TEV2
        return dnde / (4 * np.pi * m) * GEV_TO_TEV

    def line_factors(self, mass_tev: float) -> list[tuple[float, float]]:
        """Lines as (E [TeV], factor): Phi_line = amplitude x factor x spatial x delta(E - E_line)."""
        pref = (GEV2_TO_TEV2 / (8 * np.pi * mass_tev**2) if self.process == "annihilation"
                else GEV_TO_TEV / (4 * np.pi * mass_tev))
        return [(e, n * pref) for e, n in self.spectrum.lines(mass_tev)]

    def intensity(self, energy_tev, psi_deg, mass_tev, amplitude) -> np.ndarray:
        """Continuum Phi [TeV^-1 cm^-2 s^-1 sr^-1] at E and angle psi from the GC."""
        return amplitude * self.spectral_factor(energy_tev, mass_tev) * self.los(psi_deg)

    @property
    def mass_range_tev(self) -> tuple[float, float]:
        return self.spectrum.mass_range_tev
