"""Results of a sampling run: weighted samples, summary.json (validated), corner.png."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np

from ..config import load_schema

__all__ = ["QUANTILES", "add_bayes_factor", "posterior_table", "read_bkg_evidence",
           "set_bayes_factor", "weighted_quantile", "weighted_samples", "write_summary",
           "write_samples", "write_corner", "realised_fractions"]

#: Reported quantiles (percent) of every parameter.
QUANTILES = (0.5, 2.5, 16, 50, 84, 97.5, 99.5)


def weighted_samples(results, model) -> tuple[np.ndarray, np.ndarray, list[str], list[bool]]:
    """(samples [n, p], normalised weights [n], names, derived flags): the sampled
    parameters plus every Dirichlet group's last value (derived)."""
    x = np.asarray(results.samples, float)
    lw = np.asarray(results.logwt, float)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    names = list(model.names)
    flags = [False] * len(names)
    if model.tree is not None:
        off = 1 if "mass_TeV" in names else 0
        cols, i = [], off
        for g in model.tree.groups:
            k = len(g.names) - 1
            cols.append(np.clip(1.0 - x[:, i:i + k].sum(axis=1), 0.0, None))
            names.append(g.names[-1])
            flags.append(True)
            i += k
        if cols:
            x = np.column_stack([x] + cols)
    return x, w, names, flags


def weighted_quantile(v: np.ndarray, w: np.ndarray, q: float) -> float:
    """The q quantile (0 <= q <= 1) of samples v with weights w (any normalisation),
    interpolated linearly in the weighted empirical CDF."""
    order = np.argsort(v, kind="stable")
    cdf = np.cumsum(w[order])
    cdf /= cdf[-1]
    return float(np.interp(q, cdf, v[order]))


def posterior_table(x, w, names, flags, truths: dict, realised: dict) -> dict:
    """The summary's ``parameters`` block."""
    out = {}
    for j, (name, der) in enumerate(zip(names, flags)):
        entry = {f"p{q:g}": weighted_quantile(x[:, j], w, q / 100) for q in QUANTILES}
        entry["mean"] = float(np.sum(w * x[:, j]))
        entry["truth"] = truths.get(name)
        entry["realised"] = realised.get(name)
        entry["derived"] = der
        out[name] = entry
    return out


def realised_fractions(tree, counts: dict) -> dict:
    """Realised ROI fraction of every tree node within its siblings, from MC counts per
    leaf (the truth's realisation beside the nominal tree values)."""
    def total(node):
        if node.get("children"):
            return sum(total(c) for c in node["children"])
        return counts.get(node["name"], 0)

    out = {}

    def walk(nodes):
        tot = sum(total(n) for n in nodes)
        for n in nodes:
            if len(nodes) > 1 and tot > 0:
                out[n["name"]] = total(n) / tot
            if n.get("children"):
                walk(n["children"])
    walk(tree)
    return out


def write_summary(path: str | Path, summary: dict) -> None:
    """Validate against the package's summary schema, then write."""
    jsonschema.validate(summary, load_schema("summary"))
    Path(path).write_text(json.dumps(summary, indent=1) + "\n")


def read_bkg_evidence(path: str | Path) -> float:
    """ln Z of a background-only run (its evidence.json, ``gammadm sample
    --background-only``); ValueError naming the file if it is not one."""
    try:
        bkg = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if (not isinstance(bkg, dict) or bkg.get("model") != "background_only"
            or not isinstance(bkg.get("log_evidence"), (int, float))):
        raise ValueError(f"{path}: not the evidence.json of a background-only run "
                         "(needs model 'background_only' and a numeric log_evidence)")
    return float(bkg["log_evidence"])


def set_bayes_factor(summary: dict, log_z_bkg: float | None) -> dict:
    """Fill a summary's log_evidence_bkg_only and log_bayes_factor (None without a
    background-only run); returns the summary."""
    summary["log_evidence_bkg_only"] = log_z_bkg
    summary["log_bayes_factor"] = (None if log_z_bkg is None
                                   else summary["log_evidence"] - log_z_bkg)
    return summary


def add_bayes_factor(signal: str | Path, bkg_only: str | Path, out: str | Path) -> float:
    """Write ``out``: the signal run's summary with the background-only evidence and the
    Bayes factor filled in (the two runs are independent jobs; this joins them).

    Parameters
    ----------
    signal : path
        summary.json of the signal run (``gammadm sample``).
    bkg_only : path
        evidence.json of the background-only run (``gammadm sample --background-only``).
    out : path
        The joined summary, validated against the summary schema.

    Returns
    -------
    float
        ln B = ln Z_signal - ln Z_bkg.

    Raises
    ------
    ValueError
        Naming the file that is not what it should be.
    """
    try:
        summary = json.loads(Path(signal).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{signal}: not valid JSON ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("log_evidence"),
                                                       (int, float)):
        raise ValueError(f"{signal}: not the summary of a signal run (no numeric "
                         "log_evidence)")
    set_bayes_factor(summary, read_bkg_evidence(bkg_only))
    try:
        write_summary(out, summary)
    except jsonschema.ValidationError as exc:
        raise ValueError(f"{signal}: not a valid summary ({exc.message})") from None
    return summary["log_bayes_factor"]


def write_samples(path: str | Path, results, x, w, names) -> None:
    """samples.npz: samples [n, p], weights [n] (normalised), log_weights, logl, names."""
    np.savez(path, samples=x, weights=w, log_weights=np.asarray(results.logwt),
             logl=np.asarray(results.logl), names=np.array(names))


def write_corner(path: str | Path, x, w, names, truths: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import corner
    import matplotlib.pyplot as plt

    keep = [j for j in range(x.shape[1]) if np.ptp(x[:, j]) > 0]
    data = x[:, keep].copy()
    labels = [names[j] for j in keep]
    for j, name in enumerate(labels):  # wide positive ranges read better in log10
        if name in ("mass_TeV", "sigmav_cm3_s"):
            data[:, j] = np.log10(data[:, j])
            labels[j] = f"log10 {name}"
    tv = [truths.get(names[j]) for j in keep]
    tv = [None if v is None else (np.log10(v) if labels[k].startswith("log10") else v)
          for k, v in enumerate(tv)]
    # axes over the central 99.9 % of the posterior weight: the dead points span the
    # whole prior, which would squeeze a narrow posterior into one or two bins
    fig = corner.corner(data, weights=w, labels=labels, truths=tv, range=[0.999] * len(keep),
                        quantiles=[0.16, 0.5, 0.84], show_titles=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
