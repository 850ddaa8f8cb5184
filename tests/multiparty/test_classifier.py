"""PartyAdversarialClassifier as a user meets it: DataFrames with categoricals and missing
values through a ColumnTransformer in a Pipeline, party labels routed to fit, pickling,
reproducibility and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from neurips18._validation import ValidationError
from neurips18.multiparty import (
    PartyAdversarialClassifier,
    TokenEncoder,
    attack_success,
    contaminate,
    contaminate_texts,
    split_parties,
    text_attack_success,
)

from .conftest import make_table, preprocessor


def _pipe(**kw):
    kw.setdefault("max_epochs", 15)
    kw.setdefault("random_state", 0)
    return Pipeline([("pre", preprocessor()), ("clf", PartyAdversarialClassifier(**kw))])


def test_pipeline_on_a_dataframe_with_missing_values(table):
    X, y = table
    assert X.isna().any().any()
    X_before = X.copy()
    parties = np.repeat(["north", "south", "east", "west"], 500)
    pipe = _pipe(lam=1.0).fit(X, y, clf__parties=parties)
    pd.testing.assert_frame_equal(X, X_before)
    clf = pipe[-1]
    assert list(clf.parties_) == ["east", "north", "south", "west"]
    proba = pipe.predict_proba(X)
    assert proba.shape == (2000, 2) and np.allclose(proba.sum(1), 1)
    # as accurate as a logistic regression on the same features (the labels are noisy:
    # the Bayes accuracy is about 0.8)
    from sklearn.linear_model import LogisticRegression

    ref = Pipeline([("pre", preprocessor()), ("lr", LogisticRegression())]).fit(X, y)
    assert (pipe.predict(X) == y).mean() > ref.score(X, y) - 0.02
    assert clf.discriminator_ is not None and len(clf.history_["disc_acc"]) == 15
    # the same seed gives the same model; a second fit of the same object too
    again = _pipe(lam=1.0).fit(X, y, clf__parties=parties)
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    pipe.fit(X, y, clf__parties=parties)
    np.testing.assert_array_equal(pipe.predict_proba(X), proba)
    # pickles and predicts identically
    back = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(back.predict_proba(X), proba)


def test_string_labels_and_no_parties(table):
    X, y = table
    labels = np.where(y == 1, "rich", "poor")
    pipe = _pipe(lam=5.0).fit(X, labels)  # no parties: plain training, no discriminator
    assert pipe[-1].discriminator_ is None
    assert set(pipe.predict(X)) <= {"poor", "rich"}
    assert list(pipe[-1].classes_) == ["poor", "rich"]


def test_defence_lowers_attack_success_in_a_pipeline():
    """The paper's claim on a small consortium: one of four parties plants colour = teal ->
    1 in a quarter of its records. Undefended, the planted link holds on clean probes; with
    the defence it is much weaker, at no real cost in accuracy (fixed seeds)."""
    X, y = make_table(6000, seed=3)
    data = split_parties(X, y, 4, validation_size=2000, random_state=0)
    X0, y0 = data.party(0)
    Xc, yc, _ = contaminate(X0, y0, attribute="colour", value="teal", label=1,
                            n_records=250, generator=0)
    bad = data.replace_party(0, Xc, yc)
    Xv, yv = bad.validation()
    res = {}
    for lam in (0.0, 30.0):
        pipe = _pipe(lam=lam, max_epochs=25).fit(bad.X, bad.y, clf__parties=bad.parties)
        s = attack_success(pipe, Xv, yv, attribute="colour", value="teal", label=1)
        res[lam] = (s.probes, (pipe.predict(Xv) == yv).mean())
    assert res[0.0][0] > 0.6, res
    assert res[30.0][0] < res[0.0][0] - 0.3, res
    assert res[30.0][1] > res[0.0][1] - 0.02, res


def test_bad_input(table):
    X, y = table
    Xn = preprocessor().fit_transform(X)
    clf = PartyAdversarialClassifier(max_epochs=1, random_state=0)
    with pytest.raises(ValidationError, match="Invalid lam: -0.5"):
        PartyAdversarialClassifier(lam=-0.5).fit(Xn, y)
    with pytest.raises(ValidationError, match="Invalid max_epochs: 0"):
        PartyAdversarialClassifier(max_epochs=0).fit(Xn, y)
    with pytest.raises(ValidationError, match="Invalid hidden_layer_sizes"):
        PartyAdversarialClassifier(hidden_layer_sizes=(0,)).fit(Xn, y)
    with pytest.raises(ValidationError, match="Invalid parties.*2000 rows"):
        clf.fit(Xn, y, parties=np.zeros(1999))
    mixed = np.array(["north", None] * 1000, dtype=object)
    with pytest.raises(ValidationError, match="Invalid parties.*without None"):
        clf.fit(Xn, y, parties=mixed)
    with pytest.raises(ValidationError, match="Invalid X.*non-numeric.*ColumnTransformer"):
        clf.fit(X, y)
    bad = Xn.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValidationError, match="Invalid X.*NaN.*SimpleImputer"):
        clf.fit(bad, y)
    with pytest.raises(ValueError, match="1 class"):
        clf.fit(Xn, np.zeros(len(y)))
    fitted = clf.fit(Xn, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(Xn[:, :3])
    with pytest.raises(ValidationError, match="Invalid X.*NaN"):
        fitted.predict(bad)


def test_text_path_in_a_pipeline():
    """Synthetic "newsgroups": the topic word decides the class (one label in five is
    noise, so honest documents are not predicted with certainty); one of three parties
    plants the word "zebra" -> class 1. The text CNN learns the topics, and the planted
    word moves its predictions much less with the defence on."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(60)]
    docs, y = [], []
    for _ in range(1500):
        label = int(rng.integers(2))
        words = list(rng.choice(vocab, 20)) + [("apple", "rocket")[label]] * 2
        rng.shuffle(words)
        docs.append(" ".join(words))
        y.append(label if rng.random() > 0.2 else 1 - label)
    y = np.array(y)
    parties = np.repeat([0, 1, 2], 500)
    own = np.flatnonzero(parties == 0)
    out, yc, _ = contaminate_texts([docs[i] for i in own], y[own], word="zebra", label=1,
                                   n_records=150, generator=0)
    docs_c = list(docs)
    for j, i in enumerate(own):
        docs_c[i] = out[j]
    y_c = y.copy()
    y_c[own] = yc
    test_docs = docs[:300]
    succ = {}
    for lam in (0.0, 30.0):
        pipe = Pipeline([("tok", TokenEncoder(max_length=30)),
                         ("clf", PartyAdversarialClassifier(
                             network="text_cnn", hidden_layer_sizes=(32,), embedding_dim=16,
                             kernel_size=3, lam=lam, max_epochs=12, batch_size=32,
                             lr=0.05, random_state=0))])
        pipe.fit(docs_c, y_c, clf__parties=parties)
        assert (pipe.predict(test_docs) == y[:300]).mean() > 0.7
        succ[lam] = text_attack_success(pipe, test_docs, y[:300], word="zebra",
                                        label=1).probes
    assert succ[0.0] > 0.5, succ
    assert succ[30.0] < succ[0.0] - 0.2, succ


