"""The simulated data-parallel SGD of repro._common: the optimum is right and divergence is
reported, not raised."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from neurips18.datasets.synthetic import make_skewed_sparse_classification
from neurips18.repro._common.sgd import LinearProblem, run_sgd, solve, train_mlp_simulated


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


def _tiny_mnist_like(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x_train": torch.rand(n, 784, generator=g),
            "y_train": torch.randint(0, 10, (n,), generator=g),
            "x_test": torch.rand(32, 784, generator=g),
            "y_test": torch.randint(0, 10, (32,), generator=g)}


def test_train_mlp_simulated_averages_the_evaluations_asked_for() -> None:
    h = train_mlp_simulated(_tiny_mnist_like(), hidden=(4,), workers=2, batch=8, lr=0.1,
                            steps=6, eval_every=2, acc_evals=3)
    assert len(h["test_accs"]) == 3
    assert h["test_acc_tail"] == sum(h["test_accs"]) / 3


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"acc_evals": 5}, r"Invalid acc_evals: 5 \(expected an int in \[1, 3\]"),  # averaged 3
    ({"acc_evals": 0}, r"Invalid acc_evals: 0 \(expected an int in \[1, 3\]"),  # averaged 1
    ({"acc_evals": 1, "eval_every": 0}, r"Invalid eval_every: 0"),
    ({"acc_evals": 1, "steps": 0}, r"Invalid steps: 0"),
])
def test_train_mlp_simulated_refuses_more_evaluations_than_it_makes(kwargs, says) -> None:
    from neurips18._validation import ValidationError

    args = {"hidden": (4,), "workers": 2, "batch": 8, "lr": 0.1, "steps": 6, "eval_every": 2,
            **kwargs}
    with pytest.raises(ValidationError, match=says):
        train_mlp_simulated(_tiny_mnist_like(), **args)


def test_spawn_variants_refuses_more_evaluations_than_it_makes_before_spawning() -> None:
    from neurips18._validation import ValidationError
    from neurips18.repro._common import ddp

    cfg = {"hidden": (4,), "batch": 8, "steps": 6, "lr": 0.1, "data": "random",
           "variants": [], "eval_every": 2, "acc_evals": 4}
    with pytest.raises(ValidationError, match=r"Invalid acc_evals: 4 \(expected an int in "
                       r"\[1, 3\]"):
        ddp.spawn_variants(cfg)
