"""Closed forms: the invariant moments of LMC, SGLD, SGLDFP and SGD, and Gaussian W2.

For Bayesian linear regression (Brosse, Durmus, Moulines, NeurIPS 2018, arXiv:1811.10072,
Section 3) every algorithm is an affine recursion with random coefficients

    theta' - theta* = (I - gamma H_S)(theta - theta*) - gamma xi_S + sqrt(2 gamma) Z,

with H_S = lambda I + (N/p) sum_{i in S} x_i x_i^T (SGLD, SGLDFP, SGD) or its mean
Sigma = lambda I + sum_i x_i x_i^T (LMC), and xi_S = (N/p) sum_{i in S} (r_i - rbar),
r_i = x_i (x_i^T theta* - y_i), present in SGLD and SGD only (the control variate removes it
from SGLDFP). The invariant mean is theta* for all four, and the invariant covariance C solves
the linear equation (derived here from E[e'] = 0 and the second-moment recursion)

    L(C) = Sigma C + C Sigma - gamma Sigma C Sigma
           - gamma f/p [N sum_i (x_i x_i^T) C (x_i x_i^T) - S_x C S_x]
         = 2 I [Langevin noise, not SGD] + gamma N f/p R [minibatch noise, not SGLDFP/LMC],

where R = sum_i (r_i - rbar)(r_i - rbar)^T, f = 1 with replacement and (N - p)/(N - 1)
without, and LMC drops the minibatch term: C_LMC = Sigma^{-1} (I - gamma Sigma/2)^{-1}.
Linearity gives C_SGLD = C_SGLDFP + C_SGD exactly. For logistic regression the same
equations with x_i x_i^T replaced by the per-example Hessians at the mode and r_i by the
per-example gradients there give the *linearised* prediction (``linearize=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from neurips18._validation import (
    InstanceOf,
    Interval,
    Options,
    as_numpy_generator,
    check,
    check_array,
    invalid,
)
from neurips18.sgmcmc.kernels import _check_batch_size, _check_flag, _check_step_size
from neurips18.sgmcmc.models import (
    Array,
    BayesianLinearRegression,
    BayesianLogisticRegression,
    _closed_form_glm,
    find_mode,
)

__all__ = [
    "METHODS",
    "covariance_operator",
    "importance_moments",
    "invariant_moments",
    "posterior_mean_expansion",
    "posterior_moments",
    "wasserstein2_gaussian",
]

METHODS = ("lmc", "sgld", "sgldfp", "sgd")
_CHUNK = 65536


def _refuse_overriding_subclass(model: Any) -> None:
    """A subclass of a built-in GLM that overrides its prior or likelihood is refused: the
    formulas here are those of the built-in models and would ignore the override."""
    if isinstance(model, BayesianLinearRegression | BayesianLogisticRegression) and not (
            _closed_form_glm(model, link=True)):
        raise invalid("model", model, "a BayesianLinearRegression or "
                      "BayesianLogisticRegression whose prior and likelihood are the built-in "
                      "ones (the closed forms are those of the built-in models; this subclass "
                      "overrides them)")


def _glm_pieces(model: Any, linearize: bool) -> tuple[Array, Array, Array, float]:
    """(theta*, U, G, lambda): Hessian factors u_i and gradients r_i of U_i at the mode."""
    linearize = _check_flag("linearize", linearize)
    _refuse_overriding_subclass(model)
    if isinstance(model, BayesianLinearRegression):
        ts = model.exact_mode()
    elif isinstance(model, BayesianLogisticRegression):
        if not linearize:
            raise invalid("linearize", linearize, "True for a BayesianLogisticRegression "
                          "(closed forms are exact only for BayesianLinearRegression; "
                          "linearize=True gives the prediction of the model linearised at "
                          "the mode)")
        ts = find_mode(model)
    else:
        raise invalid("model", model, "a BayesianLinearRegression (exact) or a "
                      "BayesianLogisticRegression (linearize=True)")
    U, G = model._linearisation(ts)
    return ts, U, G, model.prior_precision


def _cached_pieces(model: Any, linearize: bool) -> tuple[Array, Array, Array, float, Array]:
    """:func:`_glm_pieces` plus the fourth-moment matrix, cached on the model object."""
    linearize = _check_flag("linearize", linearize)
    if not isinstance(model, BayesianLinearRegression | BayesianLogisticRegression):
        return (*_glm_pieces(model, linearize), np.zeros(0))  # raises the informative error
    key = ("closed-form-pieces", bool(linearize))
    cache = model.__dict__.setdefault("_closed_form_cache", {})
    if key not in cache:
        ts, U, G, lam = _glm_pieces(model, linearize)
        pieces = (ts, U, G, lam, _fourth_moment(U))
        for a in pieces:  # shared by every later call: locked, and never handed out
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        cache[key] = pieces
    return cache[key]  # type: ignore[no-any-return]


def posterior_moments(model: Any, *, linearize: bool = False) -> tuple[Array, Array]:
    """Posterior mean and covariance of a :class:`BayesianLinearRegression` (exact).

    (theta*, Sigma^{-1}) with Sigma = lambda I + X^T X / sigma^2. With ``linearize=True`` a
    :class:`BayesianLogisticRegression` gets its Laplace approximation (mode, inverse Hessian).
    """
    ts, U, _, lam = _glm_pieces(model, linearize)
    S = U.T @ U + lam * np.eye(U.shape[1])
    return ts, np.linalg.inv(S)


def _fourth_moment(U: Array) -> Array:
    """sum_i (u_i u_i^T) kron (u_i u_i^T) as a (d^2, d^2) matrix, in chunks."""
    n, d = U.shape
    out = np.zeros((d * d, d * d))
    for s in range(0, n, _CHUNK):
        u = U[s : s + _CHUNK]
        K = (u[:, :, None] * u[:, None, :]).reshape(len(u), d * d)
        out += K.T @ K
    return out


def _operator(Sigma: Array, Sx: Array, A4: Array | None, n: int, gamma: float, p: int,
              f: float) -> Array:
    """L as a (d^2, d^2) matrix on row-major vec(C); no minibatch term when A4 is None."""
    I = np.eye(Sigma.shape[0])
    L = np.kron(Sigma, I) + np.kron(I, Sigma) - gamma * np.kron(Sigma, Sigma)
    if A4 is not None:
        L -= gamma * f / p * (n * A4 - np.kron(Sx, Sx))
    return L  # type: ignore[no-any-return]


def covariance_operator(
    model: Any,
    method: str,
    step_size: float,
    batch_size: int | None = None,
    replacement: bool = True,
    *,
    linearize: bool = False,
) -> Array:
    """The linear map L of the covariance equation L(C) = rhs, as a (d^2, d^2) matrix.

    It acts on row-major ``C.reshape(-1)``; LMC has no minibatch term. Exact for
    :class:`BayesianLinearRegression`, linearised at the mode for
    :class:`BayesianLogisticRegression` (``linearize=True``). It is the operator that makes
    :func:`neurips18.sgmcmc.control_variate_cov` exact on Gaussian targets.
    """
    method = check("method", method, Options(METHODS))
    gamma = _check_step_size(step_size)
    ts, U, G, lam, A4 = _cached_pieces(model, linearize)
    n, d = U.shape
    Sx = U.T @ U
    Sigma = Sx + lam * np.eye(d)
    if method == "lmc":
        return _operator(Sigma, Sx, None, n, gamma, 1, 1.0)
    p = _check_batch_size(batch_size, n)
    f = 1.0 if _check_flag("replacement", replacement) else (n - p) / (n - 1) if n > 1 else 0.0
    return _operator(Sigma, Sx, A4, n, gamma, p, f)


def invariant_moments(
    model: Any,
    method: str,
    step_size: float,
    batch_size: int | None,
    replacement: bool = True,
    *,
    linearize: bool = False,
) -> tuple[Array, Array]:
    """Mean and covariance of the invariant law of ``method`` on ``model`` (closed form).

    Exact for :class:`BayesianLinearRegression` (all four methods, minibatches with or
    without replacement); the linearised prediction for :class:`BayesianLogisticRegression`
    with ``linearize=True``. Raises ValueError when the step size is so large that the
    chain's second moments diverge (no invariant law with finite covariance).
    """
    method = check("method", method, Options(METHODS))
    gamma = _check_step_size(step_size)
    ts, U, G, lam, A4 = _cached_pieces(model, linearize)
    n, d = U.shape
    I = np.eye(d)
    Sx = U.T @ U
    Sigma = Sx + lam * I
    if method == "lmc":
        ev = np.linalg.eigvalsh(Sigma)
        if gamma * ev.max() >= 2.0:
            raise invalid("step_size", step_size, f"a number below 2 / lambda_max(Sigma) = "
                          f"{2.0 / ev.max():.6g} for LMC")
        C = np.linalg.solve(Sigma @ (I - 0.5 * gamma * Sigma), I)
        return ts, 0.5 * (C + C.T)
    p = _check_batch_size(batch_size, n)
    f = 1.0 if _check_flag("replacement", replacement) else (n - p) / (n - 1) if n > 1 else 0.0
    L = _operator(Sigma, Sx, A4, n, gamma, p, f)
    # Mean-square stability. T(C) = C - gamma L(C) = E[(I - gamma H_S) C (I - gamma H_S)] maps
    # PSD matrices to PSD matrices, so its spectral radius is < 1 iff C - T(C) = 2 gamma I has
    # a positive definite solution C (Krein-Rutman); that solution is the SGLDFP covariance.
    try:
        C_fp = np.linalg.solve(L, 2.0 * I.reshape(-1)).reshape(d, d)
        stable = bool(np.linalg.eigvalsh(0.5 * (C_fp + C_fp.T)).min() > 0)
    except np.linalg.LinAlgError:
        stable = False
    if not stable:
        raise invalid("step_size", step_size, f"a step for which the covariance recursion of "
                      f"{method} with batch_size={p} contracts (at this step the chain's "
                      "second moments diverge)")
    rhs = np.zeros((d, d))
    if method in ("sgld", "sgldfp"):
        rhs += 2.0 * I
    if method in ("sgld", "sgd"):
        Gc = G - G.mean(axis=0)
        rhs += gamma * n * f / p * (Gc.T @ Gc)
    C = np.linalg.solve(L, rhs.reshape(-1)).reshape(d, d)
    return ts.copy(), 0.5 * (C + C.T)  # the caller's own mean, not the cached one


def _psd_sqrt(C: Array) -> Array:
    w, V = np.linalg.eigh(0.5 * (C + C.T))
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def _check_gaussian(name: str, m: ArrayLike, C: ArrayLike) -> tuple[Array, Array]:
    ma = check_array(f"m{name}", m, ndim=1, dtype=np.float64)
    Ca = check_array(f"C{name}", C, ndim=2, dtype=np.float64)
    if Ca.shape != (ma.size, ma.size):
        raise invalid(f"C{name}", C, f"shape {(ma.size, ma.size)}")
    scale = max(1.0, float(np.abs(Ca).max()))
    if not np.allclose(Ca, Ca.T, rtol=1e-8, atol=1e-12 * scale):
        raise invalid(f"C{name}", C, "a symmetric matrix")
    if np.linalg.eigvalsh(0.5 * (Ca + Ca.T)).min() < -1e-10 * scale:
        raise invalid(f"C{name}", C, "a positive semi-definite matrix")
    return ma, Ca


def wasserstein2_gaussian(
    m1: ArrayLike, C1: ArrayLike, m2: ArrayLike, C2: ArrayLike, *, squared: bool = False
) -> float:
    """Wasserstein-2 distance between N(m1, C1) and N(m2, C2).

    W2^2 = |m1 - m2|^2 + tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2}). For non-Gaussian laws
    with these moments it is a lower bound (Gelbrich). Returns W2, or W2^2 if ``squared``.
    """
    a, A = _check_gaussian("1", m1, C1)
    b, B = _check_gaussian("2", m2, C2)
    if a.shape != b.shape:
        raise invalid("m2", m2, f"the shape of m1 {a.shape}")
    Ah = _psd_sqrt(A)
    cross = _psd_sqrt(Ah @ B @ Ah)
    w2 = float((a - b) @ (a - b) + np.trace(A) + np.trace(B) - 2.0 * np.trace(cross))
    w2 = max(w2, 0.0)
    return w2 if squared else float(np.sqrt(w2))


def importance_moments(
    model: Any,
    n_samples: int,
    generator: Any,
    *,
    inflation: float = 1.0,
    chunk: int | None = None,
    n_groups: int = 10,
) -> dict[str, Any]:
    """Posterior mean and covariance of a GLM by importance sampling from its Laplace fit.

    An exact (consistent) reference for Bayesian logistic regression, independent of any
    Langevin discretisation: draws theta_k ~ q = N(theta*, inflation^2 H^{-1}) (H the Hessian
    of U at the mode), self-normalised weights w_k ∝ exp(-U(theta_k)) / q(theta_k), and the
    difference estimator E_pi f ~ E_q f + sum_k (w_k - 1/M) f(theta_k), whose error is small
    when the posterior is close to Gaussian (large N). Returns ``{"mean", "cov", "ess"}`` and,
    when ``n_samples >= 20 n_groups``, the standard errors ``"mean_se"``, ``"cov_se"``
    estimated from ``n_groups`` independent groups of the draws. ``generator``: a
    ``numpy.random.Generator`` or an int seed.
    """
    model = check("model", model, InstanceOf((BayesianLinearRegression,
                                              BayesianLogisticRegression), "a built-in GLM"))
    _refuse_overriding_subclass(model)
    n_samples = int(check("n_samples", n_samples, Interval(int, 2, None)))
    generator = as_numpy_generator(generator)
    inflation = float(check("inflation", inflation, Interval(float, 0.0, None,
                                                             closed="neither")))
    n_groups = int(check("n_groups", n_groups, Interval(int, 2, None)))
    if chunk is not None:
        chunk = int(check("chunk", chunk, Interval(int, 1, None)))
    ts = find_mode(model)
    H = model.hessian_potential(ts)
    assert H is not None  # a built-in GLM (overriding subclasses were refused above)
    Lc = np.linalg.cholesky(np.linalg.inv(H)) * float(inflation)
    d = ts.size
    Z = generator.standard_normal((n_samples, d))
    T = ts + Z @ Lc.T
    X = model.X.astype(np.float64)
    y = model.y.astype(np.float64)
    logistic = isinstance(model, BayesianLogisticRegression)
    Xty = X.T @ y
    logw = np.empty(n_samples)
    if chunk is None:  # keep the (N, chunk) block of linear predictors near 32 MB
        chunk = max(1, min(256, 4_000_000 // max(1, X.shape[0])))
    for s in range(0, n_samples, chunk):
        th = T[s : s + chunk]
        zz = X @ th.T  # (N, chunk)
        if logistic:  # sum_i [y_i z_i - softplus(z_i)], with sum_i y_i z_i = theta . X^T y
            with np.errstate(over="ignore"):
                sp = np.log1p(np.exp(zz))  # ~3x faster than logaddexp; exact unless overflow
            if not np.isfinite(sp).all():
                sp = np.logaddexp(0.0, zz)
            ll = th @ Xty - sp.sum(axis=0)
        else:
            ll = model._ell(zz, y[:, None]).sum(axis=0)
        logw[s : s + chunk] = ll - 0.5 * model.prior_precision * np.sum(th * th, axis=1)
    logw += 0.5 * np.sum(Z * Z, axis=1)  # minus log q, up to a constant
    Cq = Lc @ Lc.T

    def estimate(lw: Array, Tg: Array) -> tuple[Array, Array, float]:
        w = np.exp(lw - lw.max())
        w /= w.sum()
        dw = w - 1.0 / len(lw)
        D = Tg - ts  # centred at the mode: the same estimator, less cancellation
        md = dw @ D
        second = Cq + (D * dw[:, None]).T @ D
        cov = second - np.outer(md, md)
        return ts + md, 0.5 * (cov + cov.T), float(1.0 / np.sum(w * w))

    mean, cov, ess = estimate(logw, T)
    out: dict[str, Any] = {"mean": mean, "cov": cov, "ess": ess}
    if n_samples >= 20 * n_groups:  # standard errors from independent groups of draws
        b = n_samples // n_groups
        parts = [estimate(logw[g * b : (g + 1) * b], T[g * b : (g + 1) * b])
                 for g in range(n_groups)]
        k = np.sqrt(n_groups)  # the full estimate's SE ~ the group spread / sqrt(groups)
        out["mean_se"] = np.std([q[0] for q in parts], axis=0, ddof=1) / k
        out["cov_se"] = np.std([q[1] for q in parts], axis=0, ddof=1) / k
    return out


def posterior_mean_expansion(model: Any) -> Array:
    """The posterior mean of a GLM to second order: theta* - H^{-1} (T : H^{-1}) / 2.

    T is the third derivative tensor of U at the mode theta* and H its Hessian; the omitted
    terms are O(N^{-2}) while the correction itself is O(1/N) (Laplace expansion of the
    posterior about its mode: E[theta - theta*] = -E_0[(theta - theta*) T[Delta]^3] / 6 under
    the Gaussian N(theta*, H^{-1})). Exact for linear regression (T = 0).
    """
    _refuse_overriding_subclass(model)
    if isinstance(model, BayesianLinearRegression):
        return model.exact_mode()
    if not isinstance(model, BayesianLogisticRegression):
        raise invalid("model", model, "a built-in GLM")
    ts = find_mode(model, rtol=1e-12)
    H = model.hessian_potential(ts)
    assert H is not None  # a built-in GLM (overriding subclasses were refused above)
    Hi = np.linalg.inv(H)
    X = model.X.astype(np.float64)
    s = 1.0 / (1.0 + np.exp(-(X @ ts)))
    k3 = s * (1.0 - s) * (1.0 - 2.0 * s)  # d^3/dz^3 of softplus(z) - y z
    q = np.einsum("ij,jk,ik->i", X, Hi, X)  # x_i^T H^{-1} x_i
    return np.asarray(ts - 0.5 * Hi @ (X.T @ (k3 * q)))
