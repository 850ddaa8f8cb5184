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


def _chain_of_public_steps(model, method, step_size, batch_size, n_steps, theta0, seed,
                          replacement=True, theta_star=None):
    """The chain sample() documents, written with the public pieces only: per block of
    _BLOCK steps the noise, then the minibatches, from one generator; one estimator; one
    langevin_step per step."""
    from neurips18.sgmcmc import (
        control_variates,
        langevin_step,
        minibatch_gradient,
        minibatch_indices,
    )
    from neurips18.sgmcmc.sampler import _BLOCK

    rng = np.random.default_rng(seed)
    if method == "sgldfp":
        est = control_variates(model, theta_star)
    else:
        est = minibatch_gradient(model)
    theta = np.asarray(theta0, dtype=est.model.dtype)
    out = []
    for start in range(0, n_steps, _BLOCK):
        b = min(_BLOCK, n_steps - start)
        z = None if method == "sgd" else rng.standard_normal((b, est.model.dim),
                                                               dtype=est.model.dtype)
        idx = (None if method == "lmc" else
               minibatch_indices(rng, est.model.n_data, batch_size, replacement, n_batches=b))
        for j in range(b):
            g = est(theta, None if idx is None else idx[j])
            theta = langevin_step(theta, g, step_size, None if z is None else z[j])
            out.append(theta)
    return np.array(out)


@pytest.fixture
def chain_of_public_steps():
    return _chain_of_public_steps
