"""Properties the two reproductions rest on, checked on their smoke settings."""

from __future__ import annotations

import math

import pytest


@pytest.fixture
def mnist(data_file):
    data_file("mnist", "train-images-idx3-ubyte")
    data_file("mnist", "t10k-images-idx3-ubyte")


def test_topk_error_never_exceeds_random_k(mnist) -> None:
    """||g - TopK(g)|| <= sqrt(1 - K/d) ||g|| for every gradient and K (top-k keeps the
    largest energy; random-K keeps K/d of it in expectation)."""
    from neurips18.repro import topk_convergence as tc

    cfg = tc.PROFILES["smoke"]
    for seed in (0, 1):
        curves = tc._topk_error_curves(cfg, seed, 0, "cpu")
        assert set(curves) == {"logreg (binary MNIST)", "MLP at init", "MLP after 200 steps"}
        for c in curves.values():
            for r in c["rows"]:
                assert 0.0 <= r["topk"] <= r["randk"] + 1e-6


def test_xi_is_measured_along_topk_training(mnist) -> None:
    from neurips18.repro import topk_convergence as tc

    runs = tc._mlp_convergence(tc.PROFILES["smoke"], 0, "cpu")
    xi = runs["0.01"]["xi"]
    assert xi and all(math.isfinite(x) and x >= 0 for x in xi)
    assert runs["1.0"]["xi"] == []  # dense: no compressor, no xi
    assert len(runs["0.01"]["test_accs"]) == tc.PROFILES["smoke"].acc_evals


def test_monte_carlo_second_moment_matches_the_closed_form(mnist) -> None:
    """E||Q(g)||^2 = sum g_i^2 / p_i, by Monte Carlo on a real stochastic gradient; the
    optimal probabilities beat uniform sampling at every density."""
    from dataclasses import replace

    from neurips18.repro import sparsification as sp

    cfg = replace(sp.PROFILES["smoke"], mc_draws=2000)
    var = sp._variance_curve(cfg, 0, 0)
    assert abs(var["mc"] / var["closed"] - 1) < 0.05
    assert all(r["optimal"] < r["uniform"] for r in var["rows"])
