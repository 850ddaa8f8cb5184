"""The high-level sampler: run LMC, SGLD, SGLDFP or SGD and return draws with diagnostics.

A chain is the public pieces of :mod:`neurips18.sgmcmc.kernels` composed: a gradient
estimator (:func:`~neurips18.sgmcmc.minibatch_gradient`, or
:func:`~neurips18.sgmcmc.control_variates` for SGLDFP) and
:func:`~neurips18.sgmcmc.langevin_step` (Brosse, Durmus, Moulines, NeurIPS 2018,
arXiv:1811.10072). The loop draws, for each block of 256 steps, first the block's noise
(``standard_normal((b, dim))`` in the model's dtype) and then its minibatches
(:func:`~neurips18.sgmcmc.minibatch_indices` with ``n_batches=b``) from the caller's
generator, so a seed gives the same chain; it keeps every array in the model's dtype and
stops with :class:`DivergenceError` as soon as the chain leaves any sensible range instead of
returning NaN draws. For the built-in GLMs the SGLD, SGLDFP and SGD steps of a block run in
one call of a small C kernel (:mod:`neurips18.sgmcmc._native`) when a C compiler is
available, fed with the same random numbers; ``kernel="numpy"`` (or
``NEURIPS18_SGMCMC_NATIVE=0``) chains the public step in NumPy instead.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from neurips18._validation import (
    BOOL,
    Interval,
    Options,
    as_numpy_generator,
    check,
    invalid,
)
from neurips18.sgmcmc import _native
from neurips18.sgmcmc.kernels import (
    ControlVariateGradient,
    GradientEstimator,
    MinibatchGradient,
    _check_batch_size,
    _check_step_size,
    _langevin,
    _minibatch_block,
    control_variates,
)
from neurips18.sgmcmc.models import (
    Array,
    BayesianLinearRegression,
    BayesianLogisticRegression,
    Model,
    _closed_form_glm,
    as_model,
    check_theta,
    find_mode,
)

__all__ = ["METHODS", "DivergenceError", "SampleResult", "StepSizeWarning", "sample"]

METHODS = ("lmc", "sgld", "sgldfp", "sgd")
KERNELS = ("auto", "native", "numpy")
_BLOCK = 256


class DivergenceError(RuntimeError):
    """The chain became non-finite or left the allowed range: the step size is too large."""


class StepSizeWarning(UserWarning):
    """The step size is above the stability bound 2 / L of the model's gradient."""


def _stability_bounds(m: Model, ts: Array | None) -> tuple[float | None, float | None]:
    """(L, L*): the model's Lipschitz constant of grad U (None if unknown) and the largest
    Hessian eigenvalue of U at the mode (for linear regression the same number, the Hessian
    being constant; for other models only with the mode and a dense Hessian; else None)."""
    L = m.lipschitz_constant()
    if isinstance(m, BayesianLinearRegression) and _closed_form_glm(m, link=True):
        return L, L
    local = None
    if ts is not None:
        H = m.hessian_potential(ts)
        if H is not None:
            local = float(np.linalg.eigvalsh(np.asarray(H, dtype=np.float64))[-1])
    return L, local


def _check_stability(m: Model, method: str, gamma: float, step_size: Any,
                     ts: Array | None) -> dict[str, float | None]:
    """Refuse a step at which the chain cannot be stable near the mode; warn above 2 / L.

    Linearised at the mode, every method's mean moves by (I - gamma H*), H* the Hessian of U
    there: with gamma >= 2 / lambda_max(H*) it is expelled from the mode (and on linear
    regression it diverges), so such a step is refused. Above 2 / L, L >= lambda_max(H) for
    all theta, the gradient step can be unstable away from the mode: a warning. For the
    minibatch methods the minibatch Hessians fluctuate, so 2 / L is necessary, not sufficient.
    """
    L, local = _stability_bounds(m, ts)
    if local is not None and gamma >= 2.0 / local:
        where = ("(the Hessian of U is constant: this is 2 / L)"
                 if isinstance(m, BayesianLinearRegression) else "at the mode theta*")
        raise invalid("step_size", step_size,
                      f"a step below the stability bound 2 / lambda_max(H) = {2.0 / local:.6g} "
                      f"{where}, with lambda_max(H) = {local:.6g} the largest Hessian "
                      f"eigenvalue of U; at this step the {method} chain cannot stay near "
                      "the mode: it diverges or samples a law far wider than the posterior")
    if L is not None and gamma >= 2.0 / L:
        warnings.warn(StepSizeWarning(
            f"step_size={gamma:g} is above the stability bound 2 / L = {2.0 / L:.6g} (L = "
            f"{L:.6g}, the Lipschitz constant of grad U): the {method} chain may be unstable "
            "away from the mode and sample a law wider than the posterior; for the minibatch "
            "methods the bound is necessary, not sufficient"), stacklevel=3)
    return {"lipschitz": L, "hessian_max_at_mode": local}


