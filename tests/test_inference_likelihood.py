"""Likelihoods on toy mixtures with exact densities: values against independent numpy
formulas, banded = dense, thread-count independence, recovery of known fractions."""

import numpy as np
import pytest
from scipy import stats

from gammadm.inference.api import model_from_arrays
from gammadm.inference.data import binned_arrays
from gammadm.inference.sampler import SamplerSettings, run_dynesty
from gammadm.inference.summary import weighted_samples

from . import inference_toys as toy


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(5)
    return toy.draw(rng, 600, 840, 560, 0.6)  # 2000 events: DM 0.3, b1 0.6, b2 0.4 of bkg


def _fractions_reference(x, m, f_dm, f_b1):
    g, bkg = toy.kernels(x)
    dm = (g @ toy.s_of_m(m)) / (2 - m)
    w = [f_dm, (1 - f_dm) * f_b1, (1 - f_dm) * (1 - f_b1)]
    return np.sum(np.log(w[0] * dm + w[1] * bkg[:, 0] / 100 + w[2] * bkg[:, 1] / 50))


def test_fractions_value(events):
    model = model_from_arrays([toy.arrays(events)], toy.config(), [toy.SPECTRUM])
    assert model.names == ["mass_TeV", "DM", "b1"]
    for th in ([0.6, 0.3, 0.6], [0.2, 0.05, 0.9], [0.85, 0.7, 0.1]):
        assert model.loglike(np.array(th)) == pytest.approx(
            _fractions_reference(events, *th), rel=1e-12)


def test_fractions_off_the_simplex_are_refused(events):
    """Fractions outside [0, 1] make an unnormalised mixture that can out-score every
    valid one (the last sibling is clipped at 0): the likelihood refuses them."""
    model = model_from_arrays([toy.arrays(events)], toy.config(), [toy.SPECTRUM])
    for th in ([0.6, 1.2, 0.5], [0.6, 0.3, -0.1], [0.6, 0.3, 1.0 + 1e-9]):
        assert model.loglike(np.array(th)) == -1e300, th
    assert model.loglike(np.array([0.6, 0.3, 1.0])) > -1e300  # on the edge: valid


def test_rates_value_unbinned_and_binned(events):
    model = model_from_arrays([toy.arrays(events)], toy.config("rates"), [toy.SPECTRUM])
    assert model.names == ["mass_TeV", "sigmav_cm3_s", "scale_b1_toy", "scale_b2_toy"]
    g, bkg = toy.kernels(events)
    th = np.array([0.6, 300.0, 1.1, 0.9])
    lam = th[1] * g @ toy.s_of_m(0.6) + bkg @ th[2:]
    ref = -(th[1] * 1.4 + th[2:] @ toy.MU_B) + np.sum(np.log(lam))
    assert model.loglike(th) == pytest.approx(ref, rel=1e-12)
    # binned: Poisson per bin with nu = integral of lambda over the bin (exact here)
    edges = np.linspace(0, 1, 21)
    counts = np.histogram(events, edges)[0]
    a, b = edges[:-1], edges[1:]
    nu_dm = np.column_stack([(3 * b**2 - 2 * b**3) - (3 * a**2 - 2 * a**3), b**3 - a**3])
    nu_bkg = np.array([100 * (b**2 - a**2), 50 * ((2 * b - b**2) - (2 * a - a**2))])
    arr = binned_arrays("toy", counts, nu_bkg, ["b1", "b2"], nu_dm, np.array([1.0, 2, 3]))
    binned = model_from_arrays([arr], toy.config("rates"), [toy.SPECTRUM])
    nu = th[1] * nu_dm @ toy.s_of_m(0.6) + th[2:] @ nu_bkg
    assert binned.loglike(th) == pytest.approx(np.sum(stats.poisson.logpmf(counts, nu)),
                                               rel=1e-12)
    fr = model_from_arrays([arr], toy.config(), [toy.SPECTRUM])
    w = np.array([0.3, 0.7 * 0.6, 0.7 * 0.4])
    p = w[0] * nu_dm @ toy.s_of_m(0.6) / 1.4 + w[1:] @ (nu_bkg / toy.MU_B[:, None])
    assert fr.loglike(np.array([0.6, 0.3, 0.6])) == pytest.approx(np.sum(counts * np.log(p)),
                                                                  rel=1e-12)


