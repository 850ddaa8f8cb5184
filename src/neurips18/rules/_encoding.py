"""Turn a table into attribute/value codes: categories kept, numbers binned.

Every attribute becomes a small integer code per row. Categorical columns keep their
categories (missing values form their own category ``"missing"``, printed
``"<missing>"`` in a column that has a real category of that name); numeric columns are cut
into at most ``n_bins`` intervals (missing values again form a category), at training
quantiles (``binning="quantile"``) or at the thresholds of a small decision tree fitted to
that column alone against the labels (``binning="tree"``: supervised cut points, where the
label changes, in the spirit of the entropy-based discretisation of Fayyad and Irani 1993).
At predict time a category never seen in training gets code ``-1``: it satisfies no
condition on that attribute.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MISSING = "missing"
# the label of a numeric column's whole range: every number, not the missing values (a
# bare "any" read as if those were covered too)
ANY_NUMBER = "any number"


def _fmt(x: float) -> str:
    """``x`` in six significant digits when they are exactly ``x``, else in full: a printed
    rule must be the rule that predict applies."""
    s = f"{x:.6g}"
    return s if float(s) == x else repr(float(x))


def _short_cuts(edges: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Each cut moved to the shortest decimal that splits the training values as it does.

    A cut ``e`` separates the training values below it (the largest is ``a``) from those at
    or above it (the smallest is ``b``); any ``c`` in ``(a, b]`` codes the training data the
    same, so the cut becomes the first ``c`` there that is written with few digits, and the
    printed rule is short and exact.
    """
    uniq = np.unique(finite)
    out = []
    for e in edges:
        k = int(np.searchsorted(uniq, e, side="left"))  # uniq[k - 1] < e <= uniq[k]
        a, b = float(uniq[k - 1]), float(uniq[k])
        c = b
        for digits in range(1, 18):
            cand = float(f"{b:.{digits}g}")
            if a < cand <= b:
                c = cand
                break
        out.append(c)
    return np.unique(np.asarray(out, dtype=float))


@dataclass
class AttributeEncoding:
    name: str
    kind: str  # "categorical" or "numeric"
    labels: list[str]  # one readable label per code
    categories: list[Any] = field(default_factory=list)  # categorical: raw values per code
    edges: np.ndarray | None = None  # numeric: inner cut points (increasing)
    has_missing_code: bool = False

    @property
    def n_values(self) -> int:
        return len(self.labels)


def _unclear(label: str) -> bool:
    """Whether ``label`` printed bare in ``{..., label, ...}`` misreads as other values."""
    return (label == "" or label != label.strip()
            or any(ch in label for ch in ",{}\n\r"))


def _category_labels(cats: list[Any]) -> list[str]:
    """One distinct printed label per category: ``str`` of the value, and its ``repr``
    where two values print alike (the number 1 and the string "1" of one object column
    are ``1`` and ``'1'``); if even those coincide, the type's name is added.

    A string that would not read as one element of a printed set ``{a, b}`` is shown by
    its ``repr`` too: one that is empty, starts or ends with white space, or holds a
    comma, a brace or a line break (the category ``"Portland, OR"`` printed as
    ``city in {Portland, OR}``, read as the two values ``Portland`` and ``OR``; the empty
    string as ``city in {}``). Other values keep their ``str``: an interval of ``pd.cut``
    prints ``(0.5, 1.5]``, its own brackets around the comma."""
    labels = [repr(c) if isinstance(c, str) and _unclear(c) else str(c) for c in cats]
    for spell in (repr, lambda c: f"{c!r} ({type(c).__name__})"):
        counts = Counter(labels)
        if len(counts) == len(labels):
            break
        labels = [spell(c) if counts[lab] > 1 else lab for c, lab in zip(cats, labels,
                                                                          strict=True)]
    return labels


def _is_categorical(col: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))


def _tree_edges(values: np.ndarray, y: np.ndarray, n_bins: int,
                sample_weight: np.ndarray | None) -> np.ndarray:
    from sklearn.tree import DecisionTreeClassifier

    if sample_weight is None:
        leaf = max(1, int(0.01 * len(values)))
        tree = DecisionTreeClassifier(max_leaf_nodes=n_bins, min_samples_leaf=leaf,
                                      random_state=0)
    else:  # frequency weights: the leaf size of the replicated data, counted in weight
        total = float(sample_weight.sum())
        fraction = max(1, int(0.01 * total)) / total
        if fraction > 0.5:
            # less than two rows' worth of weight (e.g. weights that sum to 1): no split
            # leaves two leaves of one row each, so the column has no cut, as the
            # replicated data would have (scikit-learn refuses a fraction above 0.5)
            return np.empty(0)
        tree = DecisionTreeClassifier(max_leaf_nodes=n_bins, random_state=0,
                                      min_weight_fraction_leaf=fraction)
    tree.fit(values[:, None], y, sample_weight=sample_weight)
    t = tree.tree_
    return np.unique(t.threshold[t.children_left != -1])


