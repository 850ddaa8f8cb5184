import numpy as np
import pytest

from neurips18.sgmcmc import (
    BayesianLinearRegression,
    BayesianLogisticRegression,
    ModeNotFoundError,
    TorchModel,
    as_model,
    find_mode,
    sample,
)


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("factory", ["make_linear", "make_logistic"])
def test_gradients_match_finite_differences(factory, request):
    m = request.getfixturevalue(factory)(n=50, d=3, seed=3)
    theta = np.array([0.3, -0.2, 0.5])
    idx = np.array([0, 4, 4, 17])
    g = m.grad_log_likelihood_sum(theta, idx)
    fd = _fd_grad(lambda t: m.log_likelihood(t, idx).sum(), theta)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.grad_log_prior(theta), _fd_grad(m.log_prior, theta), atol=1e-7)
    per = m.grad_log_likelihood(theta, idx)
    np.testing.assert_allclose(per.sum(axis=0), g, atol=1e-12)
    np.testing.assert_allclose(
        m.grad_potential(theta), _fd_grad(m.potential, theta), rtol=1e-6, atol=1e-6
    )


def test_logistic_log_likelihood_matches_sklearn_log_loss(make_logistic):
    from sklearn.metrics import log_loss

    m = make_logistic(n=200, d=3, seed=1)
    theta = np.array([0.5, -1.0, 2.0])
    p = 1 / (1 + np.exp(-m.X @ theta))
    ref = -log_loss(m.y, p, normalize=False)
    assert m.log_likelihood(theta).sum() == pytest.approx(ref, rel=1e-10)


def test_logistic_mode_matches_sklearn(make_logistic):
    from sklearn.linear_model import LogisticRegression

    m = make_logistic(n=2000, d=4, seed=2, lam=0.5)
    ts = find_mode(m)
    # sklearn minimises ||w||^2 / 2 + C sum log-loss: C = 1 / lambda
    clf = LogisticRegression(C=1 / 0.5, fit_intercept=False, tol=1e-12, max_iter=10_000)
    clf.fit(m.X, m.y)
    np.testing.assert_allclose(ts, clf.coef_.ravel(), rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(m.grad_potential(ts)) <= 1e-8 * max(
        1.0, np.linalg.norm(m.grad_log_likelihood_sum(np.zeros(4)))
    )


def test_linear_mode_matches_sklearn_ridge(make_linear):
    from sklearn.linear_model import Ridge

    m = make_linear(n=300, d=3, seed=4, lam=2.0, noise_variance=0.5)
    ts = find_mode(m)
    # posterior mode = ridge with alpha = lambda * sigma^2
    ref = Ridge(alpha=2.0 * 0.5, fit_intercept=False).fit(m.X, m.y).coef_
    np.testing.assert_allclose(ts, ref, rtol=1e-10)


def test_lbfgs_path_for_protocol_models(make_logistic):
    base = make_logistic(n=300, d=3, seed=5)

    class Duck:  # no Hessian: find_mode falls back to L-BFGS
        n_data, dim = base.n_data, base.dim

        def log_prior(self, t):
            return base.log_prior(t)

        def grad_log_prior(self, t):
            return base.grad_log_prior(t)

        def log_likelihood(self, t, idx=None):
            return base.log_likelihood(t, idx)

        def grad_log_likelihood_sum(self, t, idx=None):
            return base.grad_log_likelihood_sum(t, idx)

    np.testing.assert_allclose(find_mode(Duck()), find_mode(base), atol=1e-7)


def test_protocol_adapter_rejects_incomplete_objects():
    class Bad:
        n_data, dim = 10, 2

        def log_prior(self, t):
            return 0.0

    with pytest.raises(TypeError, match="grad_log_prior"):
        as_model(Bad())


def test_torch_model_matches_numpy_model_and_samples(make_logistic):
    torch = pytest.importorskip("torch")
    base = make_logistic(n=400, d=3, seed=6)
    X = torch.tensor(base.X)
    y = torch.tensor(base.y)

    def ll(theta, batch):
        xb, yb = batch
        z = xb @ theta
        return yb * z - torch.nn.functional.softplus(z)

    def lp(theta):
        return -0.5 * (theta * theta).sum()

    tm = TorchModel(ll, lp, (X, y), dim=3)
    theta = np.array([0.1, 0.2, -0.3])
    idx = np.array([1, 5, 5, 9])
    np.testing.assert_allclose(
        tm.grad_log_likelihood_sum(theta, idx), base.grad_log_likelihood_sum(theta, idx)
    )
    np.testing.assert_allclose(tm.grad_log_prior(theta), base.grad_log_prior(theta))
    np.testing.assert_allclose(find_mode(tm), find_mode(base), atol=1e-7)
    rng = np.random.default_rng(0)
    r_t = sample(tm, "sgldfp", 1 / 800, 20, 50, generator=np.random.default_rng(0))
    r_n = sample(base, "sgldfp", 1 / 800, 20, 50, generator=rng)
    np.testing.assert_allclose(r_t.draws, r_n.draws, atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"X": np.full((3, 2), np.nan)}, ValueError, "Invalid X.*finite"),
        ({"y": np.array([0.0, np.inf, 1.0])}, ValueError, "Invalid y.*finite"),
        ({"y": np.zeros(4)}, ValueError, "Invalid y.*as many rows as X"),
        ({"X": np.zeros(3)}, ValueError, "Invalid X.*2-D"),
        ({"X": np.zeros((0, 2)), "y": np.zeros(0)}, ValueError, "Invalid X.*at least 1 row"),
        ({"prior_precision": 0.0}, ValueError, "prior_precision"),
        ({"prior_precision": np.nan}, ValueError, "prior_precision"),
        ({"prior_precision": "1"}, TypeError, "prior_precision"),
        ({"dtype": np.int64}, TypeError, "dtype"),
    ],
)
def test_bad_model_input(kwargs, err, match):
    args = {"X": np.ones((3, 2)), "y": np.array([0.0, 1.0, 1.0]), "prior_precision": 1.0}
    args.update(kwargs)
    dtype = args.pop("dtype", np.float64)
    with pytest.raises(err, match=match):
        BayesianLogisticRegression(**args, dtype=dtype)