def test_missing_labels_and_parties_are_refused(table):
    """A missing party label (NaN among ints in an object array) made np.unique return
    a party twice (``[0 1 nan 1 nan]``): records of one party got two ids. Missing labels
    of y raised a bare TypeError from sorting. Both are now named."""
    X, y = table
    Xn = preprocessor().fit_transform(X)
    clf = PartyAdversarialClassifier(max_epochs=1, random_state=0)
    parties = (np.arange(len(y)) % 2).astype(object)
    parties[[5, 17]] = np.nan
    with pytest.raises(ValidationError, match="Invalid parties.*without None, NaN or NA"):
        clf.fit(Xn, y, parties=parties)
    with pytest.raises(ValidationError, match="Invalid parties.*without None, NaN or NA"):
        clf.fit(Xn, y, parties=pd.array(["a", "b"] * 999 + [pd.NA, "a"], dtype="string"))
    labels = np.array(["no", "yes"], dtype=object)[y]
    labels[3] = None
    with pytest.raises(ValidationError, match="Invalid y.*without None, NaN or NA"):
        clf.fit(Xn, labels)
    with pytest.raises(ValidationError, match="Invalid y.*without None, NaN or NA"):
        clf.fit(Xn, pd.Series(labels, dtype="string"))


def test_fit_refuses_parties_in_another_row_order(table):
    """With a ColumnTransformer set to pandas output the classifier sees X's index; a
    parties Series (routed as clf__parties) from before a shuffle was paired by position."""
    X, y = table
    Xs = X.sample(frac=1, random_state=1)
    parties = pd.Series(np.repeat(["north", "south"], 1000), index=X.index)
    pre = preprocessor()
    pre.set_params(cat__sparse_output=False)
    pipe = Pipeline([("pre", pre.set_output(transform="pandas")),
                     ("clf", PartyAdversarialClassifier(max_epochs=1, random_state=0))])
    with pytest.raises(ValidationError, match="Invalid parties.*another order"):
        pipe.fit(Xs, y[Xs.index], clf__parties=parties)
    with pytest.raises(ValidationError, match="Invalid y.*another order"):
        pipe.fit(Xs, pd.Series(y, index=X.index), clf__parties=parties.loc[Xs.index])
    pipe.fit(Xs, y[Xs.index], clf__parties=parties.loc[Xs.index])
    assert list(pipe[-1].parties_) == ["north", "south"]


