"""Parties' data: the container the server sees and the split that builds it."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurips18._validation import Interval, as_numpy_generator, check, invalid

__all__ = ["PartyData", "split_parties"]


def _is_frame(X: Any) -> bool:
    return type(X).__name__ == "DataFrame" and hasattr(X, "iloc")


def n_rows(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def take_rows(X: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of ``X`` (a DataFrame keeps its index and dtypes), as a copy."""
    if _is_frame(X):
        return X.iloc[idx].copy()
    if isinstance(X, np.ndarray):
        return X[idx].copy()
    return [X[i] for i in idx]  # a list of documents


def stack_rows(parts: list[Any]) -> Any:
    if _is_frame(parts[0]):
        import pandas as pd

        return pd.concat(parts, axis=0)
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    return [row for p in parts for row in p]


def as_features(name: str, X: Any) -> Any:
    """``X`` as a 2-D table (DataFrame or ndarray) or a list of documents, not copied."""
    if _is_frame(X):
        return X
    if isinstance(X, list | tuple) and X and all(isinstance(t, str) for t in X):
        return list(X)
    arr = np.asarray(X)
    if arr.ndim == 1 and arr.size and arr.dtype.kind in "OU" and all(
            isinstance(t, str) for t in arr):
        return [str(t) for t in arr]  # a Series or an array of documents
    if arr.ndim != 2:
        raise invalid(name, X, f"a 2-D array, a DataFrame or a list of documents (strings), "
                      f"got {arr.ndim}-D")
    return arr


def _kind(X: Any) -> str:
    return "a DataFrame" if _is_frame(X) else "a list of documents" if isinstance(X, list) \
        else "an array"


def check_same_columns(name: str, X: Any, ref: Any, ref_name: str) -> None:
    """Refuse records ``X`` that do not have the columns of ``ref`` (records pooled with
    them): another kind of table, another number of columns, or a DataFrame with other
    column names (pandas would pool them into a frame holding both sets of columns, each
    missing for the other's rows)."""
    if _kind(X) != _kind(ref):
        raise invalid(name, X, f"{_kind(ref)}, like {ref_name}; got {_kind(X)}")
    if _is_frame(X):
        cols, ref_cols = list(X.columns), list(ref.columns)
        if set(cols) != set(ref_cols) or len(cols) != len(ref_cols):
            lacking = [c for c in ref_cols if c not in set(cols)]
            extra = [c for c in cols if c not in set(ref_cols)]
            raise invalid(name, X, f"the columns of {ref_name} (in any order); lacking "
                          f"{lacking[:6]}, extra {extra[:6]}")
    elif isinstance(X, np.ndarray) and X.shape[1] != ref.shape[1]:
        raise invalid(name, X, f"the {ref.shape[1]} columns of {ref_name}; got {X.shape[1]}")


def _refuse_values(name: str, X: Any, vals: Any, bad: Any, expected: str,
                   hint: str = "") -> None:
    """Refuse ``X`` (parameter ``name``) when any entry of the column ``vals`` is marked in
    ``bad``, showing up to five of the offending values."""
    if bad.any():
        import pandas as pd

        shown = pd.unique(vals[bad]).tolist()[:5]
        raise invalid(name, X, f"{expected}; found {shown}{hint}")


