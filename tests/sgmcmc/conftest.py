import numpy as np
import pytest


def _make_linear(n=400, d=2, seed=0, dtype=np.float64, lam=1.0, noise_variance=1.0):
    from neurips18.sgmcmc import BayesianLinearRegression

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ np.linspace(1.0, -1.0, d) + np.sqrt(noise_variance) * rng.standard_normal(n)
    return BayesianLinearRegression(X, y, lam, noise_variance, dtype=dtype)


def _make_logistic(n=500, d=3, seed=0, dtype=np.float64, lam=1.0):
    from neurips18.sgmcmc import BayesianLogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    theta = np.linspace(-1.0, 1.0, d)
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ theta))).astype(float)
    return BayesianLogisticRegression(X, y, lam, dtype=dtype)


@pytest.fixture
def make_linear():
    return _make_linear


@pytest.fixture
def make_logistic():
    return _make_logistic