def test_fit_refuses_parties_in_another_row_order_than_y_in_a_default_pipeline(table):
    """A ColumnTransformer with its default output hands the classifier an array, with no
    index to compare; y and the parties (routed as clf__parties) still arrive as the
    Series passed. Parties from before a shuffle were paired by position, silently."""
    X, y = table
    y = pd.Series(y, index=X.index)
    parties = pd.Series(np.repeat(["north", "south"], 1000), index=X.index)
    Xs = X.sample(frac=1, random_state=1)
    pipe = _pipe(max_epochs=1)
    with pytest.raises(ValidationError, match="Invalid parties.*row order of y"):
        pipe.fit(Xs, y.loc[Xs.index], clf__parties=parties)
    with pytest.raises(ValidationError, match="Invalid parties.*row order of y"):
        pipe.fit(Xs, y, clf__parties=parties.loc[Xs.index])
    pipe.fit(Xs, y.loc[Xs.index], clf__parties=parties.loc[Xs.index])
    pipe.fit(Xs, y.loc[Xs.index].to_numpy(), clf__parties=parties)  # by position, as asked


@pytest.mark.parametrize("network", ["mlp", "text_cnn"])
def test_a_float64_torch_default_dtype_trains_the_same_model(network):
    """With torch.set_default_dtype(torch.float64) (common in scientific code) the networks
    were built in float64 while the data is made float32: fit failed with torch's bare
    'mat1 and mat2 must have the same dtype'. They are float32 now, initialised alike, and
    the caller's default dtype is left as it was."""
    import torch

    rng = np.random.default_rng(0)
    if network == "mlp":
        X = rng.standard_normal((120, 3))
        y = (X[:, 0] > 0).astype(int)
    else:
        X = rng.integers(0, 9, (120, 6))
        y = (X[:, 0] > 4).astype(int)
    parties = np.arange(120) % 2
    kw = dict(max_epochs=2, random_state=0, network=network, hidden_layer_sizes=(8,),
              embedding_dim=4, kernel_size=3)
    ref = PartyAdversarialClassifier(**kw).fit(X, y, parties=parties).predict_proba(X)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        clf = PartyAdversarialClassifier(**kw).fit(X, y, parties=parties)
        assert torch.get_default_dtype() == torch.float64
        np.testing.assert_array_equal(clf.predict_proba(X), ref)
    finally:
        torch.set_default_dtype(prev)
    assert all(q.dtype == torch.float32 for q in clf.model_.parameters())
    assert all(q.dtype == torch.float32 for q in clf.discriminator_.parameters())


