import itertools

import numpy as np
import pytest

from neurips18.sgmcmc import (
    invariant_moments,
    posterior_moments,
    sample,
    wasserstein2_gaussian,
)

METHODS = ["lmc", "sgld", "sgldfp", "sgd"]


def _rel_fro(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _enumerated_fixed_point(m, method, gamma, batches):
    """Iterate the exact second-moment recursion, averaging over an explicit list of equally
    likely minibatches (an independent check of the Kronecker closed form)."""
    X, y, lam, N = m.X, m.y, m.prior_precision, m.n_data
    d = X.shape[1]
    ts = np.linalg.solve(X.T @ X + lam * np.eye(d), X.T @ y)
    r = X * (X @ ts - y)[:, None]
    rbar = r.mean(0)
    C = np.zeros((d, d))
    terms = []
    for S in batches:
        S = np.asarray(S)
        H = lam * np.eye(d) + N / len(S) * X[S].T @ X[S]
        xi = N / len(S) * (r[S] - rbar).sum(0)
        terms.append((np.eye(d) - gamma * H, xi))
    for _ in range(20_000):
        new = np.zeros((d, d))
        for A, xi in terms:
            new += A @ C @ A.T
            if method in ("sgld", "sgd"):
                new += gamma**2 * np.outer(xi, xi)
        new /= len(terms)
        if method in ("sgld", "sgldfp"):
            new += 2 * gamma * np.eye(d)
        if np.abs(new - C).max() < 1e-15:
            break
        C = new
    return ts, C


@pytest.mark.parametrize("method", ["sgld", "sgldfp", "sgd"])
def test_closed_form_equals_enumerated_recursion(method, make_linear):
    m = make_linear(n=7, d=2, seed=1, lam=0.5)
    gamma = 0.02
    # with replacement, p = 2: all ordered pairs are equally likely
    pairs = list(itertools.product(range(7), repeat=2))
    ts, C_ref = _enumerated_fixed_point(m, method, gamma, pairs)
    mean, C = invariant_moments(m, method, gamma, 2, replacement=True)
    np.testing.assert_allclose(mean, ts, rtol=1e-12)
    np.testing.assert_allclose(C, C_ref, rtol=1e-9)
    # without replacement, p = 3: all subsets are equally likely
    subsets = list(itertools.combinations(range(7), 3))
    _, C_ref = _enumerated_fixed_point(m, method, gamma, subsets)
    _, C = invariant_moments(m, method, gamma, 3, replacement=False)
    np.testing.assert_allclose(C, C_ref, rtol=1e-9)


def test_lmc_closed_form(make_linear):
    m = make_linear(n=100, d=3, seed=2, lam=2.0, noise_variance=0.5)
    gamma = 1e-3
    X = m.X / np.sqrt(0.5)
    Sigma = 2.0 * np.eye(3) + X.T @ X
    mean, C = invariant_moments(m, "lmc", gamma, None)
    ref = np.linalg.inv(Sigma) @ np.linalg.inv(np.eye(3) - gamma * Sigma / 2)
    np.testing.assert_allclose(C, ref)
    post_mean, post_cov = posterior_moments(m)
    np.testing.assert_allclose(mean, post_mean)
    np.testing.assert_allclose(post_cov, np.linalg.inv(Sigma), rtol=1e-12)
    np.testing.assert_allclose(post_mean, np.linalg.solve(Sigma, X.T @ (m.y / np.sqrt(0.5))))
    # LMC with p = N without replacement: SGLD and SGLDFP reduce to LMC, SGD to a point
    _, C_sgld = invariant_moments(m, "sgld", gamma, 100, replacement=False)
    _, C_sgd = invariant_moments(m, "sgd", gamma, 100, replacement=False)
    np.testing.assert_allclose(C_sgld, C, rtol=1e-10)
    np.testing.assert_allclose(C_sgd, 0.0, atol=1e-15)


@pytest.mark.parametrize("replacement", [True, False])
def test_sgld_is_sgldfp_plus_sgd(replacement, make_linear):
    m = make_linear(n=1000, d=4, seed=3)
    gamma, p = 1 / (2 * 1000), 10
    _, C1 = invariant_moments(m, "sgld", gamma, p, replacement)
    _, C2 = invariant_moments(m, "sgldfp", gamma, p, replacement)
    _, C3 = invariant_moments(m, "sgd", gamma, p, replacement)
    assert np.abs(C1 - (C2 + C3)).max() <= 1e-10 * np.abs(C1).max()


@pytest.mark.parametrize(
    ("method", "replacement"),
    [(m, True) for m in METHODS] + [(m, False) for m in ("sgld", "sgldfp", "sgd")],
)
def test_closed_form_matches_long_simulation(method, replacement, make_linear):
    # d = 2, N = 1000, p = 10, gamma = 0.5 / N; 2e5 steps (integrated autocorrelation ~ 2):
    # the relative Frobenius error of the sample covariance is ~ sqrt(3 * 2 / 2e5) = 0.5 %,
    # so 2 % is a 4-sigma bound. The mean error is in units of the invariant std.
    m = make_linear(n=1000, d=2, seed=4)
    gamma, p = 0.5 / 1000, 10
    mean, C = invariant_moments(m, method, gamma, p, replacement)
    res = sample(m, method, gamma, p, 200_000, replacement=replacement,
                 generator=np.random.default_rng(11))
    assert _rel_fro(res.cov(), C) < 0.02
    z = (res.mean() - mean) / np.sqrt(np.diag(C))
    assert np.abs(z).max() < 0.03


def test_logistic_linearised_prediction_is_close_to_simulation(make_logistic):
    # N = 2000, gamma = 1 / (2N): the linearisation at the mode predicts SGLD's inflated and
    # SGLDFP's near-posterior covariances (statistical check, 10 % on traces)
    m = make_logistic(n=2000, d=2, seed=5)
    gamma, p = 1 / 4000, 20
    for method in ("sgld", "sgldfp"):
        _, C = invariant_moments(m, method, gamma, p, linearize=True)
        res = sample(m, method, gamma, p, 100_000, generator=np.random.default_rng(2))
        assert np.trace(res.cov()) == pytest.approx(np.trace(C), rel=0.1)
    with pytest.raises(ValueError, match="linearize=True"):
        invariant_moments(m, "sgld", gamma, p)


def test_step_size_too_large(make_linear):
    m = make_linear(n=200, d=2)
    with pytest.raises(ValueError, match="below 2 / lambda_max"):
        invariant_moments(m, "lmc", 1.0, None)
    with pytest.raises(ValueError, match="covariance recursion of sgld"):
        invariant_moments(m, "sgld", 0.5, 10)
    with pytest.raises(ValueError, match="method"):
        invariant_moments(m, "mala", 1e-3, 10)
    with pytest.raises(ValueError, match="batch_size"):
        invariant_moments(m, "sgld", 1e-3, 0)
    with pytest.raises(ValueError, match="step_size"):
        invariant_moments(m, "sgld", -1e-3, 10)
    with pytest.raises(TypeError, match="Invalid model.*BayesianLinearRegression"):
        invariant_moments(object(), "sgld", 1e-3, 10)


def test_wasserstein2_gaussian_references():
    # one dimension: W2^2 = (m1 - m2)^2 + (s1 - s2)^2
    assert wasserstein2_gaussian([1.0], [[4.0]], [0.0], [[1.0]], squared=True) == pytest.approx(2.0)
    # commuting covariances: sum of squared differences of square roots
    A, B = np.diag([1.0, 9.0]), np.diag([4.0, 1.0])
    assert wasserstein2_gaussian([0, 0], A, [0, 0], B) == pytest.approx(np.sqrt(1 + 4))
    # general case against scipy's sqrtm
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    M1, M2 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    C1, C2 = M1 @ M1.T + 0.1 * np.eye(3), M2 @ M2.T + 0.1 * np.eye(3)
    h = sqrtm(C1).real
    ref = np.trace(C1 + C2 - 2 * sqrtm(h @ C2 @ h).real) + 1.0
    got = wasserstein2_gaussian([1, 0, 0], C1, [0, 0, 0], C2, squared=True)
    assert got == pytest.approx(ref, rel=1e-8)
    assert wasserstein2_gaussian([1, 0, 0], C1, [1, 0, 0], C1) == pytest.approx(0.0, abs=1e-6)
    assert got == pytest.approx(wasserstein2_gaussian([0, 0, 0], C2, [1, 0, 0], C1, squared=True))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0.0], [[1.0]], [0.0, 1.0], np.eye(2)), "shape of m1"),
        (([0.0, 0.0], [[1.0, 2.0], [0.0, 1.0]], [0.0, 0.0], np.eye(2)), "symmetric"),
        (([0.0, 0.0], np.diag([1.0, -1.0]), [0.0, 0.0], np.eye(2)), "positive semi-definite"),
        (([np.nan], [[1.0]], [0.0], [[1.0]]), "finite"),
        (([0.0], np.eye(2), [0.0], [[1.0]]), "shape"),
    ],
)
def test_wasserstein2_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        wasserstein2_gaussian(*args)