def _quantiles(values: np.ndarray, q: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """``np.quantile(values, q)`` (linear interpolation), with frequency weights: for integer
    weights exactly the quantiles of the data with each value repeated ``w`` times."""
    if sample_weight is None:
        return np.quantile(values, q)
    order = np.argsort(values, kind="stable")
    xs, cw = values[order], np.cumsum(sample_weight[order])
    h = (cw[-1] - 1.0) * q  # position in the replicated sorted data
    lo, hi = np.floor(h), np.ceil(h)

    def at(k: np.ndarray) -> np.ndarray:  # the k-th value of the replicated sorted data
        return xs[np.minimum(np.searchsorted(cw, k, side="right"), len(xs) - 1)]

    return at(lo) + (h - lo) * (at(hi) - at(lo))


def fit_encoding(
    X: pd.DataFrame,
    categorical: set[Any],
    n_bins: int,
    *,
    binning: str = "quantile",
    y: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
) -> list[AttributeEncoding]:
    encs: list[AttributeEncoding] = []
    for name in X.columns:
        col = X[name]
        missing = col.isna().to_numpy()
        if name in categorical:
            observed = col[~missing]
            if isinstance(col.dtype, pd.CategoricalDtype):
                present = set(observed.astype(object).tolist())
                cats = [c for c in col.cat.categories.tolist() if c in present]
            else:
                cats = sorted(set(observed.tolist()), key=lambda v: (str(type(v)), str(v)))
            enc = AttributeEncoding(str(name), "categorical", _category_labels(cats),
                                    categories=list(cats))
        else:
            values = col.to_numpy(dtype=float)
            finite = values[~missing]
            if finite.size and binning == "tree" and y is not None:
                w = None if sample_weight is None else sample_weight[~missing]
                # the tree sees each value's rank among the distinct values, not the value:
                # scikit-learn's trees work in float32, where values below about 1e-45
                # are all 0 (the column was never cut), values past 3.4e38 are refused
                # and large ones merge (timestamps in seconds, 128 apart); a split only
                # depends on the order, so the ranks give the tree the same choice. A
                # threshold t between ranks r and r + 1 splits rank <= t from rank > t;
                # the codes cut x < e from x >= e, so the cut is the value of rank r + 1
                uniq, rank = np.unique(finite, return_inverse=True)
                thr = _tree_edges(rank.astype(float), y[~missing], n_bins, w)
                idx = np.searchsorted(np.arange(len(uniq)), thr, side="right")
                edges = np.unique(uniq[idx[idx < len(uniq)]])
                edges = edges[edges > finite.min()]
            elif finite.size:
                w = None if sample_weight is None else sample_weight[~missing]
                qs = _quantiles(finite, np.linspace(0, 1, n_bins + 1)[1:-1], w)
                edges = np.unique(qs)
                # a cut equal to the minimum makes an empty first bin
                edges = edges[edges > finite.min()]
            else:
                edges = np.empty(0)
            if edges.size:
                edges = _short_cuts(edges, finite)
            bounds = [-np.inf, *edges.tolist(), np.inf]
            labels = []
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                if np.isneginf(lo):
                    labels.append(f"< {_fmt(hi)}" if np.isfinite(hi) else ANY_NUMBER)
                elif np.isposinf(hi):
                    labels.append(f">= {_fmt(lo)}")
                else:
                    labels.append(f"[{_fmt(lo)}, {_fmt(hi)})")
            enc = AttributeEncoding(str(name), "numeric", labels, edges=edges)
        if missing.any():
            # a real category called "missing" keeps its name; the missing values then
            # print as "<missing>" (or "<<missing>>" when "<missing>" is taken too, and so
            # on), so that a printed rule names what it covers
            label = MISSING
            while label in enc.labels:
                label = f"<{label}>"
            enc.labels.append(label)
            enc.has_missing_code = True
        encs.append(enc)
    return encs


def _numeric_values(col: pd.Series, name: str) -> np.ndarray:
    """A column binned as numbers in fit, as float64 (NaN for missing values). Dates and
    durations are refused (as floats they were nanosecond counts, compared with the
    training cut points without a word), and so is a value that is not a number."""
    if col.dtype.kind in "mM":
        raise ValueError(f"column {name!r} was numeric in fit; it holds {col.dtype} values, "
                         "which are not numbers")
    try:
        return col.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        conv = pd.to_numeric(col.astype(object), errors="coerce")
        bad = conv.isna().to_numpy() & col.notna().to_numpy()
        shown = col[bad].iloc[0] if bad.any() else col.dtype
        raise ValueError(f"column {name!r} was numeric in fit; it holds the value {shown!r}, "
                         "which is not a number") from None


def transform(X: pd.DataFrame, encs: list[AttributeEncoding]) -> np.ndarray:
    """Codes (n, d) int32; ``-1`` marks a value unseen in training."""
    n = len(X)
    codes = np.empty((n, len(encs)), dtype=np.int32)
    for j, enc in enumerate(encs):
        col = X.iloc[:, j]
        missing = col.isna().to_numpy()
        if enc.kind == "categorical":
            lookup = {c: i for i, c in enumerate(enc.categories)}
            raw = col.astype(object).to_numpy()
            out = np.fromiter((lookup.get(v, -1) for v in raw), dtype=np.int32, count=n)
        else:
            assert enc.edges is not None
            values = _numeric_values(col, enc.name)
            out = np.searchsorted(enc.edges, np.where(missing, 0.0, values), side="right").astype(
                np.int32
            )
        if missing.any():
            out[missing] = enc.n_values - 1 if enc.has_missing_code else -1
        codes[:, j] = out
    return codes
