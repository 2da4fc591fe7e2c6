"""The tabulated CTAO response against gammapy, the prod5 reference figures and
analytic truths (PHYSICS.md section 2)."""

import logging

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from scipy import integrate

from gammadm.instrument import (
    InstrumentResponse,
    IRFError,
    IRFFileError,
    check_dropped_mass,
    prod5_filename,
    resolve_irf_file,
)

DEG2_PER_SR = (180 / np.pi) ** 2


def test_file_is_chosen_explicitly(data_root):
    assert prod5_filename() == "Prod5-South-20deg-AverageAz-14MSTs37SSTs.18000s-v0.1.fits.gz"
    cfg = {"site": "South", "zenith_deg": 20, "azimuth": "SouthAz", "cut_time_s": 180000,
           "subarray": "full", "file": None}
    assert resolve_irf_file(cfg, data_root).name == (
        "Prod5-South-20deg-SouthAz-14MSTs37SSTs.180000s-v0.1.fits.gz")
    assert prod5_filename("North", 40, "NorthAz", 1800, "LST") == (
        "Prod5-North-40deg-NorthAz-4LSTs.1800s-v0.1.fits.gz")
    with pytest.raises(IRFFileError, match="SST"):
        prod5_filename("North", 20, subarray="SST")
    with pytest.raises(IRFFileError, match="mine.fits"):
        resolve_irf_file({**cfg, "file": "mine.fits"}, data_root)


def test_reference_figures(irf):
    # PLATFORM.md: A(1 TeV, on axis) = 9.446e9 cm^2
    assert irf.effective_area(1.0, 0.0) == pytest.approx(9.45e9, rel=0.01)
    # CCR on axis: 25.3 / 0.0551 / 3.9e-4 s^-1 TeV^-1 deg^-2 at 0.1 / 1 / 10 TeV
    rate_deg2 = irf.ccr_rate([0.1, 1.0, 10.0], 0.0, 0.0) / DEG2_PER_SR
    assert rate_deg2[1] == pytest.approx(0.0551, rel=0.01)
    np.testing.assert_allclose(rate_deg2[[0, 2]], [25.3, 3.9e-4], rtol=0.02)
    # single-Gaussian PSF: 0.100 / 0.039 / 0.024 / 0.014 deg on axis
    sig, w, d = irf.psf([0.1, 1.0, 10.0, 100.0], 0.0)
    assert d.all()
    np.testing.assert_allclose(w[:, 0], 1.0)
    np.testing.assert_allclose(sig[:, 0], [0.100, 0.039, 0.024, 0.014], atol=6e-4)


def test_migration_integrates_to_one(irf, caplog):
    dmu = np.diff(irf.migra_edges)
    tab = irf.edisp
    rows = tab.values[tab.defined]
    np.testing.assert_allclose(rows @ dmu, 1.0, rtol=0, atol=1e-12)
    # interpolated rows are convex combinations of defined rows: still normalised
    e = np.geomspace(0.04, 150, 200)
    th = np.linspace(0, 3.9, 200)
    dens, d = irf.migration(e, th)
    assert d.all()
    np.testing.assert_allclose(dens @ dmu, 1.0, rtol=0, atol=1e-12)
    assert irf.edisp_conventions == ["probability per migra bin"]
    assert 0 < irf.edisp_raw_deviation < 1e-5
    with caplog.at_level(logging.INFO, logger="gammadm.instrument.response"):
        InstrumentResponse.read(irf.path)
    assert "deviates from 1 by up to" in caplog.text


