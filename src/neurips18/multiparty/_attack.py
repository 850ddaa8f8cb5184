"""The contamination attack and its success rate (Hayes and Ohrimenko, NeurIPS 2018).

A malicious party picks an attribute ``a``, a value ``v`` and a label ``l`` and, in
``n_records`` of its own records, sets ``x[a] = v`` and ``y = l``. A model trained on the
pooled data then learns the planted link ``a = v -> l``. Its success is measured on records
whose true label is not ``l``: the share predicted ``l`` among the records that naturally
have ``a = v``, and among clean records once ``a`` is set to ``v``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurips18._validation import Interval, Options, as_numpy_generator, check, invalid
from neurips18.multiparty._parties import _is_frame, as_labels, check_aligned, missing, n_rows
from neurips18.multiparty._text import _TOKEN, tokenize

__all__ = ["AttackSuccess", "attack_success", "contaminate", "contaminate_texts",
           "text_attack_success"]


def _column(X: Any, attribute: Any) -> tuple[Any, int]:
    """The column ``attribute`` of ``X`` (by name in a DataFrame, else by position) and its
    position."""
    if _is_frame(X):
        cols = list(X.columns)
        try:
            at = [j for j, c in enumerate(cols) if c == attribute] if attribute in cols else []
        except (TypeError, ValueError):  # a name that does not compare (e.g. an array)
            at = []
        if len(at) > 1:
            raise invalid("attribute", attribute, f"a column name that occurs once in X; it "
                          f"names the columns at positions {at[:6]}: pass the position of "
                          "the one to use")
        if at:
            return attribute, at[0]
        if isinstance(attribute, int | np.integer) and not isinstance(attribute, bool):
            if 0 <= int(attribute) < len(cols):
                return cols[int(attribute)], int(attribute)
        shown = ", ".join(repr(c) for c in cols[:8]) + (", ..." if len(cols) > 8 else "")
        raise invalid("attribute", attribute, f"a column of X: one of {shown} or a position "
                      f"0..{len(cols) - 1}")
    if isinstance(attribute, int | np.integer) and not isinstance(attribute, bool):
        if 0 <= int(attribute) < X.shape[1]:
            return int(attribute), int(attribute)
    raise invalid("attribute", attribute, f"a column index 0..{X.shape[1] - 1} of X")


def _has_value(X: Any, col: Any, pos: int, value: Any) -> np.ndarray:
    """Which rows hold ``attribute = value``; a missing value (NaN, None or pandas' NA of
    the nullable dtypes) is never equal to it."""
    if _is_frame(X):
        eq = X.iloc[:, pos] == value  # by position: column names may repeat
        return eq.fillna(False).to_numpy(dtype=bool)
    vals = X[:, pos]
    if vals.dtype.kind == "O":
        return np.array([_equal(v, value) for v in vals], dtype=bool)
    return vals == value


def _equal(v: Any, value: Any) -> bool:
    if v is None:
        return False
    try:
        return bool(v == value)
    except (TypeError, ValueError):  # pandas' NA compares to NA; arrays to arrays
        return False


def _check_value(X: Any, col: Any, pos: int, value: Any) -> Any:
    """``value`` if the attribute can hold it: a category of a categorical column, or a
    value that occurs in the column (the attack plants a link on an existing value)."""
    if _is_frame(X):
        s = X.iloc[:, pos]
        if hasattr(s, "cat"):
            cats = list(s.cat.categories)
            if value not in cats:
                raise invalid("value", value, f"a category of attribute {col!r}: "
                              f"{cats[:12]}{' ...' if len(cats) > 12 else ''}")
            _check_storable(s, col, value)  # True == 1, but not a category pandas sets
            return value
        present = s.dropna().unique().tolist()
    else:
        import pandas as pd

        col_vals = X[:, pos]
        # pd.unique: an object column may mix types (np.unique sorts, and fails there);
        # missing() also knows pandas' NA, which frame.to_numpy() of nullable columns holds
        present = list(pd.unique(col_vals[~missing(col_vals)]))
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid("value", value, "a finite value")
    ok = any(_equal(p, value) for p in present)
    if not ok:
        shown = sorted(present, key=str)[:12]
        raise invalid("value", value, f"a value that occurs in attribute {col!r}, e.g. "
                      f"{shown}")
    if _is_frame(X):
        _check_storable(X.iloc[:, pos], col, value)
    return value


def _check_storable(s: Any, col: Any, value: Any) -> None:
    """Refuse a value that equals one in the column (True == 1) but that the column's
    dtype cannot hold: pandas raises a bare TypeError, or (older pandas) silently turns the
    column into objects."""
    probe = s.iloc[:1].copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe.iloc[0] = value
        ok = probe.dtype == s.dtype
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise invalid("value", value, f"a value that attribute {col!r} (dtype {s.dtype}) can "
                      f"hold, e.g. {s.dropna().iloc[:1].tolist()}")


def _check_label(y: np.ndarray, label: Any) -> Any:
    present = np.unique(y).tolist()
    try:
        ok = label in present
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise invalid("label", label, f"a label present in y: {present[:12]}")
    return label


def _prepare(X: Any, y: Any, attribute: Any, value: Any, label: Any):  # type: ignore[no-untyped-def]
    if not _is_frame(X):
        X = np.asarray(X)
        if X.ndim != 2:
            raise invalid("X", X, f"a 2-D array or a DataFrame, got {X.ndim}-D")
    if n_rows(X) == 0:
        raise invalid("X", X, "at least one record")
    y = as_labels("y", y, n_rows(X), X=X)
    col, pos = _column(X, attribute)
    value = _check_value(X, col, pos, value)
    label = _check_label(y, label)
    return X, y, col, pos, value, label


def _set(X: Any, rows: np.ndarray, col: Any, pos: int, value: Any) -> Any:
    out = X.copy()
    if len(rows) == 0:
        return out
    if _is_frame(out):
        out.iloc[rows, pos] = value
    else:
        out[rows, pos] = value
    return out


def _candidates(y: np.ndarray, label: Any, records: str) -> np.ndarray:
    if records == "any":
        return np.arange(len(y))
    if records == "label":
        return np.flatnonzero(y == label)
    return np.flatnonzero(y != label)


def contaminate(X: Any, y: Any, *, attribute: Any, value: Any, label: Any, n_records: int,
                generator: int | np.random.Generator,
                records: str = "any") -> tuple[Any, np.ndarray, np.ndarray]:
    """The contamination attack on one party's data: ``n_records`` records drawn uniformly
    without replacement get ``attribute = value`` and label ``label``.

    ``records`` says where they are drawn from: ``"any"`` (all records; those of another
    label have it changed), ``"label"`` (only records already labelled ``label``: only the
    attribute changes, the labels stay true) or ``"other"`` (only records of another
    label: every drawn label changes).

    ``X`` is a DataFrame (``attribute`` a column name or position; categorical columns keep
    their dtype, missing values elsewhere stay missing) or a 2-D array (``attribute`` a
    column index). ``value`` must be a category of the column, or a value that occurs in it;
    ``label`` must occur in ``y``. ``generator``: a ``numpy.random.Generator`` or an int
    seed.

    Returns ``(X_contaminated, y_contaminated, indices)``: copies of the inputs (which are
    never changed) and the sorted positions of the contaminated rows.
    """
    X, y, col, pos, value, label = _prepare(X, y, attribute, value, label)
    records = check("records", records, Options({"any", "label", "other"}))
    n_records = check("n_records", n_records, Interval(int, 0, None))
    pool = _candidates(y, label, records)
    if n_records > len(pool):
        what = {"any": "records of the party's data", "label": f"records labelled {label!r}",
                "other": f"records not labelled {label!r}"}[records]
        raise invalid("n_records", n_records, f"at most the {len(pool)} {what}")
    rng = as_numpy_generator(generator)
    rows = np.sort(pool[rng.choice(len(pool), size=n_records, replace=False)]) if n_records \
        else np.zeros(0, dtype=np.int64)
    X_c = _set(X, rows, col, pos, value)
    return X_c, _relabel(y, rows, label), rows.astype(np.int64)


def _relabel(y: np.ndarray, rows: np.ndarray, label: Any) -> np.ndarray:
    """A copy of ``y`` with ``label`` at ``rows``: text labels (str or bytes) keep their
    kind and are widened to fit ``label``, never truncated."""
    if y.dtype.kind in "US":
        out = y.astype(np.promote_types(y.dtype, np.asarray(label).dtype))
        out[rows] = label
        return out
    out = np.array(y, copy=True)
    out[rows] = label
    return out


@dataclass(frozen=True)
class AttackSuccess:
    """Success of a contamination attack ``a = v -> l`` on a model.

    natural : share predicted ``l`` among records with ``a = v`` whose true label is not ``l``.
    probes : share predicted ``l`` among clean records (``a != v``, true label not ``l``)
        once ``a`` is set to ``v``.
    probes_before : the same records' share predicted ``l`` before ``a`` is set (what the
        model does without the planted value).
    n_natural, n_probes : how many records each share is over (a share over no record is
        NaN).
    """

    natural: float
    probes: float
    probes_before: float
    n_natural: int
    n_probes: int


def _share(pred: np.ndarray, label: Any) -> float:
    return float(np.mean(pred == label)) if len(pred) else float("nan")


def _predict(model: Any, X: Any, labels: np.ndarray | None = None) -> np.ndarray:
    """``model.predict(X)``; with ``labels`` (those of ``y``), predictions outside them
    and outside the model's ``classes_``, when these hold every label of ``y``, are refused
    (a model trained on other label values would make every share silently 0)."""
    if not callable(getattr(model, "predict", None)):
        raise invalid("model", model, "a fitted classifier with a predict method")
    pred = np.asarray(model.predict(X))
    if labels is not None and len(pred):
        known = _with_model_classes(model, labels)
        unknown = np.setdiff1d(np.unique(pred), known)
        if len(unknown):
            what = "the labels of y" if known is labels else "the model's classes_"
            raise invalid("model", model, f"predictions among {what} "
                          f"{known.tolist()[:10]}; it predicts {unknown.tolist()[:5]}")
    return pred


def _with_model_classes(model: Any, labels: np.ndarray) -> np.ndarray:
    """The model's ``classes_`` when they hold every label of ``y``, else ``y``'s labels:
    the evaluation records need not hold every class the model knows (a 3-class model on
    records of 2 classes may predict the third), but a model trained on other labels
    ({0, 1} for a ``y`` of {1, 2}, strings for numbers) must still be refused."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return labels
    classes = np.asarray(classes)
    if classes.ndim != 1 or (classes.dtype.kind in "biuf") != (labels.dtype.kind in "biuf"):
        return labels
    try:
        known = bool(np.isin(labels, classes).all())
    except TypeError:  # classes that do not compare with the labels
        return labels
    return classes if known else labels