def as_pool_categories(name: str, X: Any, pool: Any, pool_name: str) -> Any:
    """``X`` (a DataFrame with the columns of the DataFrame ``pool``) with each column that
    is categorical in ``pool`` given ``pool``'s categories: pandas pools a categorical with
    a column of strings, or with a categorical of other categories, into a column of plain
    objects, which a column selector on the category dtype then leaves out of the model for
    every party. A value that is not among ``pool``'s categories is refused by name, and so
    is a non-numeric column (e.g. numbers as strings) where ``pool``'s is numeric, which
    would turn the pooled column into objects that a numeric selector leaves out. A column
    that is of a pandas string dtype in ``pool`` (``str``, pandas 3's default for text) is
    given that dtype (from objects, say; pooled, they would be objects, which a selector
    on ``str`` leaves out); a value in it that is not a string is refused by name. A bool
    column of ``pool`` is given as bool from numbers 0/1 (pooled, they would make it a
    column of numbers); other values, or missing ones, are refused."""
    import pandas as pd

    if not _is_frame(X):
        return X
    out = X
    for c in pool.columns:
        dtype = pool[c].dtype
        if dtype == np.dtype(bool) and X[c].dtype != dtype:
            # pandas pools a bool column with one of 0/1 numbers into numbers: the column
            # then leaves a selector on 'bool' and joins one on 'number', for every party
            vals = X[c]
            wrong = (vals.isna() | ~vals.isin([0, 1])).to_numpy(dtype=bool)
            _refuse_values(name, X, vals, wrong, f"column {c!r} of booleans (or 0/1, without "
                           f"missing values), as in {pool_name} ({dtype})")
            out = out.copy() if out is X else out
            out[c] = vals.astype(bool)
            continue
        if (not isinstance(dtype, pd.CategoricalDtype) and dtype.kind in "biuf"
                and getattr(X[c].dtype, "kind", "O") not in "biuf"):
            raise invalid(name, X, f"column {c!r} numeric, as in {pool_name} ({dtype}); "
                          f"found dtype {X[c].dtype} (convert it, e.g. pd.to_numeric)")
        if isinstance(dtype, pd.StringDtype) and X[c].dtype != dtype:
            # pandas pools a text column ('str', pandas 3's default) with one of objects (or
            # of another string dtype) into objects, which a selector on 'str' leaves out
            vals = X[c]
            present = vals.notna().to_numpy()
            other = present & ~np.fromiter((isinstance(v, str) for v in vals), bool,
                                           count=len(vals))
            _refuse_values(name, X, vals, other, f"text in column {c!r}, as in {pool_name} "
                           f"({dtype})", " (convert them, e.g. .astype(str))")
            out = out.copy() if out is X else out
            out[c] = vals.astype(dtype)
            continue
        if not isinstance(dtype, pd.CategoricalDtype) or X[c].dtype == dtype:
            continue
        present = X[c].notna().to_numpy()
        lost = present & ~X[c].isin(dtype.categories).to_numpy()
        if lost.any():
            shown = pd.unique(X[c][lost]).tolist()[:5]
            cats = list(dtype.categories)
            raise invalid(name, X, f"values of column {c!r} among the categories of "
                          f"{pool_name} {cats[:12]}{' ...' if len(cats) > 12 else ''}; "
                          f"found {shown}")
        cast = X[c].astype(dtype)
        if (cast.notna().to_numpy() != present).any():  # defensive: no value may be lost
            raise invalid(name, X, f"values of column {c!r} that pandas maps onto the "
                          f"categories of {pool_name}")
        if out is X:
            out = X.copy()
        out[c] = cast
    return out


def missing(arr: np.ndarray) -> np.ndarray:
    """Which entries of ``arr`` are missing: NaN, None, pandas' NA or NaT (an object array
    can hold any of them; NumPy sorts and compares them inconsistently)."""
    if arr.dtype.kind in "fc":
        return np.isnan(arr)
    if arr.dtype.kind in "mM":
        return np.isnat(arr)
    if arr.dtype.kind == "O":
        import pandas as pd

        return np.asarray(pd.isna(arr), dtype=bool)
    return np.zeros(arr.shape, dtype=bool)


def check_not_missing(name: str, value: Any, arr: np.ndarray, what: str) -> None:
    """Refuse missing entries of the 1-D ``arr`` (labels, party labels) by name."""
    miss = missing(arr)
    if miss.any():
        at = np.flatnonzero(miss)
        raise invalid(name, value, f"{what} without None, NaN or NA (missing values); found "
                      f"{len(at)}, at position(s) {at[:5].tolist()}")


def _row_index(X: Any) -> Any:
    """The pandas index of ``X``'s rows: a DataFrame's, or a Series' (e.g. a column of
    documents); None for anything else."""
    if _is_frame(X) or (type(X).__name__ == "Series" and getattr(X, "ndim", 0) == 1):
        return getattr(X, "index", None)
    return None


