"""GaussianEmbedding: recovery at the rate, the two estimators against each other, the
gradients against finite differences, and what a user may pass by mistake."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from neurips18._validation import ValidationError
from neurips18.embedding import (
    GaussianEmbedding,
    ValidityWarning,
    _core,
    chain_graph,
    lattice_graph,
    nearest_neighbor_graph,
    sample_gaussian_embedding,
)

from .conftest import planted


def field(A, p=12, r=2, signal=0.8, seed=0):
    d_max = float(np.asarray(A.sum(axis=1)).max())
    M = planted(p, r, signal / d_max, seed=seed)
    return sample_gaussian_embedding(A, M, generator=seed + 100), M


@pytest.fixture(scope="module")
def chain_data():
    A = chain_graph(8000)
    X, M = field(A)
    return X, A, M


# ----------------------------------------------------------------------------- gradients
def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    A = nearest_neighbor_graph(300, 2)
    X, _ = field(A, p=6, r=2)
    s = _core.stats(X, A @ X)
    M = _core.sym(rng.standard_normal((6, 6))) * 0.1
    D = _core.sym(rng.standard_normal((6, 6)))
    h = 1e-6
    fd = (_core.loss(M + h * D, s) - _core.loss(M - h * D, s)) / (2 * h)
    assert fd == pytest.approx(np.sum(_core.grad_m(M, s) * D), rel=1e-7)
    V = rng.standard_normal((6, 2)) * 0.3
    E = rng.standard_normal((6, 2))
    fd = (_core.loss_v(V + h * E, s) - _core.loss_v(V - h * E, s)) / (2 * h)
    assert fd == pytest.approx(np.sum(_core.grad_v(V, s) * E), rel=1e-7)


def test_loss_equals_the_pseudo_likelihood_on_the_data():
    A = lattice_graph(10, 12)
    X, M = field(A, p=5, r=1)
    Z = A @ X
    s = _core.stats(X, Z)
    direct = np.sum((X - Z @ M) ** 2) / (2 * X.shape[0])
    assert _core.loss(M, s) == pytest.approx(direct, rel=1e-12)
    est = GaussianEmbedding(1).fit(X, A)
    assert est.score(X, A) == pytest.approx(
        -np.sum((X - Z @ est.M_) ** 2) / (2 * X.shape[0]) - 2.5 * np.log(2 * np.pi), rel=1e-12)
    np.testing.assert_allclose(est.predict(X, A), Z @ est.M_)


# ----------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("make", [lambda m: chain_graph(m), lambda m: nearest_neighbor_graph(
    m, 2), lambda m: lattice_graph(m // 80, 80)], ids=["chain", "nn2", "lattice"])
def test_nonconvex_recovers_a_planted_m_at_the_rate(make):
    A = make(8000)
    m = A.shape[0]
    p, r = 12, 2
    ratios = []
    for seed in range(3):
        X, M = field(A, p, r, seed=seed)
        est = GaussianEmbedding(r, random_state=0).fit(X, A)
        assert est.converged_ and est.embedding_.shape == (p, r)
        np.testing.assert_allclose(est.embedding_ @ est.embedding_.T, est.M_, atol=1e-12)
        assert np.linalg.matrix_rank(est.M_) == r
        ratios.append(np.linalg.norm(est.M_ - M) / np.sqrt(r * p / m))
    assert np.mean(ratios) < 1.0, ratios


def test_error_shrinks_like_one_over_sqrt_m():
    p, r = 10, 2
    errs = {}
    for m in (2000, 32000):
        A = chain_graph(m)
        e = []
        for seed in range(4):
            X, M = field(A, p, r, seed=seed)
            e.append(np.linalg.norm(GaussianEmbedding(r).fit(X, A).M_ - M))
        errs[m] = np.mean(e)
    slope = np.log(errs[32000] / errs[2000]) / np.log(16)
    assert -0.65 < slope < -0.35, slope


def test_convex_recovers_and_picks_alpha_on_a_path(chain_data):
    X, A, M = chain_data
    m, p, r = X.shape[0], X.shape[1], 2
    est = GaussianEmbedding(r, method="convex", random_state=0).fit(X, A)
    assert est.alpha_ in est.alphas_ and est.cv_scores_.shape == est.alphas_.shape
    assert est.alpha_ == est.alphas_[np.argmax(est.cv_scores_)]
    # the chosen penalty's solution honours the requested rank (the held-out score alone
    # would pick a smaller penalty with spurious small eigenvalues)
    assert np.linalg.matrix_rank(est.M_, hermitian=True) <= r
    assert est.alphas_[0] == pytest.approx(_core.alpha_max(_core.stats(X, A @ X)))
    # the rank boundary is bisected, not left at the grid's step (a factor 1.44): 1.2 %
    # below the path's smallest penalty the solution already has rank > r
    below = _core.convex(_core.stats(X, A @ X), est.alphas_[-1] / 1.012, est.M_,
                         max_iter=2000, tol=1e-7).M
    assert np.linalg.matrix_rank(below, hermitian=True) > r
    assert np.linalg.norm(est.M_ - M) / np.sqrt(r * p / m) < 1.5
    np.testing.assert_allclose(est.M_, est.M_.T)
    ls = _core.least_squares(_core.stats(X, A @ X))
    assert np.linalg.norm(est.M_ - M) < np.linalg.norm(ls - M)


def test_convex_warns_when_no_penalty_gives_a_nonzero_fit_of_the_rank():
    """Five equal planted eigenvalues and rank 1: the first penalty below alpha_max already
    gives rank > 1, so the held-out path is left with penalties next to alpha_max, whose
    fits are (nearly) 0; that is said, not silent."""
    rng = np.random.default_rng(0)
    A = chain_graph(4000)
    U, _ = np.linalg.qr(rng.standard_normal((10, 5)))
    X = sample_gaussian_embedding(A, 0.35 * U @ U.T, generator=rng)
    with pytest.warns(UserWarning, match="shrinks M_ nearly to 0"):
        est = GaussianEmbedding(1, method="convex", random_state=0).fit(X, A)
    assert np.abs(np.linalg.eigvalsh(est.M_)).max() < 0.1 * 0.35
    assert est.alphas_.size <= 6 and est.alphas_[1] > est.alphas_[0] / 1.44
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est5 = GaussianEmbedding(5, method="convex", random_state=0).fit(X, A)
    assert np.linalg.matrix_rank(est5.M_, hermitian=True) == 5


def test_convex_and_nonconvex_agree_when_the_penalty_is_small_and_the_rank_right():
    """With the convex solution of rank r and PSD, it is feasible for the rank-r problem,
    so 0 <= L(M_cvx) - L(M_ncvx) <= alpha (||M_ncvx||_* - ||M_cvx||_*); the gap between
    the two shrinks with alpha while the rank stays right."""
    A = chain_graph(40000)
    X, M = field(A, p=8, r=2, seed=4)
    s = _core.stats(X, A @ X)
    ncvx = GaussianEmbedding(2, tol=1e-12, max_iter=20000).fit(X, A).M_
    g = np.abs(np.linalg.eigvalsh(_core.grad_m(ncvx, s))).max()
    dists = []
    for c in (4.0, 2.0, 1.2):
        cvx = GaussianEmbedding(2, method="convex", alpha=c * g, tol=1e-13,
                                max_iter=50000).fit(X, A).M_
        lam = np.linalg.eigvalsh(cvx)
        assert (np.abs(lam) > 1e-10).sum() == 2 and lam.min() > -1e-10
        gap = _core.loss(cvx, s) - _core.loss(ncvx, s)
        nuc = np.abs(np.linalg.eigvalsh(ncvx)).sum() - np.abs(lam).sum()
        assert -1e-12 <= gap <= c * g * nuc + 1e-12
        dists.append(np.linalg.norm(cvx - ncvx))
    assert dists[0] > dists[1] > dists[2]
    assert dists[2] < 0.1 * np.linalg.norm(M)


def test_deterministic_and_random_state_only_matters_for_the_path(chain_data):
    X, A, _ = chain_data
    a = GaussianEmbedding(2, random_state=1).fit(X, A).M_
    b = GaussianEmbedding(2, random_state=2).fit(X, A).M_
    np.testing.assert_array_equal(a, b)  # spectral start: no randomness
    c1 = GaussianEmbedding(2, method="convex", random_state=3).fit(X, A).M_
    c2 = GaussianEmbedding(2, method="convex", random_state=3).fit(X, A).M_
    np.testing.assert_array_equal(c1, c2)


# ----------------------------------------------------------------------------- user input
def test_dense_sparse_and_weighted_graphs():
    A = chain_graph(3000)
    X, M = field(A, p=6, r=1)
    e_sparse = GaussianEmbedding(1).fit(X, A).M_
    e_dense = GaussianEmbedding(1).fit(X, A.toarray()).M_
    e_csc = GaussianEmbedding(1).fit(X, A.tocsc()).M_
    np.testing.assert_allclose(e_sparse, e_dense, atol=1e-12)
    np.testing.assert_allclose(e_sparse, e_csc, atol=1e-12)
    # weights scale the neighbour sums: weights 2 give M / 2
    e_w = GaussianEmbedding(1).fit(X, 2.0 * A).M_
    np.testing.assert_allclose(e_w, e_sparse / 2, atol=1e-10)


def test_inputs_are_not_modified(chain_data):
    X, A, _ = chain_data
    X0, A0 = X.copy(), A.copy()
    GaussianEmbedding(2, method="convex", alpha=0.01).fit(X, A).score(X, A)
    np.testing.assert_array_equal(X, X0)
    assert (A != A0).nnz == 0


@pytest.mark.parametrize("params, match", [
    ({"rank": 0}, "Invalid rank"),
    ({"rank": 12}, r"rank < p = 12"),
    ({"rank": 30}, r"\[1, 11\]"),
    ({"rank": 2.0}, "Invalid rank"),
    ({"method": "sgd"}, "Invalid method"),
    ({"alpha": -1.0}, "Invalid alpha"),
    ({"alpha": np.nan}, "Invalid alpha"),
    ({"max_iter": 0}, "Invalid max_iter"),
    ({"tol": -1e-3}, "Invalid tol"),
    ({"cv": 1}, "Invalid cv"),
    ({"n_alphas": 1}, "Invalid n_alphas"),
    ({"cv": 51, "method": "convex"}, r"Invalid cv: 51 \(expected an int in \[2, 50\]"),
    ({"random_state": "seed"}, "Invalid random_state"),
])
def test_bad_hyperparameters(params, match):
    A = chain_graph(50)
    X = np.random.default_rng(0).standard_normal((50, 12))
    kw = {"rank": 2, **params}
    with pytest.raises(ValidationError, match=match):
        GaussianEmbedding(**kw).fit(X, A)


@pytest.mark.parametrize("graph, match", [
    (np.ones((50, 49)), "square"),
    (chain_graph(49), "to match the 50 rows"),
    (sp.triu(chain_graph(50)).tocsr(), "symmetric"),
    (-chain_graph(50), "non-negative"),
    (None, "fit\\(X, graph\\)"),
    (np.zeros(50), "2-D"),
])
def test_bad_graphs(graph, match):
    X = np.random.default_rng(0).standard_normal((50, 4))
    with pytest.raises(ValidationError, match=match):
        GaussianEmbedding(2).fit(X, graph)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_x(bad):
    X = np.random.default_rng(0).standard_normal((50, 4))
    X[3, 1] = bad
    with pytest.raises(ValidationError, match="Invalid X: .*found 1 NaN or inf"):
        GaussianEmbedding(2).fit(X, chain_graph(50))


def test_dataframe_with_missing_values_is_refused_and_clean_one_keeps_names():
    A = chain_graph(400)
    X, _ = field(A, p=4, r=1)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = GaussianEmbedding(1).fit(df, A)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c", "d"])
    assert est.n_features_in_ == 4
    df.iloc[5, 2] = np.nan
    with pytest.raises(ValidationError, match="Invalid X: DataFrame"):
        GaussianEmbedding(1).fit(df, A)
    with pytest.raises(ValidationError, match="4 columns, as seen in fit"):
        est.score(X[:, :3], A)


def test_columns_renamed_or_reordered_after_a_named_fit_are_refused():
    """M_ is indexed by the columns seen in fit: a frame whose columns are renamed or
    reordered would be scored against the wrong coordinates, so it is refused; unnamed
    data after a named fit gets scikit-learn's warning."""
    A = chain_graph(400)
    X, _ = field(A, p=4, r=1)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = GaussianEmbedding(1).fit(df, A)
    with pytest.raises(ValidationError, match=r"Invalid X: .*missing \['a'\], unexpected "
                                              r"\['z'\]"):
        est.score(df.rename(columns={"a": "z"}), A)
    with pytest.raises(ValidationError, match="another order"):
        est.predict(df[["b", "a", "c", "d"]], A)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        unnamed = est.score(X, A)
    assert unnamed == pytest.approx(est.score(df, A), rel=1e-12)


