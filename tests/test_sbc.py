"""Simulation-based calibration: ranks, rank statistics and replica truths, checked on
models with exact posteriors (a normal mean with a normal prior)."""

import numpy as np
import pytest

from gammadm.config import ConfigError, load_config, validate_config
from gammadm.sbc import (parameter_prior, posterior_draws, rank_statistics, ranks,
                         replica_config, summarise, uniform_band)

from .conftest import ROOT

L = 99  # posterior draws per replica
BINS = 20


def _conjugate_ranks(rng, n_replicas: int, shift: float = 0.0, scale: float = 1.0):
    """Ranks of theta ~ N(0, 1) among L draws of the exact posterior after y ~ N(theta,
    0.5^2) (mean y / 1.25, sd sqrt(0.2)), its mean moved by ``shift`` posterior sds and
    its sd multiplied by ``scale``."""
    theta = rng.normal(size=n_replicas)
    y = theta + 0.5 * rng.normal(size=n_replicas)
    mean, sd = y / 1.25, np.sqrt(0.2)
    out = []
    for t, m in zip(theta, mean):
        draws = rng.normal(m + shift * sd, scale * sd, size=(L, 1))
        out.append(ranks(draws, np.array([t]))[0])
    return np.array(out)


def test_ranks_count_the_draws_below_the_truth():
    draws = np.array([[0.1, 5.0], [0.3, 1.0], [0.2, 3.0], [0.9, 2.0]])
    np.testing.assert_array_equal(ranks(draws, np.array([0.25, 2.5])), [2, 2])
    np.testing.assert_array_equal(ranks(draws, np.array([-1.0, 9.0])), [0, 4])


def test_exact_posterior_gives_uniform_ranks():
    r = _conjugate_ranks(np.random.default_rng(1), 1000)
    stats = rank_statistics(r, L, BINS)
    assert stats["ks_pvalue"] > 0.01
    assert sum(stats["histogram"]) == 1000
    lo, hi = uniform_band(1000, BINS, level=0.999)
    assert all(lo <= h <= hi for h in stats["histogram"]), stats["histogram"]


def test_biased_posterior_is_detected_with_the_right_sign():
    # a posterior too high by half its width: the truth sits low among its draws
    r = _conjugate_ranks(np.random.default_rng(2), 300, shift=0.5)
    stats = rank_statistics(r, L, BINS)
    assert stats["ks_pvalue"] < 1e-4
    assert r.mean() < 0.4 * L
    assert stats["histogram"][0] > stats["histogram"][-1]


def test_overconfident_posterior_gives_a_u_shaped_histogram():
    r = _conjugate_ranks(np.random.default_rng(3), 300, scale=0.5)
    stats = rank_statistics(r, L, BINS)
    assert stats["ks_pvalue"] < 0.01
    h = np.array(stats["histogram"])
    assert h[[0, -1]].min() > 2 * h[5:15].mean()


def test_weighted_samples_resampled_are_posterior_draws():
    """Importance samples from a wide proposal, weighted by posterior / proposal and
    resampled, rank the truth uniformly; a weight on one sample draws only that one."""
    rng = np.random.default_rng(4)
    out = []
    for _ in range(400):
        theta = rng.normal()
        y = theta + 0.5 * rng.normal()
        x = rng.normal(0.0, 2.0, size=(4000, 1))
        # posterior N(y / 1.25, 0.2) over proposal N(0, 4), up to constants
        lw = -0.5 * (x[:, 0] - y / 1.25) ** 2 / 0.2 + 0.5 * x[:, 0] ** 2 / 4.0
        w = np.exp(lw - lw.max())
        out.append(ranks(posterior_draws(x, w, L, rng), np.array([theta]))[0])
    assert rank_statistics(np.array(out), L, BINS)["ks_pvalue"] > 0.01
    one = np.zeros(10)
    one[7] = 1.0
    draws = posterior_draws(np.arange(10.0)[:, None], one, 5, rng)
    np.testing.assert_array_equal(draws[:, 0], 7.0)


def test_rank_statistics_checks_its_input():
    stats = rank_statistics(np.arange(100), L, BINS)
    assert stats["histogram"] == [5] * BINS  # every rank once: 5 per bin
    with pytest.raises(ValueError, match="do not divide"):
        rank_statistics(np.arange(100), L, 30)
    with pytest.raises(ValueError, match="0..99"):
        rank_statistics(np.array([0, 100]), L, BINS)


def test_summarise_gathers_replicas_per_parameter():
    records = [{"replica": i, "posterior_draws": L, "ranks": {"a": i, "b": L - i},
                "wall_seconds": {"total": 2.0}, "effective_sample_size": 300.0}
               for i in (2, 0, 1)]
    s = summarise(records, L, BINS)
    assert s["replicas"] == 3 and s["replica_ids"] == [0, 1, 2]
    assert s["parameters"]["a"]["ranks"] == [0, 1, 2]
    assert s["parameters"]["b"]["ranks"] == [99, 98, 97]
    assert s["expected_per_bin"] == pytest.approx(3 / BINS)
    assert s["replica_wall_seconds"]["sum"] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="posterior draws"):
        summarise(records, 49, 10)


def test_replica_config_carries_the_drawn_truth():
    cfg = load_config(ROOT / "config" / "sbc.yaml")
    tree, prior = parameter_prior(cfg)
    assert prior.names == ["mass_TeV", "DM", "CCR", "HGPS"]
    theta = prior(np.random.default_rng(5).random(prior.ndim))
    rep = validate_config(replica_config(cfg, tree, theta))  # sibling values sum to 1
    assert rep["simulation"]["mode"] == "multinomial"
    assert rep["simulation"]["mass_TeV"] == pytest.approx(theta[0])
    nodes = {n["name"]: n for n in rep["mixture"]}
    children = {c["name"]: c["value"] for c in nodes["bkg"]["children"]}
    assert nodes["DM"]["value"] == pytest.approx(theta[1])
    assert nodes["bkg"]["value"] == pytest.approx(1 - theta[1])
    assert children["CCR"] == pytest.approx(theta[2])
    assert children["HGPS"] == pytest.approx(theta[3])
    assert children["diffuse"] == pytest.approx(1 - theta[2] - theta[3])
    assert cfg["mixture"][0]["value"] == 0.5  # the campaign itself is left alone


def test_sbc_section_needs_fractions_mode_and_whole_bins():
    cfg = load_config(ROOT / "config" / "sbc.yaml")
    assert cfg["sbc"] == {"replicas": 200, "posterior_draws": 99, "bins": 20, "seed": 1}
    with pytest.raises(ConfigError, match="'sbc'.*fractions"):
        validate_config({**cfg, "likelihood": {"mode": "rates"},
                         "priors": {**cfg["priors"],
                                    "sigmav_cm3_s": {"type": "log_uniform", "low": 1e-27,
                                                     "high": 1e-22}}})
    with pytest.raises(ConfigError, match="'sbc.bins'"):
        validate_config({**cfg, "sbc": {"bins": 7}})
    assert "sbc" not in load_config(ROOT / "config" / "ci.yaml")
