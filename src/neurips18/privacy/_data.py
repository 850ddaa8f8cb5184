"""The data as a sequence of chunks; every pass over it is a map-reduce.

In memory, a NumPy array is read in blocks of rows; a Dask array is mapped block by block on
whatever Dask scheduler is active (a ``distributed.Client`` when one exists) and the partial
aggregates are summed in a tree. Each block is first clipped to the ball of radius ``radius``
(rows longer than that are scaled onto its sphere) and put on the fixed-point grid
``radius * 2**-30`` (truncated toward zero, so no row leaves the ball): sums are exact int64
and do not depend on the blocking, so a Dask fit and an in-memory fit with the same seed
release the same numbers. Noise is added by the caller, once, to the reduced aggregate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from neurips18._validation import Interval, invalid

FRACTION_BITS = 30
CHUNK_ROWS = 32768

RADIUS_RANGE = Interval(float, 1e-100, 1e100)
"""The radii a fit accepts: the grid radius 2**-30, the spread's cap 4 radius^2 and the
squared distances are floats, exact in scale well inside this range (and overflowing
past about 1e+-150)."""


def is_dask(X: Any) -> bool:
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "to_delayed")


def check_dask_array(X: Any) -> None:
    """Raise (naming X) unless the Dask collection ``X`` is a Dask array: a Dask DataFrame
    or Series has no dtype and rows of unknown count, and failed with an AttributeError."""
    import dask.array as da

    if not isinstance(X, da.Array):
        raise invalid("X", f"a Dask {type(X).__name__}", "a NumPy array, a pandas "
                      "DataFrame or a Dask array (a Dask DataFrame converts with "
                      "X.to_dask_array(lengths=True))")


def check_dask_matrix(X: Any) -> Any:
    """Raise (naming X) unless ``X`` is a 2-D numeric Dask array of known shape with at
    least one row and one column and only finite values (one pass over the data), the
    checks an in-memory ``X`` gets; return ``X``."""
    check_dask_array(X)
    if X.ndim != 2:
        raise invalid("X", X, f"a 2-D array, got {X.ndim}-D")
    if X.dtype.kind not in "fiub":
        raise invalid("X", X, "numeric data")
    if any(math.isnan(s) for s in X.shape):
        raise invalid("X", X, "a Dask array of known shape (call compute_chunk_sizes)")
    if X.shape[0] < 1:
        raise invalid("X", X, "at least 1 row(s)")
    if X.shape[1] < 1:  # (a fit charged the accountant, then divided by d = 0)
        raise invalid("X", X, "at least 1 column(s)")
    import dask.array as da

    bad = int((~da.isfinite(X)).sum().compute()) if X.dtype.kind == "f" else 0
    if bad:
        raise invalid("X", X, f"finite values; found {bad} NaN or inf")
    return X


def _clip_to_ball(x: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(``x`` with every row longer than ``radius`` scaled onto the sphere, the mask of
    those rows); ``x`` itself is not modified. A row whose squared norm overflows (an entry
    past about 1e154) has an infinite norm, and ``radius / inf`` put it at the origin
    instead of on the sphere; it is scaled from the row divided by its largest entry. The
    other rows get the same bits as before (the row times ``radius / norm``)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    over = norms > radius
    if not over.any():
        return x, over
    out = x * np.where(over, radius / np.where(over, norms, 1.0), 1.0)[:, None]
    huge = np.flatnonzero(np.isinf(norms))
    if huge.size:  # y = x / max|x_i| has entries in [-1, 1]: its norm does not overflow
        y = x[huge] / np.abs(x[huge]).max(axis=1)[:, None]
        out[huge] = y * (radius / np.sqrt(np.einsum("ij,ij->i", y, y)))[:, None]
    return out, over


def prepare(block: Any, radius: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(points as float64 on the grid, the same as int64 grid steps, rows clipped)."""
    x = np.asarray(block, dtype=np.float64)
    x, over = _clip_to_ball(x, radius)
    scale = 2.0**FRACTION_BITS / radius
    q = np.trunc(x * scale).astype(np.int64)
    return q * (radius / 2.0**FRACTION_BITS), q, int(over.sum())


