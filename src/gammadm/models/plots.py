"""Figures of the source models of one observation (PNG, matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# the model modules are imported by the plotting functions: the workflow (and the
# report) import this module for MODEL_FIGURES and the PNG settings alone

__all__ = ["MODEL_FIGURES", "plot_models"]

#: the files `plot_models` writes
MODEL_FIGURES = ("spectra.png", "j_factor.png", "backgrounds.png")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_spectra(models, out: Path) -> Path:
    from .spectra import ChannelSpectrum

    plt = _plt()
    dm = models.dm
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    lo, hi = dm.mass_range_tev
    for m, c in zip((0.2, 1.0, 10.0), ("C0", "C1", "C2")):
        if not lo <= m <= hi:
            continue
        e = np.geomspace(1e-3 * m, m * (0.5 if dm.process == "decay" else 1.0), 400)
        axes[0].loglog(e, e**2 * dm.spectrum.dnde(e, m), c, label=f"m = {m:g} TeV")
        for e_line, n in dm.spectrum.lines(m):
            axes[0].vlines(e_line, 1e-9, 1e-9 + e_line**2 * n / (0.05 * e_line),
                           colors=c, linestyles=":",
                           label=f"line {e_line:.3g} TeV, {n:.2g} photons")
    axes[0].set(xlabel="E [TeV]", ylabel="E$^2$ dN/dE [TeV] per annihilation",
                title=f"{dm.name}: {type(dm.spectrum).__name__} ({dm.process})", ylim=(1e-5, None))
    axes[0].legend(fontsize=7)
    table = getattr(dm.spectrum, "table", None) or dm.spectrum.annihilation.table
    e = np.geomspace(1e-3, 1.0, 400)
    for ch in ("b", "W", "Z", "h", "tau", "t", "gamma"):
        axes[1].loglog(e, e**2 * ChannelSpectrum(table, ch).dnde(e, 1.0), label=ch)
    axes[1].set(xlabel="E [TeV]", ylabel="E$^2$ dN/dE [TeV]", ylim=(1e-5, None),
                title="PPPC 4 DM ID channels, m = 1 TeV (gamma: line removed)")
    axes[1].legend(fontsize=7, ncol=2)
    return _save(plt, fig, out / "spectra.png")


def plot_j(models, out: Path) -> Path:
    from ..instrument.reach import angular_offset
    from .profiles import DensityProfile, LOSTable, cell_average_map

    plt = _plt()
    dm, grid = models.dm, models.obs.true
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    jmap = cell_average_map(dm.los, grid.lon.edges, grid.lat.edges)
    im = axes[0].pcolormesh(grid.lon.edges, grid.lat.edges, np.log10(jmap.T), cmap="magma")
    axes[0].set(xlabel="l [deg]", ylabel="b [deg]", aspect="equal",
                title=f"log10 cell-averaged d{'J' if dm.process == 'annihilation' else 'D'}/dOmega "
                      f"[{dm.spatial_unit}]")
    roi = models.obs.roi
    axes[0].add_patch(plt.Rectangle((roi.l_deg[0], roi.b_deg[0]), np.diff(roi.l_deg)[0],
                                    np.diff(roi.b_deg)[0], fill=False, ec="w", ls="--"))
    axes[0].invert_xaxis()
    fig.colorbar(im, ax=axes[0])
    psi = np.geomspace(1e-3, 30, 300)
    for model in ("einasto", "nfw", "burkert"):
        prof = DensityProfile(model, r_sun_kpc=dm.profile.r_sun_kpc,
                              rho_sun_gev_cm3=dm.profile.rho_sun_gev_cm3,
                              r_halo_kpc=dm.profile.r_halo_kpc)
        tab = dm.los if model == dm.profile.model else LOSTable(prof, dm.los.power)
        axes[1].loglog(psi, tab(psi), label=model + (" (this campaign)" if tab is dm.los else ""))
    L, B = np.meshgrid(grid.lon.nodes, grid.lat.nodes, indexing="ij")
    axes[1].loglog(angular_offset(L, B, 0, 0).ravel(), jmap.ravel(), ".", ms=2, c="k",
                   alpha=0.4, label="cell averages (true grid)")
    axes[1].set(xlabel="angle from the Galactic Centre [deg]",
                ylabel=f"[{dm.spatial_unit}]", title="radial profile")
    axes[1].legend(fontsize=8)
    return _save(plt, fig, out / "j_factor.png")


def plot_backgrounds(models, out: Path) -> Path:
    from ..observation import fov_coordinates

    plt = _plt()
    obs = models.obs
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    if models.diffuse is not None:
        s = models.diffuse.morphology(obs.true.lon.edges, obs.true.lat.edges)
        im = axes[0].pcolormesh(obs.true.lon.edges, obs.true.lat.edges, s.T, cmap="viridis")
        fig.colorbar(im, ax=axes[0], label="diffuse morphology S (mean 1 in |l|<0.8, |b|<0.3)")
    if models.hgps is not None:
        for src in models.hgps.considered:
            kept = src in models.hgps.kept
            axes[0].plot(src.l_deg, src.b_deg, "+" if src.is_point else "o",
                         mfc="none", c="w" if kept else "r", ms=8)
            axes[0].annotate(src.name.replace("HESS ", ""), (src.l_deg, src.b_deg),
                             color="w" if kept else "r", fontsize=7)
    axes[0].set(xlabel="l [deg]", ylabel="b [deg]", aspect="equal",
                title="diffuse template; HGPS sources (red: negligible)")
    axes[0].invert_xaxis()
    Lr, Br = np.meshgrid(obs.recon.lon.nodes, obs.recon.lat.nodes, indexing="ij")
    fx, fy = fov_coordinates(Lr, Br, obs.pointing, obs.irf.fov_alignment)
    rate = obs.irf.ccr_rate(1.0, fx, fy, zero_fill=True) * (np.pi / 180) ** 2
    im = axes[1].pcolormesh(obs.recon.lon.edges, obs.recon.lat.edges, rate.T, cmap="cividis")
    fig.colorbar(im, ax=axes[1], label="s$^{-1}$ TeV$^{-1}$ deg$^{-2}$")
    axes[1].set(xlabel="l [deg]", ylabel="b [deg]", aspect="equal",
                title="CCR rate of reconstructed events at 1 TeV")
    axes[1].invert_xaxis()
    e = obs.true.energy.nodes
    ax = axes[2]
    if models.hgps is not None:
        for src in models.hgps.kept:
            ax.loglog(e, e**2 * src.dnde(e), lw=1, label=src.name)
            ax.axvline(src.threshold_tev, c="0.8", lw=0.5)
    if models.diffuse is not None:
        omega = obs.roi.solid_angle
        s_roi = models.diffuse.morphology(obs.roi.l_deg, obs.roi.b_deg)[0, 0]
        ax.loglog(e, e**2 * models.diffuse.spectrum(e) * s_roi * omega, "k--",
                  label="diffuse, whole ROI")
    ax.set(xlabel="E$_t$ [TeV]", ylabel="E$^2$ dN/dE [TeV cm$^{-2}$ s$^{-1}$]",
           title="true-space spectra (grey: HGPS thresholds)")
    ax.legend(fontsize=7)
    return _save(plt, fig, out / "backgrounds.png")


def plot_models(models, out: str | Path) -> list[Path]:
    """Write spectra.png, j_factor.png and backgrounds.png into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [plot_spectra(models, out), plot_j(models, out), plot_backgrounds(models, out)]
