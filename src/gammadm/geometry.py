"""Energy and sky axes, cell solid angles and the closed region of interest.

Conventions (PHYSICS.md section 0): energies in TeV on logarithmic axes, Galactic
(l, b) in degrees with l wrapped to (-180, 180], solid angles in sr. A cell of the
(l, b) grid has dOmega = (pi/180) dl_deg (sin b_hi - sin b_lo).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "EnergyAxis",
    "SkyAxis",
    "Grid",
    "ROI",
    "cell_solid_angle",
    "wrap_lon",
    "log_edges",
    "linear_edges",
]

#: Relative tolerance of the closed ROI edges (PHYSICS.md section 4).
ROI_RTOL = 1e-9


def wrap_lon(lon_deg):
    """Wrap longitudes [deg] to (-180, 180]."""
    lon = np.mod(np.asarray(lon_deg, dtype=float) + 180.0, 360.0) - 180.0
    return np.where(lon == -180.0, 180.0, lon)


def log_edges(anchor: float, lo: float, hi: float, per_decade: int) -> np.ndarray:
    """Edges anchor * 10^(k / per_decade) covering [lo, hi], snapped outward.

    The anchor (e.g. an ROI edge) is always an edge of the result.
    """
    k_lo = np.floor(np.log10(lo / anchor) * per_decade + 1e-9)
    k_hi = np.ceil(np.log10(hi / anchor) * per_decade - 1e-9)
    return anchor * 10.0 ** (np.arange(k_lo, k_hi + 1) / per_decade)


def linear_edges(anchor: float, lo: float, hi: float, step: float) -> np.ndarray:
    """Edges anchor + k * step covering [lo, hi], snapped outward."""
    k_lo = np.floor((lo - anchor) / step + 1e-9)
    k_hi = np.ceil((hi - anchor) / step - 1e-9)
    return anchor + np.arange(k_lo, k_hi + 1) * step


@dataclass(frozen=True)
class _Axis:
    """Strictly increasing bin edges (validated on construction)."""

    edges: np.ndarray

    def __post_init__(self):
        edges = np.asarray(self.edges, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"{type(self).__name__} edges must be strictly increasing")
        object.__setattr__(self, "edges", edges)

    @property
    def widths(self) -> np.ndarray:
        """Bin widths, in the unit of the edges."""
        return np.diff(self.edges)

    @property
    def nbin(self) -> int:
        return self.edges.size - 1


@dataclass(frozen=True)
class EnergyAxis(_Axis):
    """A logarithmic energy axis; ``edges`` [TeV], positive and increasing."""

    def __post_init__(self):
        super().__post_init__()
        if self.edges[0] <= 0:
            raise ValueError("energy edges must be positive")

    @classmethod
    def from_range(cls, lo: float, hi: float, per_decade: int) -> EnergyAxis:
        """Edges from ``lo`` to ``hi`` (both edges) with ``per_decade`` bins per decade;
        if the range is not a whole number of bins the last bin is narrower."""
        n = int(np.ceil(np.log10(hi / lo) * per_decade - 1e-6))
        edges = lo * 10.0 ** (np.arange(n + 1) / per_decade)
        edges[-1] = hi
        return cls(edges)

    @property
    def nodes(self) -> np.ndarray:
        """Geometric bin centres [TeV]."""
        return np.sqrt(self.edges[1:] * self.edges[:-1])


@dataclass(frozen=True)
class SkyAxis(_Axis):
    """A linear axis in Galactic longitude or latitude; ``edges`` [deg]."""

    @classmethod
    def from_range(cls, lo: float, hi: float, step: float) -> SkyAxis:
        n = int(round((hi - lo) / step))
        if not np.isclose(lo + n * step, hi, rtol=0, atol=1e-9 * max(1.0, abs(hi))):
            raise ValueError(f"range [{lo}, {hi}] is not a whole number of {step} deg pixels")
        return cls(lo + np.arange(n + 1) * step)

    @property
    def nodes(self) -> np.ndarray:
        """Bin centres [deg]."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def cell_solid_angle(l_edges, b_edges) -> np.ndarray:
    """Solid angle [sr] of each (l, b) cell, shape (n_l, n_b).

    dOmega = (pi/180) * dl_deg * (sin b_hi - sin b_lo): exact on the sphere.
    """
    dl = np.radians(np.diff(np.asarray(l_edges, dtype=float)))
    dsinb = np.diff(np.sin(np.radians(np.asarray(b_edges, dtype=float))))
    return dl[:, None] * dsinb[None, :]


@dataclass(frozen=True)
class Grid:
    """An energy x longitude x latitude grid (true or reconstructed)."""

    energy: EnergyAxis
    lon: SkyAxis
    lat: SkyAxis

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.energy.nbin, self.lon.nbin, self.lat.nbin)

    @property
    def solid_angle(self) -> np.ndarray:
        """Cell solid angles [sr], shape (n_l, n_b)."""
        return cell_solid_angle(self.lon.edges, self.lat.edges)


@dataclass(frozen=True)
class ROI:
    """The closed region of interest [E_min, E_max] x [l_min, l_max] x [b_min, b_max].

    Edges are inclusive with a relative tolerance of 1e-9 (of the edge energy; of the
    range width, at least 1 deg, on the sky), so events written on an edge are kept.
    """

    energy_tev: tuple[float, float]
    l_deg: tuple[float, float]
    b_deg: tuple[float, float]

    def contains(self, energy, lon, lat) -> np.ndarray:
        """Boolean mask of events inside the closed ROI (lon wrapped to (-180, 180])."""
        e = np.asarray(energy, dtype=float)
        lon = wrap_lon(lon)
        lat = np.asarray(lat, dtype=float)
        e0, e1 = self.energy_tev
        l0, l1 = self.l_deg
        b0, b1 = self.b_deg
        tl = ROI_RTOL * max(l1 - l0, 1.0)
        tb = ROI_RTOL * max(b1 - b0, 1.0)
        return ((e >= e0 * (1 - ROI_RTOL)) & (e <= e1 * (1 + ROI_RTOL))
                & (lon >= l0 - tl) & (lon <= l1 + tl) & (lat >= b0 - tb) & (lat <= b1 + tb))

    @property
    def solid_angle(self) -> float:
        """Exact solid angle [sr] of the (l, b) rectangle."""
        return float(cell_solid_angle(self.l_deg, self.b_deg)[0, 0])

    def recon_grid(self, per_decade: int, pixel_deg: float) -> Grid:
        """The reconstructed-space binning of the ROI."""
        return Grid(
            EnergyAxis.from_range(*self.energy_tev, per_decade),
            SkyAxis.from_range(*self.l_deg, pixel_deg),
            SkyAxis.from_range(*self.b_deg, pixel_deg),
        )