def prepare_steps(block: Any, radius: float) -> tuple[np.ndarray, np.ndarray, int]:
    """As :func:`prepare`, with the grid steps as integer-valued float64 (exact: they are
    at most 2**30 in size), the form every pass uses."""
    x = np.asarray(block, dtype=np.float64)
    x, over = _clip_to_ball(x, radius)
    steps = x * (2.0**FRACTION_BITS / radius)
    np.trunc(steps, out=steps)
    return steps * (radius / 2.0**FRACTION_BITS), steps, int(over.sum())


class _LazySteps:
    """The grid steps of a prepared block, computed on first use (``np.asarray``): only
    the passes that sum coordinates need them. ``memo`` is the block's store of values
    that later passes of the same fit reuse (:func:`block_memo`)."""

    def __init__(self, xf: np.ndarray, radius: float, memo: Memo | None = None) -> None:
        self.xf, self.radius, self.shape = xf, radius, xf.shape
        self.memo = memo
        self._steps: np.ndarray | None = None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._steps is None:  # exact: xf is steps * unit with |steps| <= 2**30
            self._steps = np.rint(self.xf * (2.0**FRACTION_BITS / self.radius))
        return self._steps if dtype is None else self._steps.astype(dtype, copy=False)


class Memo:
    """Values computed from one prepared block alone (its rows' squared norms, their hash
    keys) and kept for the later passes of the same fit. Every value is what the pass would
    compute from the block anyway, so reusing it changes no result; the memos of all the
    blocks of a :class:`Prepared` share a byte budget (the size of the data), and a value
    past the budget is simply not kept."""

    def __init__(self, budget: list[int]) -> None:
        self._values: dict[Any, Any] = {}
        self._budget = budget  # shared by the blocks: [bytes left]

    def get(self, key: Any, compute: Callable[[], Any], owner: Any = None) -> Any:
        """The value stored under ``key`` for ``owner`` (compared by identity, e.g. the
        hash family of a fit), computing and storing it on first use."""
        hit = self._values.get(key)
        if hit is not None and hit[0] is owner:
            return hit[1]
        value = compute()
        size = int(getattr(value, "nbytes", 0))
        if hit is not None:
            self._budget[0] += int(getattr(hit[1], "nbytes", 0))
            del self._values[key]
        if size <= self._budget[0]:
            self._budget[0] -= size
            self._values[key] = (owner, value)
        return value


def block_memo(q: Any) -> Memo | None:
    """The memo of the block a pass receives as ``q``, or None (a block read afresh)."""
    return getattr(q, "memo", None)


CACHE_BYTES = 2**29
"""In-memory data up to this size is clipped and put on the grid once per fit (one copy of
it is held during the fit) instead of once per pass."""


class Prepared:
    """An in-memory array clipped to the ball and put on the grid once, block by block, for
    the passes of one fit. The blocks are those every pass would prepare, so the results
    are the same bit for bit."""

    def __init__(self, X: np.ndarray, radius: float) -> None:
        self.shape = X.shape
        self.radius = float(radius)
        self.blocks: list[tuple[np.ndarray, int]] = []
        for s in range(0, max(X.shape[0], 1), CHUNK_ROWS):
            xf, _steps, clipped = prepare_steps(X[s:s + CHUNK_ROWS], radius)
            self.blocks.append((xf, clipped))
        budget = [int(X.nbytes)]
        self.memos = [Memo(budget) for _ in self.blocks]


