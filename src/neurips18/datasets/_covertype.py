"""UCI Covertype (Blackard and Dean 1999): 581,012 cells of 30 x 30 m, 54 integer features,
7 cover types. The loader gives it as Brosse, Durmus and Moulines (NeurIPS 2018) use it for
Bayesian logistic regression: a binary target (one cover type against the rest) and the
features projected on the top eigenvectors of X^T X, then standardised.

The file is ``covtype.data.gz`` as UCI distributes it, verified by the SHA-256 of the
compressed file that scikit-learn's ``fetch_covtype`` publishes for the same archive.
"""

from __future__ import annotations

import io
import os

import numpy as np

from neurips18._validation import Interval, Options, check
from neurips18.datasets._fetch import FileSpec, ParseError, fetch

_URLS = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/covtype/covtype.data.gz",
    "https://ndownloader.figshare.com/files/5976039",
)
SPEC = FileSpec(
    "covertype", "covtype.data.gz", _URLS,
    "file-sha256:614360d0257557dd1792834a85a1cdebfadc3c4f30b011d56afee7ffb5b15771",
)
PathLike = str | os.PathLike[str] | None


def _parse(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    try:
        df = pd.read_csv(io.BytesIO(raw), header=None)
    except (ValueError, EOFError, pd.errors.ParserError) as exc:
        raise ParseError(f"cannot parse {where} as covertype CSV: {exc}") from None
    if df.shape[1] != 55:
        raise ParseError(f"{where}: expected 55 comma-separated columns (54 features + cover "
                         f"type), got {df.shape[1]}")
    if df.shape[0] == 0:
        raise ParseError(f"{where}: no rows")
    vals = df.to_numpy()
    if not np.issubdtype(vals.dtype, np.number) or not np.isfinite(vals.astype(float)).all():
        raise ParseError(f"{where}: non-numeric or missing values")
    label = vals[:, 54].astype(np.int64)
    if label.min() < 1 or label.max() > 7 or not np.all(vals[:, 54] == label):
        raise ParseError(f"{where}: cover types must be integers 1..7")
    return vals[:, :54].astype(np.float64), label


def load_covertype(
    data_dir: PathLike = None,
    *,
    n_components: int = 5,
    positive_class: int = 2,
    standardize: bool = True,
    download: bool | None = None,
):  # type: ignore[no-untyped-def]
    """UCI Covertype, binary, projected on the top eigenvectors of X^T X (the paper's setup).

    ``positive_class`` (default 2, Lodgepole Pine, the most frequent type) is labelled 1 and
    every other type 0. The projection uses the eigenvectors of the raw (uncentred) X^T X
    (largest eigenvalue first, each column's largest entry made positive); each projected
    column is then standardised to mean 0 and variance 1 if ``standardize``.

    Returns a :class:`~neurips18.datasets.Dataset`: ``X`` ``(n, n_components)`` float64,
    ``y`` float64 in {0, 1}; ``metadata``: ``components`` (54 x n_components),
    ``eigenvalues`` and ``cover_type`` (the original labels 1..7).
    """
    from neurips18.datasets import Dataset

    n_components = check("n_components", n_components, Interval(int, 1, 54))
    positive_class = check("positive_class", positive_class, Interval(int, 1, 7))
    # a bool, not any truthy value: standardize="False" standardised
    standardize = check("standardize", standardize, Options({True, False}))
    X_raw, label = _parse(fetch(SPEC, data_dir, download), f"covertype/{SPEC.name}")
    w, V = np.linalg.eigh(X_raw.T @ X_raw)
    order = np.argsort(w)[::-1][:n_components]
    w, V = w[order], V[:, order]
    V = V * np.where(V[np.abs(V).argmax(axis=0), np.arange(n_components)] < 0, -1.0, 1.0)
    Z = X_raw @ V
    if standardize:
        sd = Z.std(axis=0)
        Z = (Z - Z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return Dataset(
        name="covertype", X=Z, y=(label == positive_class).astype(np.float64),
        feature_names=tuple(f"pc{k}" for k in range(n_components)),
        target_name=f"cover type {positive_class}", classes=("other", str(positive_class)),
        metadata={"components": V, "eigenvalues": w, "cover_type": label},
    )
