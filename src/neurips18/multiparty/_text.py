"""Documents to token ids for the text path (the News20-style experiments)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from neurips18._validation import Interval, check_params, invalid

__all__ = ["TokenEncoder"]

_TOKEN = re.compile(r"(?:[^\W_]|')+")  # Unicode letters and digits, apostrophes

_PARAMS = {"max_length": [Interval(int, 1, None)], "max_vocabulary": [Interval(int, 2, None)],
           "min_count": [Interval(int, 1, None)]}


def tokenize(doc: str) -> list[str]:
    """Lower-cased runs of letters, digits (any script: "café", "über") and apostrophes."""
    return _TOKEN.findall(doc.lower())


class TokenEncoder(TransformerMixin, BaseEstimator):
    """Documents -> a matrix of token ids, for :class:`TextCNN` /
    ``PartyAdversarialClassifier(network="text_cnn")``.

    ``fit`` keeps the ``max_vocabulary - 2`` most frequent tokens seen at least
    ``min_count`` times (ties broken alphabetically); id 0 is padding, id 1 an unknown
    token. ``transform`` gives an int64 matrix of shape ``(n_documents, max_length)``: the
    first ``max_length`` tokens of each document, padded with 0.

    Attributes: ``vocabulary_`` (token -> id), ``vocabulary_size_`` (largest id + 1).
    """

    def __init__(self, max_length: int = 200, max_vocabulary: int = 20000,
                 min_count: int = 1) -> None:
        self.max_length = max_length
        self.max_vocabulary = max_vocabulary
        self.min_count = min_count

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    @staticmethod
    def _docs(X: Any) -> list[str]:
        if isinstance(X, str) or not hasattr(X, "__len__"):
            raise invalid("X", X, "a sequence of documents (strings)")
        if hasattr(X, "shape"):
            arr = np.asarray(X, dtype=object)
            # one document per row: a column of a ColumnTransformer is (n, 1); several
            # columns would be interleaved into more documents than rows
            if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 1):
                raise invalid("X", X, f"one column of documents (shape (n,) or (n, 1)), got "
                              f"shape {arr.shape}: join the text columns first")
            docs = list(arr.ravel())
        else:
            docs = list(X)
        if not docs:
            raise invalid("X", X, "at least one document")
        if not all(isinstance(d, str) for d in docs):
            raise invalid("X", X, "documents that are all strings")
        return docs

    def fit(self, X: Any, y: Any = None) -> TokenEncoder:
        check_params(self.get_params(), _PARAMS)
        counts = Counter(t for d in self._docs(X) for t in tokenize(d))
        kept = sorted((t for t, c in counts.items() if c >= self.min_count),
                      key=lambda t: (-counts[t], t))[: self.max_vocabulary - 2]
        self.vocabulary_ = {t: i + 2 for i, t in enumerate(kept)}
        self.vocabulary_size_ = len(kept) + 2
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "vocabulary_")
        docs = self._docs(X)
        out = np.zeros((len(docs), self.max_length), dtype=np.int64)
        for r, d in enumerate(docs):
            ids = [self.vocabulary_.get(t, 1) for t in tokenize(d)[: self.max_length]]
            out[r, : len(ids)] = ids
        return out
