"""The estimator: real data, readable rules, input handling and bad input."""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from neurips18.datasets.synthetic import make_planted_rule_set
from neurips18.rules import MultiValueRuleSetClassifier

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


def _eval_rule_strings(rules: list[str], X: pd.DataFrame) -> np.ndarray:
    """Evaluate readable categorical rules with pandas, independently of the model."""
    out = np.zeros(len(X), bool)
    for rule in rules:
        m = np.ones(len(X), bool)
        for cond in rule.split(" AND "):
            name, values = re.fullmatch(r"(.+) in \{(.*)\}", cond).groups()
            m &= X[name].astype(str).isin(values.split(", ")).to_numpy()
        out |= m
    return out


def test_tic_tac_toe_exact_concept(tic_tac_toe):
    Xtr, Xte, ytr, yte = train_test_split(
        tic_tac_toe.X, tic_tac_toe.y, test_size=0.3, stratify=tic_tac_toe.y, random_state=0
    )
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=3000).fit(Xtr, ytr)
    names = list(tic_tac_toe.X.columns)
    expected = {
        " AND ".join(f"{names[j]} in {{x}}" for j in sorted(line, key=lambda j: j))
        for line in LINES
    }
    assert set(clf.rules_) == expected
    assert clf.n_rules_ == 8 and clf.n_conditions_ == 24 and len(clf.features_used_) == 9
    assert (clf.predict(Xte) == yte).mean() == 1.0
    np.testing.assert_array_equal(_eval_rule_strings(clf.rules_, Xte), clf.predict(Xte) == 1)


def test_mushroom_accuracy_and_readable_rules(mushroom):
    Xtr, Xte, ytr, yte = train_test_split(
        mushroom.X, mushroom.y, test_size=0.3, stratify=mushroom.y, random_state=0
    )
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=3000, max_rules=3)
    clf.fit(Xtr, ytr)
    assert (clf.predict(Xte) == yte).mean() >= 0.99
    # the readable strings are the model: evaluating them with pandas gives predict()
    X_str = Xte.astype(object).where(Xte.notna(), "missing")
    np.testing.assert_array_equal(_eval_rule_strings(clf.rules_, X_str), clf.predict(Xte) == 1)
    assert sum(line.startswith("  rule ") for line in str(clf).splitlines()) == clf.n_rules_


def test_planted_rule_set_recovered_through_the_estimator():
    data = make_planted_rule_set(n_samples=3000, n_attributes=15,
                                 generator=np.random.default_rng(4))
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=2000).fit(data.X, data.y)

    def canon(rules):
        return sorted(tuple(sorted(r.split(" AND "))) for r in rules)

    assert canon(clf.rules_) == canon(data.describe())


def test_numeric_columns_are_binned_by_quantile_and_printed_as_intervals():
    rng = np.random.default_rng(0)
    n = 2000
    X = pd.DataFrame({"age": rng.uniform(0, 100, n), "color": rng.choice(["r", "g", "b"], n)})
    y = ((X.age >= 60) & (X.color != "b")).astype(int)
    clf = MultiValueRuleSetClassifier(n_bins=5, random_state=0, n_iterations=1000,
                                      binning="quantile").fit(X, y)
    assert (clf.predict(X) == y).mean() > 0.98
    assert any(re.search(r"age in \{>= 5\d", r) for r in clf.rules_), clf.rules_
    assert any("color in {g, r}" in r for r in clf.rules_), clf.rules_