def merge(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """Sum two partial aggregates. Keyed tables (``keys`` sorted unique) are merged by key;
    scalars, entries whose name starts with ``__`` and every entry of an unkeyed aggregate
    are added element-wise."""
    if a is None:
        return b
    if "keys" in a:
        keys = np.concatenate([a["keys"], b["keys"]])
        uniq, inv = np.unique(keys, return_inverse=True)
        out: dict[str, Any] = {"keys": uniq}
        for name in a:
            if name == "keys":
                continue
            if np.ndim(a[name]) == 0 or name.startswith("__"):  # dense entries ride along
                out[name] = a[name] + b[name]
                continue
            v = np.concatenate([a[name], b[name]])
            acc = np.zeros((uniq.size,) + v.shape[1:], dtype=v.dtype)
            np.add.at(acc, inv, v)
            out[name] = acc
        return out
    return {k: a[k] + b[k] for k in a}


def prune(agg: dict[str, Any], capacity: int, counts: str = "cell_counts") -> dict[str, Any]:
    """Keep a keyed table to at most ``capacity`` keys, Misra-Gries style: when it holds
    more, the (capacity + 1)-th largest count is subtracted from every count and the keys
    left without a positive count are dropped (``__pruned`` is then set).

    Summing two tables and pruning the sum keeps the summary mergeable (Agarwal et al.,
    "Mergeable summaries", PODS 2012): over a stream of ``m`` rows every count is an
    underestimate by at most ``m / (capacity + 1)``, so every key holding more than
    ``m / (capacity + 1)`` rows is still in the table, whatever the blocking and the order
    of the merges. The counts left are not exact: the caller recounts its candidates."""
    if "keys" not in agg or agg["keys"].size <= capacity:
        return agg
    c = agg[counts]
    v = np.partition(c, c.size - capacity - 1)[c.size - capacity - 1]
    keep = c > v
    out = dict(agg)
    for name, val in agg.items():
        if name == "keys" or (np.ndim(val) > 0 and not name.startswith("__")):
            out[name] = val[keep]
    out[counts] = c[keep] - v
    out["__pruned"] = np.int64(1)
    return out


def _apply(block: Any, radius: float, fn: Callable[..., dict], args: tuple,
           combine: Callable[[dict | None, dict], dict]) -> dict:
    acc: dict[str, Any] | None = None
    for s in range(0, max(block.shape[0], 1), CHUNK_ROWS):
        xf, q, clipped = prepare_steps(block[s:s + CHUNK_ROWS], radius)
        out = fn(xf, q, *args)
        out["clipped"] = np.int64(clipped)
        out["rows"] = np.int64(xf.shape[0])
        acc = combine(acc, out)
    assert acc is not None
    return acc


def map_reduce(X: Any, radius: float, fn: Callable[..., dict], *args: Any,
               combine: Callable[[dict | None, dict], dict] = merge) -> dict[str, Any]:
    """``fn(points_float, points_int, *args) -> aggregate`` over every block, reduced with
    ``combine`` (default :func:`merge`, a sum). The result also holds ``clipped`` (rows
    scaled onto the sphere) and ``rows``. Only one block's aggregate and the running
    reduction are held at a time in memory (per Dask task on a cluster)."""
    if isinstance(X, Prepared):
        if X.radius != radius:
            raise ValueError(f"data prepared for radius {X.radius}, asked for {radius}")
        acc: dict[str, Any] | None = None
        for (xf, clipped), memo in zip(X.blocks, X.memos, strict=True):
            out = fn(xf, _LazySteps(xf, radius, memo), *args)
            out["clipped"] = np.int64(clipped)
            out["rows"] = np.int64(xf.shape[0])
            acc = combine(acc, out)
        assert acc is not None
        return acc
    if is_dask(X):
        import dask

        blocks = X.rechunk({1: -1}).to_delayed().ravel().tolist()
        parts = [dask.delayed(_apply)(b, radius, fn, args, combine) for b in blocks]
        while len(parts) > 1:
            parts = [dask.delayed(combine)(parts[i], parts[i + 1]) if i + 1 < len(parts)
                     else parts[i] for i in range(0, len(parts), 2)]
        return dask.compute(parts[0])[0]  # type: ignore[no-any-return]
    return _apply(X, radius, fn, args, combine)


def exact_group_sums(q: np.ndarray, labels: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts and int64 sums of the rows of ``q`` (integers, as int64 or integer-valued
    float64) by ``labels`` in [0, m) (rows labelled -1 are left out). The sums are a sparse
    product in float64, exact because every partial sum is an integer below 2**53 (a block
    has at most 2**15 rows, each coordinate at most 2**30 in size)."""
    from scipy import sparse

    keep = np.flatnonzero(labels >= 0)
    lab = labels[keep]
    counts = np.bincount(lab, minlength=m).astype(np.int64)
    if m == 0 or keep.size == 0:
        return counts, np.zeros((m, q.shape[1]), dtype=np.int64)
    onehot = sparse.csr_matrix((np.ones(keep.size), (lab, keep)), shape=(m, q.shape[0]))
    sums = onehot @ np.asarray(q, dtype=np.float64)
    return counts, np.rint(sums).astype(np.int64)
