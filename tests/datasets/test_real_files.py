"""Loaders against the real files in ../shared/data (skipped where a file is absent)."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from neurips18 import datasets


def test_mnist_train_and_test(data_file):
    data_file("mnist", "train-images-idx3-ubyte")
    X, y = datasets.load_mnist("train")
    assert X.shape == (60000, 28, 28) and X.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.int64
    # the class counts of the canonical training set
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    Xt, yt = datasets.load_mnist("test")
    assert Xt.shape == (10000, 28, 28)
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert X.max() == 255 and X.min() == 0


def test_mnist_label_digests_match_file_roles(data_file):
    # The shared README lists the two label MD5s the other way round; the file that holds
    # 60,000 labels is the training set, and it is the one our table checks as "train".
    path = data_file("mnist", "train-labels-idx1-ubyte")
    raw = gzip.open(path.with_name(path.name + ".gz")).read()
    assert int.from_bytes(raw[4:8], "big") == 60000
    assert hashlib.md5(raw).hexdigest() == "a25bea736e30d166cdddb491f175f624"


def test_adult_splits_and_quirks(data_file):
    path = data_file("adult", "adult.data")
    assert hashlib.md5(path.read_bytes()).hexdigest() == "5d7c39d7b8804f071cdd1f2a7c460872"
    tr = datasets.load_adult("train")
    te = datasets.load_adult("test")
    assert tr.X.shape == (32561, 14) and te.X.shape == (16281, 14)
    assert tr.y.sum() == 7841 and te.y.sum() == 3846  # >50K counts documented by UCI
    assert tr.classes == ("<=50K", ">50K")
    # "?" is missing, not a category
    assert tr.X["workclass"].isna().sum() == 1836
    assert tr.X["occupation"].isna().sum() == 1843
    assert tr.X["native-country"].isna().sum() == 583
    for col in tr.categorical_features:
        assert isinstance(tr.X[col].dtype, pd.CategoricalDtype)
        assert list(tr.X[col].cat.categories) == list(te.X[col].cat.categories)
        seen = set(tr.X[col].dropna()) | set(te.X[col].dropna())
        assert seen == set(tr.X[col].cat.categories), col
    assert tr.X["age"].dtype == np.float64 and tr.X["age"].min() == 17


def test_mushroom(data_file):
    data_file("mushroom", "agaricus-lepiota.data")
    d = datasets.load_mushroom()
    assert d.X.shape == (8124, 22)
    assert d.y.sum() == 3916  # poisonous
    assert d.X["stalk-root"].isna().sum() == 2480
    assert d.X.drop(columns="stalk-root").isna().sum().sum() == 0


def test_tic_tac_toe(data_file):
    data_file("tic-tac-toe", "tic-tac-toe.data")
    d = datasets.load_tic_tac_toe()
    assert d.X.shape == (958, 9) and d.y.sum() == 626
    # positive exactly when x has one of the 8 lines: the concept the rule learners must find
    b = d.X.to_numpy() == "x"
    lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8),
             (2, 4, 6)]
    wins = np.zeros(len(d.y), dtype=bool)
    for ln in lines:
        wins |= b[:, ln].all(axis=1)
    np.testing.assert_array_equal(wins.astype(np.int64), d.y)


def test_credit_default(data_file):
    data_file("credit-default", "UCI_Credit_Card.csv")
    d = datasets.load_credit_default()
    assert d.X.shape == (30000, 23)
    assert d.y.sum() == 6636
    assert list(d.X["SEX"].cat.categories) == [1, 2]
    assert d.X["LIMIT_BAL"].dtype == np.float64


@pytest.mark.parametrize("bad", ["validation", "", None])
def test_bad_split(bad):
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_adult(bad)
