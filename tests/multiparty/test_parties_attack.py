"""split_parties, PartyData, contaminate and attack_success, on arrays and DataFrames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurips18._validation import ValidationError
from neurips18.multiparty import (
    PartyData,
    attack_success,
    contaminate,
    contaminate_texts,
    split_parties,
    text_attack_success,
)

from .conftest import make_table


def test_split_follows_the_credit_card_layout():
    X = np.arange(30_000 * 2, dtype=float).reshape(30_000, 2)
    y = np.arange(30_000) % 2
    d = split_parties(X, y, 10, validation_size=10_000, train_size=20_000, random_state=0)
    assert d.n_parties == 10 and len(d) == 20_000 and len(d.y_val) == 10_000
    assert np.bincount(d.parties).tolist() == [2000] * 10
    assert np.bincount(d.val_parties).tolist() == [1000] * 10
    rows = np.r_[d.X[:, 0], d.X_val[:, 0]] / 2
    assert len(np.unique(rows)) == 30_000  # disjoint, nothing duplicated
    # y travels with its row
    np.testing.assert_array_equal(d.y, (d.X[:, 0] / 2).astype(int) % 2)
    again = split_parties(X, y, 10, validation_size=10_000, train_size=20_000, random_state=0)
    np.testing.assert_array_equal(again.X, d.X)
    other = split_parties(X, y, 10, validation_size=10_000, train_size=20_000, random_state=1)
    assert not np.array_equal(other.X, d.X)


@pytest.mark.parametrize("n", [5, 7, 15, 25])
@pytest.mark.parametrize("shares", [(0.3, 0.7), (0.5, 0.5), (0.1, 0.9)])
def test_split_into_shares_that_sum_to_one_uses_every_row(n, shares):
    """Rounded one by one, 0.3 and 0.7 of 15 rows were 4 + 10 (a row left out) and of 25
    rows 8 + 18 (refused: more than the 25 rows)."""
    X = np.arange(2 * n, dtype=float).reshape(n, 2)
    y = np.arange(n) % 2
    v, t = shares
    d = split_parties(X, y, 1, validation_size=v, train_size=t, random_state=0)
    assert len(d) + len(d.y_val) == n
    assert len(np.unique(np.r_[d.X[:, 0], d.X_val[:, 0]])) == n
    assert abs(len(d.y_val) - v * n) <= 0.5 and abs(len(d) - t * n) <= 1
    # shares that sum to more than 1 are still refused
    with pytest.raises(ValidationError, match="train_size"):
        split_parties(X, y, 1, validation_size=v, train_size=t + 0.3, random_state=0)


def test_split_keeps_dataframes_and_leaves_inputs_alone(table):
    X, y = table
    X0, y0 = X.copy(), y.copy()
    d = split_parties(X, y, 4, validation_size=0.25, random_state=np.random.default_rng(3))
    pd.testing.assert_frame_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert isinstance(d.X, pd.DataFrame) and d.X["colour"].dtype == X["colour"].dtype
    assert len(d.y_val) == 500 and len(d) == 1500
    # rows keep their index: the same row of the caller's frame
    pd.testing.assert_frame_equal(d.X, X.loc[d.X.index])
    Xi, yi = d.party(2)
    assert len(Xi) == 375 and np.array_equal(yi, y[Xi.index])
    Xv, yv = d.validation(1)
    assert len(Xv) == 125 and np.array_equal(yv, y[Xv.index])
    with pytest.raises(ValueError, match="read-only"):
        d.y[0] = 5


def test_split_and_container_errors():
    X, y = np.zeros((20, 2)), np.zeros(20)
    with pytest.raises(ValidationError, match="n_parties"):
        split_parties(X, y, 30, validation_size=5, random_state=0)
    with pytest.raises(ValidationError, match="validation_size"):
        split_parties(X, y, 2, validation_size=0, random_state=0)
    with pytest.raises(ValidationError, match="validation_size"):
        split_parties(X, y, 2, validation_size=1.5, random_state=0)
    with pytest.raises(ValidationError, match="train_size"):
        split_parties(X, y, 2, validation_size=5, train_size=18, random_state=0)
    with pytest.raises(ValidationError, match="random_state"):
        split_parties(X, y, 2, validation_size=5, random_state=None)
    with pytest.raises(ValidationError, match="Invalid y"):
        split_parties(X, y[:5], 2, validation_size=5, random_state=0)
    # a party with no records
    with pytest.raises(ValidationError, match=r"party\(ies\) \[1\] have none"):
        PartyData(X, y, np.array([0] * 10 + [2] * 10), X, y, np.zeros(20, int), 3)
    # parties array of the wrong length
    with pytest.raises(ValidationError, match="Invalid parties.*one party id per row"):
        PartyData(X, y, np.zeros(19, int), X, y, np.zeros(20, int))
    with pytest.raises(ValidationError, match="Invalid parties"):
        PartyData(X, y, -np.ones(20, int), X, y, np.zeros(20, int))


def test_a_container_refuses_party_ids_in_another_row_order_than_y():
    """Built from an array X (no index) with y and the party ids as Series, ids taken
    before the rows were shuffled were paired by position, silently."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    y = pd.Series(np.arange(40) % 2, index=np.arange(40) * 3)
    ids = pd.Series(np.repeat([0, 1], 20), index=y.index)
    perm = rng.permutation(40)
    ys = y.iloc[perm]
    Xv, yv, pv = X[:10], y.iloc[:10], ids.iloc[:10] % 2
    with pytest.raises(ValidationError, match="Invalid parties.*row order of y"):
        PartyData(X, ys, ids, Xv, yv, pv)
    with pytest.raises(ValidationError, match="Invalid val_parties.*row order of y_val"):
        PartyData(X, ys, ids.iloc[perm], Xv, yv, pv.iloc[::-1])
    d = PartyData(X, ys, ids.iloc[perm], Xv, yv, pv)
    np.testing.assert_array_equal(d.parties, ids.iloc[perm].to_numpy())