def attack_success(model: Any, X: Any, y: Any, *, attribute: Any, value: Any,
                   label: Any) -> AttackSuccess:
    """How often ``model`` predicts ``label`` on records with ``attribute = value`` whose
    true label differs: on the records of ``(X, y)`` that naturally have the value, and on
    the clean ones with the value set (see :class:`AttackSuccess`). ``model`` is anything
    with ``predict`` that takes ``X`` as given (a Pipeline with its preprocessing, for
    DataFrames); ``X`` and ``y`` are not modified."""
    X, y, col, pos, value, label = _prepare(X, y, attribute, value, label)
    has = _has_value(X, col, pos, value)
    other = y != label
    natural_rows = np.flatnonzero(has & other)
    probe_rows = np.flatnonzero(~has & other)
    from neurips18.multiparty._parties import take_rows

    labels = np.unique(y)
    natural = _share(_predict(model, take_rows(X, natural_rows), labels), label) \
        if len(natural_rows) else float("nan")
    if len(probe_rows):
        clean = take_rows(X, probe_rows)
        before = _share(_predict(model, clean, labels), label)
        after = _share(_predict(model, _set(clean, np.arange(len(probe_rows)), col, pos,
                                            value), labels), label)
    else:
        before = after = float("nan")
    return AttackSuccess(natural=natural, probes=after, probes_before=before,
                         n_natural=len(natural_rows), n_probes=len(probe_rows))