def test_tree_binning_puts_the_cut_where_the_label_changes():
    rng = np.random.default_rng(0)
    n = 2000
    X = pd.DataFrame({"age": rng.uniform(0, 100, n), "color": rng.choice(["r", "g", "b"], n)})
    y = ((X.age >= 63.5) & (X.color != "b")).astype(int)  # not at a quantile
    quant = MultiValueRuleSetClassifier(binning="quantile", random_state=0).fit(X, y)
    tree = MultiValueRuleSetClassifier(binning="tree", random_state=0).fit(X, y)
    assert (tree.predict(X) == y).mean() == 1.0
    assert (quant.predict(X) == y).mean() < 0.99  # the quantile cuts straddle 63.5
    cut = float(re.search(r"age in \{>= ([\d.]+)\}", tree.rules_[0]).group(1))
    # the cut separates the oldest negative of a non-blue colour from the youngest positive
    assert X.age[(y == 0) & (X.color != "b")].max() < cut <= X.age[y == 1].min() + 1e-4
    assert any("color in {g, r}" in r for r in tree.rules_), tree.rules_



@pytest.mark.parametrize("scale", [1e-50, 1e39, 1e300])
def test_tree_binning_does_not_depend_on_the_units(scale):
    # the tree that places the cuts must see the column's order only: in float32 (the
    # trees' dtype) a column in units of 1e-50 was all 0 and never cut (the rule fell on
    # the noise column, accuracy 0.645), and one past 3.4e38 was refused as infinite
    rng = np.random.default_rng(0)
    x, noise = rng.normal(size=400), rng.normal(size=400)
    y = (x > 0.3).astype(int)
    one = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(
        np.column_stack([x, noise]), y)
    big = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(
        np.column_stack([x * scale, noise]), y)
    assert one.score(np.column_stack([x, noise]), y) == 1.0
    assert big.score(np.column_stack([x * scale, noise]), y) == 1.0
    assert big.features_used_ == ["x0"]
    assert np.allclose(big.encodings_[0].edges / scale, one.encodings_[0].edges, rtol=0.2)


def test_tree_binning_cuts_large_values_at_their_own_resolution():
    # Unix times in seconds are 128 apart in float32: the cut fell 12 s late
    rng = np.random.default_rng(0)
    t = 1.7e9 + rng.integers(0, 1000, 400)
    y = (t > 1.7e9 + 437).astype(int)
    X = np.column_stack([t, rng.normal(size=400)])
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(X, y)
    assert clf.score(X, y) == 1.0
    cut = float(clf.encodings_[0].edges[0])
    assert t[y == 0].max() < cut <= t[y == 1].min()

def test_arrays_strings_labels_and_positive_class():
    data = make_planted_rule_set(n_samples=1500, n_attributes=6,
                                 generator=np.random.default_rng(2))
    X = data.X.astype(str).to_numpy()
    y = np.where(data.y == 1, "yes", "no")
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=1000).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"] and clf.positive_class_ == "yes"
    assert (clf.predict(X) == y).mean() > 0.99
    assert all(r.startswith("x") for r in clf.rules_)  # array columns are named x0, x1, ...
    inv = MultiValueRuleSetClassifier(random_state=0, n_iterations=300, positive_class="no")
    inv.fit(X, y)
    proba = inv.predict_proba(X)
    assert np.allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(inv.classes_[proba.argmax(1)], inv.predict(X))


@pytest.mark.parametrize("prior", ["accuracy", "paper"])
def test_predict_proba_is_the_laplace_rate_of_the_training_data(prior):
    data = make_planted_rule_set(
        n_samples=1000, n_attributes=6, noise=0.05, generator=np.random.default_rng(3)
    )
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=500, prior=prior)
    clf.fit(data.X, data.y)
    covered = clf.predict(data.X) == 1
    tp, fp = int(data.y[covered].sum()), int((1 - data.y[covered]).sum())
    fn, tn = int(data.y[~covered].sum()), int((1 - data.y[~covered]).sum())
    assert clf.train_confusion_ == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    proba = clf.predict_proba(data.X)[:, 1]
    assert np.allclose(proba[covered], (tp + 1) / (tp + fp + 2))
    assert np.allclose(proba[~covered], (fn + 1) / (tn + fn + 2))
    # the rates follow the data, not the accuracy prior's pseudo-counts (which give 0.9/0.1)
    assert abs(proba[covered][0] - 0.9) > 0.02