def test_named_columns_after_an_unnamed_fit_get_the_warning():
    """A DataFrame after a fit on an array is read by position: its columns may be in
    another order than the array's, and that went without scikit-learn's warning."""
    A = chain_graph(400)
    X, _ = field(A, p=4, r=1)
    est = GaussianEmbedding(1).fit(X, A)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    with pytest.warns(UserWarning, match="X has feature names, but GaussianEmbedding was "
                                         "fitted without feature names"):
        named = est.score(df, A)
    assert named == pytest.approx(est.score(X, A), rel=1e-12)
    with warnings.catch_warnings():  # integer labels are no names: nothing to warn about
        warnings.simplefilter("error")
        est.predict(pd.DataFrame(X), A)


def test_warning_when_the_fitted_m_breaks_validity():
    """A periodic component of period 6 along a chain satisfies x_j = x_(j-1) + x_(j+1):
    the fit puts an eigenvalue near 1 in M, so ||A|| ||M|| is near 2 (no such Gaussian
    field exists); without it the fit is valid and silent."""
    A = chain_graph(2000)
    X, _ = field(A, p=5, r=1)
    v = np.array([1.0, -1.0, 0.5, 0.0, 0.0])
    seasonal = 3.0 * np.cos(np.pi * np.arange(2000) / 3)[:, None] * v
    with pytest.warns(ValidityWarning, match="validity condition"):
        est = GaussianEmbedding(1).fit(X + seasonal, A)
    assert not est.valid_ and est.validity_ > 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = GaussianEmbedding(1).fit(X, A)
    assert good.valid_ and good.validity_ < 1


