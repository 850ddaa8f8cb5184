"""Control-variate estimators of invariant moments, gradient statistics, batch means."""

import itertools

import numpy as np
import pytest

from neurips18.sgmcmc import (
    batch_means_se,
    control_variate_cov,
    control_variate_mean,
    covariance_operator,
    find_mode,
    gradient_moments,
    importance_moments,
    invariant_moments,
    posterior_mean_expansion,
    sample,
)

METHODS = ["lmc", "sgld", "sgldfp", "sgd"]


def _chain(m, method, gamma, p, n_steps, seed, thin=1):
    res = sample(m, method, gamma, p, n_steps, thin=thin, generator=np.random.default_rng(seed))
    D = res.draws.astype(np.float64)
    ts = find_mode(m)
    G, V = gradient_moments(m, D, method, None if method == "lmc" else p, theta_star=ts)
    return res, D, G, V, ts


@pytest.mark.parametrize("method", METHODS)
def test_cv_mean_with_inverse_hessian_is_exact_on_linear_regression(method, make_linear):
    # grad U(theta) = H (theta - theta*), so theta - H^{-1} grad U(theta) = theta* per draw
    m = make_linear(n=300, d=3, seed=1)
    _, D, G, _, ts = _chain(m, method, 0.5 / 300, 10, 2000, 0)
    A = np.linalg.inv(m.hessian_potential(ts))
    np.testing.assert_allclose(control_variate_mean(D, G, A), ts, atol=1e-10)


def test_cv_mean_is_unbiased_with_any_fixed_gain(make_linear):
    # a gain far from H^{-1}: the estimator keeps the invariant mean theta* (exact for linear
    # regression, all four chains); replicate short SGLD chains and test the average
    m = make_linear(n=200, d=2, seed=3)
    ts = m.exact_mode()
    A = 0.4 * np.linalg.inv(m.hessian_potential(ts)) + 1e-3 * np.array([[0.0, 1.0], [2.0, 0]])
    est, plain = [], []
    for r in range(30):
        res, D, G, _, _ = _chain(m, "sgld", 0.5 / 200, 10, 3000, 100 + r)
        est.append(control_variate_mean(D, G, A))
        plain.append(res.mean())
    est = np.array(est)
    se = est.std(0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(0) - ts) < 4 * se + 1e-12)
    # and it has smaller spread than the plain chain average
    assert np.all(est.std(0) < np.array(plain).std(0))


def test_cv_mean_reduces_variance_on_logistic_regression(make_logistic):
    m = make_logistic(n=3000, d=3, seed=2)
    ts = find_mode(m)
    A = np.linalg.inv(m.hessian_potential(ts))
    off = m.grad_potential(ts)
    cv, plain = [], []
    for r in range(8):
        res, D, G, _, _ = _chain(m, "sgldfp", 0.5 / 3000, 20, 4000, 10 + r)
        cv.append(control_variate_mean(D, G, A, grad_offset=off))
        plain.append(res.mean())
    cv, plain = np.array(cv), np.array(plain)
    # the posterior spread is O(N^-1/2); the corrected draws' is O(1/N): >= 5x less here
    assert np.all(cv.std(0) * 5 < plain.std(0))
    # both estimate the same mean
    se = np.sqrt(plain.var(0, ddof=1) / len(plain) + cv.var(0, ddof=1) / len(cv))
    assert np.all(np.abs(cv.mean(0) - plain.mean(0)) < 4 * se)