def test_caps_and_trace():
    data = make_planted_rule_set(
        n_samples=2000, n_attributes=8, n_rules=4, generator=np.random.default_rng(1)
    )
    clf = MultiValueRuleSetClassifier(
        max_rules=2, max_values_per_rule=3, n_iterations=600, random_state=0, n_chains=2
    ).fit(data.X, data.y)
    assert clf.n_rules_ <= 2
    assert all(len(v) <= 3 for v in clf.rule_codes_ for v in [sum((list(s) for _, s in v), [])])
    assert clf.log_posterior_.shape == (clf.n_iter_ + 1,)
    assert clf.map_log_posterior_ >= clf.log_posterior_.max() - 1e-9
    assert clf.map_log_posterior_ == clf.chains_map_log_posterior_.max()
    assert clf.bounds_ and clf.bounds_[-1]["max_rules_bound"] >= clf.n_rules_


def test_same_seed_same_model():
    data = make_planted_rule_set(n_samples=1000, n_attributes=8,
                                 generator=np.random.default_rng(6))
    a = MultiValueRuleSetClassifier(random_state=3, n_iterations=400).fit(data.X, data.y)
    b = clone(a).fit(data.X, data.y)
    assert a.rules_ == b.rules_


# --- bad input --------------------------------------------------------------------------
def _small():
    return make_planted_rule_set(n_samples=300, n_attributes=4, generator=np.random.default_rng(0))


def test_single_class_y_is_rejected():
    d = _small()
    with pytest.raises(ValueError, match="1 class only"):
        MultiValueRuleSetClassifier().fit(d.X, np.zeros(len(d.y)))


def test_messages_name_labels_as_the_user_wrote_them():
    """Labels reached the messages as numpy scalars: "y has 1 class only (np.str_('no'))",
    "is not a label of y ([np.str_('no'), np.str_('yes')])", "predicts np.str_('no')
    everywhere"."""
    X = pd.DataFrame({"g": list("ab") * 50})
    y = np.array(["no", "yes"] * 50)
    with pytest.raises(ValueError, match=re.escape("y has 1 class only ('no')")):
        MultiValueRuleSetClassifier().fit(X, np.array(["no"] * 100))
    with pytest.raises(ValueError, match=re.escape("is not a label of y (['no', 'yes'])")):
        MultiValueRuleSetClassifier(positive_class="maybe").fit(X, y)
    with pytest.raises(ValueError, match=re.escape("3 classes [0, 1, 2]")):
        MultiValueRuleSetClassifier().fit(X, np.arange(100) % 3)
    with pytest.warns(UserWarning, match="predicts 'no' everywhere"):
        MultiValueRuleSetClassifier(n_iterations=10, min_support=99, random_state=0).fit(X, y)


def test_multiclass_y_is_rejected():
    d = _small()
    with pytest.raises(ValueError, match="Only binary classification"):
        MultiValueRuleSetClassifier().fit(d.X, np.arange(len(d.y)) % 3)


def test_nan_is_its_own_category_and_inf_is_rejected():
    rng = np.random.default_rng(0)
    n = 600
    col = rng.choice(["a", "b", None], n).astype(object)
    X = pd.DataFrame({"c": col, "z": rng.normal(size=n)})
    y = pd.isna(col).astype(int)  # the label is "c is missing"
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(X, y)
    assert clf.rules_ == ["c in {missing}"]
    assert (clf.predict(X) == y).all()
    X_nan = X.copy()
    X_nan.loc[:5, "z"] = np.nan  # a numeric NaN at predict time is the 'missing' category
    clf.predict(X_nan)
    X_inf = X.copy()
    X_inf.loc[0, "z"] = np.inf
    with pytest.raises(ValueError, match="infinity in column 'z'"):
        clf.fit(X_inf, y)
    with pytest.raises(ValueError, match="infinity"):
        clf.predict(X_inf)