def test_importance_moments_match_quadrature(make_logistic):
    # N = 50, d = 2: a visibly non-Gaussian posterior; a 401 x 401 grid gives its moments
    from neurips18.sgmcmc import find_mode, importance_moments

    m = make_logistic(n=50, d=2, seed=9)
    ts = find_mode(m)
    sd = np.sqrt(np.diag(np.linalg.inv(m.hessian_potential(ts))))
    g1 = np.linspace(ts[0] - 8 * sd[0], ts[0] + 8 * sd[0], 401)
    g2 = np.linspace(ts[1] - 8 * sd[1], ts[1] + 8 * sd[1], 401)
    P = np.stack([a.ravel() for a in np.meshgrid(g1, g2, indexing="ij")], 1)
    z = m.X @ P.T
    lp = (m.y[:, None] * z - np.logaddexp(0, z)).sum(0) - 0.5 * (P * P).sum(1)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    mq = w @ P
    Cq = (P - mq).T @ ((P - mq) * w[:, None])
    r = importance_moments(m, 50_000, np.random.default_rng(1))
    assert np.all(np.abs(r["mean"] - mq) < 0.01 * np.sqrt(np.diag(Cq)))
    np.testing.assert_allclose(r["cov"], Cq, rtol=0.02, atol=0.005 * np.abs(Cq).max())
    assert r["ess"] > 10_000
    with pytest.raises(TypeError):
        importance_moments(object(), 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_samples"):
        importance_moments(m, 1, np.random.default_rng(0))


def test_switches_must_be_bools(make_linear, make_logistic):
    # replacement="False" is a truthy string: the closed form silently took the
    # with-replacement formula (SGLD variance 0.036 instead of 0.031 at N = 50, p = 40) and
    # gradient_moments a noise covariance five times too large
    from neurips18.sgmcmc import control_variate_cov, covariance_operator, gradient_moments

    m = make_linear(n=50, d=2)
    g = 1 / 100
    for bad in ("False", None, 0):
        with pytest.raises(ValueError, match="Invalid replacement.*a bool"):
            invariant_moments(m, "sgld", g, 40, bad)
        with pytest.raises(ValueError, match="Invalid replacement.*a bool"):
            covariance_operator(m, "sgld", g, 40, bad)
        with pytest.raises(ValueError, match="Invalid replacement.*a bool"):
            gradient_moments(m, np.zeros((3, 2)), "sgld", 40, replacement=bad)
    with pytest.raises(ValueError, match="Invalid linearize.*a bool"):
        invariant_moments(make_logistic(n=50, d=2), "sgld", g, 10, linearize="yes")
    with pytest.raises(ValueError, match="Invalid linearize.*a bool"):
        posterior_moments(m, linearize=1)
    L = covariance_operator(m, "sgd", g, 10)
    D = np.zeros((4, 2))
    with pytest.raises(ValueError, match="Invalid langevin.*a bool"):
        control_variate_cov(D, D, g, L, langevin="False")
    with pytest.raises(ValueError, match="Invalid return_residual.*a bool"):
        control_variate_cov(D, D, g, L, return_residual="no")
    # NumPy bools are bools
    a = invariant_moments(m, "sgld", g, 40, np.False_)[1]
    np.testing.assert_array_equal(a, invariant_moments(m, "sgld", g, 40, False)[1])


def test_an_edited_result_does_not_leak_into_later_calls():
    """invariant_moments handed out the mode cached on the model: editing its mean in
    place changed every later call's mean, for every method."""
    from neurips18.sgmcmc import BayesianLinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = X @ np.array([1.0, -2.0]) + rng.normal(size=400)
    m = BayesianLinearRegression(X, y, prior_precision=1.0)
    mu, C = invariant_moments(m, "sgld", 1 / 400, 10)
    ref = mu.copy()
    mu[0] = 99.0
    C[0, 0] = -1.0
    mu2, C2 = invariant_moments(m, "sgldfp", 1 / 400, 10)
    np.testing.assert_array_equal(mu2, ref)
    np.testing.assert_array_equal(invariant_moments(m, "sgld", 1 / 400, 10)[0], ref)
    assert invariant_moments(m, "sgld", 1 / 400, 10)[1][0, 0] > 0
    np.testing.assert_allclose(posterior_moments(m)[0], ref, rtol=1e-12)