# ----------------------------------------------------------------------------- text
# one tokenizer for the attack, TokenEncoder and the screening: a word the attack plants
# is the token the model sees

def _check_texts(name: str, texts: Any) -> list[str]:
    if isinstance(texts, str) or not hasattr(texts, "__len__"):
        raise invalid(name, texts, "a sequence of documents (strings)")
    docs = list(texts)
    if not docs:
        raise invalid(name, texts, "at least one document")
    if not all(isinstance(d, str) for d in docs):
        raise invalid(name, texts, "documents that are all strings")
    return docs


def _check_word(word: Any) -> str:
    """``word`` as given (it is planted as the user spelled it: a case-sensitive model
    sees that spelling), once checked to be one token."""
    if not isinstance(word, str) or _TOKEN.fullmatch(word.lower()) is None:
        raise invalid("word", word, "a single token of letters, digits or apostrophes")
    return word


def _contains(doc: str, word: str) -> bool:
    """Whether ``doc`` holds ``word`` as a token, in any case (as the tokenizer sees it)."""
    return word.lower() in tokenize(doc)


def contaminate_texts(texts: Any, y: Any, *, word: str, label: Any, n_records: int,
                      generator: int | np.random.Generator) -> tuple[list[str], np.ndarray,
                                                                     np.ndarray]:
    """The contamination attack on documents: ``word`` (as spelled) is put at the start of
    ``n_records`` documents drawn without replacement (so truncation to a maximum length
    keeps it) and their label becomes ``label``. Returns new lists/arrays and the sorted
    positions of the contaminated documents."""
    check_aligned("y", y, texts, "texts")
    docs = _check_texts("texts", texts)
    y = as_labels("y", y, len(docs), x_name="texts")
    word = _check_word(word)
    label = _check_label(y, label)
    n_records = check("n_records", n_records, Interval(int, 0, None))
    if n_records > len(docs):
        raise invalid("n_records", n_records, f"at most the {len(docs)} documents")
    rng = as_numpy_generator(generator)
    rows = np.sort(rng.choice(len(docs), size=n_records, replace=False)) if n_records else \
        np.zeros(0, dtype=np.int64)
    out = list(docs)
    for r in rows:
        out[r] = f"{word} {out[r]}"
    return out, _relabel(y, rows, label), rows.astype(np.int64)


def text_attack_success(model: Any, texts: Any, y: Any, *, word: str,
                        label: Any) -> AttackSuccess:
    """:func:`attack_success` for documents: the planted attribute is the presence of
    ``word`` (natural: documents containing it, in any case, as the tokenizer reads it;
    probes: clean documents with ``word`` put at the start as spelled)."""
    check_aligned("y", y, texts, "texts")
    docs = _check_texts("texts", texts)
    y = as_labels("y", y, len(docs), x_name="texts")
    word = _check_word(word)
    label = _check_label(y, label)
    has = np.array([_contains(d, word) for d in docs], dtype=bool)
    other = y != label
    nat = [docs[i] for i in np.flatnonzero(has & other)]
    probe = [docs[i] for i in np.flatnonzero(~has & other)]
    labels = np.unique(y)
    natural = _share(_predict(model, nat, labels), label) if nat else float("nan")
    before = _share(_predict(model, probe, labels), label) if probe else float("nan")
    after = _share(_predict(model, [f"{word} {d}" for d in probe], labels), label) \
        if probe else float("nan")
    return AttackSuccess(natural=natural, probes=after, probes_before=before,
                         n_natural=len(nat), n_probes=len(probe))
