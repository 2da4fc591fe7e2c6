"""Dark-matter photon spectra: PPPC 4 DM ID channels and the Z2 scalar singlet.

All spectra are photons per annihilation, dN/dE [TeV^-1] with E and m in TeV
(PHYSICS.md sections 0 and 3). Continuum and lines are kept apart: a line is a list
of (energy [TeV], photons per annihilation) so the observation model can evaluate it
at its exact energy.

- `PPPCTable` reads the "AtProduction_gamma_EW_corrections" table and interpolates
  log10(dN/dlog10 x + 1e-6) with a bicubic spline in (log10 m, log10 x); 1e-6 is the
  table's own quantisation, so zeros of the table stay (numerically) zero. dN/dE is
  zero above x = 1. The gamma-gamma line, which the table smears over its last three
  nodes (log10 x = -0.1, -0.05, 0: already 10x the continuum at -0.1, ~70 at 0), is
  removed there (the continuum is held at its log10 x = -0.15 value) and carried as an
  explicit line of 2 photons at E = m.
- `SingletSpectrum` weights the channels with branching ratios of the Z2 scalar
  singlet, interpolated monotonically (PCHIP) in (ln m, ln lambda_hS) from the
  DarkSUSY (or Di Mauro et al.) grid of partial cross-sections.
- `DecaySpectrum`: a particle of mass m decays like an annihilation at m/2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator, RectBivariateSpline

from ..errors import InputError

__all__ = [
    "SpectrumError",
    "PPPCTable",
    "ChannelSpectrum",
    "SingletBranching",
    "SingletSpectrum",
    "DecaySpectrum",
    "CHANNEL_ALIASES",
    "M_Z_TEV",
]

M_Z_TEV = 0.0911876  # Z mass [TeV] (PDG)
_FLOOR = 1e-6  # quantisation of the PPPC table (its smallest non-zero entries)
_LINE_LOG10X = -0.125  # the gamma column smears its line over log10 x = -0.1, -0.05, 0

#: Friendly names for the PPPC columns (the table's own names are accepted too).
CHANNEL_ALIASES = {
    "e": "e", "mu": "\\[Mu]", "tau": "\\[Tau]", "q": "q", "c": "c", "b": "b", "t": "t",
    "W": "W", "Z": "Z", "g": "g", "gamma": "\\[Gamma]", "h": "h",
    "nu_e": "\\[Nu]e", "nu_mu": "\\[Nu]\\[Mu]", "nu_tau": "\\[Nu]\\[Tau]",
    "eL": "eL", "eR": "eR", "muL": "\\[Mu]L", "muR": "\\[Mu]R", "tauL": "\\[Tau]L",
    "tauR": "\\[Tau]R", "WL": "WL", "WT": "WT", "ZL": "ZL", "ZT": "ZT",
    "V->e": "V->e", "V->mu": "V->\\[Mu]", "V->tau": "V->\\[Tau]",
}


class SpectrumError(InputError, ValueError):
    """A request outside a table's range or for an unknown channel."""


