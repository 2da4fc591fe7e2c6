"""HGPS selection and the Fermi-Gaggero diffuse template."""

import numpy as np
import pytest

from gammadm.geometry import ROI, cell_solid_angle
from gammadm.instrument import derive_true_grid
from gammadm.models.backgrounds import (
    DIFFUSE_NORM_REGION,
    DiffuseError,
    FermiGaggeroDiffuse,
    select_hgps,
)

SEED_ROI = ROI((0.1, 100.0), (-3.0, 3.0), (-3.0, 3.0))
SEED_SIX = {"HESS J1745-290", "HESS J1746-285", "HESS J1747-281", "HESS J1741-302",
            "HESS J1745-303", "HESS J1746-308"}


@pytest.fixture(scope="module")
def seed_grid(irf):
    cfg = {"energy_bins_per_decade": 30, "pixel_deg": 0.1, "energy_tev": None,
           "l_deg": None, "b_deg": None}
    return derive_true_grid(irf, SEED_ROI, (0.0, 0.0), cfg)[0]


@pytest.fixture(scope="module")
def diffuse(data_root):
    return FermiGaggeroDiffuse(data_root / "fermi/gll_iem_v06_gc.fits.gz")


def test_hgps_selection_for_the_seed(data_root, irf, seed_grid):
    sel = select_hgps(data_root / "hess/hgps_catalog_v1.fits.gz", irf, SEED_ROI, seed_grid,
                      (0.0, 0.0), 5 * 3600.0)
    assert {s.name for s in sel.kept} == SEED_SIX
    spatial = {s.name: (s.spatial, s.is_point) for s in sel.kept}
    for name in ("HESS J1745-290", "HESS J1746-285", "HESS J1747-281", "HESS J1741-302"):
        assert spatial[name] == ("Point-Like", True)
    for name in ("HESS J1745-303", "HESS J1746-308"):
        assert spatial[name] == ("Gaussian", False)
    (neg,) = [s for s in sel.negligible if s.name == "HESS J1747-248"]
    total = sum(s.expected_weight for s in sel.considered)
    assert neg.expected_weight / total < 1e-6
    # every kept spectrum is used below the catalogue threshold: flagged
    assert set(sel.flagged) == SEED_SIX
    j1746 = next(s for s in sel.kept if s.name == "HESS J1746-308")
    assert j1746.spectral.index == pytest.approx(3.27, abs=0.01)
    # exact positions of point sources are kept (not snapped to cells)
    gc = next(s for s in sel.kept if s.name == "HESS J1745-290")
    assert gc.l_deg == pytest.approx(-0.0553, abs=1e-3) and gc.b_deg == pytest.approx(-0.0442, abs=1e-3)


def test_catalogue_read_equals_gammapy(data_root):
    """Our astropy reading of every HGPS source (position, size, spectrum) against
    gammapy's catalogue objects."""
    import astropy.units as u
    from gammapy.catalog import SourceCatalogHGPS

    from gammadm.models.backgrounds import _hgps_sources

    path = data_root / "hess/hgps_catalog_v1.fits.gz"
    ours = _hgps_sources(path)
    cat = SourceCatalogHGPS(path)
    assert [s.name for s in ours] == [str(n).strip() for n in cat.table["Source_Name"]]
    energies = np.geomspace(0.05, 200.0, 25)
    kinds = set()
    for s in ours:
        ref = cat[s.name]
        kinds.add(str(ref.data["Spectral_Model"]).strip())
        expect = ref.spectral_model()(energies * u.TeV).to_value("TeV-1 cm-2 s-1")
        np.testing.assert_allclose(s.dnde(energies), expect, rtol=1e-12, err_msg=s.name)
        assert s.b_deg == pytest.approx(ref.data["GLAT"].to_value("deg"), abs=1e-12)
    assert kinds == {"PL", "ECPL"}  # both models exercised


def test_diffuse_normalisation_and_planes(diffuse):
    np.testing.assert_allclose(diffuse.planes_used_gev.min(), 107.2, rtol=1e-3)
    assert diffuse.planes_used_gev.size == 6
    (l0, l1), (b0, b1) = DIFFUSE_NORM_REGION
    assert diffuse.morphology([l0, l1], [b0, b1])[0, 0] == pytest.approx(1.0, rel=1e-12)
    assert diffuse.spectrum(1.0) == pytest.approx(1.36e-8)
    assert diffuse.spectrum(10.0) == pytest.approx(1.36e-8 * 10**-2.41)


def test_diffuse_reprojection_conserves_flux(diffuse):
    # aligned with the template's pixels: the template itself
    l_edges, b_edges = diffuse.l_edges[20:60], diffuse.b_edges[10:50]
    s = diffuse.morphology(l_edges, b_edges)
    np.testing.assert_allclose(s, diffuse.template[20:59, 10:49], rtol=1e-12)
    # misaligned 0.1 deg cells: the solid-angle integral over their union is conserved
    edges = np.round(np.arange(-3.9, 3.91, 0.1), 10)
    s = diffuse.morphology(edges, edges)
    total = (s * cell_solid_angle(edges, edges)).sum()
    ref = diffuse.morphology([-3.9, 3.9], [-3.9, 3.9])[0, 0] * cell_solid_angle(
        [-3.9, 3.9], [-3.9, 3.9])[0, 0]
    assert total == pytest.approx(ref, rel=1e-12)
    assert s.min() > 0


def test_true_grid_outside_the_template_is_an_error(diffuse):
    with pytest.raises(DiffuseError, match="observation west.*outside the diffuse template"):
        diffuse.morphology([-8.0, 0.0], [-1.0, 1.0], "observation west")
    with pytest.raises(DiffuseError, match="outside"):
        diffuse.morphology([-1.0, 1.0], [-4.2, 0.0])
