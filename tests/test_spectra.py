"""Dark-matter spectra against the PPPC table, the singlet references and physical bounds."""

import numpy as np
import pytest

from gammadm.models.spectra import (
    M_Z_TEV,
    ChannelSpectrum,
    DecaySpectrum,
    PPPCTable,
    SingletBranching,
    SingletSpectrum,
    SpectrumError,
)


@pytest.fixture(scope="module")
def pppc(data_root):
    return PPPCTable(data_root / "pppc/AtProduction_gamma_EW_corrections.dat")


@pytest.fixture(scope="module", params=["darkSUSY", "dimauromattia"])
def branching(request, data_root):
    return SingletBranching(data_root / f"cache/annihilation_ratios__{request.param}.npz")


@pytest.fixture(scope="module")
def singlet(pppc, data_root):
    return SingletSpectrum(pppc, SingletBranching(
        data_root / "cache/annihilation_ratios__darkSUSY.npz"), 0.1)


def test_singlet_reference_values(singlet):
    """PHYSICS.md: m = 1 TeV, lambda_hS = 0.1: ~10.2, 0.070 and ~0.034 TeV^-1."""
    d = singlet.dnde([0.1, 0.5, 0.8], 1.0)
    np.testing.assert_allclose(d[:2], [10.2, 0.070], rtol=0.05)
    assert d[2] == pytest.approx(0.034, rel=0.05)  # ours: 0.0346
    assert np.all(singlet.dnde([1.0 + 1e-9, 1.5, 10.0], 1.0) == 0.0)
    assert singlet.dnde(1.0, 1.0) > 0  # x = 1 inclusive


def test_lines_carry_the_branching_ratios(singlet):
    seen = 0
    for m in (0.15, 0.3, 1.0, 7.0):
        br = {k: float(v) for k, v in singlet.br(m).items()}
        lines = singlet.lines(m)
        gg = [n for e, n in lines if e == m]
        zg = [(e, n) for e, n in lines if e < m]
        assert gg == ([2 * br["gammagamma"]] if br["gammagamma"] > 0 else [])
        if br["Zgamma"] > 0:
            assert zg[0][0] == pytest.approx(m * (1 - M_Z_TEV**2 / (4 * m**2)), rel=1e-12)
            assert zg[0][1] == pytest.approx(br["Zgamma"], rel=1e-12)
        seen += len(lines)
    assert seen >= 4  # the DarkSUSY grid has both lines below a few TeV


