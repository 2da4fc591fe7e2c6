"""Per-observation arrays of the likelihood, and their one loader from the stores.

`ObservationArrays` is what the likelihood kernels need for one observation (or one
shard of its events): the banded dark-matter kernel, the line kernel, the background
lambdas and the expected counts. `load_observation` is the only place that knows the
layout of ``norm.zarr`` and ``marginals.zarr``; `binned_arrays` builds the same object
from Poisson-bin arrays nu_{k,b}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..store import IncompleteStoreError, read_complete

__all__ = ["load_binned_observation", "ObservationArrays", "load_observation", "binned_arrays",
           "compact_band"]


def compact_band(first: np.ndarray, band: np.ndarray, rows: int = 65536):
    """A banded kernel without its zeros at either end of each row, rows back to back.

    A band is as wide as its widest event; most rows are much shorter (half the width on
    the rates seed), and the likelihood, bound by memory traffic, reads each value once
    per call. Dropping the end zeros changes no sum (adding 0 is exact).

    Returns
    -------
    first : int64 [n]
        Sub-interval of each row's first kept value.
    ptr : int64 [n + 1]
        Row e is ``values[ptr[e]:ptr[e + 1]]``.
    values : float [ptr[-1]]
    """
    n, w = band.shape
    lo, hi = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(0, n, rows):  # in blocks: no [n, w] boolean at once
        nz = band[i:i + rows] != 0.0
        some = nz.any(axis=1)
        lo[i:i + rows] = np.where(some, np.argmax(nz, axis=1), 0)
        hi[i:i + rows] = np.where(some, w - np.argmax(nz[:, ::-1], axis=1), 0)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(hi - lo, out=ptr[1:])
    values = np.empty(ptr[-1])
    cols = np.arange(w)
    for i in range(0, n, rows):
        j = slice(i, i + rows)
        keep = (cols >= lo[j, None]) & (cols < hi[j, None])
        values[ptr[i]:ptr[min(i + rows, n)]] = band[j][keep]  # row-major: rows in order
    return np.asarray(first, np.int64) + lo, ptr, values


@dataclass
class ObservationArrays:
    """Likelihood inputs of one observation (or a shard of its events or bins).

    Attributes
    ----------
    name : str
    dm_first : int64 [n]; dm_band : float [n, w]
        Banded dark-matter kernel: lambda_DM(e|m) = sum_j S[first_e + j] band[e, j]
        [TeV^-1 sr^-1 per amplitude unit, with S in the units of `spectral_factor`].
    line_g : float [n, w_l]
        Pointwise line kernel, banded: column j of row e is ``line_energies``
        [line_first[e] + j] [TeV] (dense: line_first = 0).
    bkg : float [n, n_bkg]
        lambda_k(e) of each background at its nominal normalisation [TeV^-1 sr^-1].
    bkg_names : list of str
    mu_bkg : float [n_bkg]
        Expected ROI counts of each background at nominal normalisation.
    dm_mu_kernel : float [n_sub]
        mu_DM(m) = amplitude (S(m) . dm_mu_kernel + lines) [per amplitude unit].
    dm_points : float [n_points]
        Pointwise H(E) at ``line_energies`` (for the lines' mu).
    sub_edges : float [n_sub + 1]
    weight : float [n]
        1 per event, or the counts of Poisson bins.
    binned : bool
    meta : dict
        n_events (whole observation), n_cut, livetime_s, dark_matter name.
    """

    name: str
    dm_first: np.ndarray
    dm_band: np.ndarray
    line_g: np.ndarray
    line_energies: np.ndarray
    bkg: np.ndarray
    bkg_names: list
    mu_bkg: np.ndarray
    dm_mu_kernel: np.ndarray
    dm_points: np.ndarray
    sub_edges: np.ndarray
    weight: np.ndarray
    binned: bool = False
    meta: dict = field(default_factory=dict)
    line_first: np.ndarray | None = None

    def __post_init__(self):
        if self.line_first is None:
            self.line_first = np.zeros(self.dm_first.shape[0], np.int64)


    @property
    def n(self) -> int:
        return self.dm_first.shape[0]


def _background_mu(norm: dict, name: str, model: str) -> float:
    if model == "ccr":
        return float(norm["ccr/mu"][0])
    if model == "hgps":
        return float(np.sum(norm["hgps/mu"]))
    return float(np.sum(norm[f"{name}/mu"]))


def _banded(root, name: str, first: str, sl: slice, path) -> tuple[np.ndarray, np.ndarray]:
    """(first, band) of a banded per-event kernel for events ``sl`` (marginals.zarr
    stores the first column's index as a float array beside the band)."""
    band = np.ascontiguousarray(_checked(root, name, sl, path))
    return np.asarray(_checked(root, first, sl, path), np.int64), band


def _checked(root, name: str, sl: slice, path) -> np.ndarray:
    """Rows ``sl`` of a per-event array; names the first unwritten chunk if NaN is left."""
    arr = root[name]
    data = np.asarray(arr[sl], float)
    bad = np.isnan(data).reshape(data.shape[0], -1).any(axis=1)
    if bad.any():
        row = (sl.start or 0) + int(np.flatnonzero(bad)[0])
        c = arr.chunks[0]
        raise IncompleteStoreError(
            f"{path}: array '{name}' is "
            f"incomplete: chunk {row // c} was never written; re-run chunk job "
            f"{row // c}/{root.attrs.get('n_chunks')}")
    return data


def load_observation(norm_path: str | Path, marginals_path: str | Path,
                 events: slice | None = None, name: str | None = None) -> ObservationArrays:
    """Read one observation's likelihood inputs (events ``events``, default all).

    Raises `IncompleteStoreError` naming the first unwritten chunk of either store.
    """
    import zarr

    norm = read_complete(norm_path)
    try:
        root = zarr.open_group(str(marginals_path), mode="r")
    except FileNotFoundError:
        raise IncompleteStoreError(f"{marginals_path}: no marginals store; run "
                                   "'gammadm marginalise' first") from None
    attrs = dict(root.attrs)
    sl = events or slice(0, int(attrs["n_events"]))
    backgrounds = attrs["backgrounds"]
    names = list(backgrounds)
    first, band = _banded(root, "dm/g", "dm/g_first", sl, marginals_path)
    line_first, line_g = _banded(root, "dm/line_g", "dm/line_first", sl, marginals_path)
    cols = [_checked(root, f"bkg/{k}", sl, marginals_path) for k in names]
    bkg = np.stack(cols, axis=1) if cols else np.zeros((first.size, 0))
    edges = np.asarray(norm["axes/sub_edges"], float)
    meta = {"n_events": int(attrs["n_events"]), "livetime_s": float(attrs["livetime_s"]),
            "n_cut": int(attrs.get("n_cut_roi", 0)) + int(attrs.get("n_cut_gti", 0)),
            "dark_matter": attrs.get("dark_matter"), "norm": str(norm_path),
            "marginals": str(marginals_path)}
    return ObservationArrays(
        name=name or str(attrs.get("observation", "obs")), dm_first=first, dm_band=band,
        line_g=line_g, line_first=line_first,
        line_energies=np.asarray(norm["axes/line_energies"], float),
        bkg=np.ascontiguousarray(bkg), bkg_names=names,
        mu_bkg=np.array([_background_mu(norm, k, m) for k, m in backgrounds.items()]),
        dm_mu_kernel=np.asarray(norm["dm/h"], float) * np.diff(edges),
        dm_points=np.asarray(norm["dm/points"], float), sub_edges=edges,
        weight=np.ones(first.size), meta=meta)


def load_binned_observation(norm_path: str | Path, binned_path: str | Path,
                            name: str | None = None) -> ObservationArrays:
    """One observation's Poisson-bin inputs from its ``binned.zarr`` (nu_k per recon bin
    and the counts histogram; `gammadm bin`). Every bin is kept, so that the expected
    totals are sums over the bins; empty bins cost nothing in the log sum."""
    from .. import binned as binned_store

    b = binned_store.load(binned_path)
    backgrounds = b.attrs["backgrounds"]
    names = list(backgrounds)
    width = np.diff(b.sub_edges)
    nu_dm = np.ascontiguousarray((b.dm_kernel() * width[:, None]).T)  # [bins, sub]
    points = b.dm_points_kernel()
    a = binned_arrays(name or str(b.attrs.get("observation", "obs")), b.counts.ravel(),
                      np.array([b.nu(k).ravel() for k in names]), names, nu_dm,
                      b.sub_edges, b.line_energies, np.ascontiguousarray(points.T),
                      points.sum(axis=1))
    a.meta.update({"n_cut": int(b.attrs.get("n_cut_roi", 0)) + int(b.attrs.get("n_cut_gti", 0)),
                   "livetime_s": float(b.attrs.get("livetime_s", np.nan)),
                   "dark_matter": b.attrs.get("dark_matter"), "norm": str(norm_path),
                   "binned": str(binned_path)})
    return a


def binned_arrays(name: str, counts, nu_bkg, bkg_names: list[str], nu_dm, sub_edges,
                  line_energies=None, nu_dm_lines=None, dm_points=None) -> ObservationArrays:
    """Poisson-bin inputs: counts [n_bins], nu_bkg [n_bkg, n_bins] (nominal),
    nu_dm [n_bins, n_sub] (so that nu_DM,b(m) = amplitude sum_s S_s(m) nu_dm[b, s]);
    optional line kernels nu_dm_lines [n_bins, n_points] on ``line_energies`` with their
    ROI totals ``dm_points``. Expected totals are the sums over the bins."""
    counts = np.asarray(counts, float)
    nu_bkg = np.atleast_2d(np.asarray(nu_bkg, float))
    nu_dm = np.ascontiguousarray(nu_dm, float)
    nb = counts.size
    if nu_bkg.shape != (len(bkg_names), nb) or nu_dm.shape[0] != nb:
        raise ValueError(f"binned arrays: counts {counts.shape}, nu_bkg {nu_bkg.shape} "
                         f"(want {(len(bkg_names), nb)}), nu_dm {nu_dm.shape} (want ({nb}, n_sub))")
    if line_energies is None:
        line_energies = np.array([1.0, 2.0])
        nu_dm_lines = np.zeros((nb, 2))
        dm_points = np.zeros(2)
    return ObservationArrays(
        name=name, dm_first=np.zeros(nb, np.int64), dm_band=nu_dm,
        line_g=np.ascontiguousarray(nu_dm_lines, float),
        line_energies=np.asarray(line_energies, float),
        bkg=np.ascontiguousarray(nu_bkg.T), bkg_names=list(bkg_names),
        mu_bkg=nu_bkg.sum(axis=1), dm_mu_kernel=nu_dm.sum(axis=0),
        dm_points=np.asarray(dm_points, float), sub_edges=np.asarray(sub_edges, float),
        weight=counts, binned=True, meta={"n_events": int(counts.sum())})
