"""Priors: deterministic unit-cube transforms with the right moments (PHYSICS.md s. 6-7)."""

import numpy as np
import pytest
from scipy import stats
from scipy.stats import qmc

from gammadm.config import ConfigError
from gammadm.inference.priors import (Dirichlet, LogNormal, LogUniform, Normal, PriorSet,
                                      Uniform, prior_from_config)
from gammadm.inference.tree import MixtureTree


def _cube(d, m=14, seed=0):
    return qmc.Sobol(d, scramble=True, seed=seed).random_base2(m)


@pytest.mark.parametrize("alpha", [(1.0, 1.0, 1.0), (2.0, 3.0, 5.0), (0.5, 1.0, 1.5, 4.0)])
def test_dirichlet_moments(alpha):
    """Means alpha_i / A and variances alpha_i (A - alpha_i) / (A^2 (A + 1)); sums to 1."""
    d = Dirichlet(alpha)
    u = _cube(d.ndim)
    x = np.array([d.full(v) for v in u])
    a = np.asarray(alpha)
    big = a.sum()
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(x.mean(axis=0), a / big, atol=2e-3)
    np.testing.assert_allclose(x.var(axis=0), a * (big - a) / (big**2 * (big + 1)), rtol=2e-2)
    # covariance of a pair: -alpha_i alpha_j / (A^2 (A + 1))
    assert np.cov(x[:, 0], x[:, 1])[0, 1] == pytest.approx(
        -a[0] * a[1] / (big**2 * (big + 1)), rel=3e-2)


def test_dirichlet_deterministic_and_input_untouched():
    d = Dirichlet((1.0, 2.0, 3.0))
    u = np.array([0.3, 0.8])
    keep = u.copy()
    a, b = d.transform(u), d.transform(u)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(u, keep)
    # stick-breaking by hand: v1 = Beta^-1(0.3; 1, 5), v2 = Beta^-1(0.8; 2, 3)
    v1 = stats.beta.ppf(0.3, 1, 5)
    v2 = stats.beta.ppf(0.8, 2, 3)
    np.testing.assert_allclose(d.full(u), [v1, v2 * (1 - v1), (1 - v1) * (1 - v2)], rtol=1e-12)


@pytest.mark.parametrize("prior, dist", [
    (Uniform(-2.0, 5.0), stats.uniform(-2.0, 7.0)),
    (LogUniform(1e-27, 1e-22), stats.loguniform(1e-27, 1e-22)),
    (Normal(1.5, 0.3), stats.norm(1.5, 0.3)),
    (LogNormal(0.0, 0.1), stats.lognorm(0.1)),
])
def test_scalar_priors_are_the_inverse_cdf(prior, dist):
    u = np.linspace(0.001, 0.999, 101)
    np.testing.assert_allclose(prior.transform(u), dist.ppf(u), rtol=1e-10)


def test_prior_set_and_config_errors():
    tree = MixtureTree([{"name": "DM", "value": 0.5},
                        {"name": "bkg", "value": 0.5, "children": [
                            {"name": "CCR", "value": 0.7}, {"name": "HGPS", "value": 0.2},
                            {"name": "diffuse", "value": 0.1}]}])
    assert tree.sampled_names == ["DM", "CCR", "HGPS"]
    assert tree.derived_names == ["bkg", "diffuse"]
    np.testing.assert_allclose(tree.leaf_weights([0.5, 0.7, 0.2]), [0.5, 0.35, 0.1, 0.05])
    ps = PriorSet([(["mass_TeV"], LogUniform(0.12, 80.0))] +
                  [(list(g.names[:-1]), Dirichlet(g.alpha)) for g in tree.groups])
    assert ps.names == ["mass_TeV", "DM", "CCR", "HGPS"] and ps.ndim == 4
    u = np.array([0.5, 0.5, 0.25, 0.5])
    x = ps(u)
    assert x[0] == pytest.approx(np.sqrt(0.12 * 80.0)) and x[1] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="priors.sigmav_cm3_s.low"):
        prior_from_config({"type": "log_uniform", "high": 1.0}, "priors.sigmav_cm3_s")
