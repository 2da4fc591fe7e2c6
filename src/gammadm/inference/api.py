"""Library API: (loglike, prior_transform, ndim, names) for any sampler.

From a campaign's results::

    from gammadm.config import load_config
    from gammadm.inference.api import model_from_results

    cfg = load_config("config/config.yaml")
    model = model_from_results(cfg, "results")          # results/{campaign}/{obs}/...
    loglike, prior_transform, ndim, names = model.as_tuple()

    import dynesty
    sampler = dynesty.NestedSampler(loglike, prior_transform, ndim, nlive=500)
    sampler.run_nested()
    print(dict(zip(names, sampler.results.samples[-1])))

or from plain arrays (toys, other pipelines)::

    from gammadm.inference.api import model_from_arrays
    from gammadm.inference.data import ObservationArrays
    model = model_from_arrays([arrays], cfg_like, spectral=[my_spectrum])

``cfg_like`` needs only ``likelihood.mode``, ``mixture`` (fractions mode), ``priors`` and
``dark_matter.name``. ``spectral`` gives, per observation, an object with
``terms(mass_TeV) -> DMTerms`` (a `SpectralTable`, or `FunctionSpectrum` for toys).

The likelihood built from stores pickles as its store paths (`StoreModelSpec`), not its
arrays; a worker unpickling it reads the stores once per process (a small cache).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError
from .data import ObservationArrays, load_binned_observation, load_observation
from .likelihood import FractionsLikelihood, RatesLikelihood
from .priors import Dirichlet, PriorSet, prior_from_config
from .spectral import DMTerms, SpectralTable
from .tree import MixtureTree

__all__ = ["Model", "FunctionSpectrum", "StoreModelSpec", "model_from_arrays",
           "model_from_results", "model_from_stores", "store_paths", "binned_path",
           "build_priors"]


@dataclass
class Model:
    """A likelihood and its prior: call ``as_tuple()`` for a sampler."""

    loglike: object
    prior: PriorSet
    tree: MixtureTree | None  # fractions mode: its groups' last values are derived

    @property
    def names(self) -> list[str]:
        return self.prior.names

    @property
    def ndim(self) -> int:
        return self.prior.ndim

    def as_tuple(self):
        return self.loglike, self.prior, self.prior.ndim, list(self.prior.names)


class FunctionSpectrum:
    """Spectral factors from a function: ``fn(mass) -> S [n_sub]`` (no lines)."""

    def __init__(self, fn):
        self.fn = fn

    def terms(self, mass_tev: float) -> DMTerms:
        return DMTerms(np.ascontiguousarray(self.fn(mass_tev), float),
                       np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


def build_priors(cfg: dict, names: list[str], tree: MixtureTree | None,
                 n_scales: int) -> PriorSet:
    """The prior set for a likelihood's parameter names (same order)."""
    pri = cfg["priors"]
    entries = []
    if "mass_TeV" in names:
        entries.append((["mass_TeV"], prior_from_config(pri["mass_TeV"], "priors.mass_TeV")))
    if "sigmav_cm3_s" in names:
        entries.append((["sigmav_cm3_s"], prior_from_config(pri["sigmav_cm3_s"],
                                                            "priors.sigmav_cm3_s")))
    if tree is not None:
        for g in tree.groups:
            entries.append((list(g.names[:-1]), Dirichlet(g.alpha, g.names)))
    scale = prior_from_config(pri["background_scale"], "priors.background_scale") \
        if n_scales else None
    for name in names[len(names) - n_scales:]:
        entries.append(([name], scale))
    prior = PriorSet(entries)
    assert prior.names == names, (prior.names, names)
    return prior


def _mass_range(cfg: dict, dm) -> tuple[float, float]:
    p = prior_from_config(cfg["priors"]["mass_TeV"], "priors.mass_TeV")
    lo, hi = float(p.transform(1e-9)), float(p.transform(1 - 1e-9))
    d_lo, d_hi = dm.mass_range_tev
    if lo < d_lo * (1 - 1e-9) or hi > d_hi * (1 + 1e-9):
        raise ConfigError("priors.mass_TeV", f"prior range {lo:.4g}-{hi:.4g} TeV exceeds the "
                          f"spectrum's tabulated masses {d_lo:.4g}-{d_hi:.4g} TeV")
    return max(lo, d_lo), min(hi, d_hi)


def model_from_arrays(observations: list[ObservationArrays], cfg: dict, spectral=None,
                      signal: bool = True) -> Model:
    """A `Model` from plain arrays (see the module docstring)."""
    mode = cfg["likelihood"]["mode"]
    dm_name = cfg.get("dark_matter", {}).get("name", "DM")
    if spectral is None:
        spectral = [None] * len(observations)
    if mode == "fractions":
        if len(observations) != 1:
            raise ConfigError("likelihood.mode", "fractions mode is single-observation")
        tree = MixtureTree(cfg["mixture"], drop=None if signal else dm_name)
        like = FractionsLikelihood(observations[0], tree, spectral[0], dm_name, signal)
        n_scales = 0
    else:
        tree = None
        like = RatesLikelihood(observations, spectral, signal)
        n_scales = sum(len(a.bkg_names) for a in observations)
    prior = build_priors(cfg, like.names, tree, n_scales)
    return Model(like, prior, tree)