def test_pipeline_centres_and_passes_the_graph_through():
    A = chain_graph(3000)
    X, M = field(A, p=6, r=1)
    pipe = make_pipeline(StandardScaler(with_std=False), GaussianEmbedding(1))
    pipe.fit(X + 3.0, A)
    np.testing.assert_allclose(pipe[-1].M_, GaussianEmbedding(1).fit(
        X + 3.0 - (X + 3.0).mean(axis=0), A).M_, atol=1e-12)
    assert np.isfinite(pipe.score(X + 3.0, A))


def test_clone_pickle_and_refit(chain_data):
    X, A, _ = chain_data
    est = GaussianEmbedding(2, method="convex", alpha=0.02).fit(X, A)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.M_, est.M_)
    assert again.score(X, A) == est.score(X, A)
    c = clone(est)
    assert not hasattr(c, "M_") and c.get_params() == est.get_params()
    np.testing.assert_array_equal(c.fit(X, A).M_, est.M_)


def test_unfitted_estimator_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianEmbedding(2).score(np.zeros((5, 3)), chain_graph(5))


def test_rank_deficient_start_still_finds_the_rank():
    """A spectral start with fewer positive eigenvalues than r grows the missing columns
    from a small random start (an all-zero column would never move)."""
    A = chain_graph(5000)
    X, M = field(A, p=6, r=1, seed=3)
    est = GaussianEmbedding(3, random_state=0, max_iter=20000).fit(X, A)
    assert np.isfinite(est.M_).all()
    assert np.linalg.norm(est.M_ - M) < 3 * np.sqrt(3 * 6 / 5000)


