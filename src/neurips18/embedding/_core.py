"""Estimators of the Gaussian embedding model on p x p sufficient statistics.

With ``Z = A X`` (row ``j`` is the weighted sum of the neighbours' vectors), the pseudo
negative log-likelihood of a symmetric ``M`` is, up to constants,

    L(M) = (1 / 2m) ||X - Z M||_F^2 = sxx / 2 - tr(M Szx) + tr(M Szz M) / 2

with ``Szz = Z^T Z / m``, ``Szx = sym(Z^T X) / m`` and ``sxx = ||X||_F^2 / m``; every solver
below works on these p x p matrices only, so a fit costs one pass over the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


def sym(a: np.ndarray) -> np.ndarray:
    return (a + a.T) * 0.5


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of the pseudo-likelihood over ``m`` node terms."""

    szz: np.ndarray
    szx: np.ndarray
    sxx: float
    m: int


def gram(Z: np.ndarray) -> np.ndarray:
    """``Z^T Z`` by a symmetric rank-k update (half the work of a general product)."""
    from scipy.linalg.blas import dsyrk

    Zc = np.ascontiguousarray(Z, dtype=np.float64)
    upper = dsyrk(1.0, Zc.T, trans=0)  # Zc.T is Fortran-ordered: no copy
    return np.triu(upper) + np.triu(upper, 1).T


def stats(X: np.ndarray, Z: np.ndarray) -> Stats:
    m = X.shape[0]
    return Stats(gram(Z) / m, sym(Z.T @ X) / m, float(np.einsum("ij,ij->", X, X)) / m, m)


def neighbour_sums(a: sp.csr_matrix, X: np.ndarray) -> np.ndarray:
    return np.asarray(a @ X)


def loss(M: np.ndarray, s: Stats) -> float:
    """(1 / 2m) ||X - Z M||_F^2 for a symmetric ``M``."""
    return 0.5 * s.sxx - float(np.einsum("ij,ij->", M, s.szx)) + 0.5 * float(
        np.einsum("ij,ij->", M, s.szz @ M))


def grad_m(M: np.ndarray, s: Stats) -> np.ndarray:
    """Gradient of ``loss`` over symmetric matrices: ``sym(Szz M) - Szx``."""
    return sym(s.szz @ M) - s.szx


def loss_v(V: np.ndarray, s: Stats) -> float:
    return loss(V @ V.T, s)


def grad_v(V: np.ndarray, s: Stats) -> np.ndarray:
    """Gradient of ``V -> loss(V V^T)``: ``2 (sym(Szz M) - Szx) V`` in O(p^2 r)."""
    szz_v = s.szz @ V
    vtv = V.T @ V
    return szz_v @ vtv + V @ (szz_v.T @ V) - 2.0 * (s.szx @ V)


def least_squares(s: Stats) -> np.ndarray:
    """The symmetric minimiser of ``loss``: the solution of ``Szz M + M Szz = 2 Szx``
    (minimum-norm where ``Szz`` is singular)."""
    w, W = np.linalg.eigh(s.szz)
    b = W.T @ s.szx @ W
    den = w[:, None] + w[None, :]
    cut = max(float(w.max()), 0.0) * 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        mp = np.where(den > cut, 2.0 * b / den, 0.0)
    return sym(W @ mp @ W.T)


def spectral_init(s: Stats, rank: int, rng: np.random.RandomState) -> np.ndarray:
    """V0 from the rank-``rank`` positive part of the least-squares estimate; columns
    whose eigenvalue is not positive start as small random vectors (an exactly zero
    column has zero gradient and would never grow)."""
    lam, U = np.linalg.eigh(least_squares(s))
    lam, U = lam[::-1][:rank], U[:, ::-1][:, :rank]
    V = U * np.sqrt(np.clip(lam, 0.0, None))
    small = lam <= 1e-8 * max(float(lam[0]), 1e-300)
    if small.any():
        # the start's size is in the unit of M (inverse to the graph's weights): the
        # floor for a largest eigenvalue that is tiny or not positive is 1e-6 of
        # ||Szx|| / ||Szz||, not 1e-6 itself. An absolute floor made the random columns
        # far larger than M_ for a graph with large weights (c A, c = 1e14: M_ about
        # 1e-15), and the fit did not converge or ended at another M_ (c M_ with an
        # eigenvalue 8.5 for a true 0.39 at c = 1e16).
        norm_zz = float(np.linalg.norm(s.szz, 2))
        unit = float(np.linalg.norm(s.szx, 2)) / norm_zz if norm_zz > 0 else 0.0
        scale = 1e-3 * np.sqrt(max(float(lam[0]), 1e-6 * unit))
        V[:, small] = scale * rng.standard_normal((V.shape[0], int(small.sum())))
    return V


@dataclass
class Fit:
    M: np.ndarray
    V: np.ndarray
    n_iter: int
    converged: bool