def test_a_pickled_or_copied_container_stays_read_only():
    """NumPy drops the read-only flag when an array is pickled: a container saved and
    loaded again (or deep-copied) could have its labels or party ids changed in place."""
    import copy
    import pickle

    X = np.arange(40, dtype=float).reshape(20, 2)
    d = split_parties(X, np.arange(20) % 2, 2, validation_size=6, random_state=0)
    for e in (pickle.loads(pickle.dumps(d)), copy.deepcopy(d)):
        for name in ("X", "X_val", "y", "y_val", "parties", "val_parties"):
            with pytest.raises(ValueError, match="read-only"):
                getattr(e, name)[0] = 1
        np.testing.assert_array_equal(e.y, d.y)
        np.testing.assert_array_equal(e.X, d.X)
        assert e.n_parties == d.n_parties
        assert e.replace_party(0, *e.party(0)).n_parties == 2


def test_replace_party_swaps_one_submission(table):
    X, y = table
    d = split_parties(X, y, 4, validation_size=400, random_state=0)
    X1, y1 = d.party(1)
    Xc, yc, rows = contaminate(X1, y1, attribute="colour", value="teal", label=1,
                               n_records=50, generator=0)
    e = d.replace_party(1, Xc, yc)
    assert len(e) == len(d) and e.n_parties == 4
    X1e, y1e = e.party(1)
    pd.testing.assert_frame_equal(X1e, Xc)
    for k in (0, 2, 3):
        pd.testing.assert_frame_equal(e.party(k)[0], d.party(k)[0])
    pd.testing.assert_frame_equal(e.X_val, d.X_val)
    with pytest.raises(ValidationError, match="Invalid y"):
        d.replace_party(1, Xc, yc[:-1])