def check_aligned(name: str, value: Any, X: Any, x_name: str = "X") -> None:
    """Refuse a pandas Series (or frame) whose index holds exactly the index labels of the
    DataFrame (or Series of documents) ``X`` but in another order: rows are paired by
    position, so such a ``value`` (labels or parties taken from the frame before it was
    shuffled or sorted) would be paired with the wrong records, silently. A Series in
    ``X``'s order, one with other index labels, or an array is paired by position as
    before."""
    index = getattr(value, "index", None)
    xi = _row_index(X)
    if index is None or xi is None or not hasattr(index, "equals"):
        return
    if len(index) != len(xi) or index.equals(xi) or not (index.is_unique and xi.is_unique):
        return
    if bool(index.isin(xi).all()):
        raise invalid(name, value, f"a Series in the row order of {x_name}: its index holds "
                      f"{x_name}'s index labels in another order (pair them by label with "
                      f".reindex({x_name}.index), or pass .to_numpy() to pair by position)")


def as_labels(name: str, y: Any, n: int | None = None, *, x_name: str = "X",
              X: Any = None) -> np.ndarray:
    if X is not None:
        check_aligned(name, y, X, x_name)
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise invalid(name, y, f"a 1-D array of labels, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise invalid(name, y, "labels without NaN or inf")
    check_not_missing(name, y, arr, "labels")
    if n is not None and len(arr) != n:
        raise invalid(name, y, f"{n} labels, one per row of {x_name}; got {len(arr)}")
    return arr


def party_index(name: str, parties: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct party labels and each row's index into them; labels that cannot
    be sorted together (``None`` among strings, mixed types) are refused by name, and so
    are missing labels (NaN among ints in an object array sorts inconsistently: one party
    came back twice)."""
    check_not_missing(name, parties, parties, "party labels")
    try:
        labels, idx = np.unique(parties, return_inverse=True)
    except TypeError:
        raise invalid(name, parties, "party labels of one sortable type (e.g. ints or "
                      "strings), without None") from None
    return labels, idx


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class PartyData:
    """What the server holds: every party's submitted training and validation records.

    Attributes
    ----------
    X, y : the pooled training records of all parties (a DataFrame, a 2-D array or a list
        of documents; labels as a 1-D array).
    parties : the party id (``0 .. n_parties - 1``) of each training record.
    X_val, y_val, val_parties : the pooled validation records and their party ids (each
        party submits its own validation set).
    n_parties : the number of parties; every party has at least one training record.

    The arrays are copies that cannot be written to; :meth:`party` and :meth:`validation`
    return copies of one party's records, and :meth:`replace_party` builds a new container
    with one party's training records replaced (the malicious party's submission).
    """

    X: Any
    y: np.ndarray
    parties: np.ndarray
    X_val: Any
    y_val: np.ndarray
    val_parties: np.ndarray
    n_parties: int = field(default=0)

    def __post_init__(self) -> None:
        for name, value, rows, rows_name in (("y", self.y, self.X, "X"),
                                             ("parties", self.parties, self.X, "X"),
                                             ("y_val", self.y_val, self.X_val, "X_val"),
                                             ("val_parties", self.val_parties, self.X_val,
                                              "X_val")):
            check_aligned(name, value, rows, rows_name)
        # an array X has no index: party ids and labels given as Series may still disagree
        check_aligned("parties", self.parties, self.y, "y")
        check_aligned("val_parties", self.val_parties, self.y_val, "y_val")
        X = as_features("X", self.X)
        X_val = as_features("X_val", self.X_val)
        check_same_columns("X_val", X_val, X, "X")
        y = as_labels("y", self.y, n_rows(X), X=X)
        y_val = as_labels("y_val", self.y_val, n_rows(X_val), x_name="X_val", X=X_val)
        parties = self._ids("parties", self.parties, n_rows(X), "X")
        val_parties = self._ids("val_parties", self.val_parties, n_rows(X_val), "X_val")
        k = self.n_parties or int(parties.max()) + 1
        k = check("n_parties", k, Interval(int, 1, None))
        for name, ids in (("parties", parties), ("val_parties", val_parties)):
            if ids.size and int(ids.max()) >= k:
                raise invalid(name, ids, f"party ids in [0, {k - 1}] (n_parties={k})")
        counts = np.bincount(parties, minlength=k)
        if (counts == 0).any():
            empty = np.flatnonzero(counts == 0).tolist()
            raise invalid("parties", parties, f"every party 0..{k - 1} to have training "
                          f"records; party(ies) {empty[:10]} have none")
        object.__setattr__(self, "X", X.copy() if hasattr(X, "copy") else X)
        object.__setattr__(self, "X_val", X_val.copy() if hasattr(X_val, "copy") else X_val)
        if isinstance(self.X, np.ndarray):
            self.X.flags.writeable = False
        if isinstance(self.X_val, np.ndarray):
            self.X_val.flags.writeable = False
        object.__setattr__(self, "y", _frozen(y))
        object.__setattr__(self, "y_val", _frozen(y_val))
        object.__setattr__(self, "parties", _frozen(parties))
        object.__setattr__(self, "val_parties", _frozen(val_parties))
        object.__setattr__(self, "n_parties", k)

    @staticmethod
    def _ids(name: str, ids: Any, n: int, x_name: str) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise invalid(name, ids, f"a 1-D array of party ids, got shape {arr.shape}")
        if len(arr) != n:
            raise invalid(name, ids, f"one party id per row of {x_name} ({n}); got {len(arr)}")
        if arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0):
            if not (arr.dtype.kind == "f" and np.all(arr == np.round(arr)) and arr.min() >= 0):
                raise invalid(name, ids, "non-negative integer party ids")
        return arr.astype(np.int64)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # NumPy does not pickle the read-only flag: a pickled (or deep-copied) container
        # came back with arrays that could be written to
        self.__dict__.update(state)
        for name in ("X", "X_val", "y", "y_val", "parties", "val_parties"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    def __len__(self) -> int:
        return len(self.y)

    def party(self, i: int) -> tuple[Any, np.ndarray]:
        """Party ``i``'s training records ``(X_i, y_i)`` (copies)."""
        i = check("i", i, Interval(int, 0, self.n_parties - 1))
        idx = np.flatnonzero(self.parties == i)
        return take_rows(self.X, idx), self.y[idx].copy()

    def validation(self, i: int | None = None) -> tuple[Any, np.ndarray]:
        """Party ``i``'s validation records, or everybody's pooled when ``i`` is None."""
        if i is None:
            idx = np.arange(len(self.y_val))
        else:
            i = check("i", i, Interval(int, 0, self.n_parties - 1))
            idx = np.flatnonzero(self.val_parties == i)
        return take_rows(self.X_val, idx), self.y_val[idx].copy()

    def replace_party(self, i: int, X: Any, y: Any, *, X_val: Any = None,
                      y_val: Any = None) -> PartyData:
        """A new container in which party ``i`` submitted ``(X, y)`` (and, if given,
        ``(X_val, y_val)``) instead of its records; the other parties' records and the
        order of the parties are unchanged (party ``i``'s rows move to the end). A
        DataFrame must have the pool's columns (in any order); a column that is
        categorical in the pool is given the pool's categories (strings, or a categorical
        of other categories, are converted; a value outside them is refused), and one of a
        string dtype in the pool its dtype (text held as objects is converted)."""
        i = check("i", i, Interval(int, 0, self.n_parties - 1))
        check_aligned("y", y, X)
        X = as_features("X", X)
        check_same_columns("X", X, self.X, "the parties' training records")
        X = as_pool_categories("X", X, self.X, "the parties' training records")
        y = as_labels("y", y, n_rows(X), X=X)
        if n_rows(X) == 0:
            raise invalid("X", X, f"at least one training record for party {i}")
        keep = np.flatnonzero(self.parties != i)
        Xs = stack_rows([take_rows(self.X, keep), X])
        ys = np.concatenate([self.y[keep], y])
        ps = np.concatenate([self.parties[keep], np.full(len(y), i, dtype=np.int64)])
        Xv, yv, pv = self.X_val, self.y_val, self.val_parties
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise invalid("X_val", X_val, "X_val and y_val given together")
            check_aligned("y_val", y_val, X_val, "X_val")
            X_val = as_features("X_val", X_val)
            check_same_columns("X_val", X_val, self.X_val, "the parties' validation records")
            X_val = as_pool_categories("X_val", X_val, self.X_val,
                                       "the parties' validation records")
            y_val = as_labels("y_val", y_val, n_rows(X_val), x_name="X_val", X=X_val)
            keep_v = np.flatnonzero(self.val_parties != i)
            Xv = stack_rows([take_rows(self.X_val, keep_v), X_val])
            yv = np.concatenate([self.y_val[keep_v], y_val])
            pv = np.concatenate([self.val_parties[keep_v],
                                 np.full(len(y_val), i, dtype=np.int64)])
        return PartyData(Xs, ys, ps, Xv, yv, pv, self.n_parties)


def _size(name: str, value: Any, n: int) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return check(name, value, Interval(int, 1, n - 1))
    frac = check(name, value, Interval(int, 1, n - 1), Interval(float, 0, 1, closed="neither"))
    return max(1, int(round(frac * n)))


def _is_fraction(value: Any) -> bool:
    return not (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def split_parties(X: Any, y: Any, n_parties: int, *, validation_size: int | float,
                  random_state: int | np.random.Generator,
                  train_size: int | float | None = None) -> PartyData:
    """Shuffle the records and deal them out to ``n_parties`` parties.

    ``validation_size`` records (a count, or a fraction of the rows) form the validation
    pool; ``train_size`` records (default: all the rest) form the training pool (when both
    are fractions, the pools are cut at the rounded positions ``validation_size * n`` and
    ``(validation_size + train_size) * n``, so fractions summing to 1 use every row). Each
    pool is cut into ``n_parties`` consecutive blocks of equal size (sizes differ by at most one
    when the pool does not divide evenly), so party ``i`` submits block ``i`` of each.
    Hayes and Ohrimenko's Credit Card split is ``validation_size=10_000, train_size=20_000``
    with 10 parties: 2,000 training and 1,000 validation records per party.

    ``random_state`` is an int seed or a ``numpy.random.Generator``. ``X`` and ``y`` are not
    modified; a DataFrame keeps its index and dtypes (categoricals, missing values).
    """
    check_aligned("y", y, X)
    X = as_features("X", X)
    n = n_rows(X)
    y = as_labels("y", y, n, X=X)
    if n < 2:
        raise invalid("X", X, "at least 2 rows (a training and a validation record)")
    n_parties = check("n_parties", n_parties, Interval(int, 1, None))
    rng = as_numpy_generator(random_state, "random_state")
    n_val = _size("validation_size", validation_size, n)
    if train_size is None:
        n_train = n - n_val
    elif _is_fraction(validation_size) and _is_fraction(train_size):
        _size("train_size", train_size, n)  # checked as a share
        # two shares of the rows: the pools end at the rounded cut points v*n and
        # (v + t)*n, so shares that sum to 1 use every row (each rounded on its own, 0.3
        # and 0.7 of 15 rows left a row out, and of 25 rows asked for 26)
        end = int(round((float(validation_size) + float(train_size)) * n))
        n_train = max(1, end - n_val)
    else:
        n_train = _size("train_size", train_size, n)
    if n_train + n_val > n:
        raise invalid("train_size", train_size, f"at most {n - n_val} records (the rows "
                      f"left after a validation pool of {n_val})")
    if n_train < n_parties:
        raise invalid("n_parties", n_parties, f"at most {n_train} parties: each needs a "
                      f"training record (the training pool has {n_train})")
    if n_val < n_parties:
        raise invalid("n_parties", n_parties, f"at most {n_val} parties: each needs a "
                      f"validation record (the validation pool has {n_val})")
    perm = rng.permutation(n)
    val_idx, train_idx = perm[:n_val], perm[n_val:n_val + n_train]
    parties = np.concatenate([np.full(len(b), k, dtype=np.int64)
                              for k, b in enumerate(np.array_split(train_idx, n_parties))])
    val_parties = np.concatenate([np.full(len(b), k, dtype=np.int64)
                                  for k, b in enumerate(np.array_split(val_idx, n_parties))])
    return PartyData(take_rows(X, train_idx), y[train_idx], parties,
                     take_rows(X, val_idx), y[val_idx], val_parties, n_parties)