def test_unseen_category_at_predict_time():
    d = _small()
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(d.X, d.y)
    attr = clf.features_used_[0]
    X_new = d.X.astype(object).copy()
    X_new[attr] = "never-seen"
    # documented: an unseen value satisfies no condition on its attribute
    covered = clf.decision_rule_mask(X_new)
    uses = [attr in r for r in clf.rules_]
    assert not covered[:, uses].any()
    strict = clone(clf).set_params(handle_unknown="error").fit(d.X, d.y)
    with pytest.raises(ValueError, match="not seen during fit"):
        strict.predict(X_new)


def test_handle_unknown_error_names_the_value_as_written():
    """The refused value was shown as a numpy scalar ("the value np.int64(3)", "the value
    np.float64(nan)" for a missing value in a column that had none in fit)."""
    X = pd.DataFrame({"g": list("ab") * 50, "n": np.tile([1, 2], 50),
                      "f": np.tile([1.5, 2.5], 50)})
    y = np.array([0, 1] * 50)
    clf = MultiValueRuleSetClassifier(n_iterations=50, random_state=0, handle_unknown="error",
                                      categorical_features=["n", "f"]).fit(X, y)
    with pytest.raises(ValueError, match=re.escape("column 'n' has the value 3 not seen")):
        clf.predict(X.assign(n=3))
    with pytest.raises(ValueError, match=re.escape("column 'f' has a missing value (NaN/None) "
                                                   "not seen during fit")):
        clf.predict(X.assign(f=np.nan))


