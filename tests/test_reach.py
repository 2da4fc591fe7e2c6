"""The true grid derived from the IRF reach (PHYSICS.md section 4)."""

import numpy as np
import pytest

from gammadm.config import ConfigError
from gammadm.geometry import ROI
from gammadm.instrument import derive_true_grid
from gammadm.instrument.reach import REACH_MASS

SEED_ROI = ROI((0.1, 100.0), (-3.0, 3.0), (-3.0, 3.0))


def _cfg(**kw):
    return {"energy_bins_per_decade": 30, "pixel_deg": 0.1, "energy_tev": None,
            "l_deg": None, "b_deg": None, **kw}


@pytest.fixture(scope="module")
def seed_grid(irf):
    return derive_true_grid(irf, SEED_ROI, (0.0, 0.0), _cfg(), 1e-7)


def test_seed_true_grid_reaches_beyond_the_roi(seed_grid):
    grid, reach = seed_grid
    e = grid.energy.edges
    assert e[0] < 0.05 and e[0] > 0.03
    assert 180 < e[-1] <= reach.highest_defined_tev * (1 + 1e-12)
    assert reach.highest_defined_tev == pytest.approx(190.5, rel=1e-3)
    for edges in (grid.lon.edges, grid.lat.edges):
        assert edges[0] < -3.7 and edges[-1] > 3.7
        assert np.any(np.isclose(edges, -3.0, atol=1e-12))
        assert np.any(np.isclose(edges, 3.0, atol=1e-12))
        np.testing.assert_allclose(np.diff(edges), 0.1, atol=1e-12)
    # cell edges fall on the ROI energy edges; 30 per decade inside
    assert np.any(np.isclose(e, 0.1, rtol=1e-12)) and np.any(np.isclose(e, 100.0, rtol=1e-12))
    np.testing.assert_allclose(np.diff(np.log10(e[:-1])), 1 / 30, rtol=1e-9)
    assert reach.n_sigma == pytest.approx(5.33, abs=0.01)


def test_migration_below_the_grid_is_negligible(irf, gammapy_irfs, seed_grid):
    """Independent check with gammapy's own matrix: true photons below the grid's
    lowest edge reach E_r >= 0.1 TeV with probability below REACH_MASS / 2."""
    from astropy import units as u

    grid, _ = seed_grid
    ed = gammapy_irfs["edisp"]
    migra = ed.axes["migra"]
    for e_t in np.geomspace(0.02, grid.energy.edges[0], 6):
        for th in (0.0, 1.0, 2.5, 3.5):
            p = ed.evaluate(energy_true=e_t * u.TeV, migra=migra.center,
                            offset=th * u.deg).value
            above = p[migra.edges[:-1] >= 0.1 / e_t].sum() / max(p.sum(), 1e-300)
            assert above < 0.5 * REACH_MASS * 1.5, (e_t, th, above)


def test_configured_grid_may_enlarge_never_shrink(irf, seed_grid):
    grid, _ = seed_grid
    big, _ = derive_true_grid(irf, SEED_ROI, (0.0, 0.0),
                              _cfg(energy_tev=[0.02, 190.6], l_deg=[-5, 5], b_deg=[-4, 4]))
    assert big.energy.edges[0] <= 0.02 and big.lon.edges[0] == pytest.approx(-5.0)
    assert big.lat.edges[-1] == pytest.approx(4.0)
    with pytest.raises(ConfigError) as exc:
        derive_true_grid(irf, SEED_ROI, (0.0, 0.0), _cfg(energy_tev=[0.1, 100.0]))
    assert exc.value.field == "true_grid.energy_tev" and "IRF reach" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        derive_true_grid(irf, SEED_ROI, (0.0, 0.0), _cfg(l_deg=[-3.0, 3.0]))
    assert exc.value.field == "true_grid.l_deg"


def test_cli_irf_summary(chdir_root):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "gammadm.cli", "irf"], capture_output=True,
                          text=True, check=True)
    out = json.loads(proc.stdout)
    assert out["aeff_1TeV_on_axis_cm2"] == pytest.approx(9.446e9, rel=1e-3)
    assert out["true_grid"]["energy_tev"][0] < 0.05