def test_bad_linear_and_logistic_specific_input():
    with pytest.raises(ValueError, match="noise_variance"):
        BayesianLinearRegression(np.ones((3, 2)), np.ones(3), 1.0, noise_variance=-1.0)
    with pytest.raises(ValueError, match="labels 0 and 1 only"):
        BayesianLogisticRegression(np.ones((3, 2)), np.array([0.0, 2.0, 1.0]), 1.0)


def test_mode_search_failure_is_reported(make_logistic):
    m = make_logistic(n=100, d=2)
    with pytest.raises(ModeNotFoundError, match="grad U"):
        find_mode(m, max_iter=1, rtol=1e-15)


def test_dataframe_input_nan_and_no_aliasing():
    import pandas as pd

    from neurips18.sgmcmc import BayesianLogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.standard_normal((50, 3)), columns=["a", "b", "c"])
    y = pd.Series((rng.random(50) < 0.5).astype(int))
    m = BayesianLogisticRegression(df, y, 1.0)
    L = m.lipschitz_constant()
    X = df.to_numpy(copy=True)
    m2 = BayesianLogisticRegression(X, y.to_numpy(), 1.0)
    X[:] = 0.0  # the caller's array changes after the model was built: the model does not
    assert m2.lipschitz_constant() == pytest.approx(L) and np.abs(m2.X).sum() > 0
    bad = df.copy()
    bad.iloc[3, 1] = np.nan  # a missing value is refused with the parameter named
    with pytest.raises(ValueError, match="Invalid X.*1 NaN or inf"):
        BayesianLogisticRegression(bad, y, 1.0)


def test_glm_data_and_hyperparameters_are_read_only(make_linear, make_logistic):
    # a model caches pieces of its data and hyperparameters (the prior term the NumPy step
    # uses, the C kernel's constants, the Lipschitz constant, the closed forms); setting
    # prior_precision = 50 on a built model left the NumPy chain on lambda = 1 and the C
    # chain on lambda = 50 (means 1.03 and 0.94 on the same draws), so such changes raise
    from neurips18.sgmcmc import posterior_moments, sample

    lin = make_linear(n=300, d=2)
    before = posterior_moments(lin)[1].copy()
    L = lin.lipschitz_constant()
    import copy
    import pickle

    for m in (lin, make_logistic(n=300, d=2), pickle.loads(pickle.dumps(lin)),
              copy.deepcopy(lin)):
        with pytest.raises(AttributeError):
            m.prior_precision = 50.0
        with pytest.raises(ValueError, match="read-only"):
            m.X[0, 0] = 10.0
        with pytest.raises(ValueError, match="read-only"):
            m.y[:] = 1.0
        assert m.prior_precision == 1.0
    with pytest.raises(AttributeError):
        lin.noise_variance = 4.0
    np.testing.assert_array_equal(posterior_moments(lin)[1], before)
    assert lin.lipschitz_constant() == L
    a = sample(lin, "sgld", 1e-3, 10, 300, generator=1, kernel="numpy")
    b = sample(lin, "sgld", 1e-3, 10, 300, generator=1)
    np.testing.assert_allclose(a.draws, b.draws, rtol=1e-9, atol=1e-12)
