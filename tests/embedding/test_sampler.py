"""The sampler against the dense covariance (I - A (x) M)^-1."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from neurips18._validation import ValidationError
from neurips18.embedding import (
    _sampler,
    chain_graph,
    lattice_graph,
    nearest_neighbor_graph,
    sample_gaussian_embedding,
)
from neurips18.embedding._graphs import check_graph, norm_bounds

from .conftest import planted


def dense_cov(A, M):
    """Covariance of vec(X) (node-major: index j * p + a) under precision I - A (x) M."""
    A = A.toarray() if sp.issparse(A) else np.asarray(A)
    Q = np.eye(A.shape[0] * M.shape[0]) - np.kron(A, M)
    return np.linalg.inv(Q)


def linear_map(A, M, method):
    """The sampler's map z -> x, read off by feeding it the unit vectors."""
    a = check_graph(A)
    hi = norm_bounds(a)[1]
    m, p = a.shape[0], M.shape[0]
    cols = []
    for k in range(m * p):
        z = np.zeros(m * p)
        z[k] = 1.0
        cols.append(_sampler.draw(a, hi, M, z.reshape(m, p), method).ravel())
    return np.array(cols).T


GRAPHS = [chain_graph(7), nearest_neighbor_graph(6, 2), lattice_graph(3, 3)]


@pytest.mark.parametrize("A", GRAPHS, ids=["chain", "nn2", "lattice"])
@pytest.mark.parametrize("method", ["cholesky", "chebyshev"])
def test_draws_have_exactly_the_model_covariance(A, method):
    """T T^T equals (I - A (x) M)^-1 to rounding, where x = T z."""
    a = check_graph(A)
    hi = norm_bounds(a)[1]
    M = planted(3, 2, 0.9 / hi, seed=1)
    M[0, 0] -= 0.05  # an indefinite M works too
    M = 0.9 / hi * M / np.abs(np.linalg.eigvalsh(M)).max()
    T = linear_map(A, M, method)
    np.testing.assert_allclose(T @ T.T, dense_cov(A, M), atol=1e-12, rtol=1e-11)


def test_chebyshev_near_the_validity_boundary():
    A = chain_graph(6)
    hi = norm_bounds(check_graph(A))[1]
    M = planted(2, 1, 0.999 / hi)
    T = linear_map(A, M, "chebyshev")
    np.testing.assert_allclose(T @ T.T, dense_cov(A, M), rtol=1e-10, atol=1e-10)


def test_sample_moments_match_the_dense_covariance():
    """Monte-Carlo: every entry of the sample covariance within 5 standard errors."""
    A = lattice_graph(2, 3)
    M = planted(2, 1, 0.35)
    S = dense_cov(A, M)
    n = 40_000
    X = sample_gaussian_embedding(A, M, generator=3, n_samples=n).reshape(n, -1)
    assert abs(X.mean(axis=0)).max() < 5 * np.sqrt(S.diagonal().max() / n)
    C = X.T @ X / n
    se = np.sqrt((np.outer(S.diagonal(), S.diagonal()) + S**2) / n)
    z = np.abs(C - S) / se
    assert z.max() < 5, z.max()


def test_conditional_law_of_a_large_field():
    """x_j | neighbours ~ N(sum_k A_jk M x_k, I): residuals white and orthogonal to Z."""
    m, p = 60_000, 5
    A = chain_graph(m)
    M = planted(p, 2, 0.45, seed=2)
    X = sample_gaussian_embedding(A, M, generator=0)  # chebyshev path (m > 5000)
    Z = A @ X
    R = X - Z @ M
    cov = R.T @ R / m
    assert np.abs((cov - np.eye(p)) / np.sqrt((1 + np.eye(p)) / m)).max() < 5
    cross = Z.T @ R / m
    assert np.abs(cross / np.sqrt(np.diag(Z.T @ Z / m)[:, None] / m)).max() < 5


def test_weighted_graph():
    rng = np.random.default_rng(5)
    W = sp.random(5, 5, density=0.6, random_state=2)
    W = sp.csr_matrix(np.triu(W.toarray(), 1))
    W = W + W.T
    W.data = 0.5 + rng.random(W.nnz)
    W = (W + W.T) * 0.5
    hi = norm_bounds(check_graph(W))[1]
    M = planted(2, 1, 0.8 / hi)
    for method in ("cholesky", "chebyshev"):
        T = linear_map(W, M, method)
        np.testing.assert_allclose(T @ T.T, dense_cov(W, M), atol=1e-12)


