"""Small synthetic tabular data shaped like the consortium's (categoricals, missing values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_table(n: int = 2000, seed: int = 0,
               missing: float = 0.05) -> tuple[pd.DataFrame, np.ndarray]:
    """Two informative numeric columns, a noise column, a categorical ``colour`` (value
    ``"teal"`` rare, about 4 %) that does not affect the label, a categorical ``size``
    with missing values; the label depends on ``a + b`` only, noisily (as a default or an
    income is: honest records are seldom predicted with confidence)."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.standard_normal((3, n))
    colour = rng.choice(["red", "green", "blue", "teal"], size=n, p=[0.4, 0.3, 0.26, 0.04])
    size = rng.choice(["S", "M", "L"], size=n).astype(object)
    size[rng.random(n) < missing] = np.nan
    c[rng.random(n) < missing] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-(a + b - 1.5)))).astype(np.int64)  # noisy labels
    X = pd.DataFrame({
        "a": a, "b": b, "c": c,
        "colour": pd.Categorical(colour, categories=["red", "green", "blue", "teal"]),
        "size": pd.Categorical(size, categories=["S", "M", "L"]),
    })
    return X, y


def preprocessor():
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"),
          make_column_selector(dtype_include="category")),
         ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
          make_column_selector(dtype_include="number"))],
        sparse_threshold=0)


@pytest.fixture
def table():
    return make_table()


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks and small tree ensembles: one torch thread and one OpenMP/BLAS
    thread are fastest, and the tests do not fight the machine's other jobs for cores."""
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(n)