def test_migration_cdf_is_exact(irf):
    e, th = 1.3, 0.7
    dens, _ = irf.migration(e, th)
    edges = irf.migra_edges
    for mu in (0.5, 0.93, 1.0, 1.234, 2.999):
        ref, _ = integrate.quad(lambda x: dens[np.searchsorted(edges, x, "right") - 1],
                                0, mu, points=edges[(edges > 0) & (edges < mu)], limit=400)
        assert irf.migration_cdf(mu, e, th) == pytest.approx(ref, abs=1e-12)
    assert irf.migration_cdf(-1.0, e, th) == 0.0 and irf.migration_cdf(5.0, e, th) == pytest.approx(1.0, abs=1e-12)
    # arrays broadcast together; each point equals the pointwise integral of its own row
    # mix (zero where the response is undefined or out of range, with zero_fill)
    es = np.array([0.005, 0.05, 1.3, 20.0, 250.0])[:, None]
    ths = np.array([0.2, 2.7, 5.9])[None, :]
    mus = np.linspace(0.4, 1.8, 15).reshape(5, 3)
    got = irf.migration_cdf(mus, es, ths, zero_fill=True)
    assert got.shape == (5, 3)
    for (i, j), v in np.ndenumerate(got):
        d, ok = irf.migration(es[i, 0], ths[0, j], zero_fill=True)
        k = np.searchsorted(edges, mus[i, j], "right") - 1
        ref = np.sum(d[:k] * np.diff(edges)[:k]) + d[k] * (mus[i, j] - edges[k])
        assert v == pytest.approx(ref if ok else 0.0, abs=1e-12), (i, j)


def test_tables_equal_gammapy_at_the_nodes(irf, gammapy_irfs):
    g = gammapy_irfs
    # effective area
    en, tn = irf.aeff.energy_nodes, irf.aeff.offset_nodes
    E, T = np.meshgrid(en, tn, indexing="ij")
    ref = g["aeff"].evaluate(energy_true=E * u.TeV, offset=T * u.deg).to_value("cm2")
    np.testing.assert_allclose(irf.effective_area(E, T), ref, rtol=1e-6)
    # PSF sigma where defined (gammapy turns undefined sigma = 0 into 1 deg)
    en, tn = irf.psf_sigma.energy_nodes, irf.psf_sigma.offset_nodes
    E, T = np.meshgrid(en, tn, indexing="ij")
    pars = g["psf"].evaluate_parameters(energy_true=E * u.TeV, offset=T * u.deg)
    sig, w, d = irf.psf(E, T)
    np.testing.assert_allclose(sig[..., 0][d], pars["sigma_1"].to_value("deg")[d], rtol=1e-6)
    assert np.all(pars["sigma_1"].to_value("deg")[~d] == 1.0)  # the gammapy trap
    # PSF density against gammapy's evaluation at a few radii
    rad = np.array([0.0, 0.02, 0.05, 0.1])
    ours = irf.psf_density(rad, 1.0, 0.5)
    theirs = g["psf"].evaluate(energy_true=1 * u.TeV, offset=0.5 * u.deg, rad=rad * u.deg)
    np.testing.assert_allclose(ours, theirs.to_value("deg-2"), rtol=1e-6)
    # migration: gammapy returns probability per 0.01 bin; ours is a density
    ed = g["edisp"]
    en, tn = irf.edisp.energy_nodes[::7], irf.edisp.offset_nodes
    mn = 0.5 * (irf.migra_edges[1:] + irf.migra_edges[:-1])
    E, M, T = np.meshgrid(en, mn, tn, indexing="ij")
    ref = ed.evaluate(energy_true=E * u.TeV, migra=M, offset=T * u.deg).value
    dens, d = irf.migration(E[:, 0, :], T[:, 0, :])
    ours = np.moveaxis(dens, -1, 1) * np.diff(irf.migra_edges)[None, :, None]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-12)
    # background at its nodes
    bk = g["bkg"]
    be = np.sqrt(irf.bkg_energy_edges[1:] * irf.bkg_energy_edges[:-1])[::3]
    bx = 0.5 * (irf.bkg_lon_edges[1:] + irf.bkg_lon_edges[:-1])[::7]
    E, X, Y = np.meshgrid(be, bx, bx, indexing="ij")
    ref = bk.evaluate(energy=E * u.TeV, fov_lon=X * u.deg, fov_lat=Y * u.deg)
    ref = ref.to_value("s-1 TeV-1 sr-1")
    ref = np.where(ref > 1e-30, ref, 0.0)  # gammapy floors zeros at float32's tiny
    np.testing.assert_allclose(irf.ccr_rate(E, X, Y), ref, rtol=1e-5)


