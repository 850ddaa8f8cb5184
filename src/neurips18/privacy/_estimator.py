"""``PrivateKMeans``: a scikit-learn estimator that releases differentially private centres."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from neurips18._validation import (
    InstanceOf,
    Interval,
    Options,
    Predicate,
    ValidationError,
    check,
    check_array,
    check_params,
    invalid,
)
from neurips18.privacy import _core, _data, _mechanisms, _samplers
from neurips18.privacy._accountant import (
    Ledger,
    PrivacyAccountant,
    PrivacyLeakWarning,
    _outside_stacklevel,
    zcdp_epsilon,
)
from neurips18.privacy._mechanisms import gaussian_feasible, laplace_feasible

METHODS = ("auto", "kaplan-stemmer", "lloyd")

_PARAMS: dict[str, list[Any]] = {
    "n_clusters": [Interval(int, 1, None)],
    "epsilon": [Interval(float, 0, None, closed="neither")],
    "delta": [Interval(float, 0, 1, closed="left")],
    "radius": [_data.RADIUS_RANGE],
    "method": [Options(set(METHODS))],
    "faithful": [InstanceOf(bool, "True or False")],
    "accountant": [None, InstanceOf(PrivacyAccountant)],
    "random_state": [None, Predicate(lambda v: isinstance(v, np.random.Generator) or (
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 0),
        "a non-negative int seed or a numpy.random.Generator")],
}


_INPUT_ATTRS = ("n_features_in_", "feature_names_in_")
"""What the validation of X sets at fit (the rest of the fitted state is set at the end)."""


def resolve_method(method: str, delta: float) -> str:
    """The rule of ``method="auto"``: the Kaplan-Stemmer pipeline when ``delta > 0`` (its
    heavy-cell histograms need approximate DP), DPLloyd with Laplace noise when
    ``delta == 0`` (pure DP). A method or a delta that a fit would refuse is refused (a typo
    such as ``"Lloyd"`` came back unchanged, a NaN delta as ``"lloyd"``)."""
    method = check("method", method, *_PARAMS["method"])
    delta = check("delta", delta, *_PARAMS["delta"])
    if method == "auto":
        return "kaplan-stemmer" if delta > 0 else "lloyd"
    return method


def _nearest_block(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centre, from ``|c|^2 - 2 x.c``: the row's own ``|x|^2``
    is the same for every centre, and adding it first (as a distance does) drowns the
    difference for a row far outside the ball (16 orders of magnitude out, half the rows
    went to the wrong centre; past 1.3e154 ``|x|^2`` is inf and every row went to centre
    0). scikit-learn's KMeans.predict compares the same quantity."""
    score = np.asarray(x, dtype=np.float64) @ centres.T
    score *= -2.0
    score += (centres * centres).sum(1)[None, :]
    return score.argmin(axis=1)