@dataclass(frozen=True)
class SampleResult:
    """Draws of a chain and what it took to get them.

    ``draws[k]`` is the state after ``(k + 1) * thin`` steps, shape ``(n_steps // thin, dim)``.
    ``diagnostics`` holds the settings, the wall time, steps per second, the mode used (for
    SGLDFP, or when the chain was started there), the gradient norm there, and ``kernel``:
    ``"native"`` if the C kernel ran the steps, else ``"numpy"``.
    """

    draws: Array
    method: str
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def mean(self) -> Array:
        """The draws' mean per coordinate (float64)."""
        return np.asarray(self.draws.mean(axis=0, dtype=np.float64))

    def cov(self) -> Array:
        """The draws' sample covariance, ``(dim, dim)``, divided by ``T - 1``."""
        return np.atleast_2d(np.cov(self.draws.astype(np.float64), rowvar=False))

    def var(self) -> Array:
        """The draws' sample variance per coordinate, divided by ``T - 1`` like
        :meth:`cov`, so ``var() == diag(cov())``."""
        return np.asarray(self.draws.var(axis=0, dtype=np.float64, ddof=1))


def _composed_inner(est: GradientEstimator, gamma: float) -> Any:
    """Steps of the public pieces: ``_langevin(theta, est(theta, S_j), gamma, noise_j)``, the
    core of :func:`~neurips18.sgmcmc.langevin_step` (the noise is scaled per block)."""
    g_ = est.model.dtype.type(gamma)

    def inner(theta, b, noise, idx_block, step, thin, draws, kept):  # type: ignore[no-untyped-def]
        for j in range(b):
            grad = est(theta, None if idx_block is None else idx_block[j])
            theta = _langevin(theta, grad, g_, None if noise is None else noise[j])
            step += 1
            if step % thin == 0:
                draws[kept] = theta
                kept += 1
        return theta, kept

    return inner


def _glm_native_inner(m: Model, est: GradientEstimator, gamma: float, p: int) -> Any:
    """The same steps for a built-in GLM in one C call per block, or None without the kernel.

    grad U_i = x_i (h(x_i^T theta) - t_i), so with a = 1 - gamma lambda and s = gamma N / p,
    ``langevin_step(theta, est(theta, S), gamma, z)`` is ``a theta + c + noise + s sum_{i in S}
    x_i (t_i - h(x_i^T theta))``, with t_i = h(x_i^T theta*) and c = gamma lambda theta* for
    the control-variate estimator (t the targets and c = 0 otherwise). Same noise and indices
    as the NumPy path; only the order of the floating-point operations differs.
    """
    if isinstance(m, BayesianLogisticRegression):
        link, k = _native.LINK_LOGISTIC, 1.0
    elif isinstance(m, BayesianLinearRegression):
        link, k = _native.LINK_IDENTITY, float(m._inv_s2)
    else:  # a GLM subclass with a link the kernel does not know
        return None
    fn = _native.entry_point(m.dtype.char)
    if fn is None:
        return None
    dt = m.dtype.type
    lam = m.prior_precision
    a, s = dt(1.0 - gamma * lam), dt(gamma * m.n_data / p)
    if isinstance(est, ControlVariateGradient):
        t = m._link_at(est.theta_star)
        c = (gamma * lam * est.theta_star.astype(np.float64)).astype(m.dtype)
    else:
        t = m._target
        c = np.zeros(m.dim, dtype=m.dtype)
    X = np.ascontiguousarray(m.X, dtype=m.dtype)
    t = np.ascontiguousarray(t, dtype=m.dtype)
    work = np.empty(m.dim, dtype=m.dtype)
    d = X.shape[1]
    af, sf = float(a), float(s)  # exact: C converts them back to the model dtype
    keep = (X, c, t, work)  # C reads these through raw addresses: inner must keep them alive
    px, pc, pt, pw = (arr.ctypes.data for arr in keep)

    def inner(theta, b, noise, idx_block, step, thin, draws, kept, _keep=keep):  # type: ignore[no-untyped-def]
        theta = np.array(theta, dtype=m.dtype, copy=True)
        if noise is not None:
            noise = np.ascontiguousarray(noise, dtype=m.dtype)
        idx_block = np.ascontiguousarray(idx_block, dtype=np.int64)
        if not (draws.flags.c_contiguous and draws.dtype == m.dtype):  # pragma: no cover
            raise TypeError("internal error: draws must be a C-contiguous model-dtype array")
        kept = fn(px, d, idx_block.ctypes.data, b, p,
                  None if noise is None else noise.ctypes.data, theta.ctypes.data, af, sf,
                  pc, pt, link, k, step, thin, draws.ctypes.data, kept, pw)
        return theta, int(kept)

    return inner


