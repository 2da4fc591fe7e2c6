import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy import integrate

from gammadm.geometry import ROI, EnergyAxis, SkyAxis, cell_solid_angle, log_edges, wrap_lon
from gammadm.instrument.reach import angular_offset


def exact_box(l0, l1, b0, b1):
    """Independent solid angle: integral of cos b dl db by scipy."""
    val, _ = integrate.dblquad(lambda b, l: np.cos(b), np.radians(l0), np.radians(l1),
                               np.radians(b0), np.radians(b1), epsabs=0, epsrel=1e-13)
    return val


@pytest.mark.parametrize("box, pix", [((-3, 3, -3, 3), 0.2), ((-3.9, 3.9, -3.9, 3.9), 0.1),
                                      ((10, 40, 50, 89.5), 0.5)])
def test_cell_solid_angles_sum_to_the_roi(box, pix):
    l0, l1, b0, b1 = box
    omega = cell_solid_angle(SkyAxis.from_range(l0, l1, pix).edges,
                             SkyAxis.from_range(b0, b1, pix).edges)
    assert omega.sum() == pytest.approx(exact_box(*box), rel=1e-12)
    assert ROI((1, 10), (l0, l1), (b0, b1)).solid_angle == pytest.approx(exact_box(*box), rel=1e-12)
    # a 0.1 deg cell at the equator is (0.1 deg)^2 to second order
    assert cell_solid_angle([0, 0.1], [0, 0.1])[0, 0] == pytest.approx(np.radians(0.1) ** 2,
                                                                          rel=1e-3)


def test_energy_axis():
    ax = EnergyAxis.from_range(0.1, 100.0, 20)
    assert ax.nbin == 60
    assert ax.edges[0] == 0.1 and ax.edges[-1] == pytest.approx(100.0, rel=1e-14)
    np.testing.assert_allclose(ax.nodes, np.sqrt(ax.edges[1:] * ax.edges[:-1]))
    np.testing.assert_allclose(ax.widths.sum(), 99.9)
    e = log_edges(0.1, 0.037, 190, 30)
    assert e[0] <= 0.037 and e[-1] >= 190 and np.any(np.isclose(e, 0.1, rtol=1e-14))
    assert np.any(np.isclose(e, 100.0, rtol=1e-12))
    with pytest.raises(ValueError):
        EnergyAxis([1.0, 0.5])


def test_roi_is_closed_with_tolerance():
    roi = ROI((0.1, 100.0), (-3.0, 3.0), (-3.0, 3.0))
    e = np.array([0.1, 100.0, 100.0 * (1 + 1e-12), 0.1 * (1 - 1e-6), 1.0, 1.0, 1.0])
    l = np.array([-3.0, 3.0, 0.0, 0.0, 3.0 + 1e-10, 3.0 + 1e-6, 359.0])
    b = np.zeros_like(e)
    np.testing.assert_array_equal(roi.contains(e, l, b),
                                  [True, True, True, False, True, False, True])


def test_wrap_lon():
    np.testing.assert_allclose(wrap_lon([359.0, 180.0, -180.0, 540.0, 0.0]),
                               [-1.0, 180.0, 180.0, 180.0, 0.0])


def test_angular_offset_matches_astropy():
    rng = np.random.default_rng(1)
    l, b = rng.uniform(-10, 10, 50), rng.uniform(-10, 10, 50)
    ref = SkyCoord(l * u.deg, b * u.deg, frame="galactic").separation(
        SkyCoord(1.0 * u.deg, -0.5 * u.deg, frame="galactic")).deg
    np.testing.assert_allclose(angular_offset(l, b, 1.0, -0.5), ref, rtol=1e-10, atol=1e-12)


def test_energy_axis_ends_on_the_roi_edge():
    ax = EnergyAxis.from_range(2.0, 5.0, 10)
    assert ax.edges[0] == 2.0 and ax.edges[-1] == 5.0 and ax.nbin == 4
    np.testing.assert_allclose(ax.edges[:-1], 2.0 * 10 ** (np.arange(4) / 10))
