"""Binned mode: nu_{k,b} sums to mu_k, equals the integral of lambda_k over the bin,
chunks and faults of binned.zarr, and closure against a large Poisson simulation."""

import copy
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from scipy.stats import chi2

from gammadm import binned
from gammadm.config import ConfigError, load_config
from gammadm.expected import (
    ccr_expected,
    dm_expected,
    dm_points_kernel,
    dm_subinterval_spectrum,
    subinterval_terms,
)
from gammadm.normalise import NormContext
from gammadm.store import IncompleteStoreError

from .conftest import ROOT

CI = ROOT / "config" / "ci.yaml"
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def _variant(tmp_path, base, name, **roi):
    """A copy of a config with some ROI fields replaced."""
    raw = copy.deepcopy(yaml.safe_load(base.read_text()))
    raw["roi"].update(roi)
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _no_events():
    return SimpleNamespace(energy=np.zeros(0), l=np.zeros(0), b=np.zeros(0), n=0,
                           n_cut_roi=0, n_cut_gti=0)


def _build(ctx, path, n_chunks, events=None, chunks=None):
    binned.create(ctx, path, n_chunks, events or _no_events())
    for i in range(n_chunks) if chunks is None else chunks:
        binned.fill_chunk(ctx, path, i, n_chunks)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """The CI campaign with the ROI reaching down to 0.15 TeV (so that m = 0.2 TeV has
    events), its norm terms and a complete binned store."""
    d = tmp_path_factory.mktemp("wide")
    cfg = _variant(d, CI, "wide", energy_tev=[0.15, 20.0], l_deg=[-0.6, 0.6],
                   b_deg=[-0.6, 0.6], pixel_deg=0.2)
    ctx = NormContext(load_config(cfg), None)
    _build(ctx, d / "binned.zarr", 1)
    terms = subinterval_terms(ctx.obs, ctx.mig, ctx.quad, ctx.spatial_dm, ctx.diffuse_morph,
                              ctx.models.diffuse.spectrum, ctx.sources,
                              np.arange(len(ctx.quad)))
    return ctx, binned.load(d / "binned.zarr"), terms


def test_sum_over_bins_is_mu(wide):
    """sum_b nu_k = mu_k for every component, to 1e-9 (the bins telescope to the ROI)."""
    ctx, model, terms = wide
    assert model.counts.shape == ctx.obs.recon.shape == (22, 6, 6)
    hp = dm_points_kernel(ctx.obs, ctx.mig, ctx.spatial_dm, ctx.line_energies)
    for m in (0.2, 1.0, 10.0):
        nu = model.nu_dm(ctx.models.dm, m, 3e-26)
        mu = dm_expected(ctx.models.dm, ctx.quad, terms.dm_h, ctx.line_energies, hp, m, 3e-26)
        assert nu.min() >= 0 and mu > 1.0
        assert nu.sum() == pytest.approx(mu, rel=1e-9), m
    assert model.nu("diffuse").sum() == pytest.approx(terms.background_mu["diffuse"].sum(),
                                                      rel=1e-9)
    assert model.nu("HGPS").sum() == pytest.approx(terms.hgps_mu.sum(), rel=1e-9)
    assert model.nu("CCR").sum() == pytest.approx(ccr_expected(ctx.obs), rel=1e-12)
    # the separable dark-matter kernel: per sub-interval, sum_b nuh[s, b] = H_s
    nuh = model.dm_kernel()
    np.testing.assert_allclose(nuh.sum(axis=1), terms.dm_h, rtol=1e-9,
                               atol=1e-12 * terms.dm_h.max())
    sf = dm_subinterval_spectrum(ctx.models.dm, model.sub_edges, 10.0)
    np.testing.assert_allclose((sf * np.diff(model.sub_edges)) @ nuh,
                               model.nu_dm(ctx.models.dm, 10.0).ravel(), rtol=1e-12)
    sel = np.array([5, 77, 300])
    np.testing.assert_array_equal(model.dm_kernel(sel, block=2), nuh[:, sel])
    np.testing.assert_allclose(model.dm_points_kernel().sum(axis=1), hp, rtol=1e-9,
                               atol=1e-12 * hp.max())


