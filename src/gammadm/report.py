"""`gammadm report`: figures and a text table of a finished campaign.

Per observation, the fitted model is the posterior median of the joint run: fractions
mode scales each component to W_k x (number of events), rates mode to <sigma v> and the
background scales. Expected counts per recon bin nu_k come from `gammadm.binned` (the
integral of lambda_k over each bin, never lambda at a bin centre), so the maps and
spectra of the model sum to its expected counts mu_k (checked, see ``expected.json``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .models.plots import _plt, _save  # the same Agg backend and PNG settings

__all__ = ["ReportError", "report_files", "fitted_expectations", "write_report"]

MC_FIGURE = "mc_truth.png"
#: per observation: figure -> category of the Snakemake report
OBS_FIGURES = {"spectra.png": "Models", "j_factor.png": "Models",
               "backgrounds.png": "Models", "counts_map.png": "Data and fitted model",
               "spectrum.png": "Data and fitted model", MC_FIGURE: "MC truth"}


def report_files(cfg: dict) -> list[tuple[str, str | None, str]]:
    """What `write_report` writes: (path relative to its folder, Snakemake report
    category or None, subcategory), for the workflow's outputs."""
    obs = cfg["observations"]
    out = [("summary.txt", "Posterior", "joint"), ("corner.png", "Posterior", "joint")]
    if len(obs) > 1:
        out += [(f"{o['name']}/corner.png", "Posterior", o["name"]) for o in obs]
    for o in obs:
        simulated = o["events"]["source"] == "simulate"
        out += [(f"{o['name']}/{f}", c, o["name"]) for f, c in OBS_FIGURES.items()
                if f != MC_FIGURE or simulated]
        out.append((f"{o['name']}/expected.json", None, o["name"]))
    return out


