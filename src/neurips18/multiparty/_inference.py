"""Party-level membership inference and the server's screening of submissions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurips18._validation import Interval, as_numpy_generator, check, invalid
from neurips18.multiparty._parties import (
    PartyData,
    _is_frame,
    as_labels,
    check_aligned,
    n_rows,
    party_index,
    stack_rows,
    take_rows,
)

__all__ = ["PartyInference", "Screening", "party_inference_attack", "screen_parties"]


@dataclass(frozen=True)
class PartyInference:
    """Result of :func:`party_inference_attack`.

    accuracy : the attack model's accuracy at naming the party of held-out records.
    chance : ``1 / n_parties``, the accuracy of a guess that knows nothing.
    majority : the share of the most frequent party among the held-out records (the best
        constant guess; equals ``chance`` when the parties are of equal size).
    per_party : recall of the attack for each party (order of ``parties``' sorted labels).
    n_parties, n_test : number of parties and of held-out records.
    label_only : accuracy on the held-out records of a guess from the label alone (for
        each label, the party most frequent among the attack's training records of that
        label; for a label they lack, the party most frequent among them). The attacker
        is given the labels, so this is what it reaches against a model that leaks
        nothing; it is above ``chance`` and ``majority`` when the parties' labels are
        distributed differently. What the model leaks is ``accuracy`` beyond it.
    """

    accuracy: float
    chance: float
    majority: float
    per_party: tuple[float, ...]
    n_parties: int
    n_test: int
    label_only: float = float("nan")


def _probabilities(model: Any, X: Any) -> np.ndarray:
    fn = getattr(model, "predict_proba", None)
    if not callable(fn):
        if callable(model):
            fn = model
        else:
            raise invalid("model", model, "a fitted classifier with predict_proba (or a "
                          "callable returning class probabilities)")
    p = np.asarray(fn(X), dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n_rows(X):
        raise invalid("model", model, f"class probabilities of shape (n, n_classes); got "
                      f"{p.shape}")
    return p


def _leaf(n_fit: int) -> int:
    """Leaf size of a gradient-boosted attack or screening model fitted on ``n_fit``
    records: scikit-learn's 20, or a tenth of the records when that is fewer. A leaf of 20
    cannot split fewer than 40 records, and the model then gives every record the same
    score (an attack at the majority guess, a screening at AUC 1/2), whatever the data."""
    return min(20, max(2, n_fit // 10))


def _default_attack(seed: int, n_fit: int):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1,
                                          min_samples_leaf=_leaf(n_fit),
                                          early_stopping=False, random_state=seed)


def party_inference_attack(model: Any, X: Any, y: Any, parties: Any, *,
                           attack_model: Any = None, test_size: float = 0.5,
                           random_state: int | np.random.Generator = 0) -> PartyInference:
    """Party-level membership inference against a released model.

    The attacker knows, for part of the pooled training records, the released model's
    class probabilities ``model.predict_proba(X)``, the true labels and the parties; it
    trains ``attack_model`` (default: scikit-learn's HistGradientBoostingClassifier, with
    leaves of 20 records, or of a tenth of its training records when that is fewer) to
    predict the party from ``(probabilities, one-hot label)`` and is scored on the other
    records (a stratified split of ``test_size``). A model that leaks nothing about the
    parties leaves the attack at ``label_only``, the accuracy of a guess from the label
    alone: ``chance`` (``1 / n_parties``) only when the parties are of equal size and
    their labels are distributed alike.

    ``X`` is whatever ``model`` takes (a DataFrame for a Pipeline); it is not modified.
    """
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    n = n_rows(X)
    # X's index, when it has one, decides first; with X an array, y and parties given as
    # Series in different row orders still disagree with each other
    check_aligned("y", y, X)
    check_aligned("parties", parties, X)
    check_aligned("parties", parties, y, "y")
    y = as_labels("y", y, n, X=X)
    parties = as_labels("parties", parties, n, X=X)
    test_size = check("test_size", test_size, Interval(float, 0, 1, closed="neither"))
    rng = as_numpy_generator(random_state, "random_state")
    labels, p_idx = party_index("parties", parties)
    if len(labels) < 2:
        raise invalid("parties", parties, "at least 2 distinct parties")
    counts = np.bincount(p_idx)
    if counts.min() < 2:
        raise invalid("parties", parties, "at least 2 records per party (one to train the "
                      "attack, one to test it)")
    probs = _probabilities(model, X)
    classes = getattr(model, "classes_", None)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if probs.shape[1] != len(classes):
        raise invalid("model", model, f"probabilities over its {len(classes)} classes; got "
                      f"{probs.shape[1]} columns")
    missing = np.setdiff1d(np.unique(y), classes)
    if len(missing):
        raise invalid("y", y, f"labels among the model's classes {classes.tolist()[:10]}; "
                      f"found {missing.tolist()[:5]}")
    onehot = (y[:, None] == classes[None, :]).astype(np.float64)
    feats = np.hstack([probs, onehot])
    seed = int(rng.integers(2**31))
    tr, te = train_test_split(np.arange(n), test_size=test_size, stratify=p_idx,
                              random_state=seed)
    for rows, what in ((tr, "train the attack on"), (te, "test it on")):
        lacking = np.flatnonzero(np.bincount(p_idx[rows], minlength=len(labels)) == 0)
        if len(lacking):  # a party the attack never saw, or a recall over no record
            k = int(lacking[0])
            raise invalid("test_size", test_size, f"a share that leaves every party records "
                          f"to {what}: party {labels.tolist()[k]!r} has {counts[k]} records and "
                          "the split left it none")
    attacker = _default_attack(seed, len(tr)) if attack_model is None else clone(attack_model)
    attacker.fit(feats[tr], p_idx[tr])
    guess = np.asarray(attacker.predict(feats[te]))
    truth = p_idx[te]
    per = tuple(float(np.mean(guess[truth == k] == k)) for k in range(len(labels)))
    # the best guess from the label alone, learnt on the attack's training records
    y_idx = onehot.argmax(axis=1)
    table = np.zeros((len(classes), len(labels)), dtype=np.int64)
    np.add.at(table, (y_idx[tr], p_idx[tr]), 1)
    by_label = table.argmax(axis=1)
    # a label the attack's training records lack tells nothing: guess the party most
    # frequent among them (argmax of an empty row named the first party, whatever its size)
    by_label[table.sum(axis=1) == 0] = int(table.sum(axis=0).argmax())
    return PartyInference(
        accuracy=float(np.mean(guess == truth)), chance=1.0 / len(labels),
        majority=float(np.bincount(truth).max() / len(truth)), per_party=per,
        n_parties=len(labels), n_test=len(te),
        label_only=float(np.mean(by_label[y_idx[te]] == truth)))


# ----------------------------------------------------------------------------- screening
@dataclass(frozen=True)
class Screening:
    """Result of :func:`screen_parties`, one entry per party.

    auc : held-out AUC of a classifier telling the party's training records from its
        validation records (features and label); 1/2 when they look alike.
    p_value : one-sided Mann-Whitney U test of ``auc > 1/2`` on the held-out records.
    flagged : ``p_value < alpha``: the party receives only its local model.
    alpha : the threshold used.
    """

    auc: tuple[float, ...]
    p_value: tuple[float, ...]
    flagged: tuple[bool, ...]
    alpha: float

    def release(self) -> tuple[str, ...]:
        """Per party, the model the server releases: ``"joint"`` or ``"local"``."""
        return tuple("local" if f else "joint" for f in self.flagged)


_SCREEN_TOKENS = 500
"""How many tokens (the most frequent among a party's documents) screening counts."""


def _token_counts(docs: list[str]) -> np.ndarray:
    """Documents as counts of the ``_SCREEN_TOKENS`` tokens found in most of them (ties
    alphabetical), one row per document. The vocabulary depends on the documents only,
    not on which set each came from, so the held-out test stays valid."""
    from collections import Counter

    from neurips18.multiparty._text import tokenize

    tokens = [tokenize(d) for d in docs]
    doc_freq = Counter(t for ts in tokens for t in set(ts))
    vocab = sorted(doc_freq, key=lambda t: (-doc_freq[t], t))[:_SCREEN_TOKENS]
    column = {t: j for j, t in enumerate(vocab)}
    M = np.zeros((len(docs), len(vocab)))
    for i, ts in enumerate(tokens):
        for t in ts:
            j = column.get(t)
            if j is not None:
                M[i, j] += 1
    return M


def _codes(X: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features plus the label as a float matrix for a tree model, and which columns are
    categorical (pandas categoricals and text columns become integer codes; missing values
    stay NaN). A list of documents becomes token counts (each document as one category
    would tell the classifier nothing: every document is a category of its own)."""
    import pandas as pd

    if isinstance(X, list):
        M = _token_counts(X)
        lab = np.unique(y, return_inverse=True)[1].astype(np.float64)
        return np.column_stack([M, lab]), np.append(np.zeros(M.shape[1], dtype=bool), True)
    if not _is_frame(X) and np.asarray(X).dtype.kind in "OUS":
        # an array of text or mixed columns: a column whose values are all numbers (or
        # missing) is numeric, any other is categorical, as for a frame
        X = pd.DataFrame(np.asarray(X, dtype=object))
        for c in X.columns:
            try:
                X[c] = pd.to_numeric(X[c])
            except (TypeError, ValueError):
                X[c] = X[c].astype(object)
    if _is_frame(X):
        cols, cat = [], []
        for c in X.columns:
            s = X[c]
            if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype.kind in "OSUb":
                codes = pd.Categorical(s).codes.astype(np.float64) if not isinstance(
                    s.dtype, pd.CategoricalDtype) else s.cat.codes.to_numpy().astype(
                    np.float64)
                codes[codes < 0] = np.nan
                cols.append(codes)
                cat.append(True)
            else:
                cols.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
                cat.append(False)
        M = np.column_stack(cols) if cols else np.zeros((len(X), 0))
        is_cat = np.array(cat, dtype=bool)
    else:
        M = np.asarray(X, dtype=np.float64)
        is_cat = np.zeros(M.shape[1], dtype=bool)
    lab = np.unique(y, return_inverse=True)[1].astype(np.float64)
    return np.column_stack([M, lab]), np.append(is_cat, True)


_MAX_CATEGORIES = 255
"""The most categories a column of HistGradientBoostingClassifier may have (its
``max_bins``)."""


def _within_category_limit(Z: np.ndarray, is_cat: np.ndarray) -> np.ndarray:
    """``is_cat`` without the columns of more than ``_MAX_CATEGORIES`` distinct values
    (a text column of identifiers, say): the classifier refuses them as categories, so
    their codes are used as numbers (a split on the codes still isolates a value)."""
    out = is_cat.copy()
    for j in np.flatnonzero(is_cat):
        col = Z[:, j]
        if len(np.unique(col[~np.isnan(col)])) > _MAX_CATEGORIES:
            out[j] = False
    return out


def screen_parties(data: PartyData, *, alpha: float = 0.01,
                   random_state: int | np.random.Generator = 0) -> Screening:
    """The server's check of each party's submission (Hayes and Ohrimenko's Table 1: a
    party whose training and validation data do not look alike receives only its local
    model).

    For each party, a gradient-boosted classifier (HistGradientBoostingClassifier, with
    categorical columns as categories and missing values allowed; leaves of 20 records, or
    of a tenth of the records it is fitted on when that is fewer) is trained on half of
    the party's records to tell its training records from its validation records, using the
    features and the label. On the other half its scores are compared by a one-sided
    Mann-Whitney U test; the party is flagged when ``p < alpha`` (default 0.01: an honest
    party is flagged with probability about ``alpha``). A contaminated training set that
    the party's validation set does not share is found; a party that contaminates both
    alike passes. Documents (a :class:`PartyData` of texts) are compared on their counts
    of the party's 500 most common tokens (by the number of documents holding them), so a
    planted word is seen when it is among them. A column of more than 255 distinct text
    values (more than the classifier takes as categories) is compared on its codes as
    numbers.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    if not isinstance(data, PartyData):
        raise invalid("data", data, "a PartyData")
    alpha = check("alpha", alpha, Interval(float, 0, 1, closed="neither"))
    rng = as_numpy_generator(random_state, "random_state")
    aucs, ps, flags = [], [], []
    for i in range(data.n_parties):
        tr_rows = np.flatnonzero(data.parties == i)
        va_rows = np.flatnonzero(data.val_parties == i)
        if len(tr_rows) < 4 or len(va_rows) < 4:
            raise invalid("data", data, f"at least 4 training and 4 validation records for "
                          f"party {i} to screen it (it has {len(tr_rows)} and "
                          f"{len(va_rows)})")
        # one encoding for both sets: codes of text columns and labels computed per set
        # would differ whenever a value occurs in one set only
        Z, is_cat = _codes(stack_rows([take_rows(data.X, tr_rows),
                                       take_rows(data.X_val, va_rows)]),
                           np.concatenate([data.y[tr_rows], data.y_val[va_rows]]))
        is_cat = _within_category_limit(Z, is_cat)
        t = np.r_[np.zeros(len(tr_rows)), np.ones(len(va_rows))].astype(np.int64)
        seed = int(rng.integers(2**31))
        fit_rows, test_rows = train_test_split(np.arange(len(t)), test_size=0.5, stratify=t,
                                               random_state=seed)
        # a small party gets smaller leaves (see _leaf); the test stays valid whatever
        # the leaf, as the scores it compares are of held-out records
        clf = HistGradientBoostingClassifier(max_iter=100, early_stopping=False,
                                             min_samples_leaf=_leaf(len(fit_rows)),
                                             categorical_features=is_cat if is_cat.any()
                                             else None, random_state=seed)
        clf.fit(Z[fit_rows], t[fit_rows])
        s = clf.predict_proba(Z[test_rows])[:, 1]
        tt = t[test_rows]
        aucs.append(float(roc_auc_score(tt, s)))
        ps.append(float(mannwhitneyu(s[tt == 1], s[tt == 0], alternative="greater").pvalue))
        flags.append(ps[-1] < alpha)
    return Screening(tuple(aucs), tuple(ps), tuple(flags), alpha)
