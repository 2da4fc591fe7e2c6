"""IRF normalisation N against brute-force fine-grid integrals (PHYSICS.md section 7)."""

import numpy as np
import pytest

from gammadm.geometry import ROI, EnergyAxis, Grid, SkyAxis
from gammadm.instrument.containment import energy_containment, spatial_containment
from gammadm.instrument.normalisation import (
    EnergyQuadrature,
    MigrationTables,
    cell_average_containment,
    energy_containment_sub,
    energy_kernel_sub,
    normalisation_sub,
)
from gammadm.instrument.reach import angular_offset

SEED_ROI = ROI((0.1, 100.0), (-3.0, 3.0), (-3.0, 3.0))


@pytest.fixture(scope="module")
def mig(irf):
    return MigrationTables.from_irf(irf)


@pytest.fixture(scope="module")
def seed_true(irf):
    from gammadm.instrument import derive_true_grid

    cfg = {"energy_bins_per_decade": 30, "pixel_deg": 0.1, "energy_tev": None,
           "l_deg": None, "b_deg": None}
    return derive_true_grid(irf, SEED_ROI, (0.0, 0.0), cfg)[0]


def test_cell_average_containment_closed_form():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x0 = rng.uniform(-5, 5)
        w = 10 ** rng.uniform(-2, 0.5)
        s = 10 ** rng.uniform(-2, 0)
        x = np.linspace(x0, x0 + w, 200001)
        x = 0.5 * (x[1:] + x[:-1])
        from scipy.special import ndtr
        bf = np.mean(ndtr((3 - x) / s) - ndtr((-3 - x) / s))
        assert cell_average_containment(x0, x0 + w, -3, 3, s) == pytest.approx(bf, abs=1e-9)
    assert cell_average_containment(2.5, 3.5, -3, 3, 0.0) == 0.5


def test_quadrature_cuts_cells_at_rows_and_definedness(irf, mig, seed_true):
    quad = EnergyQuadrature.build(seed_true.energy.edges, mig, irf)
    assert np.all(np.isin(seed_true.energy.edges, quad.edges))
    assert np.all(np.diff(quad.edges) > 0)
    # every sub-interval lies between two consecutive migration rows
    nodes = mig.table.energy_nodes
    assert np.all(nodes[quad.row] <= quad.edges[:-1] * (1 + 1e-9))
    assert np.all(nodes[quad.row + 1] >= quad.edges[1:] * (1 - 1e-9))
    # and is wholly defined or undefined at every offset
    for th in (0.2, 1.5, 3.5, 4.5, 5.5):
        for s in range(len(quad)):
            e = np.geomspace(quad.edges[s], quad.edges[s + 1], 7)[1:-1]
            d = irf.defined(e, th, zero_fill=True)
            assert d.all() or not d.any()


def test_energy_part_is_exact(irf, mig, seed_true):
    """The closed-form E_t integral with linear row mixing equals a fine sum of the
    pointwise migration CDF, for every sub-interval and several offsets."""
    quad = EnergyQuadrature.build(seed_true.energy.edges, mig, irf)
    th = np.array([0.05, 0.7, 2.2, 3.8])
    ne = energy_containment_sub(mig, quad, SEED_ROI, th)
    worst = 0.0
    for s in range(0, len(quad), 7):
        e = np.linspace(quad.edges[s], quad.edges[s + 1], 1501)
        e = 0.5 * (e[1:] + e[:-1])
        ok = irf.defined(quad.centres[s], th, zero_fill=True)
        bf = np.array([energy_containment(irf, SEED_ROI, e, t).mean() for t in th])
        worst = max(worst, np.abs(ne[s] - bf)[ok].max(initial=0.0))
    assert worst < 2e-5


def test_energy_kernel_is_an_integral_of_m_over_mu(irf, mig, seed_true):
    """integral of R_E(E_r|E_t) over a sub-interval against a fine sum (not a CDF
    difference), and the sum over all sub-intervals equals integral M(mu)/mu dmu."""
    quad = EnergyQuadrature.build(seed_true.energy.edges, mig, irf)
    for er in (0.1, 0.35, 2.0, 60.0):
        subs = np.flatnonzero((quad.edges[1:] > er / 3) & (quad.edges[:-1] < er / 0.05))
        for s in subs[::9]:
            k = energy_kernel_sub(mig, quad, er, 1.3, s)
            e = np.linspace(quad.edges[s], quad.edges[s + 1], 20001)
            e = 0.5 * (e[1:] + e[:-1])
            dens, _ = irf.migration(e, 1.3)
            mu = er / e
            i = np.clip(np.searchsorted(irf.migra_edges, mu, "right") - 1, 0, mu.size)
            i = np.clip(i, 0, dens.shape[1] - 1)
            vals = np.where(mu < irf.migra_edges[-1], dens[np.arange(e.size), i], 0) / e
            bf = vals.mean() * (quad.edges[s + 1] - quad.edges[s])
            assert k == pytest.approx(bf, rel=2e-3, abs=1e-6 / er)


@pytest.mark.parametrize("pixel", [0.1, 1.0])
def test_normalisation_matches_brute_force(irf, mig, seed_true, pixel):
    """N per (sub-interval, cell) against a fine-grid integral of the pointwise
    containment with the cell's smooth factors (offset of the cell centre), for cells
    inside, across and outside the ROI edges, and cells much wider than the PSF."""
    if pixel == 0.1:
        grid = seed_true
    else:
        edges = np.arange(-5.0, 5.01, 1.0)
        grid = Grid(seed_true.energy, SkyAxis(edges), SkyAxis(edges))
    quad = EnergyQuadrature.build(grid.energy.edges, mig, irf)
    rng = np.random.default_rng(11)
    subs = rng.choice(len(quad), 4, replace=False)
    n = normalisation_sub(irf, mig, quad, SEED_ROI, grid, (0.0, 0.0), subs)
    nl, nb = grid.lon.nbin, grid.lat.nbin
    cells = [(i, j) for i in range(nl) for j in range(nb)
             if abs(abs(grid.lon.nodes[i]) - 3) < 0.6 or abs(abs(grid.lat.nodes[j]) - 3) < 0.6]
    cells = [cells[k] for k in rng.choice(len(cells), 8, replace=False)]
    worst = 0.0
    for a, s in enumerate(subs):
        e = np.linspace(quad.edges[s], quad.edges[s + 1], 41)
        e = 0.5 * (e[1:] + e[:-1])
        for i, j in cells:
            l = np.linspace(*grid.lon.edges[i:i + 2], 101)
            b = np.linspace(*grid.lat.edges[j:j + 2], 101)
            l, b = 0.5 * (l[1:] + l[:-1]), 0.5 * (b[1:] + b[:-1])
            th = float(angular_offset(grid.lon.nodes[i], grid.lat.nodes[j], 0, 0))
            if not irf.defined(quad.centres[s], th, zero_fill=True):
                assert n[a, i, j] == 0.0
                continue
            ne = energy_containment(irf, SEED_ROI, e, th)
            E, L, B = np.meshgrid(e, l, b, indexing="ij")
            nx = spatial_containment(irf, SEED_ROI, E, L, B, th).mean(axis=(1, 2))
            worst = max(worst, abs(n[a, i, j] - np.mean(ne * nx)))
    assert worst < 1e-4