def nonconvex(s: Stats, V0: np.ndarray, *, max_iter: int, tol: float,
              step: float | None = None) -> Fit:
    """Gradient descent on ``V`` for ``loss(V V^T)`` from ``V0`` with the fixed step
    ``1 / (4 ||Szz|| sigma)``, ``sigma = max(||V0 V0^T||, ||Szx|| / ||Szz||)``; stops
    when ``||V_t+1 - V_t|| <= tol ||V_t||``.

    The spectral start has ``||V0 V0^T|| >= ||Szx|| / ||Szz||`` whenever the largest
    eigenvalue of the least-squares estimate is also the largest in modulus (the usual
    case), and then the step is the paper's ``1 / (4 ||Szz|| ||M0||)``. When that estimate
    has only small positive eigenvalues, ``V0`` is tiny and that step would be huge, while
    near ``V = 0`` the gradient is ``-2 Szx V`` and needs a step below ``1 / ||Szx||``; the
    floor keeps it at ``1 / (4 ||Szx||)`` at most."""
    V = V0.copy()
    if step is None:
        norm_zz = float(np.linalg.norm(s.szz, 2))
        sigma = max(float(np.linalg.norm(V, 2)) ** 2,
                    float(np.linalg.norm(s.szx, 2)) / max(norm_zz, 1e-300))
        # sigma >= ||Szx|| / ||Szz||, which carries the unit of M (inverse to the graph's
        # weights): an absolute floor here shrank the step for a graph with large weights
        # (M_ about 1e-13) and the fit stopped short of the minimum. sigma = 0 only when
        # Szx = 0 and V0 = 0, where the gradient is 0 and any step stays put.
        step = 1.0 / (4.0 * norm_zz * sigma) if sigma > 0 else 0.0
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        delta = step * grad_v(V, s)
        V = V - delta
        if np.linalg.norm(delta) <= tol * max(float(np.linalg.norm(V)), 1e-300):
            converged = True
            break
    return Fit(V @ V.T, V, it, converged)


def svt(Y: np.ndarray, tau: float) -> np.ndarray:
    """Proximal map of ``tau ||.||_*`` on symmetric matrices (eigenvalue soft-threshold)."""
    lam, U = np.linalg.eigh(sym(Y))
    shrunk = np.sign(lam) * np.maximum(np.abs(lam) - tau, 0.0)
    keep = shrunk != 0
    if not keep.any():
        return np.zeros_like(Y)
    Uk = U[:, keep]
    return sym((Uk * shrunk[keep]) @ Uk.T)


def objective(M: np.ndarray, s: Stats, alpha: float) -> float:
    return loss(M, s) + alpha * float(np.abs(np.linalg.eigvalsh(M)).sum())


def convex(s: Stats, alpha: float, M0: np.ndarray | None = None, *, max_iter: int,
           tol: float) -> Fit:
    """Accelerated proximal gradient (FISTA with gradient-based adaptive restart) for
    ``loss(M) + alpha ||M||_*``, step ``1 / ||Szz||``; stops when
    ``||M_t+1 - M_t||_F <= tol max(||M_t+1||_F, 1e-12 ||Szx|| / ||Szz||)`` (the floor is in
    the unit of ``M``, so that the stopping rule does not depend on the graph's weights)."""
    p = s.szz.shape[0]
    lip = max(float(np.linalg.norm(s.szz, 2)), 1e-300)
    floor = 1e-12 * float(np.linalg.norm(s.szx, 2)) / lip
    M = np.zeros((p, p)) if M0 is None else M0.copy()
    Y, t = M.copy(), 1.0
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        M_new = svt(Y - grad_m(Y, s) / lip, alpha / lip)
        diff = M_new - M
        if np.einsum("ij,ij->", Y - M_new, diff) > 0:  # restart momentum
            t = 1.0
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        Y = M_new + ((t - 1.0) / t_new) * diff
        M, t = M_new, t_new
        if np.linalg.norm(diff) <= tol * max(float(np.linalg.norm(M)), floor):
            converged = True
            break
    return Fit(M, factor(M, p), it, converged)


def factor(M: np.ndarray, rank: int) -> np.ndarray:
    """``V`` (p x rank) from the ``rank`` largest eigenpairs of ``M``, negative ones
    clipped at zero, so that ``V V^T`` is the best PSD rank-``rank`` approximation."""
    lam, U = np.linalg.eigh(M)
    lam, U = lam[::-1][:rank], U[:, ::-1][:, :rank]
    return U * np.sqrt(np.clip(lam, 0.0, None))


def alpha_max(s: Stats) -> float:
    """The smallest penalty for which ``M = 0`` is the convex solution: ``||Szx||_2``."""
    return float(np.abs(np.linalg.eigvalsh(s.szx)).max())