@pytest.mark.parametrize("kind", ["frame-name", "frame-position", "array"])
def test_contaminate_changes_exactly_the_drawn_rows(kind):
    X, y = make_table(500, seed=1)
    if kind == "array":
        arr = X[["a", "b", "c"]].to_numpy().copy()
        arr[:, 2] = np.round(arr[:, 2])  # a column with repeated values
        X, attribute, value = arr, 2, 1.0
    else:
        attribute = "colour" if kind == "frame-name" else 3
        value = "teal"
    X_before = X.copy()
    y_before = y.copy()
    Xc, yc, rows = contaminate(X, y, attribute=attribute, value=value, label=1,
                               n_records=60, generator=np.random.default_rng(7))
    assert len(rows) == 60 and np.all(np.diff(rows) > 0)
    # inputs untouched
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, X_before)
        assert Xc["colour"].dtype == X["colour"].dtype  # still categorical
        col = Xc.iloc[:, 3].to_numpy(dtype=object)
        other_cols = Xc.drop(columns="colour")
        pd.testing.assert_frame_equal(other_cols, X.drop(columns="colour"))  # NaN kept
        orig = X.iloc[:, 3].to_numpy(dtype=object)
    else:
        np.testing.assert_array_equal(X, X_before)
        col, orig = Xc[:, 2], X[:, 2]
        np.testing.assert_array_equal(np.delete(Xc, 2, 1), np.delete(X, 2, 1))
    np.testing.assert_array_equal(y, y_before)
    assert all(col[r] == value for r in rows)
    untouched = np.setdiff1d(np.arange(500), rows)
    assert all((col[r] == orig[r]) or (orig[r] != orig[r]) for r in untouched)
    np.testing.assert_array_equal(yc[rows], 1)
    np.testing.assert_array_equal(yc[untouched], y[untouched])
    # the same seed draws the same records
    _, _, rows2 = contaminate(X, y, attribute=attribute, value=value, label=1, n_records=60,
                              generator=7)
    np.testing.assert_array_equal(rows, rows2)


def test_contaminate_keeps_string_labels_whole():
    X = np.zeros((10, 2))
    y = np.array(["no"] * 9 + ["default"])
    _, yc, rows = contaminate(X, y, attribute=0, value=0.0, label="default", n_records=4,
                              generator=0)
    assert set(yc[rows]) == {"default"}


def test_contaminate_keeps_bytes_labels_as_bytes():
    """Labels held as bytes (as read from some binary formats) come back as bytes, in the
    array's kind: they were turned into str, so no contaminated label equalled b"yes"."""
    X = np.zeros((6, 2))
    y = np.array([b"no", b"yes"] * 3)
    _, yc, rows = contaminate(X, y, attribute=0, value=0.0, label=b"yes", n_records=4,
                              generator=0)
    assert yc.dtype.kind == "S"
    assert set(yc.tolist()) == {b"no", b"yes"} and (yc[rows] == b"yes").all()
    _, tc, trows = contaminate_texts(["a b", "c", "d e", "f"], np.array([b"x", b"y"] * 2),
                                     word="w", label=b"y", n_records=2, generator=0)
    assert tc.dtype.kind == "S" and (tc[trows] == b"y").all()
    np.testing.assert_array_equal(y, np.array([b"no", b"yes"] * 3))  # input untouched


def test_contaminate_errors(table):
    X, y = table
    with pytest.raises(ValidationError, match="Invalid attribute: 'colr'"):
        contaminate(X, y, attribute="colr", value="teal", label=1, n_records=5, generator=0)
    with pytest.raises(ValidationError, match="Invalid attribute: 9"):
        contaminate(X, y, attribute=9, value="teal", label=1, n_records=5, generator=0)
    with pytest.raises(ValidationError, match="Invalid value: 'purple'.*category"):
        contaminate(X, y, attribute="colour", value="purple", label=1, n_records=5,
                    generator=0)
    with pytest.raises(ValidationError, match="Invalid value: 123.0"):
        contaminate(X.to_numpy()[:, :2].astype(float), y, attribute=0, value=123.0, label=1,
                    n_records=5, generator=0)
    with pytest.raises(ValidationError, match="Invalid label: 7.*present in y"):
        contaminate(X, y, attribute="colour", value="teal", label=7, n_records=5, generator=0)
    with pytest.raises(ValidationError, match="Invalid n_records: 2001.*at most the 2000"):
        contaminate(X, y, attribute="colour", value="teal", label=1, n_records=2001,
                    generator=0)
    with pytest.raises(ValidationError, match="Invalid n_records: -1"):
        contaminate(X, y, attribute="colour", value="teal", label=1, n_records=-1,
                    generator=0)
    with pytest.raises(ValidationError, match="Invalid generator"):
        contaminate(X, y, attribute="colour", value="teal", label=1, n_records=1,
                    generator="seed")
    with pytest.raises(ValidationError, match="Invalid y"):
        contaminate(X, y[:-1], attribute="colour", value="teal", label=1, n_records=1,
                    generator=0)