def test_sky_factors_do_not_depend_on_the_thread_count(wide):
    import numba

    ctx = wide[0]
    sub = np.arange(0, len(ctx.quad), 3)
    a = binned.sky_factors(ctx, sub)
    numba.set_num_threads(1)
    try:
        b = binned.sky_factors(ctx, sub)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _bin_integral(ctx, inputs, i, j, m, n_e=24, seg_deg=0.05, nodes=5):
    """Brute force: event_terms' lambda integrated over recon bin (i, j, m): midpoints
    in ln E_r, composite Gauss-Legendre in l and b (resolving the PSF)."""
    from gammadm.marginalise import band_to_dense, event_terms

    e_edges, l_edges, b_edges = binned.recon_edges(ctx.obs)
    le = np.log(e_edges[i:i + 2])
    u = (np.arange(n_e) + 0.5) / n_e
    er = np.exp(le[0] + (le[1] - le[0]) * u)
    we = er * (le[1] - le[0]) / n_e  # dE

    def axis(lo, hi):
        n_seg = int(np.ceil((hi - lo) / seg_deg))
        x, w = np.polynomial.legendre.leggauss(nodes)
        edges = np.linspace(lo, hi, n_seg + 1)
        h = 0.5 * np.diff(edges)[:, None]
        return ((edges[:-1, None] + h * (x + 1)).ravel(), (h * w).ravel())

    lx, lw = axis(*l_edges[j:j + 2])
    bx, bw = axis(*b_edges[m:m + 2])
    E, L, B = np.meshgrid(er, lx, bx, indexing="ij")
    W = (we[:, None, None] * lw[None, :, None] * (bw * np.cos(np.radians(bx)))[None, None]
         * (np.pi / 180) ** 2)
    out = event_terms(ctx, inputs, E.ravel(), L.ravel(), B.ravel())
    w = W.ravel()
    lam = {k: out[k] for k in ctx.backgrounds}
    lam["dm_g"] = band_to_dense(out["dm_g"], out["dm_first"], len(ctx.quad))
    return {k: (w @ v if v.ndim == 2 else float(w @ v)) for k, v in lam.items()}


@pytest.mark.parametrize("where", [
    # tiny: the point source HESS J1747-281 sits 0.08 deg above the pixel's upper edge
    ("tiny", {}, (0, 1, 1)),
    ("tiny", {}, (3, 1, 1)),  # the last, narrower energy bin (3.99-5 TeV)
    # around the Gaussian source HESS J1745-303 (sigma 0.18 deg)
    ("gauss", {"l_deg": [-1.5, -1.0], "b_deg": [-0.75, -0.25]}, (1, 0, 1)),
])
def test_nu_equals_the_integral_of_lambda_over_the_bin(tmp_path, where):
    """nu_{k,b} of a 0.25 deg pixel (PSF 0.03 deg) against a brute-force integral of the
    marginalisation kernels' lambda over the bin, to 3e-4 (measured: 1e-5 to 2e-4)."""
    from gammadm.marginalise import KernelInputs

    name, roi, (i, j, m) = where
    ctx = NormContext(load_config(_variant(tmp_path, TINY, name, **roi)), None)
    _build(ctx, tmp_path / "b.zarr", 1)
    model = binned.load(tmp_path / "b.zarr")
    brute = _bin_integral(ctx, KernelInputs.build(ctx), i, j, m)
    for k in ("diffuse", "HGPS", "CCR"):
        nu = model.nu(k)[i, j, m]
        assert nu > 0.01, (k, nu)
        assert brute[k] == pytest.approx(nu, rel=3e-4), k
    for mass in (3.0, 10.0):  # continuum: lambda = sum_s S_s G_e[s]
        sf = dm_subinterval_spectrum(ctx.models.dm, model.sub_edges, mass)
        nu_all = model.nu_dm(ctx.models.dm, mass)
        nu = nu_all[i, j, m]
        assert not ctx.models.dm.line_factors(mass)  # no lines in the singlet here
        if mass > model.energy_edges[i]:
            assert brute["dm_g"] @ sf == pytest.approx(nu, rel=3e-4), mass
        else:
            # a bin fed by the migration's far tail alone (m = 3 TeV into 3.99-5 TeV:
            # 2e-7 of the component): nu is exact there, while the kernels' windows
            # drop up to tail_mass of the component (measured: 2 % of this bin)
            assert abs(brute["dm_g"] @ sf - nu) <= ctx.obs.tail_mass * nu_all.sum()