@pytest.mark.parametrize("method", ["lmc", "sgldfp"])
def test_cv_cov_is_exact_on_linear_regression(method, make_linear):
    # with the linearised operator and the minibatch noise term the estimate is exactly the
    # closed-form invariant covariance, from any 500 draws
    m = make_linear(n=300, d=3, seed=4)
    gamma, p = 0.5 / 300, 10
    _, D, G, V, ts = _chain(m, method, gamma, p, 500, 7)
    L = covariance_operator(m, method, gamma, p)
    A = np.linalg.inv(m.hessian_potential(ts))
    mean = control_variate_mean(D, G, A)
    C = control_variate_cov(D, G, gamma, L, grad_noise_cov=V, centre=ts, mean=mean)
    _, C_ref = invariant_moments(m, method, gamma, p)
    np.testing.assert_allclose(C, C_ref, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("method", ["sgld", "sgd"])
def test_cv_cov_matches_closed_form_for_sgld_and_sgd(method, make_linear):
    m = make_linear(n=300, d=2, seed=5)
    gamma, p = 0.5 / 300, 10
    res, D, G, V, ts = _chain(m, method, gamma, p, 20_000, 8, thin=5)
    L = covariance_operator(m, method, gamma, p)
    C = control_variate_cov(D, G, gamma, L, langevin=method == "sgld", grad_noise_cov=V,
                            centre=ts, mean=ts)
    _, C_ref = invariant_moments(m, method, gamma, p)
    err_cv = np.linalg.norm(C - C_ref) / np.linalg.norm(C_ref)
    err_plain = np.linalg.norm(res.cov() - C_ref) / np.linalg.norm(C_ref)
    assert err_cv < 0.01
    assert err_cv < err_plain


def test_cv_cov_is_unbiased_with_a_crude_operator(make_linear):
    # LMC's operator for an SGLDFP chain (no minibatch term): no longer zero-variance, still
    # consistent for the SGLDFP covariance
    m = make_linear(n=300, d=2, seed=6)
    gamma, p = 0.5 / 300, 10
    _, D, G, V, ts = _chain(m, "sgldfp", gamma, p, 40_000, 9, thin=4)
    L = covariance_operator(m, "lmc", gamma)
    C = control_variate_cov(D, G, gamma, L, grad_noise_cov=V, centre=ts, mean=ts)
    _, C_ref = invariant_moments(m, "sgldfp", gamma, p)
    assert np.linalg.norm(C - C_ref) / np.linalg.norm(C_ref) < 0.01


def test_gradient_moments_full_gradients(make_logistic):
    m = make_logistic(n=400, d=3)
    th = np.random.default_rng(0).normal(size=(7, 3))
    G, V = gradient_moments(m, th)
    np.testing.assert_allclose(G, np.stack([m.grad_potential(t) for t in th]), rtol=1e-10)
    assert np.all(V == 0)


@pytest.mark.parametrize("method", ["sgld", "sgd", "sgldfp"])
@pytest.mark.parametrize("replacement", [True, False])
def test_gradient_moments_noise_equals_enumeration(method, replacement, make_logistic):
    # the covariance of the minibatch estimate, averaged over states, against an explicit
    # enumeration of every equally likely minibatch
    n, p = 6, 2
    m = make_logistic(n=n, d=2, seed=3)
    ts = find_mode(m)
    th = ts + np.random.default_rng(1).normal(scale=0.3, size=(3, 2))
    _, V = gradient_moments(m, th, method, p, replacement=replacement, theta_star=ts)
    batches = (list(itertools.product(range(n), repeat=p)) if replacement
               else list(itertools.combinations(range(n), p)))
    ref = np.zeros((2, 2))
    for t in th:
        gs = []
        for S in batches:
            S = np.array(S)
            g = -n / p * m.grad_log_likelihood_sum(t, S)
            if method == "sgldfp":
                g = g + n / p * m.grad_log_likelihood_sum(ts, S)
            gs.append(g)
        ref += np.cov(np.array(gs), rowvar=False, bias=True)
    np.testing.assert_allclose(V, ref / len(th), rtol=1e-9, atol=1e-12)


def test_batch_means_se():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100_000, 2))
    np.testing.assert_allclose(batch_means_se(x), 1 / np.sqrt(1e5), rtol=0.35)
    # AR(1) with rho = 0.9: the SE is sqrt((1 + rho) / (1 - rho)) times larger
    e = rng.standard_normal(200_000)
    a = np.empty_like(e)
    a[0] = 0
    for t in range(1, len(e)):
        a[t] = 0.9 * a[t - 1] + np.sqrt(1 - 0.81) * e[t]
    np.testing.assert_allclose(batch_means_se(a), np.sqrt(19 / 2e5), rtol=0.35)
    with pytest.raises(ValueError, match="n_batches"):
        batch_means_se(x, 1)
    with pytest.raises(ValueError, match="at least"):
        batch_means_se(x[:5], 20)


def test_posterior_mean_expansion(make_logistic, make_linear):
    lin = make_linear(n=100, d=2)
    np.testing.assert_allclose(posterior_mean_expansion(lin), lin.exact_mode())
    m = make_logistic(n=2000, d=3, seed=4)
    ref = importance_moments(m, 100_000, np.random.default_rng(0))
    e = posterior_mean_expansion(m)
    ts = find_mode(m)
    # the correction is O(1/N), its error O(N^-2): it agrees with importance sampling within
    # the latter's Monte Carlo error, and is far closer than the mode
    assert np.all(np.abs(e - ref["mean"]) < 4 * ref["mean_se"] + 1e-6)
    assert np.linalg.norm(e - ref["mean"]) < 0.2 * np.linalg.norm(ts - ref["mean"])