def sample(
    model: Any,
    method: str,
    step_size: float,
    batch_size: int | None,
    n_steps: int,
    *,
    replacement: bool = True,
    theta0: ArrayLike | None = None,
    thin: int = 1,
    generator: Any = None,
    theta_star: ArrayLike | None = None,
    mode_rtol: float | None = None,
    divergence_threshold: float | None = None,
    kernel: str = "auto",
) -> SampleResult:
    """Run one chain of ``method`` in {"lmc", "sgld", "sgldfp", "sgd"}.

    Parameters
    ----------
    model : a :class:`~neurips18.sgmcmc.Model` (the built-in GLMs, a
        :class:`~neurips18.sgmcmc.TorchModel`) or any object with the
        :class:`~neurips18.sgmcmc.ModelProtocol` methods.
    method : "lmc" (full gradient; ``batch_size`` is ignored and may be None), "sgld",
        "sgldfp" (control variates at the mode) or "sgd" (no noise).
    step_size : gamma > 0 (the paper uses gamma = 1 / (2 N)). Refused (``ValidationError``)
        when gamma >= 2 / lambda_max of the Hessian of U at the mode, where that is known
        (the built-in GLMs, models with ``hessian_potential``; for linear regression
        everywhere); a :class:`StepSizeWarning` when gamma >= 2 / L, L the model's
        :meth:`~neurips18.sgmcmc.Model.lipschitz_constant` (known for the GLMs).
    batch_size : minibatch size p in [1, N].
    n_steps : number of steps; ``n_steps // thin`` draws are kept.
    replacement : draw minibatch indices with (default) or without replacement.
    theta0 : starting point; by default the mode (the paper's protocol), found with
        :func:`~neurips18.sgmcmc.find_mode`.
    thin : keep every ``thin``-th state.
    generator : a ``numpy.random.Generator`` or an int seed (default: a fresh generator
        seeded by the operating system, so the chain is not repeatable). A chain continued
        with ``theta0=diagnostics["final_state"]`` and the same generator object (it pickles,
        for a checkpoint) is the uninterrupted chain when the first part had a multiple of
        256 steps (the draws come in blocks of 256 steps); its kept draws are those of the
        uninterrupted chain when that count is also a multiple of ``thin`` (each call keeps
        the states at multiples of ``thin`` counted from its own start).
    theta_star : the mode, if already known (skips the search; SGLDFP centres on it, and
        refuses a point whose gradient fails the mode search's tolerance, see
        :func:`~neurips18.sgmcmc.control_variates`).
    mode_rtol : the relative gradient tolerance of the mode search (see
        :func:`~neurips18.sgmcmc.find_mode`; default: its own), and of SGLDFP's test of a
        given ``theta_star``.
    divergence_threshold : stop with :class:`DivergenceError` when
        ``||theta - theta0|| > divergence_threshold``; default ``1e6 * (1 + ||theta0||)``.
        Non-finite states always stop the chain.
    kernel : "auto" (the C kernel for the built-in GLMs' minibatch methods when it can be
        built, else NumPy), "native" (require the C kernel) or "numpy" (chain the public
        step in NumPy; same random numbers, same chain up to the order of sums).
    """
    method = check("method", method, Options(METHODS))
    m = as_model(model)
    gamma = _check_step_size(step_size)
    n_steps = int(check("n_steps", n_steps, Interval(int, 1, None)))
    thin = int(check("thin", thin, Interval(int, 1, n_steps)))
    replacement = bool(check("replacement", replacement, BOOL))
    p = 0 if method == "lmc" else _check_batch_size(batch_size, m.n_data)
    gen = as_numpy_generator(generator, allow_none=True)
    kernel = check("kernel", kernel, Options(KERNELS))
    if mode_rtol is not None:
        mode_rtol = float(check("mode_rtol", mode_rtol,
                                Interval(float, 0.0, None, closed="neither")))
    limit = None
    if divergence_threshold is not None:
        limit = float(check("divergence_threshold", divergence_threshold,
                            Interval(float, 0.0, None, closed="neither")))

    t_mode = time.perf_counter()
    est: GradientEstimator
    ts: Array | None = None
    if method == "sgldfp":
        est = control_variates(m, theta_star, rtol=mode_rtol)
        ts = est.theta_star
    else:
        est = MinibatchGradient(m)
        if theta_star is not None:
            ts = check_theta(m, theta_star, "theta_star")
        elif theta0 is None:
            ts = np.asarray(find_mode(m) if mode_rtol is None else find_mode(m, rtol=mode_rtol),
                            dtype=m.dtype)
    mode_time = time.perf_counter() - t_mode
    bounds = _check_stability(m, method, gamma, step_size, ts)
    if theta0 is None:
        assert ts is not None
        theta = ts.copy()
    else:
        theta = check_theta(m, theta0, "theta0")
    start = theta.copy()
    if limit is None:
        limit = 1e6 * (1.0 + float(np.linalg.norm(start.astype(np.float64))))

    dt = m.dtype.type
    N = m.n_data
    n_keep = n_steps // thin
    draws = np.empty((n_keep, m.dim), dtype=m.dtype)
    # LMC (p == 0) always chains the public step: its full-data products are BLAS
    # matrix-vector products, faster than a row loop, and the Python overhead per step is
    # small next to them.
    native = None
    if kernel != "numpy" and _closed_form_glm(m, link=True) and p:
        native = _glm_native_inner(m, est, gamma, p)
    if kernel == "native" and native is None:
        raise invalid("kernel", kernel, "'auto' or 'numpy': the C kernel serves the built-in "
                      "GLMs' minibatch methods and needs a C compiler (and "
                      f"{_native.SWITCH} not set to 0)")
    inner = native if native is not None else _composed_inner(est, gamma)

    t0 = time.perf_counter()
    c0 = time.process_time()
    step = 0
    kept = 0
    sq = dt(math.sqrt(2.0 * gamma))
    with np.errstate(over="ignore", invalid="ignore"):
        while step < n_steps:
            b = min(_BLOCK, n_steps - step)
            noise = None
            if method != "sgd":
                noise = gen.standard_normal((b, m.dim), dtype=m.dtype)
                noise *= sq
            idx_block = _minibatch_block(gen, N, b, p, replacement) if p else None
            first_keep = kept
            theta, kept = inner(theta, b, noise, idx_block, step, thin, draws, kept)
            step += b
            dev = float(np.linalg.norm((theta - start).astype(np.float64)))
            if not (math.isfinite(dev) and dev <= limit) or not np.isfinite(
                draws[first_keep:kept]
            ).all():
                raise DivergenceError(
                    f"{method} chain diverged between steps {step - b} and {step} "
                    f"(||theta - theta0|| = {dev:.3g}, limit {limit:.3g}) with "
                    f"step_size={gamma:g}; use a smaller step_size (for Langevin methods "
                    f"step_size must be below 2 / (largest Hessian eigenvalue of U))"
                )
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if theta.dtype != m.dtype:  # pragma: no cover - a guard against silent promotion
        raise TypeError(f"internal error: chain promoted to {theta.dtype}")
    diag: dict[str, Any] = {
        "method": method,
        "step_size": gamma,
        "batch_size": p or None,
        "replacement": replacement if p else None,  # no minibatches: not applicable
        "n_steps": n_steps,
        "thin": thin,
        "dtype": str(m.dtype),
        "kernel": "native" if native is not None else "numpy",
        "wall_time_s": wall,
        "steps_per_s": n_steps / wall if wall > 0 else float("inf"),
        "cpu_time_s": cpu,
        "mode_time_s": mode_time,
        "theta_star": None if ts is None else ts.astype(np.float64).tolist(),
        "grad_norm_at_mode": None if ts is None else float(np.linalg.norm(
            np.asarray(m.grad_potential(ts), dtype=np.float64))),
        "final_state": theta.copy(),
        "stability_bound": None if bounds["lipschitz"] is None else 2.0 / bounds["lipschitz"],
    }
    return SampleResult(draws=draws, method=method, diagnostics=diag)