def test_banded_equals_dense_and_thread_independent(events):
    import numba

    rng = np.random.default_rng(2)
    n_sub, width = 12, 4
    dense = toy.arrays(events)
    first = rng.integers(0, n_sub - width + 1, events.size).astype(np.int64)
    band = rng.random((events.size, width))
    full = np.zeros((events.size, n_sub))
    for j in range(width):
        full[np.arange(events.size), first + j] = band[:, j]
    s = lambda m: np.linspace(1.0, 2.0, n_sub) * m  # noqa: E731
    from gammadm.inference.api import FunctionSpectrum

    banded_arr = dense.__class__(**{**dense.__dict__, "dm_first": first, "dm_band": band,
                                    "dm_mu_kernel": np.ones(n_sub)})
    dense_arr = dense.__class__(**{**dense.__dict__, "dm_band": full,
                                   "dm_mu_kernel": np.ones(n_sub)})
    cfg = toy.config("rates")
    a = model_from_arrays([banded_arr], cfg, [FunctionSpectrum(s)])
    b = model_from_arrays([dense_arr], cfg, [FunctionSpectrum(s)])
    th = np.array([0.5, 200.0, 1.0, 1.2])
    assert a.loglike(th) == pytest.approx(b.loglike(th), rel=1e-13)
    before = a.loglike(th)
    numba.set_num_threads(1)
    try:
        one = a.loglike(th)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert one == before


def _interval_ok(x, w, names, truths):
    from gammadm.inference.summary import weighted_quantile

    for j, n in enumerate(names):
        if n in truths:
            lo, hi = weighted_quantile(x[:, j], w, 0.005), weighted_quantile(x[:, j], w, 0.995)
            assert lo <= truths[n] <= hi, (n, lo, truths[n], hi)


def test_fractions_recovered_by_dynesty(events):
    model = model_from_arrays([toy.arrays(events)], toy.config(), [toy.SPECTRUM])
    res, _ = run_dynesty(model.loglike, model.prior, model.ndim, model.names,
                      SamplerSettings(nlive=150, dlogz=0.5, seed=1))
    x, w, names, flags = weighted_samples(res, model)
    assert names == ["mass_TeV", "DM", "b1", "bkg", "b2"] and flags[3:] == [True, True]
    _interval_ok(x, w, names, {"mass_TeV": 0.6, "DM": 0.3, "b1": 0.6, "bkg": 0.7, "b2": 0.4})


def test_rates_recovered_by_dynesty():
    rng = np.random.default_rng(8)
    amp, m = 300.0, 0.4
    n = rng.poisson([amp * (2 - m), 100.0, 50.0])
    x = toy.draw(rng, *n, m)
    model = model_from_arrays([toy.arrays(x)], toy.config("rates"), [toy.SPECTRUM])
    res, _ = run_dynesty(model.loglike, model.prior, model.ndim, model.names,
                      SamplerSettings(nlive=150, dlogz=0.5, seed=2))
    xs, w, names, _ = weighted_samples(res, model)
    _interval_ok(xs, w, names, {"mass_TeV": m, "sigmav_cm3_s": amp, "scale_b1_toy": 1.0,
                                "scale_b2_toy": 1.0})


def test_evidence_matches_analytic():
    """Three backgrounds with disjoint supports (density 3 on a third of [0, 1] each):
    L = prod 3 W_k^{n_k}, and with a Dirichlet(alpha) prior
    Z = 3^n B(n + alpha) / B(alpha) (multivariate beta)."""
    from scipy.special import gammaln

    from gammadm.inference.data import ObservationArrays

    counts = np.array([30, 50, 20])
    alpha = np.array([1.0, 2.0, 1.0])
    x = np.concatenate([np.full(c, (k + 0.5) / 3) for k, c in enumerate(counts)])
    k = np.minimum((x * 3).astype(int), 2)
    bkg = np.zeros((x.size, 3))
    bkg[np.arange(x.size), k] = 3.0
    arr = ObservationArrays("ev", np.zeros(x.size, np.int64), np.zeros((x.size, 1)),
                            np.zeros((x.size, 2)), np.array([1.0, 2.0]), bkg, ["a", "b", "c"],
                            np.ones(3), np.ones(1), np.zeros(2), np.array([1.0, 2.0]),
                            np.ones(x.size))
    cfg = {"likelihood": {"mode": "fractions"}, "dark_matter": {"name": "DM"},
           "priors": {}, "mixture": [{"name": n, "value": 1 / 3, "alpha": a}
                                     for n, a in zip("abc", alpha)]}
    model = model_from_arrays([arr], cfg, signal=False)
    res, _ = run_dynesty(model.loglike, model.prior, model.ndim, model.names,
                      SamplerSettings(nlive=300, dlogz=0.1, seed=4))

    def lnbeta(a):
        return np.sum(gammaln(a)) - gammaln(np.sum(a))

    truth = x.size * np.log(3) + lnbeta(counts + alpha) - lnbeta(alpha)
    assert abs(res.logz[-1] - truth) < 3 * res.logzerr[-1] + 0.05, (res.logz[-1], truth)


