"""The Gaussian-model experiment: the paper's data generation, the closed-form MLE against a
numerical maximisation, and the fitted ELBOs against the exact marginal likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from neurips18._validation import ValidationError
from neurips18.hvae import fit_gaussian_model, gaussian_mle, make_gaussian_model


def _log_marginal(x, delta, sigma):
    """log p(x_1..N) with z integrated out, coordinate by coordinate (N(Delta 1, s^2 I + 11^T))."""
    n, d = x.shape
    total = 0.0
    for j in range(d):
        cov = sigma[j] ** 2 * np.eye(n) + np.ones((n, n))
        total += stats.multivariate_normal(np.full(n, delta[j]), cov).logpdf(x[:, j])
    return total


def test_data_follow_the_papers_generation():
    data = make_gaussian_model(5, 20_000, generator=0)
    assert data.x.shape == (20_000, 5)
    np.testing.assert_allclose(data.delta, [-0.4, -0.2, 0.0, 0.2, 0.4])
    np.testing.assert_allclose(data.sigma, [1.0, 0.325, 0.1, 0.325, 1.0])
    np.testing.assert_allclose(data.x.mean(0), data.z + data.delta, atol=4 / math.sqrt(20_000))
    np.testing.assert_allclose(data.x.std(0), data.sigma, rtol=0.03)
    again = make_gaussian_model(5, 20_000, generator=0)
    assert np.array_equal(again.x, data.x)
    assert make_gaussian_model(1, 10, generator=1).sigma.tolist() == [1.0]


def test_mle_is_the_maximum_of_the_marginal_likelihood():
    data = make_gaussian_model(2, 60, generator=3)
    delta, sigma = gaussian_mle(data.x)
    best = _log_marginal(data.x, delta, sigma)
    for j in range(2):
        def neg(v, j=j):
            d_, s_ = delta.copy(), sigma.copy()
            d_[j], s_[j] = v[0], math.exp(v[1])
            return -_log_marginal(data.x[:, [j]], d_[[j]], s_[[j]])

        res = optimize.minimize(neg, [0.0, 0.0], method="Nelder-Mead",
                                options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
        assert res.x[0] == pytest.approx(delta[j], abs=1e-5)
        assert math.exp(res.x[1]) == pytest.approx(sigma[j], rel=1e-5)
    for eps in (1e-3, -1e-3):
        assert _log_marginal(data.x, delta + eps, sigma) < best
        assert _log_marginal(data.x, delta, sigma * (1 + eps)) < best


@pytest.mark.parametrize("method, kw", [("vb", {}), ("hvae", {"tempering": "fixed"}),
                                        ("hvae", {"tempering": "none"}),
                                        ("planar", {"n_flow": 3})])
def test_fitted_elbo_stays_below_the_marginal_likelihood(method, kw):
    data = make_gaussian_model(2, 200, generator=1)
    fit = fit_gaussian_model(data.x, method, n_iter=600, lr=1e-2, n_leapfrog=3, generator=2,
                             **kw)
    log_px = _log_marginal(data.x, fit.delta, fit.sigma)
    assert fit.elbo[-1] < log_px + 1e-6
    assert fit.elbo[-1] > fit.elbo[0]  # it learned something
    assert len(fit.elbo) == 600 // 100 + 1
    if method == "hvae":
        assert 0 < fit.flow["step_size_mean"] < 0.5 and 0 < fit.flow["beta0"] <= 1


def test_vb_reaches_the_mle_when_run_long_enough():
    data = make_gaussian_model(1, 500, generator=4)
    d_mle, s_mle = gaussian_mle(data.x)
    fit = fit_gaussian_model(data.x, "vb", n_iter=6000, lr=3e-3, generator=0)
    assert abs(fit.delta[0] - d_mle[0]) < 0.05
    assert abs(fit.sigma[0] - s_mle[0]) < 0.01


def test_gaussian_bad_input():
    x = make_gaussian_model(2, 50, generator=0).x
    with pytest.raises(ValidationError, match="Invalid method"):
        fit_gaussian_model(x, "iaf")
    with pytest.raises(ValidationError, match="Invalid x"):
        fit_gaussian_model(np.full((10, 2), np.nan))
    with pytest.raises(ValidationError, match="Invalid n_iter"):
        fit_gaussian_model(x, n_iter=0)
    # the HVAE's settings are checked with every method, not only "hvae"
    with pytest.raises(ValidationError, match="Invalid tempering"):
        fit_gaussian_model(x, "vb", tempering="fixd", n_iter=1)
    with pytest.raises(ValidationError, match="Invalid n_leapfrog"):
        fit_gaussian_model(x, "planar", n_leapfrog=0, n_iter=1)
    with pytest.raises(ValidationError, match="Invalid progress"):
        fit_gaussian_model(x, "vb", progress="yes", n_iter=1)
    with pytest.raises(ValidationError, match="Invalid dim"):
        make_gaussian_model(0, generator=0)
    with pytest.raises(ValidationError, match="Invalid generator"):
        make_gaussian_model(2, generator=None)
    before = x.copy()
    gaussian_mle(x)
    assert np.array_equal(x, before)


def test_mle_sigma_is_accurate_for_a_widely_spread_column():
    # sigma^2 far above N makes the quadratic's linear coefficient negative, where the
    # rationalised root cancelled: 2 % off at scale 1e8 with N = 10, inf from 1e10 up
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    base = np.random.default_rng(0).standard_normal((10, 1))
    for scale in (1.0, 1e4, 1e8, 1e10, 1e100):
        x = base * scale
        n = x.shape[0]
        col = [mpmath.mpf(float(v)) for v in x[:, 0]]
        mean = sum(col) / n
        S = sum((v - mean) ** 2 for v in col)
        b = n * (n - 1) - S
        expected = mpmath.sqrt((-b + mpmath.sqrt(b * b + 4 * n * n * S)) / (2 * n))
        _, sigma = gaussian_mle(x)
        assert np.isfinite(sigma[0])
        assert sigma[0] == pytest.approx(float(expected), rel=1e-12)


def test_gaussian_data_without_columns_are_refused():
    with pytest.raises(ValidationError, match="Invalid x"):
        gaussian_mle(np.zeros((5, 0)))
    with pytest.raises(ValidationError, match="Invalid x"):
        fit_gaussian_model(np.zeros((5, 0)), "vb", n_iter=1)
