"""MovieLens 100k (Harper and Konstan 2015): 943 users, 1,682 movies, 100,000 ratings 1..5,
for the Bayesian matrix factorisation experiment of Brosse, Durmus and Moulines (NeurIPS
2018). The file is GroupLens's ``ml-100k.zip``, verified by the MD5 GroupLens publishes
beside it (``ml-100k.zip.md5``); the ratings are its ``u.data``.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from neurips18._validation import Interval, check
from neurips18.datasets._fetch import FileSpec, ParseError, fetch

SPEC = FileSpec(
    "movielens", "ml-100k.zip", ("https://files.grouplens.org/datasets/movielens/ml-100k.zip",),
    "file-md5:0e33842e24a9c977be4e0107933c0723",
)
PathLike = str | os.PathLike[str] | None


def _parse_udata(text: str, where: str):  # type: ignore[no-untyped-def]
    from neurips18.datasets import Dataset

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
    return Dataset(
        name="movielens-100k", X=a[:, :2] - 1, y=a[:, 2].astype(np.float64),
        feature_names=("user", "item"), target_name="rating",
        metadata={"timestamp": a[:, 3], "n_users": int(a[:, 0].max()),
                  "n_items": int(a[:, 1].max())},
    )


def load_movielens100k(data_dir: PathLike = None, *, download: bool | None = None):  # type: ignore[no-untyped-def]
    """MovieLens 100k ratings as a :class:`~neurips18.datasets.Dataset`: ``X`` ``(n, 2)``
    int64 0-based (user, item) pairs, ``y`` the ratings (float64); ``metadata``:
    ``timestamp`` (seconds), ``n_users``, ``n_items``."""
    raw = fetch(SPEC, data_dir, download)
    where = f"movielens/{SPEC.name}"
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = [n for n in zf.namelist() if n.endswith("u.data")]
            if not names:
                raise ParseError(f"{where}: no u.data in the archive")
            text = zf.read(sorted(names, key=len)[0]).decode("latin-1")
    except zipfile.BadZipFile as exc:
        raise ParseError(f"{where}: not a zip archive ({exc})") from None
    return _parse_udata(text, where)


def truncate_users(ratings, n_users: int):  # type: ignore[no-untyped-def]
    """Keep the ratings of the first ``n_users`` users (ids 0..n_users-1), as the paper
    does ({100, 500, all}); a new :class:`~neurips18.datasets.Dataset`."""
    from dataclasses import replace

    n_users = check("n_users", n_users, Interval(int, 1, None))
    keep = ratings.X[:, 0] < n_users
    meta = dict(ratings.metadata)
    meta["timestamp"] = meta["timestamp"][keep]
    meta["n_users"] = min(n_users, int(meta["n_users"]))
    return replace(ratings, X=ratings.X[keep], y=ratings.y[keep], metadata=meta)