class PPPCTable:
    """The PPPC 4 DM ID photon table with smooth interpolation.

    Parameters
    ----------
    path : Path
        ``AtProduction_gamma_EW_corrections.dat`` (or a file of the same format).
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        with open(path) as fh:
            header = fh.readline().split()
        table = np.loadtxt(path, skiprows=1)
        self.path = path
        self.columns = header[2:]
        m = np.unique(table[:, 0]) * 1e-3  # GeV -> TeV
        lx = np.unique(table[:, 1])
        if m.size * lx.size != table.shape[0]:
            raise SpectrumError(f"{path}: not a regular (mass, log10 x) grid")
        self.mass_tev = m
        self.log10x = lx
        values = table[:, 2:].reshape(m.size, lx.size, -1)
        gi = self.columns.index("\\[Gamma]")
        line_bin = lx > _LINE_LOG10X + 1e-9
        keep = np.flatnonzero(~line_bin)[-1]
        values[:, line_bin, gi] = values[:, [keep], gi]  # continuum held flat
        self._values = values
        self._splines: dict[str, RectBivariateSpline] = {}
        self._stacked: dict[tuple, tuple] = {}

    def channel(self, name: str) -> str:
        """The table's column name for a channel (friendly alias or own name)."""
        col = CHANNEL_ALIASES.get(name, name)
        if col not in self.columns:
            raise SpectrumError(
                f"unknown PPPC channel '{name}'; known: {sorted(CHANNEL_ALIASES)}")
        return col

    def _spline(self, col: str) -> RectBivariateSpline:
        if col not in self._splines:
            v = self._values[:, :, self.columns.index(col)]
            self._splines[col] = RectBivariateSpline(
                np.log10(self.mass_tev), self.log10x, np.log10(v + _FLOOR), kx=3, ky=3, s=0)
        return self._splines[col]

    def check_mass(self, mass_tev) -> np.ndarray:
        m = np.asarray(mass_tev, float)
        lo, hi = self.mass_tev[[0, -1]]
        if np.any((m < lo * (1 - 1e-12)) | (m > hi * (1 + 1e-12))):
            raise SpectrumError(f"dark-matter mass {m.min():.4g}-{m.max():.4g} TeV outside "
                                f"the PPPC table's {lo:.4g}-{hi:.4g} TeV")
        return m

    def dnde(self, channel: str, energy_tev, mass_tev) -> np.ndarray:
        """Continuum dN/dE [TeV^-1] per annihilation (broadcast over E and m)."""
        col = self.channel(channel)
        e, m = np.broadcast_arrays(np.asarray(energy_tev, float), self.check_mass(mass_tev))
        if m.size and m.flat[0] == m.min() == m.max():
            return self.dnde_at_mass([col], e, float(m.flat[0]))[0]
        x = e / m
        ok = (x > 0) & (x <= 1.0 + 1e-12)
        inside = ok & (x >= 10 ** self.log10x[0])
        lx = np.log10(np.where(inside, np.minimum(x, 1.0), 1.0))
        val = 10 ** self._spline(col).ev(np.log10(m), lx) - _FLOOR
        dndlx = np.where(inside, np.maximum(val, 0.0), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ok, dndlx / (e * np.log(10)), 0.0)

    def dnde_at_mass(self, channels: list[str], energy_tev, mass_tev: float) -> np.ndarray:
        """dN/dE [TeV^-1] of several channels at one mass, [n_channels, *E.shape].

        The spectral quadrature's case. Every column's spline interpolates the same
        (log10 m, log10 x) grid, so all share their knots: the mass basis is evaluated
        once, contracted with each channel's coefficients, and the channels' 1-D splines
        in log10 x are evaluated together, only at energies below the mass."""
        from scipy.interpolate import BSpline

        e = np.asarray(energy_tev, float)
        m = float(self.check_mass(mass_tev))
        x = e / m
        inside = (x > 0) & (x <= 1.0 + 1e-12) & (x >= 10 ** self.log10x[0])
        out = np.zeros((len(channels),) + e.shape)
        if not inside.any():
            return out
        lx = np.log10(np.minimum(x[inside], 1.0))
        (tm, tx), coef = self._coefficients([self.channel(n) for n in channels])
        basis = BSpline.design_matrix([np.log10(m)], tm, 3).toarray()[0]
        rows = BSpline(tx, np.tensordot(basis, coef, axes=(0, 0)), 3)(lx)  # [n_x, n_ch]
        jacobian = e[inside] * np.log(10)
        for i in range(len(channels)):
            out[i, ...][inside] = np.maximum(10 ** rows[:, i] - _FLOOR, 0.0) / jacobian
        return out

    def _coefficients(self, cols: list[str]):
        """The shared knots (log10 m, log10 x) and the B-spline coefficients of the
        columns' splines, [n_m coefficients, n_x coefficients, n_cols]."""
        key = tuple(cols)
        if key not in self._stacked:
            splines = [self._spline(c) for c in cols]
            tm, tx = splines[0].get_knots()
            n_m = tm.size - 4
            self._stacked[key] = (tm, tx), np.stack(
                [sp.get_coeffs().reshape(n_m, -1) for sp in splines], axis=-1)
        return self._stacked[key]

    def lines(self, channel: str, mass_tev: float) -> list[tuple[float, float]]:
        """Explicit lines (E [TeV], photons per annihilation) of a channel."""
        return [(float(mass_tev), 2.0)] if self.channel(channel) == "\\[Gamma]" else []