def test_bad_input(make_linear):
    m = make_linear(n=50, d=2)
    D = np.zeros((10, 2))
    A = np.eye(2)
    L = covariance_operator(m, "lmc", 0.01)
    with pytest.raises(ValueError, match="as many rows as draws"):
        control_variate_mean(D, np.zeros((9, 2)), A)
    with pytest.raises(ValueError, match="columns"):
        control_variate_mean(D, np.zeros((10, 3)), A)
    with pytest.raises(ValueError, match="NaN"):
        control_variate_mean(D, np.full((10, 2), np.nan), A)
    with pytest.raises(ValueError, match="gain"):
        control_variate_mean(D, D, np.eye(3))
    with pytest.raises(ValueError, match="grad_offset"):
        control_variate_mean(D, D, A, grad_offset=np.zeros(3))
    with pytest.raises(ValueError, match="at least 1 row"):
        control_variate_mean(np.zeros((0, 2)), np.zeros((0, 2)), A)
    with pytest.raises(ValueError, match="step_size"):
        control_variate_cov(D, D, -1.0, L)
    with pytest.raises(ValueError, match="operator"):
        control_variate_cov(D, D, 0.01, np.eye(3))
    with pytest.raises(ValueError, match="centre"):
        control_variate_cov(D, D, 0.01, L, centre=np.zeros(5))
    with pytest.raises(ValueError, match="theta_star"):
        gradient_moments(m, D, "sgldfp", 5)
    with pytest.raises(ValueError, match="batch_size"):
        gradient_moments(m, D, "sgld", 51)
    with pytest.raises(ValueError, match="method"):
        gradient_moments(m, D, "hmc")
    with pytest.raises(ValueError, match="method"):
        covariance_operator(m, "hmc", 0.01)


def test_gradient_moments_checks_the_sgldfp_centre(make_linear):
    # a NaN in theta_star came back as an all-NaN noise covariance without a word; a centre
    # of the wrong shape failed inside NumPy's broadcasting instead of naming the parameter
    m = make_linear(n=50, d=2)
    D = np.zeros((10, 2))
    for bad, rule in (([np.nan, 0.0], "NaN"), (np.zeros((2, 1)), "1-D"),
                      (np.zeros(3), r"shape \(2,\)")):
        with pytest.raises(ValueError, match=f"Invalid theta_star.*{rule}"):
            gradient_moments(m, D, "sgldfp", 5, theta_star=bad)
    _, V = gradient_moments(m, D, "sgldfp", 5, theta_star=[0.0, 0.0])
    assert np.isfinite(V).all()


def test_second_order_cv_mean(make_logistic, make_linear):
    from neurips18.sgmcmc import third_derivative_at

    m = make_logistic(n=3000, d=3, seed=2)
    ts = find_mode(m)
    A = np.linalg.inv(m.hessian_potential(ts))
    off = m.grad_potential(ts)
    gamma, p = 0.5 / 3000, 20
    L = covariance_operator(m, "sgldfp", gamma, p, linearize=True)
    T3 = third_derivative_at(m, ts)
    first, second = [], []
    for r in range(8):
        _, D, G, V, _ = _chain(m, "sgldfp", gamma, p, 4000, 10 + r)
        m1 = control_variate_mean(D, G, A, grad_offset=off)
        _, R = control_variate_cov(D, G, gamma, L, grad_noise_cov=V, centre=ts,
                                   grad_offset=off, mean=m1, return_residual=True)
        first.append(m1)
        second.append(control_variate_mean(D, G, A, grad_offset=off, third_derivative=T3,
                                           second_moment_residual=R))
    first, second = np.array(first), np.array(second)
    # the next order of the spread is removed (>= 5x less here), and both agree
    assert np.all(second.std(0) * 5 < first.std(0))
    se = np.sqrt(first.var(0, ddof=1) / len(first) + second.var(0, ddof=1) / len(second))
    assert np.all(np.abs(first.mean(0) - second.mean(0)) < 4 * se)
    # T[M] against a finite difference of the Hessian along M's eigenvectors
    M = np.array([[1.0, 0.2, 0.0], [0.2, 0.5, 0.1], [0.0, 0.1, 2.0]])
    w, Q = np.linalg.eigh(M)
    eps = 1e-5
    fd = np.zeros(3)
    for k in range(3):  # T[q q^T]_a = d/dt (q^T H(ts + t e_a) q) ... via symmetry of T
        for a in range(3):
            e = np.zeros(3)
            e[a] = eps
            Hp, Hm = m.hessian_potential(ts + e), m.hessian_potential(ts - e)
            fd[a] += w[k] * Q[:, k] @ (Hp - Hm) @ Q[:, k] / (2 * eps)
    np.testing.assert_allclose(T3(M), fd, rtol=1e-5)
    lin = make_linear(n=50, d=3)
    assert np.all(third_derivative_at(lin, np.zeros(3))(M) == 0)
    with pytest.raises(ValueError, match="together with third_derivative"):
        control_variate_mean(np.zeros((3, 3)), np.zeros((3, 3)), A, third_derivative=T3)
