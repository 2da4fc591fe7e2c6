"""Simulation from the continuous model: fixed and multinomial counts, MC truth, and
closure with mu_k."""

import numpy as np
import pytest

from gammadm.config import load_config
from gammadm.events.simulate import (build_components, fixed_counts, multinomial_counts,
                                     simulate, simulate_observation)
from gammadm.expected import dm_expected, subinterval_terms
from gammadm.normalise import NormContext

from .conftest import ROOT


@pytest.fixture(scope="module")
def ctx():
    return NormContext(load_config(ROOT / "config" / "ci.yaml"), None)


def test_fixed_mode_gives_the_tree_counts(ctx):
    cfg = load_config(ROOT / "config" / "ci.yaml")
    counts = fixed_counts(cfg, 200)
    assert counts == {"DM": 100, "CCR": 70, "HGPS": 20, "diffuse": 10}
    comps = build_components(ctx, 1.0, 3e-26)
    ev = simulate(np.random.default_rng(5), ctx.obs, ctx.mig, ctx.quad, comps, counts,
                  "fixed", "CCR", batch=4000)
    assert ev.n == 200 and ev.mc_components == ["DM", "HGPS", "diffuse", "CCR"]
    np.testing.assert_array_equal(np.bincount(ev.mc["component"]), [100, 20, 10, 70])
    assert ctx.obs.roi.contains(ev.energy, ev.l, ev.b).all()
    again = simulate(np.random.default_rng(5), ctx.obs, ctx.mig, ctx.quad, comps, counts,
                     "fixed", "CCR", batch=4000)
    np.testing.assert_array_equal(again.energy, ev.energy)  # explicit seeds: reproducible
    dm = ev.mc["component"] == 0
    assert np.all(ev.mc["energy"][dm] <= 1.0 + 1e-12)  # the spectrum ends at m
    assert np.all(np.isnan(ev.mc["energy"][ev.mc["component"] == 3]))  # CCR: no true photon


def test_context_from_already_built_models(ctx):
    """NormContext(cfg, models=...) reuses the models (and their observation) and sets
    up the same quadrature as building everything from the config."""
    again = NormContext(ctx.models.cfg, models=ctx.models)
    assert again.models is ctx.models and again.obs is ctx.obs
    np.testing.assert_array_equal(again.quad.edges, ctx.quad.edges)
    np.testing.assert_array_equal(again.spatial_dm, ctx.spatial_dm)
    assert again.backgrounds == ctx.backgrounds


def test_poisson_closure_against_mu(ctx):
    """Counts of 200 Poisson data sets agree with mu_k (mean within 3 standard errors),
    per component, with normalisations scaled so that each set is small."""
    terms = subinterval_terms(ctx.obs, ctx.mig, ctx.quad, ctx.spatial_dm, ctx.diffuse_morph,
                              ctx.models.diffuse.spectrum, ctx.sources, np.arange(len(ctx.quad)))
    from gammadm.expected import dm_points_kernel, line_energy_grid

    le = line_energy_grid(ctx.quad, 50)
    hp = dm_points_kernel(ctx.obs, ctx.mig, ctx.spatial_dm, le)
    amp = 3e-26
    mu = {"DM": dm_expected(ctx.models.dm, ctx.quad, terms.dm_h, le, hp, 1.0, amp),
          "HGPS": terms.hgps_mu.sum(), "diffuse": terms.background_mu["diffuse"].sum()}
    comps = build_components(ctx, 1.0, amp)
    lam = {name: sum(c.total for c in comps if c.name == name) for name in mu}
    scale = {name: 60.0 / lam[name] for name in mu}  # ~60 true photons per set
    scaled = []
    for c in comps:
        c.weights = c.weights * scale[c.name]
        c.lines = [(e, w * scale[c.name]) for e, w in (c.lines or [])]
        scaled.append(c)
    rng = np.random.default_rng(2026)
    n_sets = 200
    got = {name: [] for name in mu}
    for _ in range(n_sets):
        ev = simulate(rng, ctx.obs, ctx.mig, ctx.quad, scaled, {}, "poisson", None)
        counts = np.bincount(ev.mc["component"], minlength=3)
        for k, name in enumerate(ev.mc_components):
            got[name].append(counts[k])
    for name in mu:
        expect = mu[name] * scale[name]
        c = np.array(got[name])
        se = np.sqrt(expect / n_sets)
        assert abs(c.mean() - expect) < 3 * se, (name, c.mean(), expect, se)


