"""The simulated data-parallel SGD of repro._common: the optimum is right and divergence is
reported, not raised."""

from __future__ import annotations

import math

import torch
from sklearn.linear_model import LogisticRegression

from neurips18.datasets.synthetic import make_skewed_sparse_classification
from neurips18.repro._common.sgd import LinearProblem, run_sgd, solve


def skewed_synthetic(n, d, seed, density=0.1):
    return make_skewed_sparse_classification(n, d, density=density, generator=seed)


def test_solve_matches_sklearn_logistic() -> None:
    X, y = skewed_synthetic(300, 20, seed=0, density=0.5)
    reg = 1e-2
    w, f = solve(LinearProblem(X, y, "logistic", reg))
    # sklearn: C = 1 / (n * reg) gives the same objective (no intercept)
    clf = LogisticRegression(C=1.0 / (X.shape[0] * reg), fit_intercept=False, tol=1e-10,
                             max_iter=10_000).fit(X.double().numpy(), y.numpy())
    ref = torch.from_numpy(clf.coef_.ravel())
    torch.testing.assert_close(w, ref, rtol=1e-3, atol=1e-4)


def test_run_sgd_reports_divergence() -> None:
    X, y = skewed_synthetic(200, 50, seed=1)
    prob = LinearProblem(X, y, "svm", 1e-4)
    h = run_sgd(prob, f_star=0.0, workers=2, batch=4, lr=1e6, steps=200,
                compressor="unbiased", density=0.05, sampling="uniform")
    assert "diverged_at" in h and math.isinf(h["gap"][-1])
    ok = run_sgd(prob, f_star=solve(prob)[1], workers=2, batch=4, lr=0.01, steps=50)
    assert "diverged_at" not in ok and 0 <= ok["gap"][-1] < ok["gap"][0]
