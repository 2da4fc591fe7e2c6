"""Priors as objects with a unit-cube transform (PHYSICS.md section 6).

Every prior maps unit-cube coordinates u to parameter values deterministically (the
same u gives the same point; the input array is never modified). A `Dirichlet` over K
siblings uses K - 1 coordinates (stick-breaking) and yields its first K - 1 values as
sampled parameters; the last one is derived (1 - their sum).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.special import betaincinv, ndtri

from ..config import ConfigError

__all__ = ["Uniform", "LogUniform", "Normal", "LogNormal", "Dirichlet", "PriorSet",
           "prior_from_config"]


class _Scalar:
    """A one-dimensional prior; ``describe`` names it with its two parameters."""

    ndim = 1
    kind = ""

    def describe(self) -> str:
        a, b = (getattr(self, f.name) for f in fields(self))
        return f"{self.kind}({a:g}, {b:g})"


@dataclass(frozen=True)
class Uniform(_Scalar):
    """Uniform on [low, high]."""

    low: float
    high: float
    kind = "uniform"

    def transform(self, u: np.ndarray) -> np.ndarray:
        return self.low + (self.high - self.low) * np.asarray(u, float)


@dataclass(frozen=True)
class LogUniform(_Scalar):
    """Log-uniform (density proportional to 1/x) on [low, high], low > 0."""

    low: float
    high: float
    kind = "log_uniform"

    def transform(self, u: np.ndarray) -> np.ndarray:
        return self.low * (self.high / self.low) ** np.asarray(u, float)


@dataclass(frozen=True)
class Normal(_Scalar):
    """Normal with mean and standard deviation sigma."""

    mean: float
    sigma: float
    kind = "normal"

    def transform(self, u: np.ndarray) -> np.ndarray:
        return self.mean + self.sigma * ndtri(np.asarray(u, float))


@dataclass(frozen=True)
class LogNormal(_Scalar):
    """Log-normal: ln x is normal with ``mean`` and ``sigma`` (so the median is e^mean)."""

    mean: float
    sigma: float
    kind = "log_normal"

    def transform(self, u: np.ndarray) -> np.ndarray:
        return np.exp(self.mean + self.sigma * ndtri(np.asarray(u, float)))


@dataclass(frozen=True)
class Dirichlet:
    """Dirichlet(alpha_1..alpha_K) by stick-breaking with K - 1 unit coordinates:
    v_i = Beta^-1(u_i; alpha_i, sum_{j>i} alpha_j), x_i = v_i prod_{j<i} (1 - v_j)."""

    alpha: tuple
    names: tuple = ()  # all K names, for `describe`

    @property
    def ndim(self) -> int:
        return len(self.alpha) - 1

    def __post_init__(self):
        a = np.asarray(self.alpha, float)
        # the Beta parameters of each stick, once (full() runs twice per sampler point)
        object.__setattr__(self, "_a", a[:-1].copy())
        object.__setattr__(self, "_rest", np.cumsum(a[::-1])[::-1][1:].copy())  # sum_{j>i}

    def full(self, u: np.ndarray) -> np.ndarray:
        """All K fractions for K - 1 unit coordinates."""
        v = betaincinv(self._a, self._rest, np.asarray(u, float))
        out = np.empty(v.size + 1)
        stick = 1.0  # what is left of the stick: prod_{j<i} (1 - v_j)
        for i, vi in enumerate(v.tolist()):
            out[i] = vi * stick
            stick *= 1.0 - vi
        out[-1] = stick
        return out

    def transform(self, u: np.ndarray) -> np.ndarray:
        return self.full(u)[:-1]

    def describe(self) -> str:
        if self.names:
            return "dirichlet(" + ", ".join(f"{n}={a:g}" for n, a in zip(self.names,
                                                                         self.alpha)) + ")"
        return "dirichlet(" + ", ".join(f"{a:g}" for a in self.alpha) + ")"


class PriorSet:
    """An ordered set of named priors: the unit-cube transform of a whole vector.

    ``entries``: (names, prior) pairs; a prior with ndim d takes d coordinates and
    its d names (a `Dirichlet`'s last value is derived, not sampled).
    """

    def __init__(self, entries: list[tuple[list[str], object]]):
        self.entries = list(entries)
        self.names = [n for names, _ in self.entries for n in names]
        self.ndim = len(self.names)
        self._slices = []
        i = 0
        for names, prior in self.entries:
            if len(names) != prior.ndim:
                raise ValueError(f"{names}: a {prior.describe()} prior takes {prior.ndim} names")
            self._slices.append(slice(i, i + prior.ndim))
            i += prior.ndim

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Parameter vector for the unit-cube point u (u is not modified)."""
        out = np.empty(self.ndim)
        for sl, (_, prior) in zip(self._slices, self.entries):
            out[sl] = prior.transform(u[sl])
        return out

    def describe(self) -> dict:
        return {",".join(names): prior.describe() for names, prior in self.entries}


def prior_from_config(spec: dict, field: str):
    """A one-dimensional prior from a config entry ``{type, low/high or mean/sigma}``."""
    kind = spec["type"]
    try:
        if kind == "uniform":
            return Uniform(float(spec["low"]), float(spec["high"]))
        if kind == "log_uniform":
            return LogUniform(float(spec["low"]), float(spec["high"]))
        if kind == "normal":
            return Normal(float(spec["mean"]), float(spec["sigma"]))
        if kind == "log_normal":
            return LogNormal(float(spec["mean"]), float(spec["sigma"]))
    except KeyError as exc:
        raise ConfigError(f"{field}.{exc.args[0]}", f"required for a {kind} prior") from None
    raise ConfigError(f"{field}.type", f"unknown prior type {kind!r}")