def test_integers_that_float64_merges_are_reported():
    """An int64 column of 200 distinct values around 2**60 was cut as float64, where they
    are 2 values: training accuracy 0.68 on a column with a perfect split, no word. The
    fit now warns naming the column; small integers do not warn."""
    t = np.arange(-100, 100, dtype=np.int64) + 2**60
    y = (t >= 2**60).astype(int)
    with pytest.warns(UserWarning, match="column 't' holds 200 distinct integers that "
                                         "float64 tells apart as only 2"):
        MultiValueRuleSetClassifier(n_iterations=50, random_state=0).fit(
            pd.DataFrame({"t": t}), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MultiValueRuleSetClassifier(n_iterations=50, random_state=0).fit(
            pd.DataFrame({"t": pd.array(t - 2**60, dtype="Int64")}), y)


def test_mismatched_feature_names_and_counts():
    d = _small()
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(d.X, d.y)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(d.X.rename(columns={"a0": "other"}))
    with pytest.raises(ValueError, match="order differs"):
        clf.predict(d.X[list(reversed(d.X.columns))])
    with pytest.raises(ValueError, match="expecting 4 features"):
        clf.predict(d.X.to_numpy()[:, :3])


@pytest.mark.parametrize(
    "params,match",
    [
        ({"max_rules": 0}, r"Invalid max_rules: 0 \(expected an int in \[1, inf\) or None\)"),
        ({"max_values_per_rule": 1.5}, "Invalid max_values_per_rule: 1.5"),
        ({"n_iterations": -1}, r"Invalid n_iterations: -1 \(expected an int in \[1, inf\)\)"),
        ({"n_bins": 1}, r"Invalid n_bins: 1 \(expected an int in \[2, inf\)\)"),
        ({"binning": "kmeans"}, "Invalid binning: 'kmeans'"),
        ({"min_support": 0}, "Invalid min_support: 0"),
        ({"temperature0": float("nan")}, "Invalid temperature0: nan"),
        ({"handle_unknown": "skip"}, "Invalid handle_unknown: 'skip'"),
        ({"prior": {"alpha_1": -1.0}}, r"Invalid prior.alpha_1: -1.0"),
        ({"prior": {"nope": 1.0}}, "unknown: nope"),
        ({"prior": "strong"}, "Invalid prior: 'strong'"),
        ({"n_chains": 0}, "Invalid n_chains: 0"),
        ({"random_state": -2}, "Invalid random_state: -2"),
        ({"categorical_features": ["missing-col"]}, "is not a column of X"),
        ({"categorical_features": 1}, "a list of column names or indices, got 1"),
    ],
)
def test_bad_hyperparameters_name_the_parameter(params, match):
    d = _small()
    with pytest.raises(ValueError, match=match):
        MultiValueRuleSetClassifier(**params).fit(d.X, d.y)


@pytest.mark.parametrize("as_type", [list, tuple, np.array, pd.Index])
def test_categorical_features_as_an_array_or_index_of_names(as_type):
    """An ndarray or pandas Index of two names or more raised "The truth value of an array
    ... is ambiguous" (it was compared with "auto" elementwise)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.choice(list("pq"), 300), "z": rng.integers(0, 3, 300),
                      "w": rng.integers(0, 3, 300)})
    y = ((X.a == "p") & (X.z == 1)).astype(int)
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=100,
                                      categorical_features=as_type(["z", "w"])).fit(X, y)
    assert [e.kind for e in clf.encodings_] == ["categorical"] * 3


def test_prior_of_wrong_type():
    d = _small()
    with pytest.raises(TypeError, match="Invalid prior: 3"):
        MultiValueRuleSetClassifier(prior=3).fit(d.X, d.y)


def test_empty_and_inconsistent_data():
    d = _small()
    with pytest.raises(ValueError, match="0 sample"):
        MultiValueRuleSetClassifier().fit(d.X.iloc[:0], d.y[:0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MultiValueRuleSetClassifier().fit(d.X, d.y[:-1])


@pytest.mark.parametrize("make", [
    lambda lab: lab.astype(object).where(lab.index != 4, None),
    lambda lab: lab.astype("string").where(lab.index != 4, pd.NA),
    lambda lab: pd.Series(pd.Categorical(lab.where(lab.index != 4))),
])
def test_missing_class_labels_are_refused_by_name(make):
    """A missing string label raised np.unique's "'<' not supported between instances of
    'str' and 'NoneType'" (or "boolean value of NA is ambiguous")."""
    d = _small()
    y = make(pd.Series(np.where(np.asarray(d.y) == 1, "yes", "no")))
    with pytest.raises(ValueError, match="Input y contains missing labels .* 1 sample.*"
                                         "position 4"):
        MultiValueRuleSetClassifier().fit(d.X, y)


def test_fit_speed_is_recorded():
    d = _small()
    t = time.perf_counter()
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=100).fit(d.X, d.y)
    assert 0 < clf.fit_time_["search_s"] <= time.perf_counter() - t


def test_object_array_predictions_do_not_depend_on_the_rest_of_the_batch():
    # a categorical column whose values include numeric-looking strings: a batch holding
    # only those must be coded as at fit time, not turned into numbers
    rng = np.random.default_rng(0)
    n = 600
    X = np.column_stack([rng.choice(["red", "green", "blue"], n), rng.normal(size=n),
                         rng.choice(["1", "2", "x"], n)]).astype(object)
    X[:, 1] = X[:, 1].astype(float)
    y = np.where((X[:, 0] == "red") | (X[:, 2] == "1"), "yes", "no")
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=500).fit(X, y)
    assert (clf.predict(X) == y).all()
    sub = X[:, 2] != "x"
    np.testing.assert_array_equal(clf.predict(X[sub]), clf.predict(X)[sub])
    for i in range(5):  # one row at a time
        assert clf.predict(X[i : i + 1])[0] == y[i]
    # a numeric column still reads numbers given as strings
    Xs = X.copy()
    Xs[:, 1] = Xs[:, 1].astype(str)
    np.testing.assert_array_equal(clf.predict(Xs), clf.predict(X))


