"""The dark matter's J inside the central true cells: with an offset-independent IRF,
the kernel's spatial sum for an event near the GC equals a brute-force integral of the
exact J(psi) times the PSF over the true sky (cell averages outside the resolved region,
as in the model), and the sub-cell correction is what brings it there."""

import dataclasses

import numpy as np
import pytest

from gammadm.config import load_config
from gammadm.instrument.normalisation import energy_kernel_sub
from gammadm.marginalise import KernelInputs, band_to_dense
from gammadm.normalise import NormContext

from .conftest import ROOT


def _flat_inputs(inputs, sigma_deg: float, fine: bool):
    """Offset-independent IRF: one Gaussian PSF term of width sigma_deg everywhere,
    exposure 1 cm2 s, migration column 0; only the dark-matter template."""
    sigma, ca, col0, col_t, l_edges, b_edges, reach = inputs.spatial
    shape = sigma.shape[:3] + (1,)
    sig = np.full(shape, sigma_deg)
    one = np.ones(shape)
    spatial = (sig, one, np.zeros_like(col0), np.zeros_like(col_t), l_edges, b_edges,
               np.full_like(reach, 5.33 * sigma_deg))
    f = inputs.fine
    f = f[:5] + (1.0,) if fine else (f[0], f[1], f[2], f[3], np.zeros((0, 0)), 0.0)
    return dataclasses.replace(inputs, spatial=spatial, templates=inputs.templates[:1].copy(),
                               phi=inputs.phi[:1].copy(), tpl_names=[], fine=f)


@pytest.mark.parametrize("x_r, y_r, sigma", [(0.03, -0.02, 0.03), (0.12, 0.07, 0.02),
                                             (-0.01, 0.004, 0.05)])
def test_central_cells_resolve_j(x_r, y_r, sigma):
    ctx = NormContext(load_config(ROOT / "config" / "ci.yaml"), None)
    inputs = KernelInputs.build(ctx)
    er = np.array([3.0])
    col = ctx.mig.table.offset_nodes[0]
    res = {}
    for fine in (False, True):
        out = _flat_inputs(inputs, sigma, fine).run(er, np.array([x_r]), np.array([y_r]))
        g = band_to_dense(out["dm_g"], out["dm_first"], len(ctx.quad))[0]
        s = np.flatnonzero(g)
        k = energy_kernel_sub(ctx.mig, ctx.quad, er[0], col, s)
        spatial = g[s] / k
        assert np.allclose(spatial, spatial[0], rtol=1e-9)  # same PSF at every energy
        res[fine] = spatial[0]  # sum over cells of T x PSF mass
    # brute force: midpoint rule on a 0.0005 deg grid over +-6 sigma, exact J inside the
    # resolved region and the cell average outside, Gaussian PSF in the tangent plane
    le, be = ctx.obs.true.lon.edges, ctx.obs.true.lat.edges
    f_l, f_b = inputs.fine[0], inputs.fine[1]
    h = 0.0005
    x = np.arange(x_r - 6 * sigma, x_r + 6 * sigma, h) + h / 2
    y = np.arange(y_r - 6 * sigma, y_r + 6 * sigma, h) + h / 2
    X, Y = np.meshgrid(x, y, indexing="ij")
    inside = (X > f_l[0]) & (X < f_l[-1]) & (Y > f_b[0]) & (Y < f_b[-1])
    jx = ctx.models.dm.los(np.hypot(X, Y))
    il = np.searchsorted(le, X) - 1
    ib = np.searchsorted(be, Y) - 1
    j = np.where(inside, jx, ctx.spatial_dm[il, ib])
    cb = np.cos(np.radians(0.5 * (be[ib] + be[ib + 1])))
    dx = (X - x_r) * cb
    dy = Y - y_r
    psf = np.exp(-0.5 * (dx**2 + dy**2) / sigma**2) / (2 * np.pi * sigma**2)
    brute = np.sum(j * psf * cb) * h * h  # cb: the tangent-plane area of dl
    err_fine = abs(res[True] / brute - 1)
    err_coarse = abs(res[False] / brute - 1)
    print(f"x_r=({x_r}, {y_r}) sigma={sigma}: error {err_fine:.2e} resolved, {err_coarse:.2e} cell averages")
    assert err_fine < 3e-3 and err_fine < 0.2 * err_coarse, (err_fine, err_coarse)
