"""The default settings on real data: better than the majority class and competitive with a
depth-4 decision tree on held-out splits of Adult, Credit default and Mushroom.

Thresholds, fixed before this test was first run: on each of two stratified 70/30 splits,
the default classifier's test accuracy is at least the majority-class rate + 0.01 and at
least the depth-4 tree's (scikit-learn, one-hot categoricals) - 0.01.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from neurips18 import datasets
from neurips18.rules import MultiValueRuleSetClassifier

LOADERS = {
    "adult": lambda: datasets.load_adult("train"),
    "credit-default": datasets.load_credit_default,
    "mushroom": datasets.load_mushroom,
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_default_beats_majority_and_is_competitive_with_a_depth4_tree(name):
    try:
        d = LOADERS[name]()
    except datasets.DataError as exc:
        pytest.skip(f"{name} not available: {exc}")
    for split in (0, 1):
        Xtr, Xte, ytr, yte = train_test_split(d.X, d.y, test_size=0.3, stratify=d.y,
                                              random_state=split)
        majority = max(yte.mean(), 1 - yte.mean())
        onehot = ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore"), list(d.categorical_features))],
            remainder="passthrough")
        tree = make_pipeline(onehot, DecisionTreeClassifier(max_depth=4, random_state=0))
        tree_acc = (tree.fit(Xtr, ytr).predict(Xte) == yte).mean()
        ours = MultiValueRuleSetClassifier(random_state=0).fit(Xtr, ytr)
        acc = (ours.predict(Xte) == yte).mean()
        assert acc >= majority + 0.01, (name, split, acc, majority)
        assert acc >= tree_acc - 0.01, (name, split, acc, tree_acc)
        assert ours.n_rules_ <= 10, ours.rules_


def test_the_named_priors_are_exported_and_the_default_is_accuracy():
    from neurips18.rules import ACCURACY_PRIOR, NAMED_PRIORS, PAPER_PRIOR, MRSPrior

    assert MultiValueRuleSetClassifier().prior == "accuracy"
    assert NAMED_PRIORS == {"accuracy": ACCURACY_PRIOR, "paper": PAPER_PRIOR}
    assert MRSPrior.named("paper") == MRSPrior()  # the author's code's values
    assert ACCURACY_PRIOR.alpha_1 / (ACCURACY_PRIOR.alpha_1 + ACCURACY_PRIOR.beta_1) == 0.9
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, (200, 3)).astype(str)
    y = (X[:, 0] == "1").astype(int)
    a = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(X, y)
    b = MultiValueRuleSetClassifier(random_state=0, n_iterations=200,
                                    prior=ACCURACY_PRIOR).fit(X, y)
    assert a.rules_ == b.rules_ and a.map_log_posterior_ == b.map_log_posterior_
