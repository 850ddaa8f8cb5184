"""Public entry points: the estimator and the sampler."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from neurips18._validation import (
    Interval,
    Options,
    Predicate,
    as_numpy_generator,
    check,
    check_array,
    check_params,
    invalid,
    unchanged_on_error,
)
from neurips18.embedding import _core
from neurips18.embedding._graphs import SYMMETRY_RTOL, check_graph, norm_bounds
from neurips18.embedding._sampler import NotPositiveDefinite, draw, is_valid

__all__ = ["GaussianEmbedding", "ValidityWarning", "sample_gaussian_embedding"]


class ValidityWarning(UserWarning):
    """A fitted ``M`` breaks the validity condition ``||A|| ||M|| < 1``: the conditional
    model it defines has no joint Gaussian law on this graph."""


def _check_x(X: Any, name: str = "X") -> np.ndarray:
    import scipy.sparse as sp

    if sp.issparse(X):
        raise invalid(name, X, "a dense array: sparse X is not supported (the graph may be "
                               "sparse; a field of vectors is dense)")
    dtype = getattr(X, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") == "c":
        raise invalid(name, X, "real numbers (Complex data not supported)")
    if dtype is not None and getattr(dtype, "kind", "") == "O":
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise invalid(name, X, "numeric data") from None
    return check_array(name, X, ndim=2, dtype="numeric", min_rows=2, min_cols=1).astype(
        np.float64, copy=False)


def _check_m(M: Any) -> np.ndarray:
    M = check_array("M", M, ndim=2, dtype="numeric").astype(np.float64, copy=True)
    if M.shape[0] != M.shape[1]:
        raise invalid("M", M, "a square (p, p) matrix")
    scale = float(np.abs(M).max()) if M.size else 0.0
    gap = float(np.abs(M - M.T).max()) if M.size else 0.0
    if gap > SYMMETRY_RTOL * max(scale, 1e-300):
        raise invalid("M", M, f"a symmetric matrix; max |M - M^T| is {gap:.3g}")
    return _core.sym(M)


def _show_norm(bounds: tuple[float, float]) -> str:
    lo, hi = bounds
    if hi - lo <= 1e-6 * hi:
        return f"{hi:.6g}"
    return f"between {lo:.6g} and {hi:.6g}"


def sample_gaussian_embedding(graph: Any, M: Any, *, generator: Any,
                              n_samples: int | None = None,
                              method: str = "auto") -> np.ndarray:
    """Exact draws of ``X`` (m x p) from the Gaussian embedding model on ``graph``.

    Each row ``x_j`` given the others is ``N(sum_k A_jk M x_k, I_p)``; the joint law is
    Gaussian with precision ``I - A (x) M``, which exists when ``||A||_2 ||M||_2 < 1``
    (checked; a ``ValidationError`` names the product otherwise).

    Parameters
    ----------
    graph : (m, m) array-like or scipy.sparse matrix
        Symmetric non-negative weights, zero diagonal (see :func:`chain_graph`).
    M : (p, p) array-like, symmetric (the model has ``M = V V^T``).
    generator : numpy.random.Generator or int seed.
    n_samples : int or None
        ``None`` returns one field (m, p); an int returns (n_samples, m, p) independent
        fields.
    method : {"auto", "cholesky", "chebyshev"}
        ``"cholesky"``: sparse LDL^T of ``I - lam A`` per nonzero eigenvalue ``lam`` of
        ``M``; ``"chebyshev"``: a Chebyshev expansion of ``(I - lam A)^(-1/2)`` accurate
        to rounding (1e-12 relative or better; sparse products only, fastest on large
        graphs); ``"auto"`` takes
        ``"cholesky"`` up to 5,000 nodes and ``"chebyshev"`` above.
    """
    method = check("method", method, Options({"auto", "cholesky", "chebyshev"}))
    n = check("n_samples", n_samples, None, Interval(int, 1, None))
    a = check_graph(graph)
    Mc = _check_m(M)
    rng = as_numpy_generator(generator)
    m, p = a.shape[0], Mc.shape[0]
    bounds = norm_bounds(a)
    norm_a = bounds[1]
    norm_m = float(np.abs(np.linalg.eigvalsh(Mc)).max()) if p else 0.0
    product = norm_a * norm_m
    if not is_valid(a, bounds, norm_m):
        raise invalid("M", M, f"||A||_2 ||M||_2 < 1 for a valid joint law; here ||A||_2 = "
                              f"{_show_norm(bounds)}, ||M||_2 = {norm_m:.6g}, product "
                              f"{product:.6g}")
    if method == "auto":
        method = "cholesky" if m <= 5000 else "chebyshev"
    out = []
    for _ in range(1 if n is None else n):
        Z = rng.standard_normal((m, p))
        try:
            out.append(draw(a, norm_a, Mc, Z, method))
        except NotPositiveDefinite:  # only within rounding of the boundary
            raise invalid("M", M, f"I - A (x) M positive definite; ||A||_2 ||M||_2 = "
                                  f"{product:.12g} is too close to 1") from None
    return out[0] if n is None else np.stack(out)


class GaussianEmbedding(BaseEstimator):
    """Low-rank Gaussian embedding from one observed field on a known graph.

    The model (Yu, Yang, Zhao, Kolar, Wang, NeurIPS 2018): each node ``j`` of a graph with
    (weighted) adjacency ``A`` carries ``x_j`` in R^p, and
    ``x_j | rest ~ N(sum_k A_jk M x_k, I_p)`` with ``M = V V^T`` of rank ``r``. Both
    estimators minimise the pseudo negative log-likelihood ``(1/2m) ||X - A X M||_F^2``.

    Parameters
    ----------
    rank : int
        The embedding dimension ``r``, ``1 <= r < p``.
    method : {"nonconvex", "convex"}
        ``"nonconvex"``: gradient descent on ``V`` (p x r) for ``L(V V^T)`` from the
        spectral initialisation (the rank-r positive part of the least-squares estimate),
        step ``1 / (4 ||Szz|| ||M0||)``. ``"convex"``: ``L(M) + alpha ||M||_*`` over
        symmetric ``M`` by accelerated proximal gradient with eigenvalue thresholding;
        the rank of its solution is set by ``alpha``: with ``alpha=None`` the penalty is
        chosen among those whose solution has rank <= ``rank``; with a given ``alpha``
        the rank is whatever that penalty gives (``rank`` then sizes ``embedding_`` only).
    alpha : float or None
        Nuclear-norm penalty (``"convex"`` only, with a warning if given to
        ``"nonconvex"``; the theory's scale is ``sqrt(p/m)``).
        ``None`` picks it on a path of up to ``n_alphas`` values from ``||Szx||_2`` (where
        the solution is 0) down to 1e-3 of it, by held-out pseudo-likelihood over ``cv``
        random folds of the nodes (each fold's terms predicted from the other nodes' fit).
        The path stops at the first penalty whose solution on all nodes has rank above
        ``rank``: the held-out score alone prefers small penalties whose solutions have
        many small spurious eigenvalues (rank 24-34 for r = 3, p = 50 on a chain), with
        an error well above the rate. Five bisections between the last penalty of rank
        <= ``rank`` and that first one add up to five penalties to the path, so that its
        end lies within about 1 % of the rank boundary rather than a grid step from it.
    max_iter : int
        Iterations of the solver (per path point for the convex path).
    tol : float
        Relative change of the iterate at which the solver stops.
    random_state : int, RandomState instance or None
        Draws the cross-validation folds and the start of any initial column whose
        spectral eigenvalue is not positive.
    cv : int
        Number of folds for ``alpha=None``.
    n_alphas : int
        Length of the penalty grid for ``alpha=None`` (before the bisections).

    Attributes
    ----------
    M_ : ndarray (p, p), symmetric; rank <= ``rank`` (for ``"convex"`` with a given
        ``alpha``: the rank that penalty gives).
    embedding_ : ndarray (p, rank), ``V`` with ``V V^T = M_`` (nonconvex) or the best PSD
        rank-``rank`` factor of ``M_`` (convex).
    n_iter_, converged_ : iterations of the final solve and whether ``tol`` was reached.
    alpha_ : the penalty used (convex); ``alphas_``, ``cv_scores_``: the path's penalties
        (those whose solution has rank <= ``rank``) and their held-out scores; present
        only after a fit that ran the path (``method="convex"``, ``alpha=None``).
    graph_norm_ : ``||A||_2`` of the training graph from above (a Collatz-Wielandt bound,
        exact on regular graphs and tight to about 1e-4 on chains and lattices).
    validity_ : ``graph_norm_ * ||M_||_2``, the validity product (from above).
    valid_ : whether ``||A||_2 ||M_||_2 < 1`` holds, decided exactly (by factorising
        ``I - ||M_|| A`` when the bounds do not settle it); when it does not, a
        :class:`ValidityWarning` is issued (no joint Gaussian law exists for that ``M_``).
    n_features_in_, feature_names_in_ : as in scikit-learn.

    ``fit(X, graph)`` takes the graph where scikit-learn estimators take ``y``; a
    :class:`~sklearn.pipeline.Pipeline` passes it through to this last step. The model
    has no intercept: centre the columns first if they have a nonzero mean (e.g.
    ``StandardScaler(with_std=False)`` in a pipeline).
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "rank": [Interval(int, 1, None)],
        "method": [Options({"nonconvex", "convex"})],
        "alpha": [None, Interval(float, 0, None)],
        "max_iter": [Interval(int, 1, None)],
        "tol": [Interval(float, 0, None)],
        "random_state": [None, Interval(int, 0, 2**32 - 1),
                         Predicate(lambda v: isinstance(v, np.random.RandomState),
                                   "a numpy RandomState")],
        "cv": [Interval(int, 2, None)],
        "n_alphas": [Interval(int, 2, None)],  # 1 would leave alpha_max alone (M_ = 0)
    }

    def __init__(self, rank: int, *, method: str = "nonconvex",
                 alpha: float | None = None, max_iter: int = 2000, tol: float = 1e-7,
                 random_state: Any = None, cv: int = 5, n_alphas: int = 20) -> None:
        self.rank = rank
        self.method = method
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.cv = cv
        self.n_alphas = n_alphas

    # ------------------------------------------------------------------ helpers
    def _data(self, X: Any, graph: Any, *, fitting: bool):
        if graph is None:
            raise invalid("graph", graph, "an (m, m) adjacency matrix (dense or "
                                          "scipy.sparse): fit(X, graph)")
        Xc = _check_x(X)
        if not fitting:
            if Xc.shape[1] != self.n_features_in_:
                raise invalid("X", X, f"{self.n_features_in_} columns, as seen in fit")
            self._check_names(X)
        _check_node_labels(X, graph)
        a = check_graph(graph, Xc.shape[0])
        return Xc, a

    def _set_input_attributes(self, X: Any, p: int) -> None:
        """``n_features_in_`` and ``feature_names_in_`` of a fit, set only once its input
        has passed every check (a refused refit leaves the fitted model whole)."""
        self.n_features_in_ = p
        cols = getattr(X, "columns", None)
        if cols is not None and all(isinstance(c, str) for c in cols):
            self.feature_names_in_ = np.asarray(cols, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _check_names(self, X: Any) -> None:
        """Columns named in fit must come back with the same names in the same order
        (``M_`` is indexed by them); unnamed data after a named fit gets a warning."""
        fitted = getattr(self, "feature_names_in_", None)
        cols = getattr(X, "columns", None)
        if fitted is None:
            # named columns after an unnamed fit are taken by position: scikit-learn's
            # warning (a frame in another order than the fitted array was silent)
            if cols is not None and len(cols) and all(isinstance(c, str) for c in cols):
                warnings.warn(f"X has feature names, but {type(self).__name__} was fitted "
                              "without feature names", UserWarning, stacklevel=4)
            return
        if cols is None or not all(isinstance(c, str) for c in cols):
            warnings.warn(f"X does not have valid feature names, but {type(self).__name__} "
                          "was fitted with feature names", UserWarning, stacklevel=4)
            return
        names = [str(c) for c in cols]
        if names != list(fitted):
            missing = [c for c in fitted if c not in names]
            extra = [c for c in names if c not in set(fitted)]
            what = (f"missing {missing}, unexpected {extra}" if missing or extra
                    else "same names in another order")
            raise invalid("X", X, "the column names seen in fit, in the same order (M_ is "
                                  f"indexed by them); {what}")

    def _convex_path(self, X, Z, s, rng, rank):
        """The penalty on a path from ``alpha_max`` down, by held-out pseudo-likelihood
        among the penalties whose fit on all nodes has rank <= ``rank``; the path stops at
        the first penalty whose fit has a larger rank. Returns the penalty and its fit (an
        ``_core.Fit``)."""
        p = X.shape[1]
        top = _core.alpha_max(s)
        grid = top * np.logspace(0.0, -3.0, self.n_alphas)
        # fits on all nodes along the path (warm starts), as far as the rank allows
        fits, alphas, M = [], [], np.zeros((p, p))
        above = None  # the largest path penalty whose fit has rank > ``rank``
        for al in grid:
            fit = _core.convex(s, float(al), M, max_iter=self.max_iter, tol=self.tol)
            if np.linalg.matrix_rank(fit.M, hermitian=True) > rank:
                above = float(al)
                break
            fits.append(fit)
            alphas.append(float(al))
            M = fit.M
        # alphas[0] = alpha_max, whose fit is 0: never empty. The held-out score favours
        # the smallest admissible penalty, so on the bare grid the choice (and the error)
        # would move in steps of the grid's factor (1.44 for 20 values over 3 decades) as
        # m changes; bisecting (in log alpha) between the last admissible penalty and the
        # first inadmissible one puts the choice within about 1 % of the rank boundary.
        if above is not None:
            lo, hi = alphas[-1], above
            for _ in range(_REFINE_STEPS):
                prod = lo * hi  # under- or overflows for a field in tiny or huge units
                mid = (math.sqrt(prod) if _TINY_NORMAL <= prod < math.inf
                       else math.sqrt(lo) * math.sqrt(hi))
                fit = _core.convex(s, mid, M, max_iter=self.max_iter, tol=self.tol)
                if np.linalg.matrix_rank(fit.M, hermitian=True) > rank:
                    hi = mid
                else:
                    lo = mid
                    fits.append(fit)
                    alphas.append(mid)
                    M = fit.M
        alphas = np.asarray(alphas)
        if above is not None and alphas[-1] > alphas[0] / _SHRUNK_FACTOR:
            top_eig = float(np.abs(np.linalg.eigvalsh(fits[-1].M)).max())
            warnings.warn(
                f"GaussianEmbedding(method='convex'): the smallest penalty whose solution "
                f"has rank <= {rank} is {alphas[-1]:.4g}, within a factor "
                f"{alphas[0] / alphas[-1]:.3g} of alpha_max = {alphas[0]:.4g}, so every "
                f"penalty left shrinks M_ nearly to 0 (largest |eigenvalue| of the "
                f"smallest one's fit: {top_eig:.3g}). The nuclear norm cannot give a "
                f"solution of rank 1..{rank} without that shrinkage here (the leading "
                "eigenvalues are too close); use method='nonconvex', a larger rank, or "
                "pass alpha.", UserWarning, stacklevel=4)
        m = X.shape[0]
        folds = rng.permutation(m) % self.cv
        scores = np.zeros((self.cv, alphas.size))
        for k in range(self.cv):
            tr, te = folds != k, folds == k
            s_tr, s_te = _core.stats(X[tr], Z[tr]), _core.stats(X[te], Z[te])
            Mk = np.zeros((p, p))
            for i, al in enumerate(alphas):
                Mk = _core.convex(s_tr, float(al), Mk, max_iter=self.max_iter, tol=self.tol).M
                scores[k, i] = -_core.loss(Mk, s_te)
        mean = scores.mean(axis=0)
        best = int(np.argmax(mean))
        self.alphas_ = alphas
        self.cv_scores_ = mean - 0.5 * p * math.log(2 * math.pi)
        return float(alphas[best]), fits[best]

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, graph: Any) -> GaussianEmbedding:
        """Fit ``M`` from one field ``X`` (m, p) observed on ``graph`` (m, m).

        A fit that raises (bad input, or a warning turned into an error) leaves a fitted
        estimator as it was, not half updated."""
        with unchanged_on_error(self):
            return self._fit(X, graph)

    def _fit(self, X: Any, graph: Any) -> GaussianEmbedding:
        params = check_params(self.get_params(), self._parameter_constraints)
        Xc, a = self._data(X, graph, fitting=True)
        m, p = Xc.shape
        rank = params["rank"]
        if p < 2:  # no rank r with 1 <= r < p: the rank message alone offered [1, 0]
            raise invalid("X", X, f"at least 2 columns (the embedding's rank r needs "
                                  f"1 <= r < p; X has p = {p})")
        if rank >= p:
            raise invalid("rank", self.rank, f"an int in [1, {p - 1}] (rank < p = {p}, the "
                                             "number of columns of X)")
        if params["method"] == "convex" and params["alpha"] is None and params["cv"] > m:
            raise invalid("cv", self.cv, f"an int in [2, {m}] (at most one fold per node; X "
                                         f"has {m} rows)")
        rng = check_random_state(params["random_state"])
        Z = _core.neighbour_sums(a, Xc)
        s = _core.stats(Xc, Z)
        if not np.isfinite(s.szz).all() or not np.isfinite(s.szx).all():
            raise invalid("X", X, "values small enough that A X and X^T A X are finite")
        x_max, z_max = float(np.abs(Xc).max()), float(np.abs(Z).max())
        if z_max == 0.0:
            raise invalid("X", X, "a field that is nonzero on some node with a neighbour "
                                  "(the neighbour sums A X are all 0: nothing to fit)")
        if min(x_max, z_max) < _UNDERFLOW:
            raise invalid("X", X, f"values large enough that X^T A X does not underflow; "
                                  f"largest |X| is {x_max:.3g}, largest |A X| {z_max:.3g} "
                                  f"(both at least {_UNDERFLOW:g}); multiply X by a constant "
                                  "(M_ does not change; a given alpha scales with its "
                                  "square) or the graph's weights (M_ scales inversely)")
        self._set_input_attributes(X, p)
        for name in ("alphas_", "cv_scores_"):  # set again only by the penalty path
            if hasattr(self, name):
                delattr(self, name)
        if params["method"] == "nonconvex":
            if params["alpha"] is not None:
                warnings.warn(f"GaussianEmbedding: alpha={params['alpha']!r} is ignored by "
                              "method='nonconvex' (the nuclear-norm penalty belongs to "
                              "method='convex'; the rank is set by rank)", UserWarning,
                              stacklevel=3)
            V0 = _core.spectral_init(s, rank, rng)
            res = _core.nonconvex(s, V0, max_iter=params["max_iter"], tol=params["tol"])
            self.M_, self.embedding_ = res.M, res.V
            self.alpha_ = None
        else:
            if params["alpha"] is None:
                alpha, res = self._convex_path(Xc, Z, s, rng, rank)
            else:
                alpha = params["alpha"]
                res = _core.convex(s, alpha, None, max_iter=params["max_iter"],
                                   tol=params["tol"])
            self.M_, self.alpha_ = res.M, alpha
            self.embedding_ = _core.factor(res.M, rank)
        self.n_iter_, self.converged_ = res.n_iter, res.converged
        if not res.converged:
            warnings.warn(f"GaussianEmbedding ({params['method']}) did not reach tol="
                          f"{params['tol']:g} in max_iter={params['max_iter']} iterations",
                          _convergence_warning(), stacklevel=3)
        norm_m = float(np.abs(np.linalg.eigvalsh(self.M_)).max())
        bounds = norm_bounds(a)
        self.graph_norm_ = bounds[1]
        self.validity_ = self.graph_norm_ * norm_m
        self.valid_ = is_valid(a, bounds, norm_m)
        if not self.valid_:
            warnings.warn(
                f"the fitted M breaks the validity condition ||A||_2 ||M||_2 < 1 "
                f"(||A||_2 = {_show_norm(bounds)}, ||M||_2 = {norm_m:.4g}, product "
                f"{self.validity_:.4g}): no joint Gaussian law with these conditionals "
                "exists on this graph; the model may be misspecified (e.g. uncentred "
                "columns or a graph that does not describe the dependence)",
                ValidityWarning, stacklevel=3)
        return self

    def predict(self, X: Any, graph: Any = None) -> np.ndarray:
        """The conditional means ``E[x_j | neighbours] = sum_k A_jk M_ x_k`` (m, p)."""
        check_is_fitted(self, "M_")
        Xc, a = self._data(X, graph, fitting=False)
        return np.asarray(a @ Xc) @ self.M_

    def score(self, X: Any, graph: Any = None) -> float:
        """Mean pseudo log-likelihood per node:
        ``-(1/2m) ||X - A X M_||_F^2 - (p/2) log(2 pi)`` (higher is better)."""
        check_is_fitted(self, "M_")
        Xc, a = self._data(X, graph, fitting=False)
        s = _core.stats(Xc, _core.neighbour_sums(a, Xc))
        return -_core.loss(self.M_, s) - 0.5 * Xc.shape[1] * math.log(2 * math.pi)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # the graph, in the place of y
        tags.non_deterministic = False
        return tags


