"""Synthetic data with a planted multi-value rule set (the paper's simulation study).

Tong Wang, NeurIPS 2018, Section 5 (synthetic data): categorical attributes drawn uniformly,
labels given by a hidden multi-value rule set (optionally flipped with some noise), and the
question is whether the learner recovers the planted rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PlantedRuleSet", "make_planted_rule_set"]


@dataclass(frozen=True)
class PlantedRuleSet:
    X: pd.DataFrame
    y: np.ndarray
    rules: list[dict[str, frozenset[str]]]  # the planted rules, attribute -> values

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
    rng: np.random.Generator | None = None,
) -> PlantedRuleSet:
    """Draw a data set labelled by a random multi-value rule set.

    Every attribute takes ``n_values`` categories ``v0..`` uniformly at random. Each planted
    rule uses ``conditions_per_rule`` distinct attributes, each condition allowing between
    ``values_per_condition[0]`` and ``values_per_condition[1]`` values. ``y = 1`` where any
    rule holds; a fraction ``noise`` of labels is then flipped.
    """
    if rng is None:
        raise TypeError("rng must be a numpy.random.Generator (no global seeding)")
    if n_samples < 1 or n_attributes < conditions_per_rule or n_values < 2:
        raise ValueError(
            f"need n_samples >= 1, n_attributes >= conditions_per_rule and n_values >= 2; "
            f"got {n_samples}, {n_attributes}, {conditions_per_rule}, {n_values}"
        )
    lo, hi = values_per_condition
    if not 1 <= lo <= hi < n_values:
        raise ValueError(
            "values_per_condition must satisfy 1 <= lo <= hi < n_values, "
            f"got {values_per_condition}"
        )
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"noise must be in [0, 0.5), got {noise}")
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