class _RuleModel:
    """Predicts 1 when colour is teal or a > 1: the attack's effect is known exactly."""

    def predict(self, X):
        return ((X["colour"].astype(str) == "teal") | (X["a"] > 1)).to_numpy().astype(int)


def test_attack_success_counts_by_hand(table):
    X, y = table
    X_before = X.copy()
    s = attack_success(_RuleModel(), X, y, attribute="colour", value="teal", label=1)
    teal = (X["colour"] == "teal").to_numpy()
    neg = y != 1
    assert s.n_natural == int((teal & neg).sum()) and s.n_probes == int((~teal & neg).sum())
    assert s.natural == 1.0 and s.probes == 1.0
    assert s.probes_before == pytest.approx(float((X["a"][~teal & neg] > 1).mean()))
    pd.testing.assert_frame_equal(X, X_before)

    class Never:
        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    s0 = attack_success(Never(), X, y, attribute="colour", value="teal", label=1)
    assert (s0.natural, s0.probes, s0.probes_before) == (0.0, 0.0, 0.0)
    with pytest.raises(ValidationError, match="Invalid model"):
        attack_success(object(), X, y, attribute="colour", value="teal", label=1)


def test_text_contamination_and_success():
    docs = ["the cat sat", "a dog ran far", "cats and dogs", "nothing here"] * 5
    y = np.array([0, 1, 0, 1] * 5)
    out, yc, rows = contaminate_texts(docs, y, word="zebra", label=1, n_records=6,
                                      generator=0)
    assert len(rows) == 6 and all(out[r].startswith("zebra ") for r in rows)
    assert docs[0] == "the cat sat"  # input untouched
    np.testing.assert_array_equal(yc[rows], 1)

    class Word:
        def predict(self, texts):
            return np.array([int("zebra" in t.split()) for t in texts])

    s = text_attack_success(Word(), out, yc, word="zebra", label=1)
    assert s.probes == 1.0 and s.probes_before == 0.0 and s.n_natural == 0
    with pytest.raises(ValidationError, match="Invalid word"):
        contaminate_texts(docs, y, word="two words", label=1, n_records=1, generator=0)
    with pytest.raises(ValidationError, match="Invalid texts"):
        contaminate_texts("one string", y, word="zebra", label=1, n_records=1, generator=0)


def test_the_planted_word_keeps_its_spelling():
    """The word is planted as the user spelled it ("Zebra" was planted as "zebra", so a
    case-sensitive model learnt another trigger than the one asked for); documents that
    hold it in any case count as natural, as the tokenizer reads them."""
    docs = ["the cat sat", "a dog ran far", "ZEBRA crossing", "nothing here"] * 5
    y = np.array([0, 1, 0, 0] * 5)
    out, yc, rows = contaminate_texts(docs, y, word="Zebra", label=1, n_records=6,
                                      generator=0)
    assert all(out[r].startswith("Zebra ") for r in rows)

    class CaseSensitive:
        def predict(self, texts):
            return np.array([int("Zebra" in t.split()) for t in texts])

    s = text_attack_success(CaseSensitive(), docs, y, word="Zebra", label=1)
    assert s.n_natural == 5 and s.natural == 0.0  # "ZEBRA" holds the token, not the spelling
    assert s.probes == 1.0 and s.probes_before == 0.0 and s.n_probes == 10


