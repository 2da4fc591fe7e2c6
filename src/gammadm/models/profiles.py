"""Dark-matter density profiles, J- and D-factors, and their cell averages.

Units: r and distances in kpc, rho in GeV cm^-3, dJ/dOmega in GeV^2 cm^-5 sr^-1,
dD/dOmega in GeV cm^-2 sr^-1, angles in deg. Profiles are centred on the Galactic
Centre (l, b) = (0, 0) and rescaled so that rho(R_sun) = rho_sun.

Line-of-sight integrals run from the observer to r = R_halo. Each is split at the
point of closest approach (r_min = R_sun sin psi) and integrated with Gauss-Legendre
nodes in w, where r = r_min cosh w: this maps a cusp ~ r^-gamma onto a smooth,
decaying integrand, giving a relative accuracy far below 1e-4 at any psi (checked
against scipy quad in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = ["KPC_CM", "PROFILE_DEFAULTS", "DensityProfile", "LOSTable", "los_integral",
           "cell_integral_radial", "cell_average_map"]

KPC_CM = 3.0857e21  # 1 kpc in cm (PHYSICS.md section 0)

#: PPPC 4 DM ID shape defaults (Cirelli et al. 2011): scale radius [kpc] and shape.
PROFILE_DEFAULTS = {
    "nfw": {"r_s_kpc": 24.42},
    "gnfw": {"r_s_kpc": 24.42, "alpha": 1.0, "beta": 3.0, "gamma": 1.0},
    "einasto": {"r_s_kpc": 28.44, "alpha": 0.17},
    "isothermal": {"r_s_kpc": 4.38},
    "burkert": {"r_s_kpc": 12.67},
    "moore": {"r_s_kpc": 30.28},
}


@dataclass(frozen=True)
class DensityProfile:
    """A spherical profile rho(r) [GeV cm^-3] with rho(R_sun) = rho_sun.

    Parameters
    ----------
    model : {"nfw", "gnfw", "einasto", "isothermal", "burkert", "moore"}
    r_s_kpc, alpha, beta, gamma : float, optional
        Shape parameters (None: the PPPC 4 DM ID default of the model).
    r_sun_kpc, rho_sun_gev_cm3, r_halo_kpc : float
        Sun's distance to the GC, local density, and the halo's outer radius (the end
        of every line of sight).
    """

    model: str = "einasto"
    r_s_kpc: float | None = None
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    r_sun_kpc: float = 8.33
    rho_sun_gev_cm3: float = 0.39
    r_halo_kpc: float = 100.0
    rho_s: float = field(init=False)

    def __post_init__(self):
        if self.model not in PROFILE_DEFAULTS:
            raise ValueError(f"unknown profile '{self.model}'; known: {sorted(PROFILE_DEFAULTS)}")
        for key, val in PROFILE_DEFAULTS[self.model].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, val)
        if self.model == "gnfw" and self.gamma >= 1.5:
            raise ValueError(f"gNFW gamma = {self.gamma} >= 1.5: J over the central cell diverges")
        object.__setattr__(self, "rho_s", 1.0)
        object.__setattr__(self, "rho_s", self.rho_sun_gev_cm3 / float(self.shape(self.r_sun_kpc)))

    @classmethod
    def from_config(cls, prof: dict) -> DensityProfile:
        return cls(model=prof["model"], r_s_kpc=prof.get("r_s_kpc"), alpha=prof.get("alpha"),
                   beta=prof.get("beta"), gamma=prof.get("gamma"),
                   r_sun_kpc=prof["r_sun_kpc"], rho_sun_gev_cm3=prof["rho_sun_gev_cm3"],
                   r_halo_kpc=prof["r_halo_kpc"])

    def shape(self, r_kpc):
        """rho(r) / rho_s (dimensionless)."""
        x = np.asarray(r_kpc, float) / self.r_s_kpc
        m = self.model
        if m == "nfw":
            return 1.0 / (x * (1 + x) ** 2)
        if m == "gnfw":
            a, b, g = self.alpha, self.beta, self.gamma
            return x ** (-g) * (1 + x**a) ** (-(b - g) / a)
        if m == "einasto":
            return np.exp(-2.0 / self.alpha * (x**self.alpha - 1.0))
        if m == "isothermal":
            return 1.0 / (1 + x**2)
        if m == "burkert":
            return 1.0 / ((1 + x) * (1 + x**2))
        return x**-1.16 * (1 + x) ** -1.84  # moore

    def density(self, r_kpc):
        """rho(r) [GeV cm^-3]."""
        return self.rho_s * self.shape(r_kpc)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("model", "r_s_kpc", "alpha", "beta", "gamma",
                                              "r_sun_kpc", "rho_sun_gev_cm3", "r_halo_kpc",
                                              "rho_s")}


_GL_X, _GL_W = np.polynomial.legendre.leggauss(96)


def _gl_sum(f, a, b, n_panels: int):
    """Composite Gauss-Legendre of f over [a, b] (arrays of intervals), vectorised."""
    a = np.asarray(a, float)[..., None]
    b = np.asarray(b, float)[..., None]
    out = 0.0
    h = (b - a) / n_panels
    for k in range(n_panels):
        lo = a + k * h
        x = lo + 0.5 * h * (_GL_X + 1)
        out = out + 0.5 * h[..., 0] * np.sum(_GL_W * f(x), axis=-1)
    return out


def los_integral(profile: DensityProfile, psi_deg, power: int = 2) -> np.ndarray:
    """integral_0^s_max rho^power ds along the line of sight at angle psi from the GC.

    Returns GeV^2 cm^-5 (power 2, dJ/dOmega per sr) or GeV cm^-2 (power 1, dD/dOmega).
    """
    psi = np.radians(np.asarray(psi_deg, float))
    R, Rh = profile.r_sun_kpc, profile.r_halo_kpc
    s0 = R * np.cos(psi)  # closest approach along the line of sight
    rmin = np.maximum(R * np.abs(np.sin(psi)), 1e-12 * R)
    s_max = s0 + np.sqrt(np.maximum(Rh**2 - (R * np.sin(psi)) ** 2, 0.0))
    t_lo, t_hi = -s0, s_max - s0  # t = s - s0, r^2 = rmin^2 + t^2

    def piece(t_a, t_b):
        # integral over t in [t_a, t_b], 0 <= t_a < t_b, with r = rmin cosh w
        w_a = np.arcsinh(t_a / rmin)
        w_b = np.arcsinh(t_b / rmin)
        rm = rmin[..., None]

        def f(w):
            r = rm * np.cosh(w)
            return profile.density(r) ** power * r

        return _gl_sum(f, w_a, w_b, 4)

    near = np.where(t_lo < 0, piece(np.zeros_like(t_lo), np.abs(np.minimum(t_lo, 0))), 0.0)
    far = piece(np.maximum(t_lo, 0.0), t_hi)
    return (near + far) * KPC_CM


class LOSTable:
    """dJ/dOmega (or dD/dOmega) as a radial table about the GC.

    A cubic spline in (ln psi, ln J) on ``n`` log-spaced angles from ``psi_min`` to
    180 deg, plus the cumulative C(psi) = integral_0^psi J(psi') psi' dpsi' [deg^2 x J]
    used for exact cell integrals near the centre (flat-sky about the GC).
    """

    def __init__(self, profile: DensityProfile, power: int = 2, psi_min_deg: float = 1e-5,
                 n: int = 3000):
        self.profile = profile
        self.power = power
        lp = np.linspace(np.log(psi_min_deg), np.log(180.0), n)
        self.psi_deg = np.exp(lp)
        self.values = los_integral(profile, self.psi_deg, power)
        self._spline = CubicSpline(lp, np.log(self.values))
        # cumulative: d C / d ln psi = J psi^2 ; the piece below psi_min from the log slope
        k = float(self._spline(lp[0], 1))
        c0 = self.values[0] * self.psi_deg[0] ** 2 / (2.0 + k)
        g = CubicSpline(lp, self.values * self.psi_deg**2).antiderivative()
        self._cum = CubicSpline(lp, np.log(c0 + g(lp) - g(lp[0])))
        self._lp0 = lp[0]
        self._c0, self._k = c0, k

    def __call__(self, psi_deg) -> np.ndarray:
        """dJ/dOmega [GeV^2 cm^-5 sr^-1] (or dD/dOmega) at psi [deg]."""
        lp = np.log(np.maximum(np.asarray(psi_deg, float), 1e-30))
        inner = self.values[0] * np.exp(self._k * (lp - self._lp0))
        return np.where(lp < self._lp0, inner, np.exp(self._spline(np.maximum(lp, self._lp0))))

    def cumulative(self, psi_deg) -> np.ndarray:
        """C(psi) = integral_0^psi J psi' dpsi' [deg^2 x J units] (flat sky about the GC)."""
        psi = np.asarray(psi_deg, float)
        lp = np.log(np.maximum(psi, 1e-30))
        inner = self._c0 * np.exp((2.0 + self._k) * (lp - self._lp0))
        out = np.where(lp < self._lp0, inner, np.exp(self._cum(np.maximum(lp, self._lp0))))
        return np.where(psi > 0, out, 0.0)


_PH_X, _PH_W = np.polynomial.legendre.leggauss(48)


def _edge_integral(table: LOSTable, p, q) -> float:
    """Signed integral of J over the triangle (origin, p, q), flat sky [deg^2 x J]."""
    cross = p[0] * q[1] - p[1] * q[0]
    if abs(cross) < 1e-15:
        return 0.0
    d = q - p
    foot = p - np.dot(p, d) / np.dot(d, d) * d  # closest point of the line to the origin
    h = np.hypot(*foot)
    phi_n = np.arctan2(foot[1], foot[0])
    a, b = np.arctan2(p[1], p[0]), np.arctan2(q[1], q[0])
    dphi = (b - a + np.pi) % (2 * np.pi) - np.pi
    phi = a + 0.5 * dphi * (_PH_X + 1)
    rr = h / np.cos(phi - phi_n)
    return float(0.5 * dphi * np.sum(_PH_W * table.cumulative(rr)))


def cell_integral_radial(table: LOSTable, l_edges, b_edges) -> float:
    """integral of a radial J over one (l, b) cell, flat sky about the GC [deg^2 x J].

    Exact for the radial table (the cell as four signed triangles from the GC: the
    integral over each is integral C(R(phi)) dphi); the singular centre is harmless.
    """
    (l0, l1), (b0, b1) = l_edges, b_edges
    corners = [np.array(c, float) for c in ((l0, b0), (l1, b0), (l1, b1), (l0, b1))]
    return sum(_edge_integral(table, corners[i], corners[(i + 1) % 4]) for i in range(4))


_CELL_X, _CELL_W = np.polynomial.legendre.leggauss(8)


def cell_average_map(table: LOSTable, l_edges, b_edges, near_deg: float = 0.3) -> np.ndarray:
    """Solid-angle average of J over each (l, b) cell, shape (n_l, n_b).

    Cells within ``near_deg`` of the GC: exact radial integral (flat sky, error
    ~ psi^2 / 6 < 2e-5). Elsewhere: 8 x 8 Gauss-Legendre nodes in (l, sin b) on the
    sphere with the exact psi (cos psi = cos l cos b).
    """
    l_edges = np.asarray(l_edges, float)
    b_edges = np.asarray(b_edges, float)
    out = np.empty((l_edges.size - 1, b_edges.size - 1))
    # far cells, vectorised: nodes in l and in sin b
    hl = 0.5 * np.diff(l_edges)
    ln = 0.5 * (l_edges[1:] + l_edges[:-1])[:, None] + hl[:, None] * _CELL_X
    sb = np.sin(np.radians(b_edges))
    hs = 0.5 * np.diff(sb)
    sn = 0.5 * (sb[1:] + sb[:-1])[:, None] + hs[:, None] * _CELL_X
    cosb = np.sqrt(1 - sn**2)
    cospsi = np.cos(np.radians(ln))[:, None, :, None] * cosb[None, :, None, :]
    psi = np.degrees(np.arccos(np.clip(cospsi, -1, 1)))
    vals = table(psi)
    w2 = _CELL_W[:, None] * _CELL_W[None, :]
    out[:] = 0.25 * np.einsum("ijkl,kl->ij", vals, w2)
    # near cells: exact radial integral / flat area
    dl = np.maximum(np.maximum(l_edges[:-1], -l_edges[1:]), 0)
    db = np.maximum(np.maximum(b_edges[:-1], -b_edges[1:]), 0)
    near = np.hypot(dl[:, None], db[None, :]) < near_deg
    for i, j in zip(*np.nonzero(near)):
        area = (l_edges[i + 1] - l_edges[i]) * (b_edges[j + 1] - b_edges[j])
        out[i, j] = cell_integral_radial(table, l_edges[i:i + 2], b_edges[j:j + 2]) / area
    return out