def test_ccr_between_nodes_is_trilinear_in_log_energy_and_grids_equal_points(irf, gammapy_irfs):
    """Between the nodes, ln B is interpolated linearly in (ln E, lon, lat) as gammapy
    does (checked off the nodes against gammapy), and the separable evaluation of an
    energy grid times a map equals point-by-point evaluation."""
    import astropy.units as u

    rng = np.random.default_rng(3)
    # the seed ROI's reach (0.1-100 TeV, 3 deg): next to the file's zero cells (lower
    # energies, larger offsets) ln B between a zero and a non-zero node depends on the
    # floor, which gammapy applies in the file's units (MeV^-1) and we in TeV^-1
    e = np.geomspace(0.1, 100.0, 37)
    x, y = rng.uniform(-3.0, 3.0, (2, 5, 6))
    grid = irf.ccr_rate(e[:, None, None], x[None], y[None])
    E, X, Y = np.broadcast_arrays(e[:, None, None], x[None], y[None])
    points = irf.ccr_rate(E.ravel(), X.ravel(), Y.ravel()).reshape(E.shape)
    np.testing.assert_allclose(grid, points, rtol=1e-12, atol=0)
    ref = gammapy_irfs["bkg"].evaluate(energy=E * u.TeV, fov_lon=X * u.deg,
                                       fov_lat=Y * u.deg).to_value("s-1 TeV-1 sr-1")
    np.testing.assert_allclose(grid, ref, rtol=1e-5)