def test_loader_names_an_unwritten_chunk(tmp_path):
    """A marginals chunk left NaN (a chunk job that never ran) is named on loading."""
    from gammadm.config import load_config
    from gammadm.inference.data import load_observation
    from gammadm.store import IncompleteStoreError, write_region

    from .conftest import ROOT

    cfg = load_config(ROOT / "config" / "ci.yaml")
    obs = toy.write_toy_stores(tmp_path, cfg, n_events=30, n_chunks=3)
    a = load_observation(obs / "norm.zarr", obs / "marginals.zarr", slice(10, 30))
    assert a.n == 20 and a.bkg_names == ["CCR", "HGPS", "diffuse"]
    assert a.meta["n_events"] == 30 and a.dm_band.shape == (20, 40)
    write_region(obs / "marginals.zarr", "bkg/HGPS", (slice(20, 30),), np.full(10, np.nan))
    with pytest.raises(IncompleteStoreError, match="'bkg/HGPS' is incomplete: chunk 2"):
        load_observation(obs / "norm.zarr", obs / "marginals.zarr")


def test_banded_kernels_equal_dense():
    """The marginalisation stage stores both dark-matter kernels banded (zero outside
    the band, the band may run past the last column): the likelihood's lambda_DM from
    the bands equals the dense sums, lines included."""
    from gammadm.inference.data import compact_band
    from gammadm.kernels.likelihood import banded_dm_lambda

    rng = np.random.default_rng(7)
    n, n_sub, n_pts, w, wl = 50, 30, 40, 8, 6
    first = rng.integers(0, n_sub - 3, n)
    lfirst = rng.integers(0, n_pts - 2, n)
    dense = np.zeros((n, n_sub + w))
    ldense = np.zeros((n, n_pts + wl))
    band = rng.random((n, w))
    lband = rng.random((n, wl))
    ends = rng.integers(0, w + 1, n)  # rows that end early, as most events do
    for e in range(n):
        band[e, ends[e]:] = 0.0
        band[e, max(0, n_sub - first[e]):] = 0.0  # past the last sub-interval: zero
        lband[e, max(0, n_pts - lfirst[e]):] = 0.0
        dense[e, first[e]:first[e] + w] = band[e]
        ldense[e, lfirst[e]:lfirst[e] + wl] = lband[e]
    dense, ldense = dense[:, :n_sub], ldense[:, :n_pts]
    s = rng.random(n_sub)
    line_i = np.array([3, 17, n_pts - 2])
    line_t = np.array([0.2, 0.7, 0.5])
    line_f = np.array([1.0, 0.5, 2.0])
    f2, ptr, vals = compact_band(first, band)
    assert vals.size < band.size and np.all(vals[ptr[:-1][np.diff(ptr) > 0]] != 0)
    lines = compact_band(lfirst, lband)
    got = banded_dm_lambda(f2, ptr, vals, s, line_i, line_t, line_f, *lines, np.empty(n))
    ref = banded_dm_lambda(np.zeros(n, np.int64), np.arange(n + 1) * n_sub, dense.ravel(), s,
                           line_i, line_t, line_f, np.zeros(n, np.int64),
                           np.arange(n + 1) * n_pts, ldense.ravel(), np.empty(n))
    np.testing.assert_allclose(got, ref, rtol=1e-14)
    whole = banded_dm_lambda(first, np.arange(n + 1) * w, band.ravel(), s, line_i, line_t,
                             line_f, lfirst, np.arange(n + 1) * wl, lband.ravel(), np.empty(n))
    np.testing.assert_array_equal(got, whole)  # dropping end zeros changes no bit