def test_cli_simulate_writes_a_dl3_file(tmp_path):
    import subprocess
    import sys

    from gammadm.events import read_events
    from gammadm.geometry import ROI

    out = tmp_path / "gc" / "events.fits"
    proc = subprocess.run([sys.executable, "-m", "gammadm.cli", "simulate", "--config",
                           str(ROOT / "config" / "ci.yaml"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    assert "200 events" in proc.stdout
    ev = read_events(out, ROI((0.5, 20.0), (-1.0, 1.0), (-1.0, 1.0)))
    assert ev.n == 200 and ev.n_cut_roi == 0
    assert (out.parent / "hdu-index.fits.gz").exists()
    np.testing.assert_array_equal(np.bincount(ev.mc["component"]), [100, 20, 10, 70])


def test_gaussian_sources_follow_the_exposure_across_their_extent():
    """A Gaussian source's true photons: Lambda equals the expected-count stage's (cell
    masses times each cell's exposure), and drawn positions land in the cells in those
    proportions, each inside its drawn cell (the exposure gradient is followed)."""
    from scipy.stats import chisquare

    from gammadm.events.simulate import draw_true

    ctx = NormContext(load_config(ROOT / "config" / "config.yaml"), None)
    comps = [c for c in build_components(ctx, 1.0, 3e-26) if c.direction == "gaussian"]
    assert comps
    terms = subinterval_terms(ctx.obs, ctx.mig, ctx.quad, ctx.spatial_dm, ctx.diffuse_morph,
                              ctx.models.diffuse.spectrum, ctx.sources, np.arange(len(ctx.quad)))
    gauss = [i for i, s in enumerate(ctx.sources) if not s.is_point]
    for c, i in zip(comps, gauss):
        assert c.total == pytest.approx(terms.hgps_lambda[i].sum(), rel=1e-9)
        # the exposure varies across the source: cell weights are not the bare Gaussian
        cell_w = c.weights.sum(axis=0)
        e, l, b = draw_true(np.random.default_rng(8), ctx.obs, ctx.quad, c, 40000)
        true = ctx.obs.true
        il = np.searchsorted(true.lon.edges, l) - 1
        ib = np.searchsorted(true.lat.edges, b) - 1
        counts = np.zeros(cell_w.shape)
        np.add.at(counts, (il, ib), 1)
        sel = cell_w > 5 * cell_w.sum() / 40000  # cells expecting > 5 photons
        expect = cell_w[sel] / cell_w.sum() * 40000
        obs_c = counts[sel]
        rest = 40000 - obs_c.sum()
        p = chisquare(np.append(obs_c, rest),
                      np.append(expect, 40000 - expect.sum())).pvalue
        assert p > 1e-3, p


def test_multinomial_counts_have_the_mixture_mean_and_variance(ctx):
    """Multinomial mode: counts sum to n_events, with mean n W_k and variance
    n W_k (1 - W_k) over draws (fixed counts would have none); the simulated list has
    exactly the drawn counts."""
    cfg = load_config(ROOT / "config" / "ci.yaml")
    w = {"DM": 0.5, "CCR": 0.35, "HGPS": 0.1, "diffuse": 0.05}
    rng = np.random.default_rng(12)
    draws = [multinomial_counts(rng, cfg, 200) for _ in range(4000)]
    assert all(sum(d.values()) == 200 and set(d) == set(w) for d in draws)
    for k, wk in w.items():
        c = np.array([d[k] for d in draws])
        var = 200 * wk * (1 - wk)
        assert abs(c.mean() - 200 * wk) < 4 * np.sqrt(var / c.size), k
        assert c.var() == pytest.approx(var, rel=0.1), k
    cfg["simulation"].update(mode="multinomial", n_events=120)
    ev = simulate_observation(np.random.default_rng(3), cfg, ctx)
    want = multinomial_counts(np.random.default_rng(3), cfg, 120)
    got = dict(zip(ev.mc_components, np.bincount(ev.mc["component"], minlength=4).tolist()))
    assert got == want and ev.n == 120


def test_energies_follow_the_spectrum_inside_a_sub_interval():
    """Inside one energy sub-interval the true energies follow the spectrum itself (KS
    against its CDF by quadrature), also where a dark-matter continuum ends inside it
    (a power law through the two ends put every photon at the lower edge)."""
    from scipy.integrate import quad
    from scipy.stats import kstest

    from gammadm.events.simulate import draw_in_intervals

    m = 1.0

    def spectrum(e):
        e = np.asarray(e, float)
        return np.where(e < m, e**-1.5 * np.clip(1 - e / m, 0, None) ** 2, 0.0)

    rng = np.random.default_rng(3)
    cases = [(0.9, m), (0.95, m), (0.5, 0.6), (0.97, m)]  # ends at m, or a plain slope
    a = np.concatenate([np.full(20000, lo) for lo, _ in cases])
    b = np.concatenate([np.full(20000, hi) for _, hi in cases])
    e = draw_in_intervals(rng, spectrum, a, b)
    for k, (lo, hi) in enumerate(cases):
        x = e[k * 20000:(k + 1) * 20000]
        assert np.all((x >= lo) & (x <= hi))
        grid = np.linspace(lo, hi, 401)
        cum = np.cumsum([0.0] + [quad(spectrum, u, v)[0] for u, v in zip(grid, grid[1:])])
        assert kstest(x, lambda v: np.interp(v, grid, cum / cum[-1])).pvalue > 1e-3, (lo, hi)


@pytest.mark.parametrize("a, b", [(-0.3, 0.4), (1.2, 1.5), (-2.5, -2.2), (9.0, 9.3),
                                  (-9.1, -8.8)])
def test_truncated_normal_follows_scipys_truncnorm(a, b):
    """The inverse-CDF draws follow the truncated normal, far tails included, where a
    CDF difference near 1 would have lost the interval."""
    from scipy.stats import kstest, truncnorm

    from gammadm.events.simulate import truncated_normal

    rng = np.random.default_rng(11)
    x = truncated_normal(rng, np.full(20000, a), np.full(20000, b))
    assert np.all((x >= a) & (x <= b))
    assert kstest(x, truncnorm(a, b).cdf).pvalue > 1e-3
