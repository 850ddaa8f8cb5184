"""The party-adversarial classifier as a scikit-learn estimator."""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from neurips18._validation import (
    InstanceOf,
    Interval,
    Options,
    Predicate,
    check_params,
    invalid,
    torch_seeded,
    unchanged_on_error,
)
from neurips18.multiparty._parties import check_aligned, check_not_missing, party_index

__all__ = ["PartyAdversarialClassifier"]

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(est, X="no_validation", y="no_validation", reset=True, **kw):  # type: ignore[no-untyped-def]
        return est._validate_data(X, y, reset=reset, **kw)


def _sizes(v: Any) -> bool:
    return (isinstance(v, tuple | list) and all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) and int(h) >= 1 for h in v))


_DENSE_LIMIT = 4 * 2**30
"""Largest dense float32 copy (bytes) made of a sparse X for training."""

_PARAMS: dict[str, list[Any]] = {
    "hidden_layer_sizes": [Predicate(_sizes, "a tuple of positive ints (may be empty)")],
    "lam": [Interval(float, 0, None)],
    "max_epochs": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)],
    "lr": [Interval(float, 0, None, closed="neither")],
    "momentum": [Interval(float, 0, 1, closed="left")],
    "weight_decay": [Interval(float, 0, None)],
    "discriminator_layer_sizes": [Predicate(_sizes, "a tuple of positive ints")],
    "discriminator_lr": [None, Interval(float, 0, None, closed="neither")],
    "discriminator_steps": [Interval(int, 1, None)],
    "network": [Options({"mlp", "text_cnn"})],
    "embedding_dim": [Interval(int, 1, None)],
    "kernel_size": [Interval(int, 1, None)],
    "device": [InstanceOf(str, "a device name such as 'cpu' or 'cuda'")],
    "random_state": [None, Interval(int, 0, 2**32 - 1),
                     InstanceOf(np.random.Generator, "a numpy.random.Generator")],
}


