"""Synthetic data sets shared by users, tests and the reproductions.

Each generator takes an explicit random generator (or an int seed) and returns the same data
for the same seed.

* :func:`make_planted_rule_set` -- categorical attributes labelled by a hidden multi-value
  rule set (Wang, NeurIPS 2018, Section 5's simulation study).
* :func:`make_skewed_sparse_classification` -- sparse features whose column scales decay as
  a power law, so stochastic gradients have skewed magnitudes (the regime of Wangni et al.,
  NeurIPS 2018, for gradient sparsification).
* :func:`make_bayesian_linear_regression`, :func:`make_bayesian_logistic_regression` --
  Gaussian design, theta ~ N(0, I), Gaussian or Bernoulli responses (the synthetic GLMs of
  Brosse, Durmus and Moulines, NeurIPS 2018).
* :func:`make_ball_blobs` -- Gaussian clusters inside the unit ball (the private k-means
  protocol for Kaplan and Stemmer, NeurIPS 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurips18._validation import (
    Interval,
    as_numpy_generator,
    as_torch_generator,
    check,
    invalid,
)

__all__ = [
    "PlantedRuleSet",
    "make_bayesian_linear_regression",
    "make_ball_blobs",
    "make_bayesian_logistic_regression",
    "make_planted_rule_set",
    "make_skewed_sparse_classification",
]


@dataclass(frozen=True)
class PlantedRuleSet:
    """``X`` (categorical DataFrame), ``y`` (0/1) and the planted ``rules`` (each a mapping
    attribute -> allowed values; ``y = 1`` where any rule holds, before label noise)."""

    X: Any
    y: np.ndarray
    rules: list[dict[str, frozenset[str]]]

    def describe(self) -> list[str]:
        return [
            " AND ".join(f"{a} in {{{', '.join(sorted(v))}}}" for a, v in sorted(r.items()))
            for r in self.rules
        ]


def make_planted_rule_set(
    n_samples: int = 5000,
    n_attributes: int = 20,
    n_values: int = 5,
    n_rules: int = 3,
    conditions_per_rule: int = 2,
    values_per_condition: tuple[int, int] = (1, 2),
    noise: float = 0.0,
    *,
    generator: Any,
) -> PlantedRuleSet:
    """Draw a data set labelled by a random multi-value rule set.

    Every attribute takes ``n_values`` categories ``v0..`` uniformly at random. Each planted
    rule uses ``conditions_per_rule`` distinct attributes, each condition allowing between
    ``values_per_condition[0]`` and ``values_per_condition[1]`` values. ``y = 1`` where any
    rule holds; a fraction ``noise`` of labels is then flipped. ``generator``: a
    ``numpy.random.Generator`` or an int seed.
    """
    import pandas as pd

    rng = as_numpy_generator(generator)
    n_samples = check("n_samples", n_samples, Interval(int, 1, None))
    n_values = check("n_values", n_values, Interval(int, 2, None))
    n_rules = check("n_rules", n_rules, Interval(int, 0, None))
    conditions_per_rule = check("conditions_per_rule", conditions_per_rule,
                                Interval(int, 1, None))
    n_attributes = check("n_attributes", n_attributes,
                         Interval(int, conditions_per_rule, None))
    noise = check("noise", noise, Interval(float, 0.0, 0.5, closed="left"))
    # each bound checked as an int: int() truncated 2.7 to 2 and read "2" as 2 silently
    if isinstance(values_per_condition, str | bytes) or not hasattr(values_per_condition,
                                                                    "__len__") \
            or len(values_per_condition) != 2:
        raise invalid("values_per_condition", values_per_condition, "a pair (lo, hi)")
    lo, hi = (check(f"values_per_condition[{i}]", v, Interval(int, 1, None))
              for i, v in enumerate(values_per_condition))
    if not 1 <= lo <= hi < n_values:
        raise invalid("values_per_condition", values_per_condition,
                      f"1 <= lo <= hi < n_values = {n_values}")
    names = [f"a{j}" for j in range(n_attributes)]
    labels = [f"v{k}" for k in range(n_values)]
    codes = rng.integers(n_values, size=(n_samples, n_attributes))
    rules: list[dict[str, frozenset[str]]] = []
    y = np.zeros(n_samples, dtype=bool)
    for _ in range(n_rules):
        attrs = rng.choice(n_attributes, conditions_per_rule, replace=False)
        holds = np.ones(n_samples, dtype=bool)
        rule = {}
        for j in attrs:
            k = int(rng.integers(lo, hi + 1))
            vals = rng.choice(n_values, k, replace=False)
            holds &= np.isin(codes[:, j], vals)
            rule[names[j]] = frozenset(labels[v] for v in vals)
        rules.append(rule)
        y |= holds
    if noise > 0:
        y ^= rng.random(n_samples) < noise
    X = pd.DataFrame(
        {
            n: pd.Categorical([labels[v] for v in codes[:, j]], categories=labels)
            for j, n in enumerate(names)
        }
    )
    return PlantedRuleSet(X=X, y=y.astype(np.int64), rules=rules)


def make_skewed_sparse_classification(
    n_samples: int,
    n_features: int,
    *,
    density: float = 0.1,
    decay: float = 1.0,
    label_noise: float = 0.1,
    generator: Any,
) -> tuple[Any, Any]:
    """Sparse features whose column scales decay as ``j^-decay``, labels in {-1, +1}.

    Each entry is non-zero with probability ``density``; column ``j`` (1-based) is scaled by
    ``j^-decay * d^(decay / 2 - 1 / 4)``, so the mean squared norm of a row is
    ``density * d^(decay - 1/2) * sum_j j^(-2 decay)``. It is comparable only at
    ``decay = 0`` and ``decay = 1`` (``density * sqrt(d)`` and about 1.6 times it); other
    decays give other norms (for ``d = 1000``, ``density = 0.1``: 3.2 at decay 0, 0.75 at
    0.5, 5.2 at 1, 3400 at 2), so rescale ``X`` if a fixed norm is needed. Labels are the
    sign of a random linear model, a fraction ``label_noise`` of them flipped. Returns
    float32 torch tensors ``(X [n, d], y [n])``;
    ``generator`` is a ``torch.Generator`` or an int seed.
    """
    import torch

    g = as_torch_generator(generator)
    n = check("n_samples", n_samples, Interval(int, 1, None))
    d = check("n_features", n_features, Interval(int, 1, None))
    density = check("density", density, Interval(float, 0.0, 1.0, closed="right"))
    decay = check("decay", decay, Interval(float, 0.0, None))
    label_noise = check("label_noise", label_noise, Interval(float, 0.0, 0.5, closed="left"))
    mask = torch.rand(n, d, generator=g) < density
    scales = torch.arange(1, d + 1, dtype=torch.float32).pow(-decay)
    X = torch.randn(n, d, generator=g) * mask * scales * (d**decay) ** 0.5 / d**0.25
    w_true = torch.randn(d, generator=g)
    y = torch.sign(X @ w_true + 1e-12)
    flip = torch.rand(n, generator=g) < label_noise
    y[flip] = -y[flip]
    return X, y


def make_bayesian_linear_regression(
    n_samples: int, n_features: int, *, noise: float = 1.0, generator: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``X ~ N(0, I)`` rows, ``theta ~ N(0, I_d)``, ``y = X theta + noise * N(0, 1)``.
    ``generator``: a ``numpy.random.Generator`` or an int seed."""
    rng = as_numpy_generator(generator)
    n = check("n_samples", n_samples, Interval(int, 1, None))
    d = check("n_features", n_features, Interval(int, 1, None))
    noise = check("noise", noise, Interval(float, 0.0, None))
    X = rng.standard_normal((n, d))
    theta = rng.standard_normal(d)
    return X, X @ theta + noise * rng.standard_normal(n)