def _check_printed_rules(clf, X):
    """Evaluate the printed numeric intervals with the printed numbers, independently."""
    out = np.zeros(len(X), bool)
    for rule in clf.rules_:
        m = np.ones(len(X), bool)
        for cond in rule.split(" AND "):
            name, values = re.fullmatch(r"(.+) in \{(.*)\}", cond).groups()
            x = X[name].to_numpy(dtype=float)
            hit = np.zeros(len(X), bool)
            for v in values.split(", "):
                if v.startswith(">= "):
                    hit |= x >= float(v[3:])
                elif v.startswith("< "):
                    hit |= x < float(v[2:])
                else:
                    lo, hi = re.fullmatch(r"\[(.+), (.+)\)", v).groups()
                    hit |= (x >= float(lo)) & (x < float(hi))
            m &= hit
        out |= m
    return out


@pytest.mark.parametrize("binning", ["tree", "quantile"])
def test_printed_cut_points_are_the_ones_predict_applies(binning):
    # seven-digit values: six significant digits (1.00005e+06) are not the cut
    rng = np.random.default_rng(2)
    n = 1000
    X = pd.DataFrame({"big": rng.integers(1_000_000, 1_000_100, n).astype(float),
                      "small": rng.normal(size=n) * 1e-3})
    y = ((X.big >= 1_000_053) & (X.small > 0)).astype(int).to_numpy()
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=500, binning=binning,
                                      n_bins=8).fit(X, y)
    assert clf.n_rules_ >= 1
    # new rows on a fine grid, between and at the training values
    grid = pd.DataFrame({"big": np.repeat(np.arange(999_990, 1_000_110, 0.5), 3),
                         "small": np.tile([-1e-3, 1e-9, 2e-3], 240)})
    for data in (X, grid):
        np.testing.assert_array_equal(_check_printed_rules(clf, data),
                                      clf.predict(data) == 1)
    for enc in clf.encodings_:  # cut points are short numbers inside the training gaps
        assert all(len(f"{e:.7g}") <= 12 for e in enc.edges)


@pytest.mark.parametrize("values", ["one", "many"])
def test_a_condition_on_every_number_of_a_column_says_so(values):
    """A numeric condition holding for every number but not for the missing values was
    printed "a in {any}" (one bin; read as covering NaN too) or "a in {< inf}" (all bins
    of a cut column): both now print "a in {any number}"."""
    rng = np.random.default_rng(0)
    n = 400
    a = np.full(n, 3.0) if values == "one" else rng.normal(size=n)
    a[rng.random(n) < 0.3] = np.nan
    b = rng.choice(list("xy"), n)
    X = pd.DataFrame({"a": a, "b": b})
    y = (~np.isnan(a) & (b == "x")).astype(int)
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(X, y)
    assert clf.rules_ == ["a in {any number} AND b in {x}"]
    assert (clf.predict(X) == y).all()


def test_a_category_named_missing_is_not_printed_as_the_missing_values():
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"c": rng.choice(["missing", "ok", None], n)})
    y = X.c.isna().astype(int).to_numpy()  # the label is "c is NaN", not "c is 'missing'"
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(X, y)
    assert (clf.predict(X) == y).all()
    labels = clf.encodings_[0].labels
    assert len(set(labels)) == len(labels)  # one label per code
    (rule,) = clf.rules_
    # the printed rule must not name the category 'missing', which it does not cover
    assert rule != "c in {missing}" and _eval_rule_strings([rule], X).sum() == 0


def test_missing_values_get_a_label_that_no_category_of_the_column_has():
    """A column with real categories "missing" and "<missing>" printed its missing values
    as "<missing>" too: the rule for NaN read as the rule for the category "<missing>"."""
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"c": rng.choice(["missing", "<missing>", "ok", None], n)})
    y = X.c.isna().astype(int).to_numpy()
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(X, y)
    assert (clf.predict(X) == y).all()
    labels = clf.encodings_[0].labels
    assert len(set(labels)) == len(labels)
    (rule,) = clf.rules_
    assert rule == "c in {<<missing>>}" and _eval_rule_strings([rule], X).sum() == 0


