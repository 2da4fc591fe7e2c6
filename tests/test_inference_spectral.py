"""The mass table: S_s(m) interpolated on the dense ln m grid against direct quadrature."""

import numpy as np
import pytest

from gammadm.config import load_config
from gammadm.inference.spectral import SpectralTable, _direct
from gammadm.models.dark_matter import DarkMatterModel

from .conftest import ROOT


@pytest.fixture(scope="module")
def table(data_root):
    dm = DarkMatterModel.from_config(load_config(ROOT / "config" / "ci.yaml"))
    edges = np.geomspace(0.3, 25.0, 101)  # ~52 sub-intervals per decade, like the CI grid
    return SpectralTable(dm, edges, np.geomspace(0.3, 25.0, 50), (0.5, 5.0))


def test_expected_counts_from_the_table(table):
    """mu = S . w with w = the sub-interval widths (a flat energy kernel): < 1e-3 relative
    between the grid nodes, for masses whose spectrum reaches well into the grid."""
    w = np.diff(table.sub_edges)
    err = table.relative_error(w)
    assert np.max(err) < 1e-3, np.max(err)
    # at the nodes themselves the table is exact
    m = table.masses[::17]
    np.testing.assert_allclose([table.spectral_factors(x) for x in m],
                               _direct(table.dm, table.sub_edges, m), rtol=1e-9, atol=0)


def test_line_terms_follow_the_mass(table):
    t = table.terms(1.3)
    lines = table.dm.line_factors(1.3)
    assert len(lines) == t.line_f.size
    for q, (e, f) in enumerate(lines):
        assert t.line_f[q] == pytest.approx(f, rel=1e-3)
        le = np.log(table.line_energies)
        assert np.exp(le[t.line_i[q]] + t.line_t[q] * (le[1] - le[0])) == pytest.approx(e,
                                                                                          rel=1e-6)
