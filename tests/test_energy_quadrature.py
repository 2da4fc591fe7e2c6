"""The energy quadrature of the per-event kernel converges as h^2 in the sub-interval
width (PHYSICS.md s. 4). Sub-intervals are the true cells cut at the migration's row
nodes (prod5: 50 per decade), so below ~50 cells per decade the row nodes, not the
cells, set the width; the check therefore halves the widest sub-interval (true grids
of 60 and 120 cells per decade) against a 240-per-decade reference."""

import copy

import numpy as np
import pytest

from gammadm.config import load_config
from gammadm.expected import spectral_average
from gammadm.marginalise import KernelInputs, band_matvec, event_terms
from gammadm.normalise import NormContext

from .conftest import ROOT


@pytest.mark.slow
def test_energy_quadrature_error_falls_as_h_squared():
    base = load_config(ROOT / "tests" / "configs" / "tiny.yaml")
    rng = np.random.default_rng(3)
    n = 40
    er = np.exp(rng.uniform(np.log(2.0), np.log(5.0), n))
    lr = rng.uniform(0.5, 1.0, n)
    br = rng.uniform(-0.5, 0.0, n)
    lam, width = {}, {}
    for per_decade in (60, 120, 240):
        cfg = copy.deepcopy(base)
        cfg["true_grid"]["energy_bins_per_decade"] = per_decade
        ctx = NormContext(cfg, None)
        out = event_terms(ctx, KernelInputs.build(ctx), er, lr, br)
        q = ctx.quad
        sf = spectral_average(lambda e: ctx.models.dm.spectral_factor(e, 8.0), q.edges[:-1],
                              q.edges[1:], upper=8.0)
        lam[per_decade] = (band_matvec(out["dm_g"], out["dm_first"], sf), out["diffuse"])
        width[per_decade] = np.max(np.diff(np.log(q.edges)))
    assert width[120] == pytest.approx(width[60] / 2, rel=0.05)
    for k in range(2):  # dark matter (m = 8 TeV), diffuse
        err60 = np.max(np.abs(lam[60][k] / lam[240][k] - 1))
        err120 = np.max(np.abs(lam[120][k] / lam[240][k] - 1))
        # h^2 against a reference with error (1/4 of err120 if h^2): ratio >= 3.5
        assert err60 < 3e-3 and err60 / err120 >= 3.5, (err60, err120)