class ReportError(ValueError):
    """A campaign output the report needs is missing or malformed; names the file."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path} does not exist; run the sample stage first") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None


def _medians(summary: dict, path: Path) -> dict:
    try:
        return {k: float(v["p50"]) for k, v in summary["parameters"].items()}
    except (KeyError, TypeError) as exc:
        raise ReportError(f"{path}: field 'parameters' lacks {exc}") from None


def fitted_expectations(cfg: dict, obs: str, dm, model, norm: dict, medians: dict,
                        n_events: int) -> dict:
    """Expected counts of every component at the fitted parameters.

    Parameters
    ----------
    cfg : dict
        The validated campaign.
    obs : str
        The observation's name.
    dm : DarkMatterModel
        The campaign's dark matter (spectrum and lines at the fitted mass).
    model : gammadm.binned.BinnedModel
        nu per recon bin at nominal normalisation (dark matter per unit amplitude).
    norm : dict
        The observation's ``norm.zarr`` (`gammadm.normalise.load`): mu of the likelihood.
    medians : dict
        Posterior medians by parameter name.
    n_events : int
        Events of the observation (fractions mode: mu_k = W_k n_events).

    Returns
    -------
    dict
        component -> {"nu": array (n_E, n_l, n_b) [counts], "mu": expected counts in the
        ROI from norm.zarr}.
    """
    from .expected import dm_expected
    from .inference.data import _background_mu
    from .inference.tree import MixtureTree

    backgrounds = {b["name"]: b["model"] for b in cfg["backgrounds"]}
    mode = cfg["likelihood"]["mode"]
    mass = medians["mass_TeV"]
    unit = {k: (model.nu(k), _background_mu(norm, k, m)) for k, m in backgrounds.items()}
    unit[dm.name] = (model.nu_dm(dm, mass),
                     dm_expected(dm, norm["axes/sub_edges"], norm["dm/h"],
                                 norm["axes/line_energies"],
                                 norm["dm/points"], mass))
    if mode == "fractions":
        tree = MixtureTree(cfg["mixture"])
        w = tree.leaf_weights([medians[n] for n in tree.sampled_names])
        amp = {k: wk * n_events / unit[k][1] for k, wk in zip(tree.leaves, w)}
    else:
        amp = {k: medians[f"scale_{k}_{obs}"] for k in backgrounds}
        amp[dm.name] = medians["sigmav_cm3_s"]
    return {k: {"nu": amp[k] * nu, "mu": amp[k] * mu} for k, (nu, mu) in unit.items()}


def _binned_model(path: Path):
    """nu per recon bin of every component and the data histogram: the observation's
    binned.zarr (`gammadm bin`, a stage of every campaign)."""
    from . import binned
    from .store import IncompleteStoreError

    if not path.exists():
        raise ReportError(f"{path} does not exist; run the bin stage first")
    try:
        return binned.load(path)
    except IncompleteStoreError as exc:
        raise ReportError(f"{path}: {exc}") from None


def _map(fig, ax, model, values, title: str, label: str, cmap: str = "viridis", **kw):
    im = ax.pcolormesh(model.l_edges, model.b_edges, values.T, cmap=cmap, **kw)
    ax.set(xlabel="l [deg]", ylabel="b [deg]", aspect="equal", title=title)
    ax.invert_xaxis()  # Galactic longitude grows to the left
    fig.colorbar(im, ax=ax, label=label)


def plot_count_maps(model, comps: dict, name: str, out: Path) -> Path:
    """Data counts (summed over energy) beside the fitted model and the residual."""
    plt = _plt()
    data = model.counts.sum(axis=0)
    expect = sum(c["nu"] for c in comps.values()).sum(axis=0)
    pix = np.diff(model.l_edges).mean(), np.diff(model.b_edges).mean()
    unit = f"counts per {pix[0]:.3g} x {pix[1]:.3g} deg pixel"
    vmax = max(data.max(), expect.max())
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    _map(fig, axes[0], model, data, f"{name}: data ({int(data.sum())} events)", unit,
         vmin=0, vmax=vmax)
    _map(fig, axes[1], model, expect, f"fitted model ({expect.sum():.1f} expected)", unit,
         vmin=0, vmax=vmax)
    resid = (data - expect) / np.sqrt(np.where(expect > 0, expect, 1.0))
    lim = max(np.abs(resid).max(), 1.0)
    _map(fig, axes[2], model, resid, "residual (data - model) / sqrt(model)",
         "significance [sigma]", cmap="RdBu_r", vmin=-lim, vmax=lim)
    return _save(plt, fig, out / "counts_map.png")


def plot_spectrum(model, comps: dict, name: str, out: Path) -> Path:
    """Counts per recon energy bin: data with Poisson errors, model stacked by component."""
    plt = _plt()
    e = model.energy_edges
    fig, ax = plt.subplots(figsize=(8, 5))
    bottom = np.zeros(e.size - 1)
    for k, c in sorted(comps.items(), key=lambda kv: -kv[1]["mu"]):
        per_bin = c["nu"].sum(axis=(1, 2))
        ax.stairs(bottom + per_bin, e, baseline=bottom, fill=True, alpha=0.6,
                  label=f"{k} ({c['mu']:.1f})")
        bottom = bottom + per_bin
    ax.stairs(bottom, e, color="k", lw=1.2, label=f"model total ({bottom.sum():.1f})")
    n = model.counts.sum(axis=(1, 2))
    centre = np.sqrt(e[1:] * e[:-1])
    ax.errorbar(centre, n, yerr=np.sqrt(n), fmt="o", c="k", ms=4,
                label=f"data ({int(n.sum())} events)")
    ax.set(xscale="log", xlabel="reconstructed energy E$_r$ [TeV]",
           ylabel="counts per energy bin", title=f"{name}: data and fitted model (stacked)")
    ax.legend(fontsize=8)
    return _save(plt, fig, out / "spectrum.png")


def plot_mc_truth(model, events, name: str, out: Path) -> Path:
    """Per simulated component: true (l, b) of its events and their reconstructed (l, b)."""
    plt = _plt()
    comps = list(events.mc_components)
    fig, axes = plt.subplots(2, len(comps), figsize=(4.6 * len(comps), 8.4), squeeze=False)
    for j, comp in enumerate(comps):
        sel = events.mc["component"] == j
        for row, (l, b, what) in enumerate(((events.mc["l"], events.mc["b"], "true"),
                                            (events.l, events.b, "reconstructed"))):
            lw = np.where(l > 180, l - 360, l)
            ok = sel & np.isfinite(lw) & np.isfinite(b)
            ax = axes[row, j]
            if not ok.any():  # cosmic rays: simulated in recon space, no true direction
                ax.text(0.5, 0.5, f"{comp}: no true direction", ha="center",
                        transform=ax.transAxes)
                ax.set_axis_off()
                continue
            h = np.histogram2d(lw[ok], b[ok], bins=(model.l_edges, model.b_edges))[0]
            _map(fig, ax, model, h, f"{comp}: {what} ({int(h.sum())}/{int(sel.sum())} in ROI)",
                 "events per pixel", cmap="magma")
    fig.suptitle(f"{name}: MC truth per component")
    return _save(plt, fig, out / MC_FIGURE)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def summary_text(label: str, summary: dict) -> list[str]:
    """Lines of one posterior: parameters with median and intervals; evidences; upper
    limits on <sigma v> at fixed masses (if any)."""
    rows = [f"== {label} ({summary['mode']} mode, {summary['n_events']} events) ==",
            f"{'parameter':<24}{'median':>12}{'68% interval':>26}{'95% interval':>26}"
            f"{'truth':>12}{'realised':>12}"]
    for name, p in summary["parameters"].items():
        flag = " (derived)" if p.get("derived") else ""
        rows.append(f"{name + flag:<24}{p['p50']:>12.4g}"
                    f"{'[' + _fmt(p['p16']) + ', ' + _fmt(p['p84']) + ']':>26}"
                    f"{'[' + _fmt(p['p2.5']) + ', ' + _fmt(p['p97.5']) + ']':>26}"
                    f"{_fmt(p.get('truth')):>12}{_fmt(p.get('realised')):>12}")
    rows.append(f"ln Z (signal)           {summary['log_evidence']:.3f} +- "
                f"{summary['log_evidence_err']:.3f}")
    bkg = summary.get("log_evidence_bkg_only")
    rows.append(f"ln Z (background only)  {'-' if bkg is None else f'{bkg:.3f}'}")
    bf = summary.get("log_bayes_factor")
    rows.append(f"ln Bayes factor         {_fmt(bf)}"
                + ("" if bf is None else f"  (Bayes factor {np.exp(min(bf, 700)):.4g})"))
    ul = summary.get("upper_limits")
    for lim in (ul or {}).get("limits", []):
        rows.append(f"{ul['credibility']:.0%} upper limit on {ul['parameter']} at m = "
                    f"{lim['mass_TeV']:g} TeV: {lim['uniform']:.4g} "
                    f"({ul['priors']['uniform']}), {lim['log_uniform']:.4g} "
                    f"({ul['priors']['log_uniform']})")
    return rows + [""]


def _counts_text(name: str, comps: dict, counts, truth: dict) -> list[str]:
    rows = [f"== expected counts of {name} at the posterior median ==",
            f"{'component':<16}{'mu (norm.zarr)':>16}{'sum of nu_k':>16}{'rel. diff':>12}"
            f"{'MC truth':>10}"]
    for k, c in comps.items():
        s = float(c["nu"].sum())
        rows.append(f"{k:<16}{c['mu']:>16.6g}{s:>16.6g}{abs(s / c['mu'] - 1):>12.2e}"
                    f"{truth.get(k, '-'):>10}")
    total = sum(c["mu"] for c in comps.values())
    rows.append(f"{'total':<16}{total:>16.6g}{'':>16}{'':>12}{int(counts.sum()):>10}"
                "  (data events)")
    return rows + [""]


def write_report(cfg: dict, results: str | Path, out: str | Path) -> list[Path]:
    """Write the report of a finished campaign into ``out``; returns the files written.

    Reads results/{campaign}/posterior/{summary.json, corner.png} (per observation too,
    when the campaign has several) and each observation's events.fits, norm.zarr,
    binned.zarr and model figures (figures/).
    """
    from .events import read_events
    from .models.dark_matter import DarkMatterModel
    from .models.plots import MODEL_FIGURES
    from .normalise import load
    from .observation import pointing_from_config, roi_from_config

    base = Path(results) / cfg["campaign"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [o["name"] for o in cfg["observations"]]
    targets = [("joint", base / "posterior")] + (
        [(n, base / n / "posterior") for n in names] if len(names) > 1 else [])
    lines = [f"gammadm report: campaign {cfg['campaign']}", ""]
    written = []
    joint = None
    for label, d in targets:
        summary = _read_json(d / "summary.json")
        joint = joint or (summary, d / "summary.json")
        lines += summary_text(f"posterior {label}", summary)
        corner = d / "corner.png"
        if not corner.exists():
            raise ReportError(f"{corner} does not exist; run the sample stage first")
        dest = out / ("corner.png" if label == "joint" else f"{label}/corner.png")
        dest.parent.mkdir(parents=True, exist_ok=True)
        written.append(Path(shutil.copyfile(corner, dest)))
    medians = _medians(*joint)
    # what the figures need of the models: the dark matter's spectrum (the rest is in
    # the stores); no IRF or catalogue reading
    dm = DarkMatterModel.from_config(cfg)
    roi = roi_from_config(cfg)
    for name, obs_cfg in zip(names, cfg["observations"]):
        od = out / name
        od.mkdir(parents=True, exist_ok=True)
        path, norm = base / name / "events.fits", base / name / "norm.zarr"
        figures = [base / name / "figures" / f for f in MODEL_FIGURES]
        for need in (path, norm, *figures):
            if not need.exists():
                raise ReportError(f"{need} does not exist; run the campaign's stages first")
        # the model figures (`gammadm plot-models`) are drawn while the sampler runs
        written += [Path(shutil.copyfile(f, od / f.name)) for f in figures]
        events = read_events(path, roi, cfg["roi"]["strict"], pointing_from_config(obs_cfg))
        model = _binned_model(base / name / "binned.zarr")
        comps = fitted_expectations(cfg, name, dm, model, load(norm), medians, events.n)
        written += [plot_count_maps(model, comps, name, od),
                    plot_spectrum(model, comps, name, od)]
        truth = {}
        if events.mc is not None:
            written.append(plot_mc_truth(model, events, name, od))
            n = np.bincount(events.mc["component"], minlength=len(events.mc_components))
            truth = dict(zip(events.mc_components, n.tolist()))
        lines += _counts_text(name, comps, model.counts, truth)
        (od / "expected.json").write_text(json.dumps({
            "n_events": int(events.n), "data_counts": int(model.counts.sum()),
            "components": {k: {"mu": c["mu"], "sum_nu": float(c["nu"].sum()),
                               "mc_truth": truth.get(k)} for k, c in comps.items()},
            "parameters": medians}, indent=1) + "\n")
        written.append(od / "expected.json")
    (out / "summary.txt").write_text("\n".join(lines))
    return written + [out / "summary.txt"]