def _nearest_labels(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centre, a block of rows at a time (the temporaries of a
    block, not of the whole array; every row's result is the same as in one piece)."""
    out = np.empty(X.shape[0], dtype=np.intp)
    for s in range(0, X.shape[0], _data.CHUNK_ROWS):
        out[s:s + _data.CHUNK_ROWS] = _nearest_block(X[s:s + _data.CHUNK_ROWS], centres)
    return out


def _check_noise_in_range(method: str, p: dict[str, Any], ledger: Ledger, n: int,
                          d: int) -> None:
    """Raise (naming epsilon and the smallest one that works) when some release of the fit
    would need noise past the exact samplers' range: a function of the public (n, d) and
    the request only, checked before the accountant is charged."""
    pure = ledger.mode == "pure"
    total = ledger.epsilon if pure else ledger.rho
    short: list[tuple[float, str]] = []  # (least epsilon, step) of the releases out of range
    for step, share, sens, changed in _core.noise_plan(method, p["faithful"], n, d, pure):
        if pure and not laplace_feasible(sens, total * share, changed):
            short.append((changed / (_mechanisms._MAX_LAPLACE_T * share), step))
        elif not pure and not gaussian_feasible(sens, total * share, changed):
            short.append((zcdp_epsilon(changed / (_samplers.MAX_GAUSSIAN_S2 * share),
                                       ledger.delta_conversion), step))
    if short:
        least, step = max(short)
        raise invalid("epsilon", p["epsilon"], f"a budget whose every noise scale is in the "
                      f"exact sampler's range: at n={n}, d={d}, delta={p['delta']:g} the "
                      f"release '{step}' of method={method!r} needs epsilon > {least:.3g}")


class PrivateKMeans(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin,
                    BaseEstimator):
    """k-means whose centres are (epsilon, delta)-differentially private.

    Two data sets are neighbours when one row is replaced by another (the number of rows
    is public). The released output is ``cluster_centers_``; every mechanism that produced
    it is charged to ``ledger_`` before its noise is drawn.

    Parameters
    ----------
    n_clusters : int, default 8
    epsilon : float > 0
        Privacy budget of one ``fit`` (required: there is no default budget).
    delta : float in [0, 1), default 0
        ``delta > 0`` is needed by ``method="kaplan-stemmer"``; choose it well below
        ``1 / n_samples`` (``fit`` warns with ``PrivacyLeakWarning``, before anything is
        charged, when ``delta >= 1 / n_samples``).
    radius : float > 0
        Radius of the ball centred at the origin that bounds the data domain. It must be
        chosen without looking at the data (a bound derived from the data leaks it), so
        there is no default: ``fit`` raises when it is missing. Rows outside the ball are
        scaled onto its sphere and counted in ``n_clipped_``. Data whose known bounds are
        not centred at the origin are shifted by a constant known without the data first;
        a scaler or PCA fitted on the data before this estimator (in a ``Pipeline``) is
        not private and is not counted in the ledger.
    method : {"auto", "kaplan-stemmer", "lloyd"}, default "auto"
        ``"kaplan-stemmer"``: Kaplan and Stemmer's pipeline (private centres from
        locality-sensitive hashes over a geometric grid of radii, a private coreset, a
        non-private k-means on it); ``"lloyd"``: DPLloyd (5 private Lloyd steps from
        random centres); ``"auto"``: ``"kaplan-stemmer"`` when ``delta > 0``, else
        ``"lloyd"``.
    faithful : bool, default False
        With ``method="kaplan-stemmer"``: True follows the paper's schedule (the whole grid
        of radii down to radius/n, the budget split evenly over it, no refinement); False
        uses five radii and ends with two private Lloyd steps whose offsets from the
        current centres are clipped to a privately estimated cluster spread. Both are
        private. True with DPLloyd (``method="lloyd"``, or ``"auto"`` with ``delta=0``)
        raises rather than being ignored.
    accountant : PrivacyAccountant or None
        A budget shared by several computations: ``fit`` spends (epsilon, delta) from it
        before touching the data and raises ``BudgetExceededError`` (fitting nothing) when
        too little is left.
    random_state : None, int or numpy.random.Generator
        The noise's source. ``None`` (default) seeds from the operating system; an int
        makes fits repeatable, for tests and experiments only: whoever knows the seed can
        subtract the noise, and two fits with one seed draw the same noise, so on data
        that differ the noise cancels in the difference of their releases (a fit charged
        to an ``accountant`` that already charged the same seed, or a clone's copy of the
        same generator state, warns with ``PrivacyLeakWarning``).

    Attributes
    ----------
    cluster_centers_ : ndarray (n_clusters, n_features)
        The private release.
    privacy_spent_ : tuple (epsilon, delta)
        What this fit spent, recomputed from the ledger.
    ledger_ : Ledger
        Every mechanism: step, sensitivity, noise, charged and effective rho/epsilon/delta.
    method_ : str
        The method that ran.
    n_candidates_ : int
        Number of candidate centres (heavy cells) the private histograms released, a
        function of the release (Kaplan-Stemmer; 0 for DPLloyd). In the practical mode,
        when there are more than ``32 * n_clusters``, they are merged to that many (a
        weighted k-means over them, post-processing) before the coreset counts; the
        number counted is ``n_coreset_centres_``. When none is released and the k centres
        come out as one point (the faithful mode on little data), ``fit`` warns.
    n_coreset_centres_ : int
        Number of candidate centres the coreset counts were taken for (at most
        ``n_candidates_``; 0 for DPLloyd).
    n_refined_centres_ : int
        Number of centres the practical mode's clipped Lloyd steps refine: ``n_clusters``
        unless the noise of a refined centre would exceed about 20 % of its cluster's
        mean squared distance (few points per cluster at a small epsilon; a rule of the
        public n, d, n_clusters and budget). The other rows of ``cluster_centers_`` are
        then the steps' public starting points, repeated when ``n_clusters`` exceeds
        twice this number (so some clusters can be empty). 0 in the faithful mode and
        for DPLloyd.
    n_clipped_, labels_, n_passes_ : int, ndarray or None, int
        Facts about the training data for its holder (the exact number of rows outside the
        ball; each row's nearest released centre, None after a fit on a Dask array, whose
        labels ``predict`` gives lazily; the number of passes over the data, which
        counts the recounts made when a radius had more distinct cells than the summary
        holds). They are not covered by the privacy guarantee: do not publish them.

    Only ``fit`` is private. ``predict``, ``transform`` and ``score`` compute on the ``X``
    they are given, exactly: on private data their outputs (and the scores of
    ``cross_val_score`` or ``GridSearchCV``, which call ``score`` on held-out rows, and the
    choice a search makes from them) are not covered by ``epsilon`` and no ledger counts
    them.
    """

    def __init__(self, n_clusters: int = 8, *, epsilon: float, delta: float = 0.0,
                 radius: float | None = None, method: str = "auto", faithful: bool = False,
                 accountant: PrivacyAccountant | None = None,
                 random_state: Any = None) -> None:
        self.n_clusters = n_clusters
        self.epsilon = epsilon
        self.delta = delta
        self.radius = radius
        self.method = method
        self.faithful = faithful
        self.accountant = accountant
        self.random_state = random_state

    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform`` (one distance per released centre): with
        ``get_feature_names_out`` they are ``privatekmeans0``, ... and ``transform`` follows
        ``set_output`` / ``transform_output="pandas"`` as scikit-learn's KMeans does (it
        returned an array whatever the setting)."""
        return int(self.cluster_centers_.shape[0])

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    # ----------------------------------------------------------------------------- data
    def _check_X(self, X: Any, *, reset: bool) -> Any:
        if _data.is_dask(X):
            _data.check_dask_matrix(X)
            if reset:  # a Dask array has no column names: those of an earlier fit go
                self.n_features_in_ = int(X.shape[1])
                self.__dict__.pop("feature_names_in_", None)
            elif X.shape[1] != self.n_features_in_:
                raise invalid("X", X, f"{self.n_features_in_} features, as in fit")
            return X
        if hasattr(X, "iloc") or hasattr(X, "columns"):  # a DataFrame: check NaN by name first
            check_array("X", X, ndim=2, dtype="numeric", finite=True)
        Xv = validate_data(self, X, reset=reset, accept_sparse=False, dtype=np.float64,
                           ensure_all_finite=False, ensure_min_samples=1)
        return check_array("X", Xv, ndim=2, dtype="float64", finite=True)

    # ----------------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None) -> PrivateKMeans:
        """Release private centres for ``X`` (NumPy array, DataFrame or Dask array).

        A fit that raises (bad input, a budget overspent) leaves the estimator as it was:
        a previous release keeps its feature count and column names. A warning of the fit
        is issued once its release is complete, so a warning turned into an error leaves
        the new release (charged to the accountant) in place, whole."""
        kept = {a: self.__dict__[a] for a in _INPUT_ATTRS if a in self.__dict__}
        try:
            note = self._fit(X)
        except BaseException:
            for a in _INPUT_ATTRS:  # validation of X has reset them: put them back
                self.__dict__.pop(a, None)
            self.__dict__.update(kept)
            raise
        if note is not None:  # warned once the whole release is in place: a warning made
            # an error (-W error) stopped the fit half-way, with the new centres beside the
            # earlier fit's feature count, labels and coreset size
            import warnings

            warnings.warn(note, UserWarning, stacklevel=_outside_stacklevel())
        return self

    def _fit(self, X: Any) -> str | None:
        """Fit; return the text of a warning to issue once every attribute is set."""
        if self.radius is None:
            raise invalid("radius", None, "a positive number: the radius of the ball that "
                          "bounds the data, chosen without looking at the data")
        p = check_params(self.get_params(), _PARAMS)
        X = self._check_X(X, reset=True)
        n, d = X.shape
        k = p["n_clusters"]
        if k > n:
            raise invalid("n_clusters", k, f"at most n_samples = {n}")
        method = resolve_method(p["method"], p["delta"])
        if method == "kaplan-stemmer" and p["delta"] == 0:
            raise invalid("delta", p["delta"], "delta > 0 with method='kaplan-stemmer' (its "
                          "heavy-cell histograms are approximately DP); use method='lloyd' "
                          "for pure epsilon-DP")
        if method == "lloyd" and p["faithful"]:  # a setting that would do nothing
            raise invalid("faithful", True, "False with DPLloyd (method="
                          f"{p['method']!r}{', delta = 0' if p['method'] == 'auto' else ''}"
                          "); the faithful schedule is the Kaplan-Stemmer pipeline's: "
                          "method='kaplan-stemmer' with delta > 0")
        rs = p["random_state"]
        rng = rs if isinstance(rs, np.random.Generator) else np.random.default_rng(rs)
        # the noise is fixed by the generator's state, whatever gave it: an int seed and
        # numpy.random.default_rng of that seed draw the same noise, so they share a key
        noise_key = None if rs is None else ("generator", type(rng.bit_generator).__name__,
                                             repr(rng.bit_generator.state))
        delta_thr = p["delta"] / 2 if method == "kaplan-stemmer" else 0.0
        if method == "kaplan-stemmer":  # each radius's histogram needs a share > 0
            radii = len(_core._schedule(n, p["faithful"])[0])
            if not delta_thr / radii > 0:  # underflow: refused then, after the spend
                raise invalid("delta", p["delta"], f"a delta whose share of each of the "
                              f"{radii} cell histograms, delta / {2 * radii}, is not 0 in "
                              "floating point")
        if p["delta"] > 0 and p["delta"] * n >= 1:  # before spending anything
            import warnings

            warnings.warn(f"PrivateKMeans: delta = {p['delta']!r} is not below 1 / n_samples"
                          f" = {1 / n:.3g}; (epsilon, delta)-DP then allows a release that "
                          "shows each record with probability delta, so about delta * n "
                          "records outright; choose delta well below 1 / n (e.g. 1 / n**2)",
                          PrivacyLeakWarning, stacklevel=_outside_stacklevel())
        ledger = Ledger(p["epsilon"], p["delta"], delta_threshold=delta_thr)
        _check_noise_in_range(method, p, ledger, n, d)  # before spending anything
        if self.accountant is not None:  # before touching the data; raises on overspend
            self.accountant.spend(p["epsilon"], p["delta"], label=f"PrivateKMeans.fit "
                                  f"({method}, n={n}, d={d}, k={k}, random_state={rs!r})",
                                  noise_key=noise_key)
        data = X  # in memory and not too large: clipped and put on the grid once
        if not _data.is_dask(X) and X.nbytes <= _data.CACHE_BYTES:
            data = _data.Prepared(X, p["radius"])
        if method == "kaplan-stemmer":
            centres, info = _core.kaplan_stemmer(data, k, p["radius"], ledger, rng,
                                                 faithful=p["faithful"])
        else:
            centres, info = _core.dp_lloyd(data, k, p["radius"], ledger, rng)
        tot = ledger.totals()
        self.cluster_centers_ = centres
        self.ledger_ = ledger
        self.privacy_spent_ = (tot["epsilon"], tot["delta"])
        self.method_ = method
        self.n_clipped_ = int(info.clipped)
        self.n_passes_ = int(info.passes)
        self.n_candidates_ = int(info.candidates)
        self.n_coreset_centres_ = int(info.details.get("coreset_centres", 0))
        self.n_refined_centres_ = int(info.details.get("refined_centres", 0))
        # X is already validated (a DataFrame is an array by now): going through predict
        # would check it again and warn that it lost its feature names
        self.labels_ = _nearest_labels(X, centres) if not _data.is_dask(X) else None
        if (method == "kaplan-stemmer" and self.n_candidates_ == 0 and k > 1
                and bool(np.all(centres == centres[:1]))):
            return (f"PrivateKMeans: no cell was heavy enough to become a candidate centre "
                    f"(n = {n}, epsilon = {p['epsilon']}, faithful = {p['faithful']}), so "
                    f"all {k} released centres are one point; more data, a larger epsilon"
                    f"{', faithful=False' if p['faithful'] else ''} or method='lloyd' give a "
                    "usable release")
        return None

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        return self.fit(X).predict(X)

    # ----------------------------------------------------------------------------- use
    def _distances(self, X: Any) -> Any:
        check_is_fitted(self, "cluster_centers_")
        X = self._check_X(X, reset=False)
        c = self.cluster_centers_
        if _data.is_dask(X):  # a block holds whole rows, as in fit
            X = X.rechunk({1: -1})
            return X.map_blocks(lambda b: np.sqrt(_core._sqdist(np.asarray(b, float), c)),
                                dtype=np.float64, chunks=(X.chunks[0], (c.shape[0],)))
        return np.sqrt(_core._sqdist(X, c))

    def transform(self, X: Any) -> Any:
        """Euclidean distance of each row to each released centre (exact, not private:
        see the class notes)."""
        return self._distances(X)

    def predict(self, X: Any) -> Any:
        """Index of the nearest released centre (exact, not private: see the class
        notes)."""
        check_is_fitted(self, "cluster_centers_")
        X = self._check_X(X, reset=False)
        c = self.cluster_centers_
        if _data.is_dask(X):  # a block holds whole rows, as in fit
            X = X.rechunk({1: -1})
            return X.map_blocks(lambda b: _nearest_block(b, c), dtype=np.intp, drop_axis=1,
                                chunks=(X.chunks[0],))
        return _nearest_labels(X, c)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the k-means cost of ``X`` with the released centres (higher is better);
        exact, not private: see the class notes."""
        D = self._distances(X)
        if _data.is_dask(D):  # one partial sum per block: Dask's own min over axis 1
            # raised "zero-size array to reduction operation" on a block of no rows
            part = D.map_blocks(lambda b: np.full((1, 1), (b**2).min(axis=1).sum()
                                                  if b.shape[0] else 0.0),
                                dtype=np.float64, chunks=((1,) * D.numblocks[0], (1,)))
            return -float(part.sum().compute())
        return -float((D**2).min(axis=1).sum())


__all__ = ["PrivateKMeans", "ValidationError", "check", "resolve_method"]