@dataclass
class ChannelSpectrum:
    """One PPPC channel as a model (e.g. ``b``, ``W``, ``tau``)."""

    table: PPPCTable
    channel: str

    def dnde(self, energy_tev, mass_tev) -> np.ndarray:
        return self.table.dnde(self.channel, energy_tev, mass_tev)

    def lines(self, mass_tev: float) -> list[tuple[float, float]]:
        return self.table.lines(self.channel, mass_tev)

    @property
    def mass_range_tev(self) -> tuple[float, float]:
        return tuple(self.table.mass_tev[[0, -1]])


#: Singlet-grid channel -> PPPC column (None: no photon spectrum, counts in the total).
SINGLET_CHANNELS = {
    "nuenue": "nu_e", "e+e-": "e", "numunumu": "nu_mu", "mu+mu-": "mu",
    "nutaunutau": "nu_tau", "tau+tau-": "tau", "uu": "q", "dd": "q", "ss": "q",
    "cc": "c", "tt": "t", "bb": "b", "gammagamma": "gamma", "W+W-": "W", "ZZ": "Z",
    "gg": "g", "HH": "h", "Zgamma": None, "hadrons": None,
}


class SingletBranching:
    """Branching ratios BR_c(m, lambda_hS) of the Z2 scalar singlet.

    Each partial <sigma v>_c is interpolated with PCHIP in ln m (per lambda node, then
    in ln lambda), clipped at 0, and divided by their sum, so the BR lie in [0, 1]
    and sum to 1.

    Parameters
    ----------
    cache : Path
        The npz cache written by ``gammadm fetch-data`` (columns ``mS_GeV``, ``lahS``,
        then one per channel), or a CSV of the same layout.
    """

    def __init__(self, cache: str | Path):
        cache = Path(cache)
        if cache.suffix == ".npz":
            with np.load(cache) as z:
                table, cols = z["table"], [str(c) for c in z["columns"]]
        else:
            with open(cache) as fh:
                head = fh.readline()
            cols = (head.replace('"mS [GeV]"', "mS_GeV")
                    .replace('"hadrons (below confinement scale)"', "hadrons").split())
            table = np.loadtxt(cache, skiprows=1)[:, 1:]
        self.path = cache
        self.channels = cols[2:]
        unknown = set(self.channels) - set(SINGLET_CHANNELS)
        if unknown:
            raise SpectrumError(f"{cache}: unknown singlet channels {sorted(unknown)}")
        m = np.unique(table[:, 0]) * 1e-3
        lam = np.unique(table[:, 1])
        if m.size * lam.size != table.shape[0]:
            raise SpectrumError(f"{cache}: not a regular (m_S, lambda_hS) grid")
        order = np.lexsort((table[:, 1], table[:, 0]))
        self.mass_tev = m
        self.lambda_hs = lam
        self._sv = table[order, 2:].reshape(m.size, lam.size, -1)  # cm^3 s^-1
        self._lnm = np.log(m)
        self._lnlam = np.log(lam)
        self._at_lambda: dict[float, PchipInterpolator] = {}

    def partial_sigmav(self, mass_tev, lambda_hs: float) -> np.ndarray:
        """Partial <sigma v>_c [cm^3 s^-1], shape (..., n_channels)."""
        m = np.asarray(mass_tev, float)
        lo, hi = self.mass_tev[[0, -1]]
        if np.any((m < lo) | (m > hi)):
            raise SpectrumError(f"singlet mass {m.min():.4g}-{m.max():.4g} TeV outside the "
                                f"grid's {lo:.4g}-{hi:.4g} TeV ({self.path.name})")
        if not self.lambda_hs[0] <= lambda_hs <= self.lambda_hs[-1]:
            raise SpectrumError(f"lambda_hS = {lambda_hs} outside the grid's "
                                f"{self.lambda_hs[0]:.3g}-{self.lambda_hs[-1]:.3g}")
        if lambda_hs not in self._at_lambda:  # one interpolant in ln m per coupling
            at_lam = PchipInterpolator(self._lnlam, self._sv, axis=1)(np.log(lambda_hs))
            self._at_lambda[lambda_hs] = PchipInterpolator(self._lnm, at_lam, axis=0)
        return np.maximum(self._at_lambda[lambda_hs](np.log(m)), 0.0)

    def branching(self, mass_tev, lambda_hs: float) -> np.ndarray:
        """BR_c, shape (..., n_channels); sums to 1 over channels."""
        sv = self.partial_sigmav(mass_tev, lambda_hs)
        return sv / sv.sum(axis=-1, keepdims=True)

    def total_sigmav(self, mass_tev, lambda_hs: float) -> np.ndarray:
        """Total <sigma v> [cm^3 s^-1] of the model (for reference)."""
        return self.partial_sigmav(mass_tev, lambda_hs).sum(axis=-1)