def test_seed_reproducible_shapes_and_inputs_untouched():
    A = chain_graph(20)
    M = planted(4, 2, 0.3)
    A0, M0 = A.copy(), M.copy()
    x1 = sample_gaussian_embedding(A, M, generator=7)
    x2 = sample_gaussian_embedding(A, M, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(x1, x2)
    assert x1.shape == (20, 4)
    assert sample_gaussian_embedding(A, M, generator=1, n_samples=3).shape == (3, 20, 4)
    assert (A != A0).nnz == 0 and np.array_equal(M, M0)
    x3 = sample_gaussian_embedding(A.toarray(), M, generator=7)
    np.testing.assert_array_equal(x1, x3)


def test_auto_switch_gives_the_same_law():
    """cholesky and chebyshev differ only by an orthogonal map of the same noise."""
    A = chain_graph(30)
    M = planted(3, 1, 0.4)
    for method in ("cholesky", "chebyshev"):
        T = linear_map(A, M, method)
        np.testing.assert_allclose(T @ T.T, dense_cov(A, M), atol=1e-11)


@pytest.mark.parametrize("M, match", [
    (np.eye(3) * 0.6, "product 1.151"),  # ||A|| = 2 cos(pi / 11) = 1.919 on a 10-chain
    (np.array([[0.1, 0.2, 0], [0, 0.1, 0], [0, 0, 0.1]]), "symmetric"),
    (np.ones((3, 2)) * 0.1, "square"),
    (np.array([[np.nan, 0], [0, 0.1]]), "NaN or inf"),
])
def test_invalid_m_is_a_clear_error(M, match):
    with pytest.raises(ValidationError, match=match) as err:
        sample_gaussian_embedding(chain_graph(10), M, generator=0)
    assert str(err.value).startswith("Invalid M:")


def test_just_valid_m_on_a_long_chain_is_sampled():
    """||A|| = 2 cos(pi / (m + 1)) < 2, so ||M|| = 1/2 is (barely) valid: the degree bound
    cannot tell, the factorisation decides and draws."""
    m = 3000
    x = sample_gaussian_embedding(chain_graph(m), 0.5 * np.eye(2), generator=0,
                                  method="chebyshev")
    assert x.shape == (m, 2) and np.isfinite(x).all()


def test_validity_decided_exactly_between_the_bounds():
    """On a star the degree bound (4) is far above ||A|| = 2: ||M|| = 0.45 is valid, 0.55
    is not, and both are decided right."""
    A = sp.lil_matrix((5, 5))
    for k in range(1, 5):
        A[0, k] = A[k, 0] = 1.0
    A = A.tocsr()
    x = sample_gaussian_embedding(A, 0.49 * np.eye(2), generator=0)
    assert x.shape == (5, 2)
    with pytest.raises(ValidationError, match="Invalid M"):
        sample_gaussian_embedding(A, 0.51 * np.eye(2), generator=0)


@pytest.mark.parametrize("kw, match", [
    ({"generator": None}, "Invalid generator"),
    ({"generator": 0, "method": "lu"}, "Invalid method"),
    ({"generator": 0, "n_samples": 0}, "Invalid n_samples"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValidationError, match=match):
        sample_gaussian_embedding(chain_graph(5), 0.1 * np.eye(2), **kw)


def test_chebyshev_coefficients_sum_to_the_function():
    """Truncated below 1e-15; rounding of the coefficients adds about n eps max f, which
    stays under 1e-12 relative even at ||A|| ||M|| = 0.9999 (about 7,000 terms)."""
    s = np.linspace(-1, 1, 101)
    for c, rtol in ((0.1, 1e-14), (-0.7, 1e-14), (0.95, 1e-13), (0.9999, 1e-12)):
        coef = _sampler.chebyshev_coefficients(c)
        approx = np.polynomial.chebyshev.chebval(s, coef)
        np.testing.assert_allclose(approx, (1 - c * s) ** -0.5, rtol=rtol)