class PartyAdversarialClassifier(ClassifierMixin, BaseEstimator):
    """A neural classifier trained not to reveal which party a record came from.

    Hayes and Ohrimenko (NeurIPS 2018): the network ``f`` is trained against a
    discriminator ``h`` that sees ``(f(x), one-hot y)`` and predicts the record's party;
    minibatch SGD alternates a step of ``h`` and a step of ``f`` on ``CE(f(x), y) - lam *
    CE(h(f(x), y), party)`` (see :func:`neurips18.multiparty.train_adversarial`). A trend
    that one party planted in its data (a contamination attack) makes that party
    recognisable from ``f``'s outputs, so ``f`` is pushed not to learn it.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Widths of ``f``'s hidden ReLU layers (``network="mlp"``); with
        ``network="text_cnn"`` only the first entry is used, as the number of filters
        (64 when empty).
    lam : float >= 0
        Weight of the adversarial term; ``0`` is plain training (no discriminator).
    max_epochs : int
        Passes over the training data.
    batch_size : int
        Minibatch size (capped at the number of records; the last incomplete batch of an
        epoch is dropped).
    lr, momentum, weight_decay : SGD settings of ``f``.
    discriminator_layer_sizes : tuple of int
        Hidden widths of ``h``.
    discriminator_lr : float or None
        SGD learning rate of ``h`` (``None``: ``lr``); ``h`` uses the same momentum.
    discriminator_steps : int
        Steps of ``h`` per step of ``f``.
    network : {"mlp", "text_cnn"}
        ``"mlp"``: ``X`` is a numeric matrix, dense or scipy sparse (a ColumnTransformer
        with a OneHotEncoder gives a sparse one; it is made dense once for training, up to
        4 GiB), use a ColumnTransformer in a Pipeline for categorical columns and missing
        values. ``"text_cnn"``: ``X`` holds token ids
        (e.g. from :class:`~neurips18.multiparty.TokenEncoder`) and ``f`` is a
        :class:`~neurips18.multiparty.TextCNN` with ``embedding_dim`` dimensions and
        filters of width ``kernel_size``; its vocabulary is the largest id seen in
        ``fit`` plus one, and larger ids met in ``predict`` are read as unknown (id 1).
    device : str
        Torch device for training and prediction.
    random_state : int, numpy Generator or None
        Seeds the initialisation of both networks and the batch order. ``None`` draws a
        fresh seed (results then differ between fits).

    Fit with ``fit(X, y, parties=...)``: ``parties`` holds one party label per row (ints,
    strings or other scalars of one sortable type; not tuples). Without ``parties`` (or
    with one party) there is nothing to hide and the fit is plain training. Inside a
    Pipeline pass ``clf__parties=...`` to ``fit``.

    Attributes
    ----------
    classes_ : the class labels. parties_ : the party labels seen in fit.
    model_ : the trained ``f`` (``torch.nn.Module``, float32, on ``device``); ``predict``
    and ``predict_proba`` evaluate it as it is at the call (a float64 copy on the CPU), so
    fine-tuning or editing it changes them.
    discriminator_ : the trained ``h`` or None. history_ : per-epoch losses and the
    discriminator's training accuracy. n_iter_ : epochs run. n_features_in_,
    feature_names_in_ : as in scikit-learn.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64, 64),
        lam: float = 1.0,
        max_epochs: int = 30,
        batch_size: int = 64,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        discriminator_layer_sizes: tuple[int, ...] = (64,),
        discriminator_lr: float | None = None,
        discriminator_steps: int = 1,
        network: str = "mlp",
        embedding_dim: int = 64,
        kernel_size: int = 5,
        device: str = "cpu",
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.lam = lam
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.discriminator_layer_sizes = discriminator_layer_sizes
        self.discriminator_lr = discriminator_lr
        self.discriminator_steps = discriminator_steps
        self.network = network
        self.embedding_dim = embedding_dim
        self.kernel_size = kernel_size
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.sparse = self.network != "text_cnn"
        return tags

    # ------------------------------------------------------------------------------------
    def _check_X(self, X: Any, y: Any = None, *, reset: bool) -> Any:
        if type(X).__name__ == "DataFrame" and hasattr(X, "dtypes"):
            bad = [str(c) for c, t in X.dtypes.items() if t.kind not in "biuf"]
            if bad:
                raise invalid("X", X, "numeric columns only; non-numeric column(s) "
                              f"{bad[:6]}: encode them first, e.g. a ColumnTransformer with "
                              "a OneHotEncoder in a Pipeline")
        kw: dict[str, Any] = {"dtype": [np.float64, np.float32], "ensure_all_finite": False}
        if self.network != "text_cnn":
            # a ColumnTransformer with a OneHotEncoder hands on a sparse matrix by default
            kw["accept_sparse"] = "csr"
        if y is None:
            X = _validate_data(self, X, reset=reset, **kw)
        else:
            X, y = _validate_data(self, X, y, reset=reset, **kw)
        values = X.data if sp.issparse(X) else X
        if values.size and not np.isfinite(values).all():
            bad_n = int((~np.isfinite(values)).sum())
            raise invalid("X", X, f"finite values; found {bad_n} NaN or inf (impute missing "
                          "values first, e.g. a SimpleImputer in a Pipeline)")
        if self.network == "text_cnn" and X.size and (
                (X < 0).any() or not np.all(X == np.round(X))):
            raise invalid("X", X, "non-negative integer token ids (network='text_cnn')")
        return X if y is None else (X, y)

    def _seed(self) -> int:
        rs = self.random_state
        if rs is None:
            return int(np.random.default_rng().integers(2**31))
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**31))
        return int(rs)

    def _build(self, n_in: int, n_classes: int, vocab: int):  # type: ignore[no-untyped-def]
        from neurips18.multiparty._adversarial import MLP, TextCNN

        if self.network == "text_cnn":
            return TextCNN(vocab, n_classes, embedding_dim=self.embedding_dim,
                           channels=int(self.hidden_layer_sizes[0]) if
                           self.hidden_layer_sizes else 64, kernel_size=self.kernel_size)
        return MLP(n_in, n_classes, tuple(self.hidden_layer_sizes))

    def fit(self, X: Any, y: Any, parties: Any = None) -> PartyAdversarialClassifier:
        """Train on ``(X, y)``; ``parties`` gives each row's party (see the class doc).

        A fit that fails (bad input, or training that diverges to a non-finite loss, e.g.
        on unscaled features) raises and leaves a fitted classifier as it was."""
        with unchanged_on_error(self):
            return self._fit(X, y, parties)

    def _fit(self, X: Any, y: Any, parties: Any) -> PartyAdversarialClassifier:
        import torch

        from neurips18.multiparty._adversarial import PartyDiscriminator, train_adversarial

        check_params(self.get_params(), _PARAMS)
        if y is None:
            raise ValueError("PartyAdversarialClassifier requires y to be passed, but the "
                             "target y is None")
        check_aligned("y", y, X)
        check_aligned("parties", parties, X)
        # in a Pipeline X arrives as an array (no index to compare), but y and parties
        # arrive as the caller passed them: two Series in different row orders disagree
        check_aligned("parties", parties, y, "y")
        y_arr = np.asarray(y)
        if y_arr.dtype.kind == "O" and y_arr.ndim == 1:  # None/NA: a bare TypeError later
            check_not_missing("y", y, y_arr, "labels")
        X, y = self._check_X(X, y, reset=True)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class only ({self.classes_[0]!r}); the classifier "
                             "needs at least 2 classes")
        n = X.shape[0]
        if parties is None:
            self.parties_ = np.array([0])
            p_idx = np.zeros(n, dtype=np.int64)
        else:
            p = np.asarray(parties)
            if p.ndim != 1 or len(p) != n:
                raise invalid("parties", parties, f"a 1-D array with one party per row of X "
                              f"({n} rows), got shape {p.shape}")
            if p.dtype.kind == "f" and not np.isfinite(p).all():
                raise invalid("parties", parties, "party labels without NaN")
            self.parties_, p_idx = party_index("parties", p)
        n_parties = len(self.parties_)
        seed = self._seed()
        device = torch.device(self.device)
        vocab = int(X.max()) + 1 if self.network == "text_cnn" and X.size else 1
        # the networks are float32 (the data is made float32 below) whatever the caller's
        # torch default dtype, and initialised from the same draws: built under float32
        prev_dtype = torch.get_default_dtype()
        with torch_seeded(seed):  # only the CPU generator (see torch_seeded)
            torch.set_default_dtype(torch.float32)
            try:
                f = self._build(X.shape[1], len(self.classes_), max(vocab, 2)).to(device)
                h = (PartyDiscriminator(len(self.classes_), n_parties,
                                        tuple(self.discriminator_layer_sizes)).to(device)
                     if n_parties > 1 and self.lam > 0 else None)
            finally:
                torch.set_default_dtype(prev_dtype)
        opt = torch.optim.SGD(f.parameters(), lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        h_opt = None if h is None else torch.optim.SGD(
            h.parameters(), lr=self.discriminator_lr or self.lr, momentum=self.momentum)
        dtype = torch.int64 if self.network == "text_cnn" else torch.float32
        if sp.issparse(X):  # the network trains on dense rows: one float32 copy
            need = X.shape[0] * X.shape[1] * 4
            if need > _DENSE_LIMIT:
                raise invalid("X", X, f"a sparse matrix whose dense float32 copy fits "
                              f"{_DENSE_LIMIT / 2**30:g} GiB (this one needs "
                              f"{need / 2**30:.1f} GiB): reduce its columns first")
            X = X.toarray()
        # a copy (read-only inputs are fine), C-ordered (torch refuses negative strides)
        x_t = torch.tensor(np.ascontiguousarray(X), dtype=dtype)
        hist = train_adversarial(
            f, opt, x_t, torch.as_tensor(y_idx, dtype=torch.int64),
            torch.as_tensor(p_idx, dtype=torch.int64), discriminator=h,
            discriminator_optimizer=h_opt, lam=self.lam, epochs=self.max_epochs,
            batch_size=min(self.batch_size, n), discriminator_steps=self.discriminator_steps,
            generator=torch.Generator().manual_seed(seed + 1))
        bad = [e for e, v in enumerate(hist["loss"], 1) if not math.isfinite(v)]
        if bad or not all(bool(torch.isfinite(q).all()) for q in f.parameters()):
            where = f"at epoch {bad[0]}" if bad else "in its weights"
            raise FloatingPointError(
                f"training diverged (a non-finite loss {where}; lr={self.lr!r}, largest "
                f"|feature| {float(np.abs(x_t.double()).max()) if x_t.numel() else 0.0:.3g})"
                ": standardise the features (e.g. a StandardScaler in a Pipeline) or lower "
                "lr; nothing was fitted")
        f.eval()
        self.model_ = f
        self.discriminator_ = h
        self.history_ = {k: hist[k] for k in ("loss", "disc_loss", "disc_acc")}
        self.n_iter_ = self.max_epochs
        return self

    def _inference_net(self) -> Any:
        """A float64 CPU copy of ``model_`` as it is now (so edits to ``model_`` count)."""
        return copy.deepcopy(self.model_).double().cpu().eval()

    def _logits(self, X: Any) -> np.ndarray:
        import torch

        check_is_fitted(self, "model_")
        X = self._check_X(X, reset=False)
        dtype = torch.int64 if self.network == "text_cnn" else torch.float64
        net = self._inference_net()
        if self.network == "text_cnn":
            emb = net.embedding.num_embeddings
            X = np.where(X < emb, X, 1)  # ids beyond the training vocabulary: unknown (1)
        out = []
        with torch.no_grad():
            for i in range(0, X.shape[0], 8192):
                rows = X[i:i + 8192]
                xb = torch.tensor(rows.toarray() if sp.issparse(rows) else
                                  np.ascontiguousarray(rows), dtype=dtype)
                out.append(net(xb).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of ``f``), columns in the order of ``classes_``."""
        z = self._logits(X)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        z = self._logits(X)
        return self.classes_[np.argmax(z, axis=1)]