@dataclass
class SingletSpectrum:
    """Photon spectrum per annihilation of the Z2 scalar singlet at fixed lambda_hS."""

    table: PPPCTable
    branching: SingletBranching
    lambda_hs: float = 0.1
    _cols: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._cols = {}
        for i, ch in enumerate(self.branching.channels):
            pppc = SINGLET_CHANNELS[ch]
            if pppc is not None:
                self._cols.setdefault(pppc, []).append(i)

    @property
    def mass_range_tev(self) -> tuple[float, float]:
        lo = max(self.table.mass_tev[0], self.branching.mass_tev[0])
        hi = min(self.table.mass_tev[-1], self.branching.mass_tev[-1])
        return (float(lo), float(hi))

    def br(self, mass_tev) -> dict[str, np.ndarray]:
        """Branching ratios by singlet channel name."""
        b = self.branching.branching(mass_tev, self.lambda_hs)
        return {ch: b[..., i] for i, ch in enumerate(self.branching.channels)}

    def dnde(self, energy_tev, mass_tev) -> np.ndarray:
        """Continuum dN/dE [TeV^-1] per annihilation (lines excluded)."""
        e, m = np.broadcast_arrays(np.asarray(energy_tev, float), np.asarray(mass_tev, float))
        lo, hi = self.mass_range_tev
        if np.any((m < lo * (1 - 1e-12)) | (m > hi * (1 + 1e-12))):
            raise SpectrumError(f"singlet mass outside {lo:.4g}-{hi:.4g} TeV")
        out = np.zeros(e.shape)
        if m.size and m.flat[0] == m.min() == m.max():
            # one mass: channels closed at this mass skipped, the rest evaluated together
            b = self.branching.branching(m.flat[0], self.lambda_hs)
            weights = {p: float(b[..., idx].sum(axis=-1)) for p, idx in self._cols.items()}
            open_ = [p for p, w in weights.items() if w != 0.0]
            for p, v in zip(open_, self.table.dnde_at_mass(open_, e, float(m.flat[0]))):
                out += weights[p] * v
            return out
        b = self.branching.branching(m, self.lambda_hs)
        for pppc, idx in self._cols.items():
            out += b[..., idx].sum(axis=-1) * self.table.dnde(pppc, e, m)
        return out

    def lines(self, mass_tev: float) -> list[tuple[float, float]]:
        """gamma-gamma (2 BR_gg at E = m) and Z-gamma (BR_Zg at m (1 - m_Z^2 / 4 m^2))."""
        br = self.br(float(mass_tev))
        out = []
        if float(br.get("gammagamma", 0.0)) > 0:
            out.append((float(mass_tev), 2.0 * float(br["gammagamma"])))
        if float(br.get("Zgamma", 0.0)) > 0 and 2 * mass_tev > M_Z_TEV:
            out.append((float(mass_tev * (1 - M_Z_TEV**2 / (4 * mass_tev**2))),
                        float(br["Zgamma"])))
        return out


@dataclass
class DecaySpectrum:
    """Decay of a particle of mass m: the annihilation spectrum at m/2 (E <= m/2)."""

    annihilation: ChannelSpectrum | SingletSpectrum

    def dnde(self, energy_tev, mass_tev) -> np.ndarray:
        return self.annihilation.dnde(energy_tev, 0.5 * np.asarray(mass_tev, float))

    def lines(self, mass_tev: float) -> list[tuple[float, float]]:
        return self.annihilation.lines(0.5 * mass_tev)

    @property
    def mass_range_tev(self) -> tuple[float, float]:
        lo, hi = self.annihilation.mass_range_tev
        return (2 * lo, 2 * hi)