def make_bayesian_logistic_regression(
    n_samples: int, n_features: int, *, generator: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised Gaussian features, ``theta ~ N(0, I_d)``, Bernoulli labels in {0, 1}
    with ``P(y = 1) = sigmoid(x . theta)``. ``generator``: a ``numpy.random.Generator`` or
    an int seed."""
    rng = as_numpy_generator(generator)
    n = check("n_samples", n_samples, Interval(int, 1, None))
    d = check("n_features", n_features, Interval(int, 1, None))
    X = rng.standard_normal((n, d))
    theta = rng.standard_normal(d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-X @ theta))).astype(float)
    return X, y


def make_ball_blobs(
    n_samples: int, n_features: int, n_clusters: int = 10, *, spread: float = 0.1,
    centre_radius: float = 0.7, generator: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``n_clusters`` Gaussian clusters in the unit ball: centres uniform in the ball of
    radius ``centre_radius``, each row a centre (chosen uniformly) plus
    ``N(0, (spread^2 / n_features) I)`` noise (so a cluster's radius is about ``spread``
    in any dimension); the rare rows outside the unit ball are scaled onto its sphere.
    Returns ``X`` (float64) and the cluster labels. ``generator``: a
    ``numpy.random.Generator`` or an int seed."""
    rng = as_numpy_generator(generator)
    n = check("n_samples", n_samples, Interval(int, 1, None))
    d = check("n_features", n_features, Interval(int, 1, None))
    k = check("n_clusters", n_clusters, Interval(int, 1, None))
    spread = check("spread", spread, Interval(float, 0.0, None))
    centre_radius = check("centre_radius", centre_radius, Interval(float, 0.0, 1.0))
    g = rng.standard_normal((k, d))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    centres = g * (centre_radius * rng.uniform(0.0, 1.0, size=(k, 1)) ** (1.0 / d))
    y = rng.integers(0, k, size=n)
    X = centres[y] + rng.standard_normal((n, d)) * (spread / np.sqrt(d))
    norms = np.linalg.norm(X, axis=1)
    X /= np.maximum(norms, 1.0)[:, None]
    return X, y
