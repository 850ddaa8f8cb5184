"""Frequency weights: a row of integer weight w counts as w copies of it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from neurips18.datasets.synthetic import make_planted_rule_set
from neurips18.rules import ACCURACY_PRIOR, MultiValueRuleSetClassifier
from neurips18.rules._encoding import fit_encoding, transform
from neurips18.rules._search import RuleSpace


def _data(seed=0, n=600):
    return make_planted_rule_set(n_samples=n, n_attributes=6, noise=0.05,
                                 generator=np.random.default_rng(seed))


def test_weighted_posterior_equals_the_posterior_of_the_replicated_data():
    d = _data()
    rng = np.random.default_rng(1)
    w = rng.integers(1, 4, len(d.y))
    encs = fit_encoding(d.X, set(d.X.columns), 5)
    codes = transform(d.X, encs)
    nv = [e.n_values for e in encs]
    weighted = RuleSpace(codes, d.y, nv, ACCURACY_PRIOR, w.astype(float))
    rep = np.repeat(np.arange(len(d.y)), w)
    replicated = RuleSpace(codes[rep], d.y[rep], nv, ACCURACY_PRIOR)
    for _ in range(20):  # random rule sets of 1-3 rules
        rules = []
        for _ in range(rng.integers(1, 4)):
            attrs = sorted(rng.choice(6, rng.integers(1, 3), replace=False))
            rules.append(tuple((int(j), frozenset(rng.choice(5, 2, replace=False).tolist()))
                               for j in attrs))
        assert weighted.log_posterior(rules) == pytest.approx(
            replicated.log_posterior(rules), rel=1e-12, abs=1e-9)
        assert weighted.confusion(sum_cov(weighted, rules)) == pytest.approx(
            replicated.confusion(sum_cov(replicated, rules)))


def sum_cov(space, rules):
    u = 0
    for r in rules:
        u |= space.rule_cov(r)
    return u


def test_unit_weights_give_the_unweighted_fit_and_zero_weights_drop_rows():
    d = _data(2)
    kw = dict(random_state=0, n_iterations=400)
    plain = MultiValueRuleSetClassifier(**kw).fit(d.X, d.y)
    unit = MultiValueRuleSetClassifier(**kw).fit(d.X, d.y, sample_weight=np.ones(len(d.y)))
    assert plain.rules_ == unit.rules_ and plain.map_log_posterior_ == unit.map_log_posterior_
    w = np.ones(len(d.y))
    w[:100] = 0
    dropped = MultiValueRuleSetClassifier(**kw).fit(d.X.iloc[100:], d.y[100:])
    zero = MultiValueRuleSetClassifier(**kw).fit(d.X, d.y, sample_weight=w)
    assert dropped.rules_ == zero.rules_


def test_weights_change_the_fit_towards_the_heavy_rows():
    # two conflicting labellings; the heavy half decides
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.choice(["u", "v"], 800), "b": rng.choice(["p", "q"], 800)})
    y = np.where(np.arange(800) < 400, X.a == "u", X.b == "p").astype(int)
    w = np.where(np.arange(800) < 400, 10.0, 1.0)
    heavy_a = MultiValueRuleSetClassifier(random_state=0, n_iterations=400).fit(
        X, y, sample_weight=w)
    heavy_b = MultiValueRuleSetClassifier(random_state=0, n_iterations=400).fit(
        X, y, sample_weight=w[::-1].copy())
    assert heavy_a.rules_ == ["a in {u}"] and heavy_b.rules_ == ["b in {p}"]


@pytest.mark.parametrize(
    "w, match",
    [(np.full(10, -1.0), "non-negative"), (np.zeros(10), "non-zero weight"),
     (np.ones(9), "one weight per sample"), (np.full(10, np.nan), "finite"),
     (np.ones((10, 2)), "1-D")],
)
def test_bad_weights(w, match):
    X = np.array([["a"], ["b"]] * 5)
    y = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match=match):
        MultiValueRuleSetClassifier().fit(X, y, sample_weight=w)


def test_array_after_a_dataframe_fit_warns_about_feature_names():
    d = _data(3, 300)
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(d.X, d.y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(d.X.to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(d.X)


@pytest.mark.parametrize("binning", ["quantile", "tree"])
def test_weighted_cut_points_are_those_of_the_replicated_data(binning):
    # frequency weights reach the binning too: the numeric cuts of a weighted fit are the
    # cuts of the data with each row repeated w times
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"a": rng.exponential(size=n), "b": rng.choice(list("pqr"), n)})
    y = ((X.a > 1.0) & (X.b != "r")).astype(int).to_numpy()
    w = np.where(X.a > 0.8, 5, 1)
    rep = np.repeat(np.arange(n), w)
    kw = dict(random_state=0, n_iterations=300, binning=binning)
    weighted = MultiValueRuleSetClassifier(**kw).fit(X, y, sample_weight=w)
    replicated = MultiValueRuleSetClassifier(**kw).fit(X.iloc[rep], y[rep])
    np.testing.assert_array_equal(weighted.encodings_[0].edges, replicated.encodings_[0].edges)
    assert weighted.encodings_[0].labels == replicated.encodings_[0].labels
    codes = transform(X, weighted.encodings_)
    np.testing.assert_array_equal(codes, transform(X, replicated.encodings_))


@pytest.mark.parametrize("total", [1.0, 1.5])
def test_tree_binning_with_less_than_two_rows_of_weight_has_no_cut(total):
    """Weights summing to less than 2 (normalised weights) asked the binning tree for
    leaves of more than half the weight, which scikit-learn refuses: the fit raised
    DecisionTreeClassifier's InvalidParameterError on min_weight_fraction_leaf. No split
    of that little weight leaves two leaves of one row each: the column has no cut."""
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"a": rng.exponential(size=n), "b": rng.choice(list("pqr"), n)})
    y = ((X.a > 1.0) & (X.b != "r")).astype(int).to_numpy()
    w = np.full(n, total / n)
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=100,
                                      binning="tree").fit(X, y, sample_weight=w)
    assert clf.encodings_[0].edges.size == 0
    assert clf.encodings_[0].labels == ["any number"]