def test_alpha_with_the_nonconvex_method_is_not_silently_ignored():
    A = chain_graph(200)
    X, _ = field(A, p=6, r=1)
    with pytest.warns(UserWarning, match=r"alpha=0\.3 is ignored by method='nonconvex'"):
        est = GaussianEmbedding(1, alpha=0.3, random_state=0).fit(X, A)
    assert est.alpha_ is None
    plain = GaussianEmbedding(1, random_state=0).fit(X, A)
    np.testing.assert_array_equal(est.M_, plain.M_)
    with warnings.catch_warnings():  # the default and the convex method stay quiet
        warnings.simplefilter("error")
        GaussianEmbedding(1, random_state=0).fit(X, A)
        GaussianEmbedding(1, method="convex", alpha=0.01, random_state=0).fit(X, A)


def test_no_positive_direction_in_the_least_squares_estimate_gives_a_finite_fit():
    """Data from a negative definite M: the least-squares estimate has no positive
    eigenvalue, the spectral start is tiny, and the step 1 / (4 ||Szz|| ||V0||^2) was
    about 1e10 (the iterates overflowed and fit ended in a bare LinAlgError). The best
    PSD M is 0 here (tr(M Szx) <= 0 for every PSD M when Szx is negative definite)."""
    A = chain_graph(2000)
    X = sample_gaussian_embedding(A, -0.4 * np.eye(4), generator=1)
    s = _core.stats(X, A @ X)
    assert np.linalg.eigvalsh(s.szx).max() < 0
    est = GaussianEmbedding(2, random_state=0).fit(X, A)
    assert np.isfinite(est.M_).all()
    assert np.abs(est.M_).max() < 1e-12
    assert est.score(X, A) == pytest.approx(-0.5 * s.sxx - 2 * np.log(2 * np.pi), rel=1e-12)


