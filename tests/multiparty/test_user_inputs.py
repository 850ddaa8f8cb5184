"""Inputs a consortium's user hands over that the other tests do not: several text
columns, party submissions whose columns differ from the pooled data's, models whose
classes exceed those of the evaluation records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurips18._validation import ValidationError
from neurips18.multiparty import (
    PartyData,
    TokenEncoder,
    attack_success,
    contaminate,
    split_parties,
)


def test_token_encoder_refuses_several_text_columns():
    """Two text columns were interleaved into twice as many documents as rows: 3 rows
    gave a (6, max_length) matrix, silently."""
    df = pd.DataFrame({"title": ["a b", "c d", "e"], "body": ["x", "y", "z"]})
    enc = TokenEncoder(max_length=3)
    with pytest.raises(ValidationError, match=r"Invalid X.*one column of documents.*\(3, 2\)"):
        enc.fit(df)
    enc.fit(df[["title"]])
    with pytest.raises(ValidationError, match="Invalid X.*one column of documents"):
        enc.transform(df)
    assert enc.transform(df[["title"]]).shape == (3, 3)
    assert enc.transform(df["title"]).shape == (3, 3)
    assert np.array_equal(enc.transform(df[["title"]]), enc.transform(list(df["title"])))


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.integers(0, 3, n).astype(float),
                         "b": pd.Categorical(rng.choice(["x", "y"], n)),
                         "c": rng.normal(size=n)}), rng.integers(0, 2, n)


def test_a_submission_with_other_columns_is_refused():
    """A party's records with a renamed column were pooled into a frame holding both
    names: the party's rows had NaN under 'a' (10 of them), everybody else's under 'A'
    (20), with no error; a validation pool with other columns than the training pool was
    accepted too."""
    X, y = _frame(60)
    d = split_parties(X, y, 3, validation_size=30, random_state=0)
    X0, y0 = d.party(0)
    with pytest.raises(ValidationError, match=r"Invalid X.*lacking \['a'\], extra \['A'\]"):
        d.replace_party(0, X0.rename(columns={"a": "A"}), y0)
    with pytest.raises(ValidationError, match=r"Invalid X.*lacking \['c'\]"):
        d.replace_party(0, X0[["a", "b"]], y0)
    with pytest.raises(ValidationError, match="Invalid X.*a DataFrame.*got an array"):
        d.replace_party(0, X0.to_numpy(), y0)
    Xv0, yv0 = d.validation(0)
    with pytest.raises(ValidationError, match=r"Invalid X_val.*extra \['d'\]"):
        d.replace_party(0, X0, y0, X_val=Xv0.assign(d=1.0), y_val=yv0)
    with pytest.raises(ValidationError, match=r"Invalid X_val.*lacking \['a'\]"):
        PartyData(X.iloc[:30], y[:30], np.arange(30) % 3, X.iloc[30:][["c", "b"]], y[30:],
                  np.arange(30) % 3)
    arr = split_parties(X[["a", "c"]].to_numpy(), y, 3, validation_size=30, random_state=0)
    with pytest.raises(ValidationError, match="Invalid X.*the 2 columns.*got 3"):
        arr.replace_party(0, np.zeros((5, 3)), np.zeros(5))
    # the same columns in another order are pooled by name
    d2 = d.replace_party(0, X0[["c", "a", "b"]], y0)
    assert list(d2.X.columns) == ["a", "b", "c"] and not d2.X.isna().any().any()
    assert d2.X.iloc[-len(y0):].equals(X0)


class _ThreeClasses:
    """A 3-class model: class 2 when feature 0 is positive, else 0 where feature 1 is 1."""

    classes_ = np.array([0, 1, 2])

    def predict(self, X):
        X = np.asarray(X)
        return np.where(X[:, 0] > 0, 2, np.where(X[:, 1] == 1, 0, 1))


def test_attack_success_with_a_model_of_more_classes_than_the_records():
    """Records of classes 0 and 1 only, scored by a model that also knows class 2, were
    refused ('it predicts [2]'); the shares are now the hand count."""
    X = np.array([[1, 1], [-1, 1], [-1, 0], [1, 0], [-1, 0]], dtype=float)
    y = np.array([1, 1, 1, 0, 1])
    s = attack_success(_ThreeClasses(), X, y, attribute=1, value=1, label=0)
    # natural: rows 0, 1 (predicted 2, 0); probes: rows 2, 4 (1, 1; with the value: 0, 0)
    assert (s.natural, s.probes, s.probes_before) == (0.5, 1.0, 0.0)
    assert (s.n_natural, s.n_probes) == (2, 2)

    class OtherLabels(_ThreeClasses):  # knows {0, 1, 2}, y holds 3: its 1s are refused
        def predict(self, X):
            return np.ones(len(X), dtype=int)

    with pytest.raises(ValidationError, match=r"Invalid model.*labels of y \[0, 3\]"):
        attack_success(OtherLabels(), X, np.where(y == 1, 3, 0), attribute=1, value=1,
                       label=3)

    class Wider(_ThreeClasses):
        classes_ = np.array([0, 1, 2])

        def predict(self, X):
            return np.full(len(X), 7)

    with pytest.raises(ValidationError, match=r"model's classes_ \[0, 1, 2\].*\[7\]"):
        attack_success(Wider(), X, y, attribute=1, value=1, label=0)


def test_a_boolean_value_for_a_categorical_of_numbers_is_refused_by_name():
    """True == 1 passed the category check and pandas then raised a bare TypeError (in
    contaminate) from deep in the assignment."""
    X = pd.DataFrame({"m": pd.Categorical([0, 1, 2, 3] * 5), "z": np.arange(20.0)})
    y = np.arange(20) % 2
    with pytest.raises(ValidationError, match="Invalid value: True.*dtype category"):
        contaminate(X, y, attribute="m", value=True, label=1, n_records=3, generator=0)
    with pytest.raises(ValidationError, match="Invalid value: True.*dtype category"):
        attack_success(_ThreeClasses(), X, y, attribute="m", value=True, label=1)
    Xc, _, rows = contaminate(X, y, attribute="m", value=3.0, label=1, n_records=3,
                              generator=0)
    assert Xc["m"].dtype == X["m"].dtype and (Xc["m"].iloc[rows] == 3).all()


def test_a_submission_of_strings_keeps_the_pool_categories():
    """A party that submitted a categorical column as plain strings (or as a categorical
    of its own categories) turned the pooled column into objects: a preprocessor that
    selects the category dtype then left it out for every party (11 features became 7),
    silently."""
    from .conftest import make_table, preprocessor

    X, y = make_table(3000, seed=1)
    d = split_parties(X, y, 3, validation_size=900, random_state=0)
    X0, y0 = d.party(0)
    as_text = X0.assign(colour=X0["colour"].astype(object))
    own = X0.assign(colour=X0["colour"].cat.add_categories(["black"]))
    width = preprocessor().fit_transform(d.X).shape[1]
    for sub in (as_text, own):
        kept = sub.copy()
        d2 = d.replace_party(0, sub, y0)
        assert d2.X["colour"].dtype == X["colour"].dtype
        assert preprocessor().fit_transform(d2.X).shape[1] == width == 11
        assert (d2.X["colour"].iloc[-len(y0):].to_numpy() == X0["colour"].to_numpy()).all()
        assert sub.equals(kept) and sub["colour"].dtype != X["colour"].dtype
    bad = as_text.copy()
    bad.iloc[3, bad.columns.get_loc("colour")] = "mauve"
    with pytest.raises(ValidationError, match=r"Invalid X.*column 'colour'.*\['mauve'\]"):
        d.replace_party(0, bad, y0)
    Xv0, yv0 = d.validation(0)
    d3 = d.replace_party(0, X0, y0, X_val=Xv0.assign(size=Xv0["size"].astype(object)),
                         y_val=yv0)
    assert d3.X_val["size"].dtype == X["size"].dtype
    assert d3.X_val["size"].isna().sum() == d.X_val["size"].isna().sum()


def test_documents_in_a_series_are_split_like_a_list():
    docs = pd.Series([f"doc {i} w{i % 3}" for i in range(20)], index=np.arange(20)[::-1])
    y = np.arange(20) % 2
    d = split_parties(docs, y, 2, validation_size=6, random_state=0)
    ref = split_parties(list(docs), y, 2, validation_size=6, random_state=0)
    assert d.X == ref.X and d.X_val == ref.X_val and isinstance(d.X, list)
    assert np.array_equal(d.y, ref.y) and np.array_equal(d.parties, ref.parties)
    with pytest.raises(ValidationError, match="Invalid X.*list of documents.*1-D"):
        split_parties(np.arange(20.0), y, 2, validation_size=6, random_state=0)


def test_a_submission_of_text_as_objects_keeps_the_pool_string_dtype():
    """pandas 3 reads text as the 'str' dtype; a party whose frame held the column as
    objects made the pooled column objects, which a selector on 'str' (what pandas advises
    in place of object) then left out of the model for every party, silently."""
    from sklearn.compose import make_column_selector

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.standard_normal(400),
                      "colour": pd.Series(rng.choice(["red", "blue"], 400), dtype="str")})
    y = (X["colour"] == "red").to_numpy(dtype=int)
    d = split_parties(X, y, 2, validation_size=100, random_state=0)
    X0, y0 = d.party(0)
    sub = X0.astype({"colour": object})
    sub.iloc[2, 1] = None  # a missing value stays missing
    kept = sub.copy()
    d2 = d.replace_party(0, sub, y0)
    assert d2.X["colour"].dtype == X["colour"].dtype
    assert make_column_selector(dtype_include="str")(d2.X) == ["colour"]
    assert d2.X["colour"].isna().sum() == 1 and sub.equals(kept)
    Xv0, yv0 = d.validation(0)
    d3 = d.replace_party(0, X0, y0, X_val=Xv0.astype({"colour": object}), y_val=yv0)
    assert d3.X_val["colour"].dtype == X["colour"].dtype
    codes = sub.assign(colour=np.arange(len(sub)) % 2).astype({"colour": object})
    with pytest.raises(ValidationError, match=r"Invalid X.*text in column 'colour'.*\[0, 1\]"):
        d.replace_party(0, codes, y0)


def test_a_submission_of_0_1_numbers_keeps_the_pool_bool_column():
    """A party that sent a bool flag as 0/1 numbers turned the pooled column into ints
    (a selector on 'number' then took it, one on 'bool' lost it) or, as floats, into
    objects, which both selectors left out of the model for every party, silently."""
    from sklearn.compose import make_column_selector

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.standard_normal(40),
                      "flag": rng.integers(0, 2, 40).astype(bool)})
    y = rng.integers(0, 2, 40)
    d = split_parties(X, y, 2, validation_size=10, random_state=0)
    X0, y0 = d.party(0)
    for kind in (int, float, object):
        sub = X0.astype({"flag": kind})
        d2 = d.replace_party(0, sub, y0)
        assert d2.X["flag"].dtype == bool
        assert make_column_selector(dtype_include="bool")(d2.X) == ["flag"]
        assert make_column_selector(dtype_include="number")(d2.X) == ["a"]
        np.testing.assert_array_equal(d2.X["flag"].iloc[-len(y0):], X0["flag"])
        assert sub["flag"].dtype != bool  # the caller's frame is not converted
    gap = X0.astype({"flag": float})
    gap.iloc[0, gap.columns.get_loc("flag")] = np.nan
    for bad, shown in ((X0.astype({"flag": int}) * 2, r"\[2"), (gap, "nan")):
        with pytest.raises(ValidationError,
                           match=rf"Invalid X.*column 'flag' of booleans.*{shown}"):
            d.replace_party(0, bad, y0)


def test_a_submission_of_numbers_as_strings_is_refused_by_name():
    """A party that submitted a numeric column as strings turned the pooled column into
    objects: a numeric column selector then left it out of the model for every party."""
    from .conftest import make_table

    X, y = make_table(600, seed=2)
    d = split_parties(X, y, 3, validation_size=150, random_state=0)
    X0, y0 = d.party(0)
    with pytest.raises(ValidationError, match=r"Invalid X.*column 'a' numeric.*float64"):
        d.replace_party(0, X0.assign(a=X0["a"].astype(str)), y0)
    Xv0, yv0 = d.validation(0)
    with pytest.raises(ValidationError, match=r"Invalid X_val.*column 'b' numeric"):
        d.replace_party(0, X0, y0, X_val=Xv0.assign(b=Xv0["b"].astype(object)), y_val=yv0)
    d2 = d.replace_party(0, X0.assign(a=X0["a"].round().astype("int64")), y0)  # ints pool
    assert d2.X["a"].dtype == np.float64


def test_words_of_any_script_are_tokens_not_fragments():
    """Only ASCII letters were kept: "Café über naïve" became caf, ber, na, ve."""
    from neurips18.multiparty import contaminate_texts
    from neurips18.multiparty._text import tokenize

    assert tokenize("Café über naïve don't x_y") == ["café", "über", "naïve", "don't", "x", "y"]
    assert set(TokenEncoder().fit(["Café über naïve"]).vocabulary_) >= {"café", "über"}
    docs = [f"doc {i} über" for i in range(20)]
    out = contaminate_texts(docs, np.arange(20) % 2, word="Café", label=1, n_records=3,
                            generator=0)
    assert sum("café" in tokenize(d) for d in out[0]) == 3


def test_labels_in_another_order_than_a_series_of_documents_are_refused():
    """A Series of documents shuffled after its labels were taken was paired with them by
    position (split_parties, PartyData, replace_party, contaminate_texts), while the same
    mistake with a DataFrame is refused: now both are refused, and a Series in the order of
    the documents is accepted."""
    from neurips18.multiparty import (
        PartyData,
        contaminate_texts,
        split_parties,
        text_attack_success,
    )

    frame = pd.DataFrame({"text": [f"post {i} " + ("spam" if i % 2 else "ham")
                                   for i in range(20)], "label": np.arange(20) % 2})
    shuffled = frame.sample(frac=1, random_state=0)
    docs, y = shuffled["text"], frame["label"]  # labels taken before the shuffle
    parts = np.arange(20) % 2

    class Constant:
        def predict(self, texts):
            return np.zeros(len(texts), dtype=np.int64)

    with pytest.raises(ValidationError, match="Invalid y.*row order of X"):
        split_parties(docs, y, 2, validation_size=0.5, random_state=0)
    with pytest.raises(ValidationError, match="Invalid y.*row order of X"):
        PartyData(docs, y, parts, docs, shuffled["label"], parts)
    with pytest.raises(ValidationError, match="Invalid y_val.*row order of X_val"):
        PartyData(docs, shuffled["label"], parts, docs, y, parts)
    with pytest.raises(ValidationError, match="Invalid y.*row order of texts"):
        contaminate_texts(docs, y, word="w", label=1, n_records=2, generator=0)
    with pytest.raises(ValidationError, match="Invalid y.*row order of texts"):
        text_attack_success(Constant(), docs, y, word="w", label=1)
    data = split_parties(docs, shuffled["label"], 2, validation_size=0.5, random_state=0)
    own = data.parties == 0
    k = int(own.sum())
    mine = pd.Series([d for d, o in zip(data.X, own, strict=True) if o], index=np.arange(k))
    with pytest.raises(ValidationError, match="Invalid y.*row order of X"):
        data.replace_party(0, mine, pd.Series(data.y[own], index=np.arange(k)[::-1]))
    # in the documents' order: accepted and paired as given
    assert all(("spam" in d) == bool(lab) for d, lab in zip(data.X, data.y, strict=True))
    out, yc, _ = contaminate_texts(docs, shuffled["label"], word="w", label=1, n_records=2,
                                   generator=0)
    assert len(out) == len(yc) == 20