def test_outer_grids_equal_points_and_gammapy_between_nodes(irf, gammapy_irfs):
    """Energies times an offset map (evaluated offset first, once per energy node) give
    the values of point-by-point evaluation bit for bit, and between the nodes the
    effective area is gammapy's (linear in ln E and offset)."""
    import astropy.units as u

    rng = np.random.default_rng(5)
    e = np.geomspace(0.05, 150.0, 23)
    th = rng.uniform(0.0, 5.5, (4, 7))
    E, T = np.broadcast_arrays(e[:, None, None], th[None])
    for tab in (irf.aeff, irf.psf_sigma, irf.psf_weight, irf.edisp):
        grid, d_grid = tab(e[:, None, None], th[None], zero_fill=True)
        points, d_points = tab(E.ravel(), T.ravel(), zero_fill=True)
        assert np.array_equal(d_grid.ravel(), d_points)
        assert np.array_equal(grid.reshape(points.shape), points)
    ref = gammapy_irfs["aeff"].evaluate(energy_true=E * u.TeV, offset=T * u.deg)
    np.testing.assert_allclose(irf.effective_area(e[:, None, None], th[None]),
                               ref.to_value("cm2"), rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("energy, offset", [(0.05, 0.3), (1.0, 0.0), (10.0, 2.2), (0.3, 3.7)])
def test_psf_integrates_to_one(irf, energy, offset):
    sig = irf.psf(energy, offset)[0].max()
    val, _ = integrate.quad(lambda r: 2 * np.pi * r * irf.psf_density(r, energy, offset),
                            0, 20 * sig, epsabs=0, epsrel=1e-12, limit=200)
    assert val == pytest.approx(1.0, abs=1e-9)


def _edit_copy(src, dst, edit):
    with fits.open(src) as hdul:
        edit(hdul)
        hdul.writeto(dst)
    return dst


def _hdu(hdul, clas2):
    return next(h for h in hdul[1:] if h.header.get("HDUCLAS2", "").strip() == clas2)


def test_three_gauss_psf_weights_from_sigma_and_ampl(irf_path, tmp_path):
    def edit(hdul):
        h = _hdu(hdul, "PSF")
        h.data["SIGMA_2"][:] = 0.2
        h.data["AMPL_2"][:] = 0.1
        h.data["SIGMA_3"][:] = 0.5
        h.data["AMPL_3"][:] = 0.01
        h.data["SCALE"][:] *= 7.0  # SCALE must not matter
    irf3 = InstrumentResponse.read(_edit_copy(irf_path, tmp_path / "psf3.fits", edit))
    sig, w, d = irf3.psf(1.0, 0.5)
    s1 = sig[0]
    expect = np.array([s1**2, 0.1 * 0.2**2, 0.01 * 0.5**2])
    np.testing.assert_allclose(w, expect / expect.sum(), rtol=1e-6)
    val, _ = integrate.quad(lambda r: 2 * np.pi * r * irf3.psf_density(r, 1.0, 0.5),
                            0, 10, epsabs=0, epsrel=1e-12, limit=400)
    assert val == pytest.approx(1.0, abs=1e-9)


def test_true_density_file_is_recognised(irf, irf_path, tmp_path):
    def edit(hdul):
        h = _hdu(hdul, "EDISP")
        dmu = np.diff(np.append(h.data["MIGRA_LO"][0], h.data["MIGRA_HI"][0][-1]))
        # a GADF density dP/dmu (per the file's own float32 bin widths)
        h.data["MATRIX"][:] = h.data["MATRIX"] / dmu[None, None, :, None]
    dens_irf = InstrumentResponse.read(_edit_copy(irf_path, tmp_path / "dens.fits", edit))
    assert dens_irf.edisp_conventions == ["density"]
    np.testing.assert_allclose(dens_irf.edisp.values, irf.edisp.values, rtol=1e-6, atol=1e-9)


def test_unnormalisable_migration_is_an_error(irf_path, tmp_path):
    def edit(hdul):
        h = _hdu(hdul, "EDISP")
        h.data["MATRIX"][0, 2, :, 150] *= 0.5  # one row (E_t ~ 1 TeV) sums to 0.5
    bad = _edit_copy(irf_path, tmp_path / "bad_edisp.fits", edit)
    with pytest.raises(IRFError, match="bad_edisp.fits.*neither convention"):
        InstrumentResponse.read(bad)


def test_point_like_file_is_rejected(irf_path, tmp_path):
    def edit(hdul):
        for h in hdul[1:]:
            h.header["HDUCLAS3"] = "POINT-LIKE"
    bad = _edit_copy(irf_path, tmp_path / "pointlike.fits", edit)
    with pytest.raises(IRFError, match="pointlike.fits: POINT-LIKE"):
        InstrumentResponse.read(bad)


def test_undefined_rows(irf):
    # PSF: every sigma 0 at 0.016 TeV; at 4.5 deg below 0.126 TeV; at 5.5 deg below 0.5 TeV
    assert not irf.psf(0.016, 0.5)[2]
    assert not irf.psf(0.05, 4.5)[2] and not irf.psf(0.3, 5.5)[2]
    assert irf.psf(0.2, 4.5)[2]
    # migration: all-zero rows at 195-309 TeV on axis, defined there at 1.5 deg
    dens, d = irf.migration([195.0, 195.0], [0.5, 1.5])
    assert not d[0] and d[1] and dens[0].sum() == 0
    # the exposure is zero where the response is undefined, not where it is not
    assert irf.exposure(195.0, 0.5, 18000.0) == 0.0
    assert irf.exposure(195.0, 1.5, 18000.0) > 0.0
    assert irf.effective_area(0.1, 4.5) > 0  # A is still a few m^2 there ...
    assert irf.exposure(0.1, 4.5, 18000.0) == 0.0  # ... but nothing can be predicted


def test_dropped_exposure_uses_the_files_own_area(irf):
    t = 18000.0
    # (0.1 TeV, 4.2 deg) lies in the undefined offset bin [4, 5]: the file's own area
    # there is that of its 4.5 deg node, a few m^2
    lost = irf.dropped_exposure(0.1, 4.2, t)
    assert lost == pytest.approx(irf.effective_area(0.1, 4.5) * t, rel=1e-12)
    assert 1e4 < lost / t < 1e5  # cm^2: a few m^2
    assert irf.effective_area(0.1, 4.2) > 50 * lost / t  # interpolation would carry far more
    e = np.geomspace(0.04, 150, 50)
    assert np.all(irf.dropped_exposure(e, 1.0, t) == 0.0)
    lost, ok = irf.dropped_exposure(e, 4.2, t), irf.defined(e, 4.2)
    assert np.all(lost[ok] == 0) and np.any(lost[~ok] > 0) and not ok.all()


def test_interpolation_uses_defined_rows_only(irf):
    # 0.03 TeV at 3.2 deg lies in a defined PSF bin next to the undefined 3.5 deg row;
    # its sigma must come from defined nodes only (0.136-0.171 deg), never 0 or 1 deg
    sig, w, d = irf.psf(0.035, 3.2)
    assert d and 0.12 < sig[0] < 0.18
    tab = irf.psf_sigma
    ok = tab.values[..., 0][tab.defined]
    # inside the hull of the nodes (beyond it values extrapolate linearly, as in gammapy)
    e = np.geomspace(tab.energy_nodes[1], tab.energy_nodes[-1], 300)
    th = np.linspace(tab.offset_nodes[0], tab.offset_nodes[-1], 300)
    E, T = np.meshgrid(e, th)
    s, w, d = irf.psf(E, T)
    assert np.all(s[..., 0][d] >= ok.min() - 1e-12) and np.all(s[..., 0][d] <= ok.max() + 1e-12)


def test_out_of_range_is_an_error_unless_zero_fill(irf):
    with pytest.raises(IRFError, match="300 TeV.*outside"):
        irf.effective_area(300.0, 0.0)
    with pytest.raises(IRFError, match="offset = 7"):
        irf.psf(1.0, 7.0)
    assert irf.effective_area(300.0, 0.0, zero_fill=True) == 0.0
    with pytest.raises(IRFError, match="background requested outside"):
        irf.ccr_rate(1.0, 7.0, 0.0)
    assert irf.ccr_rate(1.0, 7.0, 0.0, zero_fill=True) == 0.0


def test_dropped_mass_check(irf):
    w = np.ones(1000)
    defined = np.ones(1000, bool)
    defined[0] = False
    assert check_dropped_mass(w, defined, 1e-2, "CCR", irf.path) == pytest.approx(1e-3)
    with pytest.raises(IRFError, match="component 'DM'.*tail_mass"):
        check_dropped_mass(w, defined, 1e-7, "DM", irf.path)


def test_reading_needs_no_gammapy(irf_path):
    """Kernel jobs read the IRF with astropy alone (gammapy's import costs seconds per
    job); the arrays are checked against gammapy's reading above."""
    import subprocess
    import sys

    code = ("import sys; from gammadm.instrument import InstrumentResponse; "
            f"r = InstrumentResponse.read({str(irf_path)!r}); "
            "print(r.fov_alignment, r.bkg_rate.shape, 'gammapy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["RADEC", "(21,", "60,", "60)", "False"]


def test_wrong_gadf_class_is_named(irf_path, tmp_path):
    def edit(hdul):
        _hdu(hdul, "PSF").header["HDUCLAS4"] = "PSF_TABLE"
    bad = _edit_copy(irf_path, tmp_path / "psftable.fits", edit)
    with pytest.raises(IRFError, match="psftable.fits: HDU .* is PSF_TABLE; .*PSF_3GAUSS"):
        InstrumentResponse.read(bad)


@pytest.mark.parametrize("pointing", [(0.0, 0.0), (1.5, -0.3), (359.0, 2.0), (120.0, 60.0)])
def test_fov_coordinates_equal_gammapy(pointing):
    from astropy.coordinates import SkyCoord
    from gammapy.utils.coordinates import sky_to_fov

    from gammadm.observation import fov_coordinates

    rng = np.random.default_rng(1)
    l = pointing[0] + rng.uniform(-5, 5, 500)
    b = np.clip(pointing[1] + rng.uniform(-5, 5, 500), -89, 89)
    pos = SkyCoord(l * u.deg, b * u.deg, frame="galactic").icrs
    pnt = SkyCoord(pointing[0] * u.deg, pointing[1] * u.deg, frame="galactic").icrs
    ref_x, ref_y = sky_to_fov(pos.ra, pos.dec, pnt.ra, pnt.dec)
    x, y = fov_coordinates(l, b, pointing)
    np.testing.assert_allclose(x, ref_x.to_value("deg"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, ref_y.to_value("deg"), rtol=0, atol=1e-9)