def binned_path(norm: str | Path) -> Path:
    """An observation's binned.zarr: beside its norm.zarr."""
    return Path(norm).parent / "binned.zarr"


def store_paths(cfg: dict, results: str | Path = "results",
                obs: str | None = None) -> list[tuple[str, str, str]]:
    """(observation, norm.zarr, marginals.zarr) for the campaign's observations."""
    names = [obs] if obs else [o["name"] for o in cfg["observations"]]
    known = {o["name"] for o in cfg["observations"]}
    for n in names:
        if n not in known:
            raise ConfigError("observations", f"no observation named {n!r}")
    base = Path(results) / cfg["campaign"]
    return [(n, str(base / n / "norm.zarr"), str(base / n / "marginals.zarr")) for n in names]


@dataclass(frozen=True)
class StoreModelSpec:
    """What a store-backed model is built from (hashable, small to pickle)."""

    config_json: str
    stores: tuple  # ((obs, norm, marginals), ...)
    signal: bool = True
    shard: tuple = (0, 1)  # (rank, size): this process holds event shard rank of size
    binned: bool = False  # Poisson bins of binned.zarr (beside norm.zarr) instead of events

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)


@functools.lru_cache(maxsize=4)
def _build(spec: StoreModelSpec) -> Model:
    """Read the stores once per process and spec (workers unpickle specs per task)."""
    import zarr

    from ..models.dark_matter import DarkMatterModel
    from ..store import chunk_range

    cfg = spec.config
    rank, size = spec.shard
    arrays, spectral = [], []
    dm = DarkMatterModel.from_config(cfg) if spec.signal else None
    # observations of one ROI have the same energy sub-intervals: one table serves them
    # all (building one takes ~0.4 s on the seed: the spectra by quadrature at every
    # mass node)
    tables: dict[tuple[bytes, bytes], SpectralTable] = {}
    for name, norm, marg in spec.stores:
        if spec.binned:
            a = _bin_shard(load_binned_observation(norm, binned_path(norm), name), chunk_range, rank, size)
        else:
            n = int(zarr.open_group(marg, mode="r").attrs["n_events"])
            a = load_observation(norm, marg, chunk_range(n, rank, size), name=name)
        arrays.append(a)
        if dm is None:
            spectral.append(None)
            continue
        key = (a.sub_edges.tobytes(), a.line_energies.tobytes())
        if key not in tables:
            tables[key] = SpectralTable(dm, a.sub_edges, a.line_energies, _mass_range(cfg, dm))
        spectral.append(tables[key])
    return model_from_arrays(arrays, cfg, spectral, spec.signal)


def _bin_shard(a: ObservationArrays, chunk_range, rank: int, size: int) -> ObservationArrays:
    """Bins of shard ``rank`` of ``size`` (the expected totals stay those of all bins)."""
    if size == 1:
        return a
    import dataclasses

    sl = chunk_range(a.n, rank, size)
    return dataclasses.replace(
        a, dm_first=a.dm_first[sl], dm_band=np.ascontiguousarray(a.dm_band[sl]),
        line_g=np.ascontiguousarray(a.line_g[sl]), line_first=a.line_first[sl],
        bkg=np.ascontiguousarray(a.bkg[sl]), weight=a.weight[sl])


class StoreLikelihood:
    """The likelihood of a store-backed model; pickles as its `StoreModelSpec`."""

    def __init__(self, spec: StoreModelSpec):
        self.spec = spec
        self._inner = None

    @property
    def inner(self):
        # held once built: hashing the spec for the cache on every call cost more than
        # the seed's event sum
        if self._inner is None:
            self._inner = _build(self.spec).loglike
        return self._inner

    def __call__(self, theta) -> float:
        return self.inner(theta)

    def __getstate__(self):
        return {"spec": self.spec}

    def __setstate__(self, state):
        self.spec = state["spec"]
        self._inner = None


def model_from_results(cfg: dict, results: str | Path = "results", obs: str | None = None,
                       signal: bool = True, shard: tuple = (0, 1),
                       binned: bool = False) -> Model:
    """A `Model` from a campaign's stores: results/{campaign}/{obs}/{norm,marginals}.zarr
    (or, ``binned``, the Poisson bins of binned.zarr)."""
    return model_from_stores(cfg, store_paths(cfg, results, obs), signal, shard, binned)


def model_from_stores(cfg: dict, stores: list[tuple[str, str, str]], signal: bool = True,
                      shard: tuple = (0, 1), binned: bool = False) -> Model:
    """A `Model` from explicit (observation, norm.zarr, marginals.zarr) paths, e.g. a
    shared norm.zarr with the marginals of one of many simulated event lists."""
    spec = StoreModelSpec(json.dumps(cfg, sort_keys=True),
                          tuple(tuple(str(p) for p in s) for s in stores), signal,
                          tuple(shard), binned)
    built = _build(spec)
    return Model(StoreLikelihood(spec), built.prior, built.tree)