# below this, products in X^T A X fall under about 1e-290 and lose digits to underflow,
# and ||Szz|| >= max|A X|^2 / m may reach the solvers' 1e-300 floors (the fit of a field
# scaled by 1e-160 was M_ = 0 with the convex method, a LinAlgError with the nonconvex)
_UNDERFLOW = 1e-145
_TINY_NORMAL = np.finfo(np.float64).tiny
_REFINE_STEPS = 5  # bisections of the rank boundary on the convex path
_SHRUNK_FACTOR = 1.5  # admissible penalties all within this factor of alpha_max: warn


def _convergence_warning() -> type[Warning]:
    from sklearn.exceptions import ConvergenceWarning

    return ConvergenceWarning




def _check_node_labels(X: Any, graph: Any) -> None:
    """The graph's rows and columns are X's rows by position. A graph given as a
    DataFrame must have its columns in its index's order, and when X is a DataFrame
    indexed by the same node labels, in X's order too (a graph of the same nodes in
    another order fitted another model without a word). Labels unlike X's (e.g. a
    default index) are not compared: positions hold."""
    g_index, g_cols = getattr(graph, "index", None), getattr(graph, "columns", None)
    if g_index is None or g_cols is None or not hasattr(graph, "iloc"):
        return
    if not g_index.equals(g_cols):
        raise invalid("graph", graph, "a DataFrame whose columns are its index, in the same "
                                      "order (one node per row and per column)")
    x_index = getattr(X, "index", None)
    if (x_index is not None and hasattr(X, "iloc") and len(x_index) == len(g_index)
            and not x_index.equals(g_index) and set(x_index) == set(g_index)):
        raise invalid("graph", graph, "a DataFrame in X's row order (it holds X's nodes in "
                                      "another order: pass graph.loc[X.index, X.index])")