def test_refit_without_the_path_drops_the_old_path():
    """alphas_ and cv_scores_ describe the penalty path of the last fit; a refit with a
    given alpha, or with the nonconvex method, used to keep the previous fit's path."""
    A = chain_graph(300)
    X, _ = field(A, p=5, r=2)
    est = GaussianEmbedding(2, method="convex", random_state=0).fit(X, A)
    assert est.alphas_.size > 1 and est.cv_scores_.size == est.alphas_.size
    est.set_params(alpha=0.01).fit(X, A)
    assert est.alpha_ == 0.01
    assert not hasattr(est, "alphas_") and not hasattr(est, "cv_scores_")
    est.set_params(alpha=None).fit(X, A)
    assert hasattr(est, "alphas_")
    est.set_params(method="nonconvex").fit(X, A)
    assert not hasattr(est, "alphas_") and not hasattr(est, "cv_scores_")


def test_a_refused_refit_leaves_the_fitted_model_whole():
    """A refit refused by a check (here rank >= p, or a graph of the wrong size) used to
    overwrite n_features_in_ and feature_names_in_ first, so the old M_ was then paired
    with the refused data's columns."""
    A = chain_graph(200)
    X, _ = field(A, p=5, r=2)
    named = pd.DataFrame(X, columns=list("abcde"))
    est = GaussianEmbedding(2, random_state=0).fit(named, A)
    M = est.M_.copy()
    with pytest.raises(ValidationError, match="Invalid rank"):
        est.fit(X[:, :2], A)
    other = pd.DataFrame(X, columns=list("vwxyz"))
    with pytest.raises(ValidationError, match="Invalid graph"):
        est.fit(other, chain_graph(150))
    assert est.n_features_in_ == 5
    assert list(est.feature_names_in_) == list("abcde")
    np.testing.assert_array_equal(est.M_, M)
    est.predict(named, A)
    with pytest.raises(ValidationError, match="column names seen in fit"):
        est.predict(other, A)