def test_branching_ratios_are_probabilities(branching):
    m = np.geomspace(branching.mass_tev[0], min(branching.mass_tev[-1], 100.0), 300)
    for lam in (branching.lambda_hs[0], 0.01, 0.1, 0.37, branching.lambda_hs[-1]):
        b = branching.branching(m, lam)
        assert np.all(b >= 0) and np.all(b <= 1)
        np.testing.assert_allclose(b.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


def test_branching_interpolation_is_monotone_between_nodes(branching):
    """PCHIP: between two mass nodes each partial cross-section stays within its
    node values (no overshoot at the tt threshold)."""
    lam = float(branching.lambda_hs[len(branching.lambda_hs) // 2])
    i = int(np.searchsorted(branching.mass_tev, 0.173))
    for k in range(i - 3, i + 3):
        m0, m1 = branching.mass_tev[k], branching.mass_tev[k + 1]
        sv = branching.partial_sigmav(np.geomspace(m0, m1, 21), lam)
        lo = np.minimum(sv[0], sv[-1]) - 1e-40
        hi = np.maximum(sv[0], sv[-1]) + 1e-40
        assert np.all((sv >= lo * (1 - 1e-9)) & (sv <= hi * (1 + 1e-9)))
    tt = branching.channels.index("tt")
    assert branching.branching(0.15, 0.1)[tt] < 1e-4  # below the tt threshold
    assert branching.branching(0.3, 0.1)[tt] > 0.1


def test_pppc_interpolation_passes_through_the_table(pppc, data_root):
    raw = np.loadtxt(data_root / "pppc/AtProduction_gamma_EW_corrections.dat", skiprows=1)
    col = pppc.columns.index("b") + 2
    for m_gev in (50.0, 1000.0, 30000.0):
        rows = raw[(raw[:, 0] == m_gev) & (raw[:, 1] > -6) & (raw[:, 1] < 0)]
        x = 10 ** rows[:, 1]
        m = m_gev * 1e-3
        dnde = pppc.dnde("b", x * m, m)
        np.testing.assert_allclose(dnde * x * m * np.log(10), rows[:, col], rtol=1e-9,
                                   atol=1e-12)


def test_photon_energy_never_exceeds_the_annihilation_energy(pppc):
    e = np.geomspace(1e-7, 1, 20001)
    for ch in ("b", "W", "tau", "t", "h", "Z", "g", "gamma"):
        for m in (0.2, 1.0, 30.0):
            if ch == "t" and m < 0.18:
                continue
            frac = np.trapezoid(e * m * pppc.dnde(ch, e * m, m), e * m) / (2 * m)
            assert 0 < frac < (0.05 if ch == "gamma" else 1.0), (ch, m, frac)


def test_gamma_channel_line_is_explicit(pppc):
    (line,) = pppc.lines("gamma", 2.0)
    assert line == (2.0, 2.0)
    # the continuum left at x > 0.8 is smooth and small: no smeared line left
    x = np.linspace(0.75, 1.0, 30)
    d = pppc.dnde("gamma", 2.0 * x, 2.0) * 2.0 * x * np.log(10)
    assert np.all(d < 0.02)
    assert pppc.lines("b", 2.0) == []


def test_masses_outside_the_table_are_errors(pppc, singlet):
    with pytest.raises(SpectrumError, match="outside the PPPC"):
        pppc.dnde("b", 0.1, 200.0)
    with pytest.raises(SpectrumError, match="singlet mass outside"):
        singlet.dnde(0.001, 0.005)
    with pytest.raises(SpectrumError, match="unknown PPPC channel 'bottom'"):
        pppc.dnde("bottom", 0.1, 1.0)


def test_vectorised_over_masses_and_energies(singlet):
    e = np.geomspace(0.05, 50, 40)
    m = np.array([0.2, 1.0, 10.0])
    grid = singlet.dnde(e[None, :], m[:, None])
    assert grid.shape == (3, 40)
    for i, mi in enumerate(m):
        np.testing.assert_allclose(grid[i], singlet.dnde(e, mi), rtol=1e-13)


@pytest.mark.parametrize("mass", [0.0051, 0.137, 1.0, 23.4, 99.9])
def test_channels_at_one_mass_equal_each_channels_own_spline(pppc, mass):
    """The shared-basis evaluation of several channels at one mass equals fitpack's
    evaluation of each channel's own spline."""
    chans = ["b", "W", "tau", "h", "gamma", "e"]
    e = mass * np.geomspace(1e-8, 1.0, 301)
    ours = pppc.dnde_at_mass(chans, e, mass)
    for row, ch in zip(ours, chans):
        lx = np.log10(e / mass)
        ok = lx >= pppc.log10x[0]
        fit = 10 ** pppc._spline(pppc.channel(ch)).ev(np.full(ok.sum(), np.log10(mass)), lx[ok])
        # dN/dlog10 x: the table's values less its 1e-6 quantisation floor, which
        # cancels digits just above the floor (hence the absolute tolerance)
        np.testing.assert_allclose(row[ok] * e[ok] * np.log(10), np.maximum(fit - 1e-6, 0.0),
                                   rtol=1e-10, atol=1e-15)
        assert np.all(row[~ok] == 0)


def test_decay_is_annihilation_at_half_the_mass(pppc):
    ann = ChannelSpectrum(pppc, "W")
    dec = DecaySpectrum(ann)
    e = np.geomspace(0.01, 3, 50)
    np.testing.assert_allclose(dec.dnde(e, 4.0), ann.dnde(e, 2.0), rtol=1e-14)
    assert np.all(dec.dnde(np.array([2.0001, 3.0]), 4.0) == 0.0)
    assert dec.dnde(2.0, 4.0) > 0
    assert dec.mass_range_tev == (2 * ann.mass_range_tev[0], 2 * ann.mass_range_tev[1])
