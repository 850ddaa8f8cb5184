"""Low-variance estimators of a chain's invariant mean and covariance (control variates).

Any of the four chains of Brosse, Durmus, Moulines (NeurIPS 2018, arXiv:1811.10072) is

    theta' = theta - gamma g(theta, S) + sqrt(2 gamma) Z      (SGD: without the noise)

with a gradient estimate that is unbiased given theta: E[g(theta, S) | theta] = grad U(theta)
(LMC: g = grad U; SGLD: the minibatch estimate; SGLDFP: grad U(theta) - grad U(theta*), which
is grad U(theta) when theta* is the mode). If theta ~ pi_gamma, the chain's invariant law, so is
theta'. Taking expectations of theta' and of theta' theta'^T (Z independent of theta and S):

* first moment:  gamma E[g] = 0, so **E_{pi_gamma}[grad U(theta)] = 0**;
* second moment, about any fixed point c, with Delta = theta - c:

      E[Delta grad U^T + grad U Delta^T - gamma (grad U grad U^T + V(theta))] = 2 I  (0 for SGD)

  where V(theta) = Cov(g(theta, S) | theta) is the minibatch noise (0 for LMC).

Both left-hand sides are averages of functions of theta that can be evaluated on the chain's
draws, so subtracting a multiple of their deviation from the known value leaves the
expectation unchanged. With gain A = H^{-1} (H the Hessian of U at the mode),
``theta - A grad U(theta)`` equals theta* plus terms of second order in theta - theta*: its
spread is O(1/N) where the posterior's is O(N^{-1/2}), so the mean needs ~N times fewer draws
to resolve the O(1/N) biases the paper studies. For the covariance the correction is
``L^{-1}`` applied to the second-moment identity, with L the operator of the linearised
covariance recursion (:func:`neurips18.sgmcmc.covariance_operator`); for Gaussian targets the
corrected estimator has zero variance under LMC and SGLDFP, and a small one under SGLD and
SGD, whose minibatch noise depends on theta (measured on linear regression: an error about
2e-4 relative, some ten times below the plain estimate's). Neither estimator needs the
gradient at every step: the full gradient on thinned draws suffices (each draw is itself
distributed as pi_gamma).

The same identities hold for exact posterior samples (E_pi[grad U] = 0 by integration by parts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from neurips18._validation import Interval, Options, check, check_array, invalid
from neurips18.sgmcmc.kernels import _check_batch_size, _check_flag, _check_step_size
from neurips18.sgmcmc.models import Array, _closed_form_glm, _GaussianPriorGLM, as_model

__all__ = [
    "batch_means_se",
    "control_variate_cov",
    "control_variate_mean",
    "gradient_moments",
    "third_derivative_at",
]

_ELEMS = 2_000_000  # linear predictors per chunk in gradient_moments


def _as_2d(name: str, a: ArrayLike, d: int | None = None) -> Array:
    arr = check_array(name, a, ndim=2, dtype=np.float64, min_rows=1, min_cols=1)
    if d is not None and arr.shape[1] != d:
        raise invalid(name, a, f"{d} columns")
    return arr  # type: ignore[no-any-return]


def _as_square(name: str, a: ArrayLike, d: int) -> Array:
    arr = check_array(name, a, ndim=2, dtype=np.float64)
    if arr.shape != (d, d):
        raise invalid(name, a, f"shape ({d}, {d})")
    return arr  # type: ignore[no-any-return]


def _as_vector(name: str, a: ArrayLike, d: int) -> Array:
    arr = check_array(name, a, ndim=1, dtype=np.float64)
    if arr.shape != (d,):
        raise invalid(name, a, f"shape ({d},)")
    return arr  # type: ignore[no-any-return]


def _paired(draws: ArrayLike, grads: ArrayLike) -> tuple[Array, Array]:
    D = _as_2d("draws", draws)
    G = _as_2d("grads", grads, D.shape[1])
    if G.shape[0] != D.shape[0]:
        raise invalid("grads", grads, f"as many rows as draws ({D.shape[0]})")
    return D, G


def control_variate_mean(
    draws: ArrayLike,
    grads: ArrayLike,
    gain: ArrayLike,
    *,
    grad_offset: ArrayLike | None = None,
    third_derivative: Callable[[Array], Array] | None = None,
    second_moment_residual: ArrayLike | None = None,
) -> Array:
    """Estimate E_{pi_gamma}[theta] as ``mean(draws) - gain @ mean(grads - grad_offset)``.

    Parameters
    ----------
    draws : (T, d) states of a chain at stationarity (e.g. thinned draws).
    grads : (T, d) the FULL gradient of the potential U at those states (see
        :func:`gradient_moments`).
    gain : (d, d) a fixed matrix; the inverse Hessian of U at the mode makes the variance
        O(1/N^2) instead of O(1/N). Any fixed matrix keeps the estimator unbiased.
    grad_offset : the known value of E_{pi_gamma}[grad U] (default 0). For SGLDFP centred at
        an approximate mode t, the chain's drift is grad U(theta) - grad U(t), so pass
        ``grad_offset = grad U(t)``.

    third_derivative, second_moment_residual : optional second-order correction. With
        ``third_derivative(M) = T[M]`` (T the third derivative tensor of U at the mode,
        contracted with a (d, d) matrix: ``T[M]_a = sum_bc T_abc M_bc``; see
        :func:`third_derivative_at`) and ``second_moment_residual`` the zero-mean matrix
        ``L^{-1}[mean(K)]`` returned by :func:`control_variate_cov` (``return_residual=True``,
        centred at the mode), adds ``gain @ T[residual] / 2``. Because theta - H^{-1} grad U
        = theta* - H^{-1} T[Delta Delta^T] / 2 + O(Delta^3) and the residual tracks
        Delta Delta^T - E[Delta Delta^T], this removes the next order of the spread (draws
        then scatter by O(N^-3/2) instead of O(1/N)); it stays unbiased since the residual
        has mean zero exactly.

    Unbiased whenever the chain's gradient estimate is unbiased given the state (module
    docstring); the caller must supply a fixed ``gain``, not one fitted to the same draws.
    """
    D, G = _paired(draws, grads)
    d = D.shape[1]
    A = _as_square("gain", gain, d)
    gbar = G.mean(axis=0)
    if grad_offset is not None:
        gbar = gbar - _as_vector("grad_offset", grad_offset, d)
    est = D.mean(axis=0) - A @ gbar
    if (third_derivative is None) != (second_moment_residual is None):
        raise invalid("second_moment_residual", second_moment_residual,
                      "to be given together with third_derivative")
    if third_derivative is not None:
        R = _as_square("second_moment_residual", second_moment_residual, d)  # type: ignore[arg-type]
        tr = np.asarray(third_derivative(R), dtype=np.float64)
        if tr.shape != (d,):
            raise invalid("third_derivative", third_derivative, f"a map returning shape ({d},)")
        est = est + 0.5 * A @ tr
    return np.asarray(est)


def control_variate_cov(
    draws: ArrayLike,
    grads: ArrayLike,
    step_size: float,
    operator: ArrayLike,
    *,
    langevin: bool = True,
    grad_noise_cov: ArrayLike | None = None,
    centre: ArrayLike | None = None,
    grad_offset: ArrayLike | None = None,
    mean: ArrayLike | None = None,
    return_residual: bool = False,
) -> Any:
    """Estimate Cov_{pi_gamma}(theta) with the second-moment control variate.

    ``Cov = mean(Delta Delta^T) - L^{-1}[mean(K)] - (m - c)(m - c)^T`` where Delta = theta - c,
    K = Delta g^T + g Delta^T - gamma (g g^T + V) - 2 I (no 2 I when ``langevin=False``,
    i.e. SGD), g = grads - grad_offset, V = ``grad_noise_cov`` (the average over the draws of
    the minibatch-gradient covariance, :func:`gradient_moments`; 0 for LMC), m = ``mean``
    (default: the plain mean of the draws; pass :func:`control_variate_mean`'s estimate for
    the full benefit) and L = ``operator``. E[K] = 0 under the invariant law, so the estimate is
    unbiased for any fixed invertible L and centre c.

    Parameters
    ----------
    draws, grads : (T, d) states and full gradients of U there.
    step_size : the chain's gamma.
    operator : (d^2, d^2) the linear map L acting on row-major vec(C); the linearised
        covariance recursion :func:`neurips18.sgmcmc.covariance_operator` makes the estimator
        exact for Gaussian targets.
    langevin : whether the chain injects sqrt(2 gamma) Z noise (False only for SGD).
    grad_noise_cov : (d, d) average of Cov(g(theta, S) | theta) over the draws (None: 0).
    centre : a fixed point c, ideally the mode (it makes Delta small); default: ``mean``
        when that is given, else the plain mean of the draws; neither is fixed, so the
        default adds an O(1/T) bias.
    grad_offset : as in :func:`control_variate_mean`.
    mean : an estimate of the invariant mean (default: the plain mean of the draws).
    return_residual : also return ``L^{-1}[mean(K)]`` (zero mean; for the second-order
        correction of :func:`control_variate_mean`): ``(cov, residual)``.
    """
    D, G = _paired(draws, grads)
    T, d = D.shape
    gamma = _check_step_size(step_size)
    langevin = _check_flag("langevin", langevin)
    return_residual = _check_flag("return_residual", return_residual)
    L = _as_square("operator", operator, d * d)
    V = np.zeros((d, d)) if grad_noise_cov is None else _as_square("grad_noise_cov",
                                                                   grad_noise_cov, d)
    if grad_offset is not None:
        G = G - _as_vector("grad_offset", grad_offset, d)
    m = D.mean(axis=0) if mean is None else _as_vector("mean", mean, d)
    c = m if centre is None else _as_vector("centre", centre, d)
    Dc = D - c
    S = Dc.T @ Dc / T
    cross = Dc.T @ G / T
    K = cross + cross.T - gamma * (G.T @ G / T + V)
    if langevin:
        K -= 2.0 * np.eye(d)
    corr = np.linalg.solve(L, K.reshape(-1)).reshape(d, d)
    corr = 0.5 * (corr + corr.T)
    C = S - corr - np.outer(m - c, m - c)
    C = np.asarray(0.5 * (C + C.T))
    return (C, corr) if return_residual else C


def gradient_moments(
    model: Any,
    thetas: ArrayLike,
    method: str = "lmc",
    batch_size: int | None = None,
    *,
    replacement: bool = True,
    theta_star: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """Full gradients of U at many states, and the chain's average minibatch-gradient noise.

    Returns ``(grads, noise_cov)``: ``grads[t] = grad U(thetas[t])`` (float64, shape (T, d))
    and ``noise_cov`` = the average over t of Cov(g(thetas[t], S) | thetas[t]) for ``method``'s
    gradient estimate g with minibatches of ``batch_size`` (with replacement:
    (N^2 / p) Cov_i(a_i); without: times (N - p) / (N - 1)), where a_i is grad U_i (SGLD, SGD)
    or grad U_i(theta) - grad U_i(theta_star) (SGLDFP); zero for LMC. GLMs use one
    (N, chunk) product per chunk of states; other models loop over states (gradients only).
    """
    from neurips18.sgmcmc.theory import METHODS

    method = check("method", method, Options(METHODS))
    replacement = _check_flag("replacement", replacement)
    m = as_model(model)
    Th = _as_2d("thetas", thetas, m.dim)
    T, d = Th.shape
    N = m.n_data
    if method != "lmc":
        batch_size = _check_batch_size(batch_size, N)
    if method == "sgldfp":
        if theta_star is None:
            raise invalid("theta_star", theta_star, "the SGLDFP centre (required for "
                          "method='sgldfp')")
        theta_star = _as_vector("theta_star", theta_star, m.dim)
    noise = np.zeros((d, d))
    if not _closed_form_glm(m, link=True):
        if method != "lmc":
            raise invalid("model", model, "a built-in GLM (the minibatch noise is only "
                          "available for them)")
        grads = np.stack([np.asarray(m.grad_potential(t.astype(m.dtype)), np.float64)
                          for t in Th])
        return grads, noise
    X = m.X.astype(np.float64, copy=False)
    tgt = m._target.astype(np.float64, copy=False)
    lam = m.prior_precision
    Xt = X.T @ tgt
    h = m._link
    hstar = None
    if method == "sgldfp":
        hstar = np.asarray(h(X @ np.asarray(theta_star, np.float64)), np.float64)
    grads = np.empty((T, d))
    sq = np.zeros(N)  # sum over states of the per-example scalar factor squared
    abar2 = np.zeros((d, d))
    chunk = max(1, _ELEMS // N)
    for s in range(0, T, chunk):
        th = Th[s : s + chunk]
        H = np.asarray(h(X @ th.T), np.float64)  # (N, b)
        grads[s : s + chunk] = lam * th + H.T @ X - Xt
        if method == "lmc":
            continue
        H -= (tgt if hstar is None else hstar)[:, None]  # a_i = x_i * H[i]
        sq += np.einsum("ib,ib->i", H, H)
        A = H.T @ X / N  # (b, d): mean_i a_i
        abar2 += A.T @ A
    if method != "lmc":
        p = int(batch_size)  # type: ignore[arg-type]
        f = 1.0 if replacement else ((N - p) / (N - 1) if N > 1 else 0.0)
        second = (X.T * (sq / T)) @ X / N
        noise = (N * N / p) * f * (second - abar2 / T)
        noise = 0.5 * (noise + noise.T)
    return grads, noise


def third_derivative_at(model: Any, theta: ArrayLike) -> Callable[[Array], Array]:
    """``M -> T[M]``: the third derivative tensor of U at ``theta`` contracted with a matrix.

    For the GLMs ``T[M] = sum_i k3_i x_i (x_i^T M x_i)`` with k3_i the third derivative of
    the per-example potential in the linear predictor (zero for linear regression).
    """
    from neurips18.sgmcmc.models import BayesianLinearRegression, BayesianLogisticRegression
    from neurips18.sgmcmc.theory import _refuse_overriding_subclass

    m = as_model(model)
    _refuse_overriding_subclass(m)
    t = _as_vector("theta", theta, m.dim)
    X = m.X.astype(np.float64) if isinstance(m, _GaussianPriorGLM) else None
    if isinstance(m, BayesianLinearRegression):
        k3 = np.zeros(m.n_data)
    elif isinstance(m, BayesianLogisticRegression):
        assert X is not None
        s = 1.0 / (1.0 + np.exp(-(X @ t)))
        k3 = s * (1.0 - s) * (1.0 - 2.0 * s)
    else:
        raise invalid("model", model, "a built-in GLM")

    def contract(M: Array) -> Array:
        assert X is not None
        q = np.einsum("ij,jk,ik->i", X, np.asarray(M, np.float64), X)
        return np.asarray(X.T @ (k3 * q))

    return contract


def batch_means_se(values: ArrayLike, n_batches: int = 20) -> Array:
    """Monte Carlo standard error of the mean of a (T, ...) time series by batch means.

    Splits the series into ``n_batches`` contiguous batches (dropping the remainder) and returns
    std(batch means) / sqrt(n_batches), elementwise; valid when a batch is much longer than the
    autocorrelation time.
    """
    n_batches = int(check("n_batches", n_batches, Interval(int, 2, None)))
    v = check_array("values", values, dtype=np.float64, finite=False, min_rows=n_batches)
    if v.ndim < 1:
        raise invalid("values", values, "an array of at least one dimension")
    b = v.shape[0] // n_batches
    means = v[: b * n_batches].reshape(n_batches, b, *v.shape[1:]).mean(axis=1)
    return np.asarray(means.std(axis=0, ddof=1) / np.sqrt(n_batches))
