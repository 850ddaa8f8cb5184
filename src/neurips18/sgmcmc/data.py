"""Loaders for the data sets of Brosse, Durmus, Moulines (NeurIPS 2018): covertype, MovieLens.

* :func:`load_covertype` -- UCI Covertype (Blackard and Dean 1999; 581,012 rows, 54 integer
  features, 7 cover types), as in the paper's logistic-regression experiment: a binary target
  (one cover type against the rest), the features projected on the top ``n_components``
  eigenvectors of X^T X and then standardised.
* :func:`load_movielens100k` -- MovieLens 100k (Harper and Konstan 2015; 943 users, 1,682
  movies, 100,000 ratings 1..5), for the paper's Bayesian matrix factorisation experiment;
  :func:`truncate_users` keeps the first users as the paper does ({100, 500, all}).

Files are looked for, in order, under ``data_dir``, ``$NEURIPS18_DATA_DIR`` and the cache of
:mod:`neurips18.datasets` (``<dir>/covertype/covtype.data[.gz]``,
``<dir>/movielens/ml-100k.zip`` or ``<dir>/movielens/ml-100k/u.data``), and otherwise
downloaded from the canonical address into the cache (unless ``download=False`` or
``NEURIPS18_OFFLINE=1``). No published checksum is used for these two files; instead their
content is validated while parsing (column count, label and rating ranges), and a malformed
file raises :class:`~neurips18.datasets.ParseError`.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neurips18.datasets import DatasetNotFoundError, ParseError, cache_dir

__all__ = [
    "COVERTYPE_URL",
    "MOVIELENS100K_URL",
    "Covertype",
    "Ratings",
    "load_covertype",
    "load_movielens100k",
    "truncate_users",
]

COVERTYPE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/covtype/covtype.data.gz"
MOVIELENS100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
PathLike = str | os.PathLike[str] | None


def _dirs(data_dir: PathLike) -> list[Path]:
    out = []
    if data_dir is not None:
        out.append(Path(data_dir).expanduser())
    env = os.environ.get("NEURIPS18_DATA_DIR")
    if env:
        out.append(Path(env).expanduser())
    out.append(cache_dir())
    return out


def _offline() -> bool:
    return os.environ.get("NEURIPS18_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def _find(data_dir: PathLike, rel: list[str], url: str, download: bool | None) -> Path:
    looked = [d / r for d in _dirs(data_dir) for r in rel]
    for p in looked:
        if p.is_file():
            return p
    allow = (not _offline()) if download is None else download
    why = "downloads are off (download=False or NEURIPS18_OFFLINE=1)"
    if allow:
        dest = cache_dir() / rel[0]
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as r:
                shutil.copyfileobj(r, out)
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError) as exc:
            why = f"{url}: {exc}"
        finally:
            Path(tmp).unlink(missing_ok=True)
    where = "\n  ".join(str(p) for p in looked)
    raise DatasetNotFoundError(
        f"data file {rel[0]} not found. Looked in:\n  {where}\nDownload: {why}.\n"
        f"Put the file at <DIR>/{rel[0]} and set NEURIPS18_DATA_DIR=<DIR> (or pass "
        f"data_dir=<DIR>); canonical source: {url}"
    )


# --------------------------------------------------------------------------- covertype


@dataclass(frozen=True)
class Covertype:
    """Covertype as the paper uses it.

    X : (n, n_components) float64, the projected and standardised features.
    y : (n,) float64 in {0, 1}: 1 for ``positive_class``.
    components : (54, n_components) the eigenvectors of X_raw^T X_raw used for the projection
        (largest eigenvalue first; each column's largest entry made positive).
    eigenvalues : their eigenvalues. cover_type : (n,) int64, the original labels 1..7.
    """

    X: NDArray[np.float64]
    y: NDArray[np.float64]
    components: NDArray[np.float64]
    eigenvalues: NDArray[np.float64]
    cover_type: NDArray[np.int64]


def _read_covertype(path: Path) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    import pandas as pd

    try:
        df = pd.read_csv(path, header=None, compression="infer" if path.suffix == ".gz" else None)
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise ParseError(f"cannot parse {path} as covertype CSV: {exc}") from None
    if df.shape[1] != 55:
        raise ParseError(f"{path}: expected 55 comma-separated columns (54 features + cover "
                         f"type), got {df.shape[1]}")
    if df.shape[0] == 0:
        raise ParseError(f"{path}: no rows")
    vals = df.to_numpy()
    if not np.issubdtype(vals.dtype, np.number) or not np.isfinite(vals.astype(float)).all():
        raise ParseError(f"{path}: non-numeric or missing values")
    label = vals[:, 54].astype(np.int64)
    if label.min() < 1 or label.max() > 7 or not np.all(vals[:, 54] == label):
        raise ParseError(f"{path}: cover types must be integers 1..7")
    return vals[:, :54].astype(np.float64), label


def load_covertype(
    data_dir: PathLike = None,
    *,
    n_components: int = 5,
    positive_class: int = 2,
    standardize: bool = True,
    download: bool | None = None,
) -> Covertype:
    """UCI Covertype, binary, projected on the top eigenvectors of X^T X (the paper's setup).

    ``positive_class`` (default 2, Lodgepole Pine, the most frequent type) is labelled 1 and
    every other type 0. The projection uses the eigenvectors of the raw (uncentred) X^T X,
    then each projected column is standardised to mean 0 and variance 1 if ``standardize``.
    """
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not (
        1 <= n_components <= 54
    ):
        raise ValueError(f"n_components must be an integer in [1, 54], got {n_components!r}")
    if positive_class not in range(1, 8):
        raise ValueError(f"positive_class must be a cover type in 1..7, got {positive_class!r}")
    path = _find(data_dir, ["covertype/covtype.data.gz", "covertype/covtype.data"],
                 COVERTYPE_URL, download)
    X_raw, label = _read_covertype(path)
    w, V = np.linalg.eigh(X_raw.T @ X_raw)
    order = np.argsort(w)[::-1][:n_components]
    w, V = w[order], V[:, order]
    V = V * np.where(V[np.abs(V).argmax(axis=0), np.arange(n_components)] < 0, -1.0, 1.0)
    Z = X_raw @ V
    if standardize:
        sd = Z.std(axis=0)
        Z = (Z - Z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return Covertype(X=Z, y=(label == positive_class).astype(np.float64), components=V,
                     eigenvalues=w, cover_type=label)


# --------------------------------------------------------------------------- MovieLens


@dataclass(frozen=True)
class Ratings:
    """Explicit ratings: ``user``, ``item`` (0-based int64), ``rating`` (float64),
    ``timestamp`` (int64, seconds), and the numbers of users and items."""

    user: NDArray[np.int64]
    item: NDArray[np.int64]
    rating: NDArray[np.float64]
    timestamp: NDArray[np.int64]
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return int(self.rating.size)


def _parse_udata(text: str, where: str) -> Ratings:
    rows = [ln.split("\t") for ln in text.splitlines() if ln.strip()]
    if not rows:
        raise ParseError(f"{where}: no ratings")
    if any(len(r) != 4 for r in rows):
        raise ParseError(f"{where}: expected 4 tab-separated fields (user, item, rating, "
                         "timestamp) on every line")
    try:
        a = np.array(rows, dtype=np.int64)
    except ValueError:
        raise ParseError(f"{where}: non-integer fields") from None
    if a[:, 0].min() < 1 or a[:, 1].min() < 1:
        raise ParseError(f"{where}: user and item ids are 1-based")
    if a[:, 2].min() < 1 or a[:, 2].max() > 5:
        raise ParseError(f"{where}: ratings must lie in 1..5")
    return Ratings(user=a[:, 0] - 1, item=a[:, 1] - 1, rating=a[:, 2].astype(np.float64),
                   timestamp=a[:, 3], n_users=int(a[:, 0].max()), n_items=int(a[:, 1].max()))


def load_movielens100k(data_dir: PathLike = None, *, download: bool | None = None) -> Ratings:
    """MovieLens 100k ratings (``u.data``), from ``ml-100k.zip`` or the extracted folder."""
    path = _find(
        data_dir,
        ["movielens/ml-100k.zip", "movielens/ml-100k/u.data", "movielens/u.data"],
        MOVIELENS100K_URL,
        download,
    )
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("u.data")]
                if not names:
                    raise ParseError(f"{path}: no u.data in the archive")
                text = io.TextIOWrapper(zf.open(sorted(names, key=len)[0]),
                                        encoding="latin-1").read()
        except zipfile.BadZipFile as exc:
            raise ParseError(f"{path}: not a zip archive ({exc})") from None
    else:
        text = path.read_text(encoding="latin-1")
    return _parse_udata(text, str(path))


def truncate_users(ratings: Ratings, n_users: int) -> Ratings:
    """Keep the ratings of the first ``n_users`` users (ids 0..n_users-1), as the paper does."""
    if isinstance(n_users, bool) or not isinstance(n_users, int) or n_users < 1:
        raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
    keep = ratings.user < n_users
    return Ratings(user=ratings.user[keep], item=ratings.item[keep],
                   rating=ratings.rating[keep], timestamp=ratings.timestamp[keep],
                   n_users=min(n_users, ratings.n_users), n_items=ratings.n_items)