@pytest.mark.parametrize("method", ["nonconvex", "convex"])
def test_a_field_too_small_or_zero_on_every_edge_is_refused(method):
    """M does not depend on the scale of X, but a field scaled by 1e-160 underflows in
    X^T A X: the convex fit returned M_ = 0 without a word (the nonconvex one a bare
    LinAlgError), and an all-zero field a ZeroDivisionError."""
    A = chain_graph(1000)
    X, _ = field(A, p=4, r=2)
    est = GaussianEmbedding(2, method=method, random_state=0)
    with pytest.raises(ValidationError, match=r"Invalid X: .*does not underflow"):
        est.fit(1e-160 * X, A)
    with pytest.raises(ValidationError, match=r"Invalid X: .*neighbour sums A X are all 0"):
        est.fit(np.zeros((1000, 4)), A)
    B = sp.block_diag([chain_graph(999), sp.csr_matrix((1, 1))]).tocsr()
    lone = np.zeros((1000, 4))
    lone[-1] = 1.0  # nonzero only on the node without neighbours
    with pytest.raises(ValidationError, match=r"Invalid X: .*neighbour sums A X are all 0"):
        est.fit(lone, B)


@pytest.mark.parametrize("scale", [1e-100, 1e100])
def test_the_convex_path_does_not_depend_on_the_unit_of_x(scale):
    """Scaling X by c scales the loss by c^2: the path's penalties scale by c^2 and the
    fit stays. The bisection's midpoint sqrt(lo * hi) under- or overflowed (c = 1e-100:
    0, c = 1e100: inf), so the bisections were lost or an infinite penalty was taken
    into the path (M_ off by 1.3e-4 at c = 1e100, with a spurious shrinkage warning)."""
    A = chain_graph(1000)
    X, _ = field(A, p=4, r=2)
    ref = GaussianEmbedding(2, method="convex", random_state=0).fit(X, A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = GaussianEmbedding(2, method="convex", random_state=0).fit(scale * X, A)
    assert np.isfinite(est.alphas_).all()
    np.testing.assert_allclose(est.alphas_ / scale**2, ref.alphas_, rtol=1e-10)
    assert est.alpha_ / scale**2 == pytest.approx(ref.alpha_, rel=1e-10)
    np.testing.assert_allclose(est.M_, ref.M_, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method, kw", [("nonconvex", {}), ("convex", {"alpha": 0.05})])
@pytest.mark.parametrize("scale", [1e12, 1e15])
def test_graph_weights_in_large_units_scale_m_inversely(method, kw, scale):
    """Weights c A fit M_ / c (a given alpha scales with c). Absolute floors in the
    solvers (1e-12 on the nonconvex step's ||M0||, on the convex stopping rule's ||M||)
    took over once M_ fell near 1e-13: the nonconvex step shrank and the fit stopped
    short (relative error 7e-6 at c = 1e12, 2e-2 at 1e15), the convex one stopped early
    (7e-5 at 1e15), both reporting convergence."""
    A = chain_graph(400)
    X, _ = field(A, p=8, r=2)
    ref = GaussianEmbedding(2, method=method, **kw).fit(X, A)
    kw = {k: v * scale for k, v in kw.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = GaussianEmbedding(2, method=method, **kw).fit(X, scale * A)
    assert est.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(scale * est.M_, ref.M_, rtol=0,
                               atol=1e-12 * np.abs(ref.M_).max())


@pytest.mark.parametrize("scale", [1e14, 1e16])
def test_a_rank_deficient_start_on_a_graph_with_large_weights_scales_m_inversely(scale):
    """When the least-squares estimate has fewer positive eigenvalues than r, the missing
    columns start small and random; their size had an absolute floor (1e-6 in the unit
    of M), far above M_ for a graph with large weights: at c = 1e14 the fit did not
    converge, at c = 1e16 c M_ had an eigenvalue 8.5 where the fit of A has 0.39."""
    A = chain_graph(3000)
    U = np.linalg.qr(np.random.default_rng(3).standard_normal((5, 5)))[0]
    M = U @ np.diag([0.4, -0.3, -0.3, -0.3, -0.3]) @ U.T  # one positive direction
    X = sample_gaussian_embedding(A, M, generator=3)
    ref = GaussianEmbedding(2, random_state=0).fit(X, A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = GaussianEmbedding(2, random_state=0).fit(X, scale * A)
    assert est.converged_
    np.testing.assert_allclose(scale * est.M_, ref.M_, rtol=0,
                               atol=1e-12 * np.abs(ref.M_).max())


def test_a_single_column_field_is_refused_as_x():
    """With p = 1 no rank satisfies 1 <= r < p; the error named rank and offered the
    empty range [1, 0] whatever rank was passed."""
    A = chain_graph(50)
    X = sample_gaussian_embedding(A, [[0.3]], generator=0)
    with pytest.raises(ValidationError, match=r"Invalid X: .*at least 2 columns.*p = 1"):
        GaussianEmbedding(1).fit(X, A)


def test_a_labelled_graph_in_another_node_order_is_refused():
    """A graph DataFrame of X's nodes in another order fitted another model silently
    (the diagonal of M_ went from about 0.4 to noise)."""
    A = chain_graph(400)
    X, _ = field(A, p=3, r=1)
    ids = np.array([f"n{i}" for i in range(400)])
    Xdf = pd.DataFrame(X, index=ids, columns=list("abc"))
    Adf = pd.DataFrame(A.toarray(), index=ids, columns=ids)
    perm = np.random.default_rng(0).permutation(400)
    good = GaussianEmbedding(1, random_state=0).fit(Xdf, Adf)
    with pytest.raises(ValidationError, match=r"Invalid graph.*graph.loc\[X.index, X.index\]"):
        GaussianEmbedding(1, random_state=0).fit(Xdf, Adf.iloc[perm, perm])
    with pytest.raises(ValidationError, match="Invalid graph.*columns are its index"):
        GaussianEmbedding(1, random_state=0).fit(Xdf, Adf.iloc[:, perm])
    back = GaussianEmbedding(1, random_state=0).fit(
        Xdf, Adf.iloc[perm, perm].loc[Xdf.index, Xdf.index])
    np.testing.assert_array_equal(back.M_, good.M_)
    # labels unlike X's (a default index) are positions, as for an array
    np.testing.assert_array_equal(
        GaussianEmbedding(1, random_state=0).fit(Xdf, pd.DataFrame(A.toarray())).M_, good.M_)


@pytest.mark.parametrize("dtype", ["Int64", "Float64"])
def test_a_frame_of_nullable_numbers_is_numeric(dtype):
    # pandas' nullable dtypes became an object array, refused as "expected numeric data"
    rng = np.random.default_rng(0)
    A = chain_graph(200)
    X = pd.DataFrame(rng.integers(-5, 6, size=(200, 4)), columns=list("abcd"))
    plain = GaussianEmbedding(2, random_state=0).fit(X, A)
    nullable = GaussianEmbedding(2, random_state=0).fit(X.astype(dtype), A)
    assert np.array_equal(plain.M_, nullable.M_)
    assert list(nullable.feature_names_in_) == list("abcd")
    assert np.array_equal(nullable.predict(X.astype(dtype), A), plain.predict(X, A))
    holed = X.astype(dtype)
    holed.iloc[3, 1] = pd.NA
    with pytest.raises(ValidationError, match="Invalid X: .*found 1 NaN"):
        GaussianEmbedding(2).fit(holed, A)


def test_a_refit_that_raises_leaves_the_fitted_estimator_as_it_was():
    # with warnings turned into errors, a refit that did not converge raised after M_,
    # embedding_, n_iter_ and n_features_in_ were replaced but before graph_norm_, valid_
    # and validity_ were: a fitted estimator mixing two fits
    A = chain_graph(600)
    X, _ = field(A, p=6, seed=1)
    est = GaussianEmbedding(rank=2, random_state=0).fit(X, A)
    before = {k: v for k, v in vars(est).items() if k.endswith("_")}
    X2, _ = field(A, p=4, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Warning):
            est.set_params(max_iter=1).fit(X2, A)
    after = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert np.array_equal(np.asarray(after[k]), np.asarray(v)), k
    with warnings.catch_warnings(record=True) as caught:  # the warning names the caller
        warnings.simplefilter("always")
        est.fit(X2, A)
    assert caught and all(w.filename == __file__ for w in caught)
