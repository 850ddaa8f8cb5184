"""Exact draws from the Gaussian embedding model.

The joint law of ``X`` (m x p, rows ``x_j``) has precision ``Q = I - A (x) M``. With the
eigendecomposition ``M = U diag(lam) U^T``, the columns of ``Y = X U`` are independent,
column ``a`` with precision ``I - lam_a A``; columns with ``lam_a = 0`` are standard normal.
So a draw costs one m x m sparse problem per nonzero eigenvalue of ``M`` (and O(m p k) dense
work for ``k`` nonzero eigenvalues):

* ``"cholesky"``: a sparse LDL^T factorisation of ``S = I - lam A`` (SuperLU, symmetric
  mode, fill-reducing ordering); ``u = P^T L D^(1/2) z`` has covariance ``S`` and
  ``S^(-1) u`` covariance ``S^(-1)``;
* ``"chebyshev"``: ``S^(-1/2) z`` by a Chebyshev expansion of ``t -> (1 - c t)^(-1/2)`` on
  the spectrum of ``A / ||A||`` (``c = lam ||A||``), truncated where the remaining
  coefficients sum below 1e-15 relative (rounding of the coefficients adds about
  ``n eps max f``: under 1e-12 relative up to ``|c| = 0.9999``); only sparse products,
  ``n`` growing like ``log(1/eps) / sqrt(2 (1 - |c|))``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

CHEB_TOL = 1e-15


def chebyshev_coefficients(c: float, tol: float = CHEB_TOL) -> np.ndarray:
    """Chebyshev coefficients of ``s -> (1 - c s)^(-1/2)`` on [-1, 1] (|c| < 1), truncated
    where the tail sum falls below ``tol`` times the function's minimum on [-1, 1]."""
    c = float(c)
    if c == 0.0:
        return np.array([1.0])
    # Bernstein ellipse of the singularity at s = 1/|c|: coefficients decay like rho^-k
    inv = 1.0 / abs(c)
    rho = inv + math.sqrt(inv * inv - 1.0)
    n = int(math.ceil(math.log(1e3 / tol) / math.log(rho))) + 16
    n_pts = 2 * n + 1
    from scipy.fft import dct

    k = np.arange(n_pts)
    s = np.cos(np.pi * (k + 0.5) / n_pts)
    coef = dct((1.0 - c * s) ** -0.5, type=2) / n_pts
    coef[0] *= 0.5
    fmin = (1.0 + abs(c)) ** -0.5
    tail = np.cumsum(np.abs(coef[::-1]))[::-1]  # tail[k] = sum_{i >= k} |coef_i|
    keep = int(np.argmax(tail < tol * fmin)) if (tail < tol * fmin).any() else n_pts
    return coef[:max(keep, 1)]


def _chebyshev_columns(a: sp.csr_matrix, norm_a: float, lams: np.ndarray,
                       Z: np.ndarray) -> np.ndarray:
    """``(I - lam_a A)^(-1/2) Z[:, a]`` for every column ``a`` (one recurrence for all)."""
    coefs = [chebyshev_coefficients(lam * norm_a) for lam in lams]
    n = max(len(c) for c in coefs)
    C = np.zeros((n, len(lams)))
    for i, c in enumerate(coefs):
        C[:len(c), i] = c
    a_hat = a * (1.0 / norm_a)
    t_prev = Z
    out = Z * C[0]
    if n == 1:
        return out
    t_cur = np.asarray(a_hat @ Z)
    out += t_cur * C[1]
    for k in range(2, n):
        t_next = 2.0 * np.asarray(a_hat @ t_cur) - t_prev
        out += t_next * C[k]
        t_prev, t_cur = t_cur, t_next
    return out


class NotPositiveDefinite(ArithmeticError):
    """A pivot of ``I - lam A`` was not positive."""


def _cholesky_column(a: sp.csr_matrix, lam: float, z: np.ndarray) -> np.ndarray:
    from scipy.sparse.linalg import splu

    m = a.shape[0]
    S = (sp.identity(m, format="csc") - lam * a).tocsc()
    lu = splu(S, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
              options={"SymmetricMode": True})
    if not np.array_equal(lu.perm_r, lu.perm_c):
        # symmetric mode kept the diagonal pivots for every SPD matrix met so far; if it
        # ever did not, the factor is not LDL^T and cannot give the draw
        raise RuntimeError("SuperLU did not keep a symmetric permutation; use "
                           "method='chebyshev'")
    d = lu.U.diagonal()
    if not (d > 0).all():
        raise NotPositiveDefinite
    # S[q][:, q] = L D L^T with q = argsort(perm): u[q] = L D^(1/2) z has covariance S
    w = lu.L @ (np.sqrt(d)[:, None] * z)
    return lu.solve(w[lu.perm_c])


def positive_definite(a: sp.csr_matrix, lam: float) -> bool:
    """Whether ``I - lam A`` is positive definite (all pivots of its LDL^T positive)."""
    from scipy.sparse.linalg import splu

    m = a.shape[0]
    S = (sp.identity(m, format="csc") - lam * a).tocsc()
    try:
        lu = splu(S, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                  options={"SymmetricMode": True})
    except RuntimeError:  # exactly singular
        return False
    return bool((lu.U.diagonal() > 0).all())


def is_valid(a: sp.csr_matrix, bounds: tuple[float, float], norm_m: float) -> bool:
    """Whether ``||A||_2 ||M||_2 < 1``: decided by the norm bounds when they suffice,
    otherwise exactly by factorising ``I - ||M|| A`` (``||A||`` is the Perron root)."""
    lo, hi = bounds
    if hi * norm_m < 1.0:
        return True
    if lo * norm_m >= 1.0:
        return False
    return positive_definite(a, norm_m)


def draw(a: sp.csr_matrix, norm_a: float, M: np.ndarray, Z: np.ndarray,
         method: str) -> np.ndarray:
    """One field ``X`` (m x p) from standard normals ``Z`` (m x p) (checked inputs;
    ``norm_a`` an upper bound of ``||A||_2``; the Chebyshev expansion needs
    ``||M|| norm_a < 1`` and falls back to the factorisation otherwise)."""
    lam, U = np.linalg.eigh(M)
    scale = float(np.abs(lam).max()) if lam.size else 0.0
    active = np.abs(lam) > 1e-13 * scale if scale > 0 else np.zeros(lam.size, bool)
    if not active.any():
        return Z.copy()
    idx = np.flatnonzero(active)
    Ua = U[:, idx]
    # Z is N(0, I) in any orthonormal basis: rotate only the k active directions,
    # X = Z + (S^(-1/2) (Z Ua) - Z Ua) Ua^T, O(m p k) instead of O(m p^2)
    P = Z @ Ua
    if method == "chebyshev" and float(np.abs(lam[idx]).max()) * norm_a < 1.0 - 1e-9:
        Q = _chebyshev_columns(a, norm_a, lam[idx], P)
    else:
        Q = np.empty_like(P)
        for i, k in enumerate(idx):
            Q[:, [i]] = _cholesky_column(a, float(lam[k]), P[:, [i]])
    return Z + (Q - P) @ Ua.T