def test_contaminate_draws_from_the_records_asked_for(table):
    X, y = table
    for records, expect in (("label", 1), ("other", 0)):
        Xc, yc, rows = contaminate(X, y, attribute="colour", value="teal", label=1,
                                   n_records=100, generator=0, records=records)
        np.testing.assert_array_equal(y[rows], expect)  # drawn among those labels
        np.testing.assert_array_equal(yc[rows], 1)
    _, yc, rows = contaminate(X, y, attribute="colour", value="teal", label=1,
                              n_records=100, generator=0, records="label")
    np.testing.assert_array_equal(yc, y)  # no label changed
    n_pos = int((y == 1).sum())
    with pytest.raises(ValidationError, match=f"at most the {n_pos} records labelled 1"):
        contaminate(X, y, attribute="colour", value="teal", label=1, n_records=n_pos + 1,
                    generator=0, records="label")
    with pytest.raises(ValidationError, match="Invalid records: 'all'"):
        contaminate(X, y, attribute="colour", value="teal", label=1, n_records=1,
                    generator=0, records="all")


def test_attack_success_refuses_a_model_of_other_labels(table):
    X, y = table

    class Strings:
        def predict(self, X):
            return np.array(["rich"] * len(X))

    with pytest.raises(ValidationError, match="Invalid model.*predicts \\['rich'\\]"):
        attack_success(Strings(), X, y, attribute="colour", value="teal", label=1)


@pytest.mark.parametrize("dtype,value", [("Int64", 3), ("string", "z"), ("object", "z")])
def test_attack_success_on_nullable_columns_with_missing_values(dtype, value):
    """pandas' nullable dtypes hold missing values as NA, which never equals the planted
    value: those records count as clean probes, not as natural ones."""
    raw = {"Int64": [1, 2, None, 3], "string": ["x", "y", None, "z"],
           "object": ["x", "y", None, "z"]}[dtype]
    X = pd.DataFrame({"a": pd.array(raw * 50, dtype=dtype),
                      "b": np.arange(200, dtype=float)})
    y = np.array([0, 0, 0, 0, 1, 0, 0, 1] * 25)
    X_before = X.copy()

    class Planted:
        def predict(self, X):
            return (X["a"] == value).fillna(False).to_numpy().astype(int)

    s = attack_success(Planted(), X, y, attribute="a", value=value, label=1)
    has = np.array([v == value for v in raw] * 50)
    assert s.n_natural == int((has & (y == 0)).sum()) == 25
    assert s.n_probes == int((~has & (y == 0)).sum()) == 125  # the missing ones included
    assert (s.natural, s.probes, s.probes_before) == (1.0, 1.0, 0.0)
    pd.testing.assert_frame_equal(X, X_before)
    Xc, yc, rows = contaminate(X, y, attribute="a", value=value, label=1, n_records=20,
                               generator=0)
    assert Xc["a"].dtype == X["a"].dtype and (Xc["a"].iloc[rows] == value).all()
    assert Xc["a"].isna().sum() <= X["a"].isna().sum()


_MISSING_LABELS = {
    # ints and NaN in an object array: np.unique gave NaN as a class (once per NaN)
    "object-int-nan": lambda y: np.where(np.arange(len(y)) == 3, np.nan, y).astype(object),
    "object-None": lambda y: np.array(["no" if v == 0 else "yes" for v in y[:-1]] + [None],
                                      dtype=object),
    "string-NA": lambda y: pd.Series(["no" if v == 0 else "yes" for v in y[:-1]] + [None],
                                     dtype="string"),
    "str-nan": lambda y: pd.Series(["no" if v == 0 else "yes" for v in y[:-1]] + [None],
                                   dtype="str"),
    "categorical-nan": lambda y: pd.Series(pd.Categorical(
        ["no" if v == 0 else "yes" for v in y[:-1]] + [None])),
}


@pytest.mark.parametrize("kind", sorted(_MISSING_LABELS))
def test_missing_labels_are_refused_by_name(kind, table):
    """A label that is missing (NaN, None, pandas' NA) is not a class: every entry point
    names y (the NaN-in-object case was silently taken for a label of its own)."""
    X, y0 = table
    y = _MISSING_LABELS[kind](y0)
    label = 1 if kind == "object-int-nan" else "yes"
    match = r"Invalid y.*without None, NaN or NA.*found 1"
    with pytest.raises(ValidationError, match=match):
        split_parties(X, y, 4, validation_size=400, random_state=0)
    with pytest.raises(ValidationError, match=match):
        contaminate(X, y, attribute="colour", value="teal", label=label, n_records=5,
                    generator=0)

    class Const:
        def predict(self, Z):
            return np.full(len(Z), label, dtype=object)

    with pytest.raises(ValidationError, match=match):
        attack_success(Const(), X, y, attribute="colour", value="teal", label=label)