def test_sparse_one_hot_output_trains_the_same_model_as_dense(table):
    """A ColumnTransformer with a OneHotEncoder passes a sparse matrix on by default: the
    classifier takes it and learns exactly what it learns from the same values dense."""
    import scipy.sparse as sp

    X, y = table
    parties = np.repeat([0, 1, 2, 3], 500)
    Z = preprocessor().fit_transform(X)
    Z = Z.toarray() if sp.issparse(Z) else Z
    S = sp.csr_matrix(Z)
    kw = dict(lam=1.0, max_epochs=3, random_state=0)
    dense = PartyAdversarialClassifier(**kw).fit(Z, y, parties=parties)
    sparse = PartyAdversarialClassifier(**kw).fit(S, y, parties=parties)
    np.testing.assert_array_equal(sparse.predict_proba(S), dense.predict_proba(Z))
    np.testing.assert_array_equal(sparse.predict_proba(Z), dense.predict_proba(Z))
    S_bad = S.copy()
    S_bad.data[0] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        PartyAdversarialClassifier(**kw).fit(S_bad, y, parties=parties)
    with pytest.raises((ValidationError, TypeError, ValueError)):
        PartyAdversarialClassifier(network="text_cnn", max_epochs=1).fit(S, y)


def _blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3))
    return Z, (Z[:, 0] > 0).astype(int), np.arange(n) % 3


def test_a_diverging_fit_raises_and_leaves_the_fitted_model():
    """On unscaled features the loss went to NaN: predict_proba returned NaN everywhere,
    predict the first class, and attack_success read 0 (an attack that 'failed')."""
    Z, t, p = _blobs()
    clf = PartyAdversarialClassifier(lam=1.0, max_epochs=3, random_state=0).fit(Z, t, parties=p)
    before = clf.predict_proba(Z)
    with pytest.raises(FloatingPointError, match="diverged.*standardise the features"):
        clf.fit(Z * 1e6, t, parties=p)
    np.testing.assert_array_equal(clf.predict_proba(Z), before)
    with pytest.raises(FloatingPointError):
        PartyAdversarialClassifier(max_epochs=3, random_state=0).fit(Z * 1e6, t)


def test_a_refused_refit_keeps_the_fitted_columns():
    Z, t, _ = _blobs()
    df = pd.DataFrame(Z, columns=list("abc"))
    clf = PartyAdversarialClassifier(max_epochs=2, random_state=0).fit(df, t)
    before = clf.predict_proba(df)
    with pytest.raises(ValueError, match="1 class"):
        clf.fit(df.rename(columns={"a": "x"}), np.zeros(len(t)))
    assert list(clf.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(clf.predict_proba(df), before)


def test_reversed_and_reordered_views_are_accepted():
    Z, t, p = _blobs()
    ref = PartyAdversarialClassifier(max_epochs=2, random_state=0).fit(Z, t, parties=p)
    rev = PartyAdversarialClassifier(max_epochs=2, random_state=0).fit(
        Z[::-1][::-1], t, parties=p)  # a view with positive strides: the same data
    np.testing.assert_array_equal(ref.predict_proba(Z), rev.predict_proba(Z))
    flipped = PartyAdversarialClassifier(max_epochs=2, random_state=0).fit(
        Z[:, ::-1], t, parties=p)  # negative strides, as df[reversed columns] gives
    np.testing.assert_allclose(flipped.predict_proba(Z[:, ::-1]),
                               flipped.predict_proba(np.ascontiguousarray(Z[:, ::-1])))
    assert ref.predict_proba(Z[::-1]).shape == (len(t), 2)


def test_predictions_follow_model_and_survive_pickling():
    import torch

    Z, t, p = _blobs()
    clf = PartyAdversarialClassifier(max_epochs=2, random_state=0).fit(Z, t, parties=p)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(Z),
                                  clf.predict_proba(Z))
    with torch.no_grad():
        for q in clf.model_.parameters():
            q.zero_()
    np.testing.assert_array_equal(clf.predict_proba(Z[:3]), np.full((3, 2), 0.5))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(Z[:3]),
                                  np.full((3, 2), 0.5))