def test_categories_that_print_alike_get_distinct_labels():
    """The number 1 and the string "1" of an object column were both printed 1: a rule on
    one of them could not be told from a rule on the other."""
    X = pd.DataFrame({"a": np.array([1, "1", "x"] * 100, dtype=object)})
    y = np.array([0, 1, 0] * 100)  # the string "1"
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(X, y)
    assert clf.encodings_[0].labels == ["1", "'1'", "x"]
    assert clf.rules_ == ["a in {'1'}"] and (clf.predict(X) == y).all()


def test_categories_that_misread_in_a_printed_set_are_quoted():
    """The category "Portland, OR" and the empty string printed bare: the rule covering
    exactly them read ``city in {, Portland, OR}`` (three values, one of them empty).
    They are quoted now; ordinary labels stay bare."""
    city = np.array(["Portland, OR", "Salem, OR", "Boise", "", " x", "a}"] * 60, dtype=object)
    X = pd.DataFrame({"city": city})
    y = np.isin(city, ["Portland, OR", ""]).astype(int)
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(X, y)
    assert sorted(clf.encodings_[0].labels) == sorted(
        ["' x'", "''", "'Portland, OR'", "'Salem, OR'", "'a}'", "Boise"])
    assert clf.rules_ == ["city in {'', 'Portland, OR'}"]
    assert (clf.predict(X) == y).all()
    # intervals of pd.cut carry their own brackets: printed as str, not repr
    x = np.tile([-1.5, -0.5, 0.5, 1.5], 75)
    cut = pd.DataFrame({"b": pd.cut(x, [-9, -1, 0, 1, 9])})
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(cut, x > 0)
    assert clf.encodings_[0].labels == ["(-9, -1]", "(-1, 0]", "(0, 1]", "(1, 9]"]


def test_categorical_features_none_or_empty_still_keeps_string_columns_categorical():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.choice(list("pq"), 300), "z": rng.integers(0, 3, 300)})
    y = ((X.a == "p") & (X.z == 1)).astype(int)
    auto = MultiValueRuleSetClassifier(random_state=0, n_iterations=300).fit(X, y)
    for cf in (None, []):
        clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300,
                                          categorical_features=cf).fit(X, y)
        assert clf.rules_ == auto.rules_ == ["a in {p} AND z in {[1, 2)}"]


def test_a_refit_forgets_how_the_previous_object_array_was_read():
    rng = np.random.default_rng(1)
    n = 400
    codes = rng.choice(["1", "2", "3"], n)
    y = (codes == "1").astype(int)
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=300)
    clf.fit(codes[:, None].astype(object), y)  # numeric-looking: read as numbers
    X = np.column_stack([codes, rng.choice(["a", "b"], n)]).astype(object)
    X[:, 0] = np.where(codes == "3", "x", codes)  # now a categorical column
    y2 = (X[:, 0] == "1").astype(int)
    clf.fit(pd.DataFrame({"c": X[:, 0], "d": X[:, 1]}), y2)  # a DataFrame refit
    with pytest.warns(UserWarning, match="feature names"):
        np.testing.assert_array_equal(clf.predict(X[X[:, 0] != "x"]), y2[X[:, 0] != "x"])


def test_a_frame_without_string_column_names_warns_like_an_array():
    """After a fit on named columns, a DataFrame labelled 0, 1 (here in another order) was
    read by position without the warning an array gets; the reverse (an array fit, then
    a named frame) was silent too."""
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"age": rng.integers(18, 80, n).astype(float),
                      "hours": rng.integers(1, 60, n).astype(float)})
    y = (X.age > 50).astype(int).to_numpy()
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(X, y)
    for other in (pd.DataFrame({0: X.hours, 1: X.age}), X.set_axis(["age", 1], axis=1)):
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            clf.predict(other)
    clf.fit(X.to_numpy(), y)
    with pytest.warns(UserWarning, match="X has feature names, but"):
        clf.predict(X[["hours", "age"]])
    with warnings.catch_warnings():  # no names on either side: nothing to warn about
        warnings.simplefilter("error")
        clf.fit(X.set_axis([0, 1], axis=1), y).predict(X.set_axis([0, 1], axis=1))