def test_chunked_equals_unchunked_and_unwritten_chunks_are_found(tmp_path):
    ctx = NormContext(load_config(CI), None)
    events = SimpleNamespace(energy=np.array([0.5, 1.0, 19.99, 20.0 * (1 + 1e-10)]),
                             l=np.array([-1.0, 0.1, 0.99, 1.0]),
                             b=np.array([-1.0, -0.3, 0.3, 1.0 + 1e-10]), n=4, n_cut_roi=0,
                             n_cut_gti=0)
    _build(ctx, tmp_path / "one.zarr", 1, events)
    part = tmp_path / "three.zarr"
    _build(ctx, part, 3, events, chunks=[2, 0])
    with pytest.raises(IncompleteStoreError, match="chunk 1 .*re-run chunk job 1/3"):
        binned.load(part)
    binned.fill_chunk(ctx, part, 1, 3)
    a, b = binned.load(tmp_path / "one.zarr"), binned.load(part)
    for field in ("counts", "energy", "points_energy", "points_sky"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for k in a.sky:
        np.testing.assert_array_equal(a.sky[k], b.sky[k], err_msg=k)
    np.testing.assert_array_equal(a.nu("CCR"), b.nu("CCR"))
    # events on the closed ROI's outer edges land in the edge bins; outside: an error
    c = a.counts
    assert c.sum() == 4 and c[0, 0, 0] == c[-1, -1, -1] == c[-1, -1, 5] == 1
    with pytest.raises(ValueError, match="1 events lie outside the ROI"):
        binned.histogram(ctx.obs, [1.0, 1.0], [0.0, 1.01], [0.0, 0.0])


def test_use_binned():
    assert binned.use_binned("auto", 10**6) is False
    assert binned.use_binned("auto", 10**6 + 1) is True
    assert binned.use_binned(True, 5) is True and binned.use_binned(False, 10**9) is False
    with pytest.raises(ConfigError, match="likelihood.binned"):
        binned.use_binned("yes", 5)


def _grouped_tests(n, nu, min_expected=5.0):
    """Pearson and likelihood-ratio p-values of counts n against expectations nu, with
    bins merged (in order of nu, decided by nu alone) into groups of >= min_expected."""
    order = np.argsort(nu.ravel(), kind="stable")
    n, nu = n.ravel()[order], nu.ravel()[order]
    groups, acc = [], 0.0
    start = 0
    for k in range(nu.size):
        acc += nu[k]
        if acc >= min_expected:
            groups.append((start, k + 1))
            start, acc = k + 1, 0.0
    if start < nu.size:  # the remainder joins the last group
        groups[-1] = (groups[-1][0], nu.size)
    ng = np.array([n[a:b].sum() for a, b in groups], float)
    mg = np.array([nu[a:b].sum() for a, b in groups])
    pearson = np.sum((ng - mg) ** 2 / mg)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = 2 * np.sum(np.where(ng > 0, ng * np.log(ng / mg), 0.0) - (ng - mg))
    return chi2.sf(pearson, len(groups)), chi2.sf(g, len(groups)), len(groups)


@pytest.mark.slow
def test_closure_histograms_of_a_poisson_simulation_agree_with_nu(tmp_path):
    """Recon histograms of a large Poisson simulation (~6e4 ROI events per component,
    CI campaign) agree with nu_k per component: chi-square p > 0.001."""
    from gammadm.events.simulate import build_components, simulate

    ctx = NormContext(load_config(CI), None)
    _build(ctx, tmp_path / "b.zarr", 1)
    model = binned.load(tmp_path / "b.zarr")
    amp, mass = 3e-26, 1.0
    nu = {"DM": model.nu_dm(ctx.models.dm, mass, amp), "HGPS": model.nu("HGPS"),
          "diffuse": model.nu("diffuse"), "CCR": model.nu("CCR")}
    comps = build_components(ctx, mass, amp)
    per_round = 6000.0  # ROI events per component and round (memory of apply_irf)
    scale = {k: per_round / v.sum() for k, v in nu.items()}
    for c in comps:
        c.weights = c.weights * scale[c.name]
        c.lines = [(e, w * scale[c.name]) for e, w in (c.lines or [])]
    rng = np.random.default_rng(20261126)
    counts = {k: 0 for k in nu}
    rounds = 10
    for _ in range(rounds):
        ev = simulate(rng, ctx.obs, ctx.mig, ctx.quad, comps,
                      {"CCR": nu["CCR"].sum() * scale["CCR"]}, "poisson", "CCR")
        for k, name in enumerate(ev.mc_components):
            sel = ev.mc["component"] == k
            counts[name] = counts[name] + binned.histogram(ctx.obs, ev.energy[sel],
                                                           ev.l[sel], ev.b[sel])
    for name, v in nu.items():
        expect = v * scale[name] * rounds
        n = counts[name]
        assert not n[expect == 0].any(), name
        p_pearson, p_lr, n_groups = _grouped_tests(n, expect)
        assert n_groups > 100, (name, n_groups)
        print(f"closure {name}: {n.sum()} events, {n_groups} groups, p {p_pearson:.3g} "
              f"(Pearson) {p_lr:.3g} (likelihood ratio)")
        assert p_pearson > 1e-3 and p_lr > 1e-3, (name, p_pearson, p_lr)


@pytest.mark.slow
def test_cli_bin_stage(tmp_path):
    """`gammadm bin` on the CI campaign: the counts of the simulated event list, nu of
    every component, and one-line errors with exit 2."""
    def run(*a, check=True):
        return subprocess.run([sys.executable, "-m", "gammadm.cli", *a, "--config", str(CI)],
                              cwd=ROOT, capture_output=True, text=True, check=check)

    ev = tmp_path / "events.fits"
    run("simulate", "--out", str(ev))
    out = tmp_path / "binned.zarr"
    proc = run("bin", "--events", str(ev), "--out", str(out))
    assert "200 events" in proc.stdout
    model = binned.load(out)
    assert model.counts.sum() == 200 and model.attrs["n_events"] == 200
    assert model.nu("CCR").sum() > 0 and model.nu_dm(ctx_dm(), 1.0).sum() > 0
    bad = run("bin", "--events", str(ev), "--out", str(out), "--chunk", "0/2", check=False)
    assert bad.returncode == 2 and "normalisation.chunks" in bad.stderr
    missing = run("bin", "--events", str(tmp_path / "none.fits"), "--out",
                  str(tmp_path / "x.zarr"), check=False)
    assert missing.returncode == 2 and "none.fits" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def ctx_dm():
    from gammadm.models.dark_matter import DarkMatterModel

    return DarkMatterModel.from_config(load_config(CI))