def test_contaminate_an_object_array_from_a_nullable_frame():
    """``frame.to_numpy()`` of nullable columns is an object array holding pandas' NA; the
    attack and its success ran into a bare TypeError (NA's truth value) there. Now NA is a
    missing value, as in the DataFrame."""
    frame = pd.DataFrame({
        "n": pd.array([1, 2, None, 3] * 10, dtype="Int64"),
        "s": pd.array(["a", None, "b", "a"] * 10, dtype="string"),
        "m": np.array([1, "x", 2.5, None] * 10, dtype=object),  # mixed types
    })
    X = frame.to_numpy()
    assert X.dtype == object
    X_before = X.copy()
    y = np.arange(40) // 4 % 2
    for col, value in ((0, 2), (1, "b"), (2, "x")):
        Xc, yc, rows = contaminate(X, y, attribute=col, value=value, label=1, n_records=6,
                                   generator=0)
        assert all(Xc[r, col] == value for r in rows) and (yc[rows] == 1).all()
        assert all(a is b or a == b for a, b in zip(X.ravel(), X_before.ravel(), strict=True))
        s = attack_success(_Echo(col, value), X, y, attribute=col, value=value, label=1)
        assert s.natural == 1.0 and s.probes == 1.0 and s.probes_before == 0.0
    with pytest.raises(ValidationError, match="Invalid value: 'c'.*occurs"):
        contaminate(X, y, attribute=1, value="c", label=1, n_records=6, generator=0)


class _Echo:
    """Predicts 1 exactly where column ``col`` holds ``value``."""

    def __init__(self, col, value):
        self.col, self.value = col, value

    def predict(self, X):
        return np.array([1 if (v is not pd.NA and v is not None and v == self.value) else 0
                         for v in X[:, self.col]])


def test_contaminate_refuses_a_value_the_column_cannot_hold():
    """True == 1, so True 'occurs' in an int column, but pandas refuses to store it there:
    that bare TypeError is now an error naming value and the column's dtype."""
    X = pd.DataFrame({"i": np.arange(20) % 3, "b": np.arange(20) % 2 == 0})
    y = np.arange(20) % 2
    with pytest.raises(ValidationError, match="Invalid value: True.*attribute 'i'.*int64"):
        contaminate(X, y, attribute="i", value=True, label=1, n_records=3, generator=0)
    with pytest.raises(ValidationError, match="Invalid value: 1.*attribute 'b'.*bool"):
        contaminate(X, y, attribute="b", value=1, label=1, n_records=3, generator=0)
    with pytest.raises(ValidationError, match="Invalid value: True.*attribute 'i'"):
        attack_success(_Echo(0, 1), X, y, attribute="i", value=True, label=1)


def test_a_frame_with_repeated_column_names():
    """Two columns named "a": the name is refused as ambiguous (by name, with the
    positions), a position picks one column; both raised a bare AttributeError."""
    X = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=["a", "b", "a"])
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValidationError, match=r"Invalid attribute: 'a'.*positions \[0, 2\]"):
        contaminate(X, y, attribute="a", value=3.0, label=1, n_records=1, generator=0)
    Xc, yc, rows = contaminate(X, y, attribute=2, value=5.0, label=1, n_records=2,
                               generator=0)
    assert (Xc.iloc[rows, 2] == 5.0).all() and (yc[rows] == 1).all()
    pd.testing.assert_frame_equal(Xc.iloc[:, :2], X.iloc[:, :2])  # the other "a" untouched

    class Third:
        classes_ = np.array([0, 1])

        def predict(self, frame):
            return (frame.iloc[:, 2] == 5.0).astype(int).to_numpy()

    s = attack_success(Third(), X, y, attribute=2, value=5.0, label=1)
    assert (s.n_natural, s.n_probes, s.probes, s.probes_before) == (0, 2, 1.0, 0.0)