def test_a_numeric_column_given_dates_or_words_at_predict_time_is_refused_by_name():
    """Dates in a column binned as numbers were read as nanosecond counts (every row
    ">= 51": predictions without a word); a word raised numpy's message, which did not say
    which column."""
    age, col, y = _ages()
    X = pd.DataFrame({"age": age.astype(float), "col": col})
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(X, y)
    dates = X.assign(age=pd.Timestamp("2020-01-01"))
    with pytest.raises(ValueError, match="column 'age' was numeric in fit; it holds datetime"):
        clf.predict(dates)
    words = X.assign(age=X.age.astype(str).where(X.index != 3, "old"))
    with pytest.raises(ValueError, match="column 'age' was numeric in fit; it holds the "
                                         "value 'old'"):
        clf.predict(words)
    # numbers written as text, nullable integers and None still read as numbers
    same = clf.predict(X)
    np.testing.assert_array_equal(clf.predict(X.assign(age=X.age.astype(str))), same)
    np.testing.assert_array_equal(clf.predict(X.assign(age=X.age.astype("Int64"))), same)
    gap = X.assign(age=X.age.astype(object).where(X.index != 0, None))
    assert clf.predict(gap)[1:].tolist() == same[1:].tolist()


def _ages(n=400, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    col = rng.choice(["a", "b"], n)
    return age, col, (age > 50).astype(int)


def test_a_refused_refit_leaves_rules_labels_and_names_as_they_were():
    """The labels and column names of a refit that then raised were kept with the old
    rules: predict returned the refused call's labels."""
    age, col, y = _ages()
    X = pd.DataFrame({"age": age, "col": col})
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(X, y)
    before, rules = clf.predict(X), list(clf.rules_)
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X, np.where(y == 1, "win", "loss"), sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="1 class"):
        clf.fit(X.rename(columns={"age": "years"}), np.zeros(len(y)))
    np.testing.assert_array_equal(clf.predict(X), before)
    assert list(clf.rules_) == rules and list(clf.feature_names_in_) == ["age", "col"]


def test_rows_of_numbers_and_strings_keep_their_numbers():
    """A list of rows [60.0, "a"] became a string array: every age a category, and an
    age not seen in training (or 60 for 60.0) predicted as uncovered."""
    age, col, y = _ages()
    rows = [[float(a), c] for a, c in zip(age, col, strict=True)]
    clf = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(rows, y)
    ref = MultiValueRuleSetClassifier(random_state=0, n_iterations=200).fit(
        np.array(rows, dtype=object), y)
    assert clf.rules_ == ref.rules_
    np.testing.assert_array_equal(clf.predict([[60.0, "a"], [60, "a"], [51.5, "b"]]), [1, 1, 1])


def test_an_empty_rule_set_from_min_support_warns():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"c{j}": rng.choice(list("pqrs"), 400) for j in range(3)})
    y = ((X.c0 == "p") | (X.c1 == "q")).astype(int).to_numpy()  # each rule: ~57 % of y = 1
    with pytest.warns(UserWarning, match="no candidate rule covers min_support=0.9"):
        clf = MultiValueRuleSetClassifier(min_support=0.9, random_state=0,
                                          n_iterations=50).fit(X, y)
    assert clf.rules_ == [] and clf.n_candidates_ == 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = MultiValueRuleSetClassifier(min_support=0.5, random_state=0,
                                         n_iterations=50).fit(X, y)
    assert sorted(ok.rules_) == ["c0 in {p}", "c1 in {q}"]
