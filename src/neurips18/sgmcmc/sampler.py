"""The high-level sampler: run LMC, SGLD, SGLDFP or SGD and return draws with diagnostics.

See :mod:`neurips18.sgmcmc.kernels` for the updates (Brosse, Durmus, Moulines, NeurIPS 2018,
arXiv:1811.10072). The loop draws noise and minibatch indices in blocks from the caller's
``numpy.random.Generator`` (so a seed gives the same chain), keeps every array in the model's
dtype, and stops with :class:`DivergenceError` as soon as the chain leaves any sensible range
instead of returning NaN draws. For the built-in GLMs the SGLD, SGLDFP and SGD steps of a
block run in one call of a small C kernel (:mod:`neurips18.sgmcmc._native`) when a C
compiler is available, fed with the same random numbers as the NumPy loop;
``NEURIPS18_SGMCMC_NATIVE=0`` keeps the NumPy loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neurips18.sgmcmc import _native
from neurips18.sgmcmc.kernels import (
    FixedPoint,
    _check_batch_size,
    _check_generator,
    _check_step_size,
    fixed_point,
)
from neurips18.sgmcmc.models import (
    Array,
    BayesianLinearRegression,
    BayesianLogisticRegression,
    Model,
    _GaussianPriorGLM,
    as_model,
    check_theta,
)

__all__ = ["METHODS", "DivergenceError", "SampleResult", "sample"]

METHODS = ("lmc", "sgld", "sgldfp", "sgd")
_BLOCK = 256


class DivergenceError(RuntimeError):
    """The chain became non-finite or left the allowed range: the step size is too large."""


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
        return np.asarray(self.draws.mean(axis=0, dtype=np.float64))

    def cov(self) -> Array:
        return np.atleast_2d(np.cov(self.draws.astype(np.float64), rowvar=False))

    def var(self) -> Array:
        return np.asarray(self.draws.var(axis=0, dtype=np.float64))


Inner = Callable[..., tuple[Array, int]]


def _generic_inner(m: Model, method: str, gamma: float, p: int, fp: FixedPoint | None) -> Inner:
    """Steps for any model, through its public gradient methods."""
    dt = m.dtype.type
    g_ = dt(gamma)
    scale = dt(m.n_data / p) if p else dt(1)
    glp, gls = m.grad_log_prior, m.grad_log_likelihood_sum
    glp_star: Any = fp.grad_log_prior_star if fp is not None else None
    diff: Any = fp.diff if fp is not None else None

    def inner(theta, b, noise, idx_block, step, thin, draws, kept):  # type: ignore[no-untyped-def]
        for j in range(b):
            if method == "lmc":
                grad = -(glp(theta) + gls(theta))
            elif method == "sgldfp":
                grad = -((glp(theta) - glp_star) + scale * diff(theta, idx_block[j]))
            else:
                grad = -(glp(theta) + scale * gls(theta, idx_block[j]))
            theta = theta - g_ * grad
            if noise is not None:
                theta += noise[j]
            step += 1
            if step % thin == 0:
                draws[kept] = theta
                kept += 1
        return theta, kept

    return inner


def _glm_constants(
    m: _GaussianPriorGLM, method: str, gamma: float, p: int, fp: FixedPoint | None
) -> tuple[Any, Any, Array, Array]:
    """(a, s, t, c) of the GLM step, in the model dtype (see :func:`_glm_inner`)."""
    dt = m.dtype.type
    lam = m.prior_precision
    a = dt(1.0 - gamma * lam)
    s = dt(gamma * m.n_data / p) if p else dt(gamma)
    if method == "sgldfp":
        assert fp is not None
        t = m._link_at(fp.theta_star)
        c = (gamma * lam * fp.theta_star.astype(np.float64)).astype(m.dtype)
    else:
        t = m._target
        c = np.zeros(m.dim, dtype=m.dtype)
    return a, s, t, c


def _glm_inner(
    m: _GaussianPriorGLM, method: str, gamma: float, p: int, fp: FixedPoint | None
) -> Inner:
    """Fused steps for the GLMs: grad U_i = x_i (h(x_i^T theta) - t_i).

    The prior term is folded into a contraction ``a * theta`` (plus a constant for SGLDFP);
    a block's minibatch rows are gathered at once; SGLDFP uses the cached h(x_i^T theta*), so
    an SGLDFP step costs exactly what an SGLD step costs: one gather and two small products.
    """
    a, s, t, c = _glm_constants(m, method, gamma, p, fp)
    h = m._link_ufunc()
    X = m.X
    Xts = s * (X.T @ t)  # LMC: sum_i s x_i t_i, fixed

    def inner(theta, b, noise, idx_block, step, thin, draws, kept):  # type: ignore[no-untyped-def]
        # theta' = a theta + [c + noise + s X_S^T t_S] - s X_S^T h(X_S theta); the bracket is
        # computed for the whole block at once, leaving two small products per step.
        add = np.broadcast_to(c, (b, m.dim)) if noise is None else noise + c
        theta = np.array(theta, copy=True)
        if method == "lmc":
            add = add + Xts
            for j in range(b):
                g = h(X @ theta) @ X
                g *= s
                theta *= a
                theta += add[j]
                theta -= g
                step += 1
                if step % thin == 0:
                    draws[kept] = theta
                    kept += 1
            return theta, kept
        XB = np.take(X, idx_block, axis=0)  # np.take: several times faster than X[idx]
        tB = np.take(t, idx_block)
        add = add + s * np.matmul(XB.transpose(0, 2, 1), tB[:, :, None])[:, :, 0]
        for j in range(b):
            Xb = XB[j]
            g = h(Xb @ theta) @ Xb
            g *= s
            theta *= a
            theta += add[j]
            theta -= g
            step += 1
            if thin == 1 or step % thin == 0:
                draws[kept] = theta
                kept += 1
        return theta, kept

    return inner


def _glm_native_inner(
    m: _GaussianPriorGLM, method: str, gamma: float, p: int, fp: FixedPoint | None
) -> Inner | None:
    """The steps of :func:`_glm_inner` in one C call per block, or None without the kernel.

    Same a, s, c and t (all in the model dtype), same noise and indices from the caller; only
    the order of the floating-point sums differs (see :mod:`neurips18.sgmcmc._native`).
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
    a, s, t, c = _glm_constants(m, method, gamma, p, fp)
    X = np.ascontiguousarray(m.X, dtype=m.dtype)
    t = np.ascontiguousarray(t, dtype=m.dtype)
    work = np.empty(2 * m.dim, dtype=m.dtype)
    n, d = X.shape
    af, sf = float(a), float(s)  # exact: C converts them back to the model dtype
    keep = (X, c, t, work)  # C reads these through raw addresses: inner must keep them alive
    px, pc, pt, pw = (arr.ctypes.data for arr in keep)

    def inner(theta, b, noise, idx_block, step, thin, draws, kept, _keep=keep):  # type: ignore[no-untyped-def]
        theta = np.array(theta, dtype=m.dtype, copy=True)
        if noise is not None:
            noise = np.ascontiguousarray(noise, dtype=m.dtype)
        if idx_block is not None:
            idx_block = np.ascontiguousarray(idx_block, dtype=np.int64)
        if not (draws.flags.c_contiguous and draws.dtype == m.dtype):  # pragma: no cover
            raise TypeError("internal error: draws must be a C-contiguous model-dtype array")
        kept = fn(px, n, d, None if idx_block is None else idx_block.ctypes.data, b, p,
                  None if noise is None else noise.ctypes.data, theta.ctypes.data, af, sf,
                  pc, pt, link, k, step, thin, draws.ctypes.data, kept, pw)
        return theta, int(kept)

    return inner


def _minibatch_block(
    gen: np.random.Generator, n: int, b: int, p: int, replacement: bool
) -> NDArray[np.int64]:
    """``b`` minibatches of ``p`` indices in ``[0, n)``, i.i.d. or each a uniform subset.

    Without replacement, when duplicates are rare (p (p - 1) / (2 n) <= 0.7) a row of i.i.d.
    indices is accepted if its entries are distinct (so it is a uniform subset, in random
    order) and otherwise replaced by ``Generator.choice(replace=False)``; this is exact and
    several times faster than calling ``choice`` for every step.
    """
    if replacement:
        return gen.integers(0, n, size=(b, p))
    if p * (p - 1) <= 1.4 * n:
        idx = gen.integers(0, n, size=(b, p))
        srt = np.sort(idx, axis=1)
        for r in np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1)):
            idx[r] = gen.choice(n, size=p, replace=False, shuffle=True)
        return idx
    return np.stack([gen.choice(n, size=p, replace=False, shuffle=False) for _ in range(b)])


def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if int(value) < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


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
    generator: np.random.Generator | None = None,
    theta_star: ArrayLike | None = None,
    divergence_threshold: float | None = None,
) -> SampleResult:
    """Run one chain of ``method`` in {"lmc", "sgld", "sgldfp", "sgd"}.

    Parameters
    ----------
    model : a :class:`~neurips18.sgmcmc.Model` or any object with the
        :class:`~neurips18.sgmcmc.ModelProtocol` methods.
    method : "lmc" (full gradient; ``batch_size`` is ignored and may be None), "sgld",
        "sgldfp" (control variates at the mode) or "sgd" (no noise).
    step_size : gamma > 0 (the paper uses gamma = 1 / (2 N)).
    batch_size : minibatch size p in [1, N].
    n_steps : number of steps; ``n_steps // thin`` draws are kept.
    replacement : draw minibatch indices with (default) or without replacement.
    theta0 : starting point; by default the mode (the paper's protocol), found with
        :func:`~neurips18.sgmcmc.find_mode`.
    thin : keep every ``thin``-th state.
    generator : the ``numpy.random.Generator`` to draw from (default: a fresh unseeded one).
    theta_star : the mode, if already known (skips the search; SGLDFP centres on it).
    divergence_threshold : stop with :class:`DivergenceError` when
        ``||theta - theta0|| > divergence_threshold``; default ``1e6 * (1 + ||theta0||)``.
        Non-finite states always stop the chain.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    m = as_model(model)
    gamma = _check_step_size(step_size)
    n_steps = _check_int("n_steps", n_steps, 1)
    thin = _check_int("thin", thin, 1)
    if thin > n_steps:
        raise ValueError(f"thin must be <= n_steps={n_steps}, got {thin}")
    if not isinstance(replacement, bool | np.bool_):
        raise TypeError(f"replacement must be a bool, got {replacement!r}")
    p = 0 if method == "lmc" else _check_batch_size(batch_size, m.n_data, bool(replacement))
    gen = np.random.default_rng() if generator is None else _check_generator(generator)

    t_mode = time.perf_counter()
    fp: FixedPoint | None = None
    if method == "sgldfp" or theta0 is None:
        fp = fixed_point(m, theta_star)
    mode_time = time.perf_counter() - t_mode
    if theta0 is None:
        assert fp is not None
        theta = fp.theta_star.copy()
    else:
        theta = check_theta(m, theta0, "theta0")
    start = theta.copy()
    if divergence_threshold is None:
        limit = 1e6 * (1.0 + float(np.linalg.norm(start.astype(np.float64))))
    else:
        limit = float(divergence_threshold)
        if not limit > 0:
            raise ValueError(f"divergence_threshold must be > 0, got {divergence_threshold!r}")

    dt = m.dtype.type
    N = m.n_data
    n_keep = n_steps // thin
    draws = np.empty((n_keep, m.dim), dtype=m.dtype)
    kernel = "numpy"
    # LMC (p == 0) keeps the NumPy loop: its full-data products are BLAS matrix-vector
    # products, faster than the kernel's row loop for all but tiny data sets, and the Python
    # overhead per step is small next to them.
    native = (_glm_native_inner(m, method, gamma, p, fp)
              if isinstance(m, _GaussianPriorGLM) and p else None)
    if native is not None:
        inner, kernel = native, "native"
    elif isinstance(m, _GaussianPriorGLM):
        inner = _glm_inner(m, method, gamma, p, fp)
    else:
        inner = _generic_inner(m, method, gamma, p, fp)

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
            idx_block = _minibatch_block(gen, N, b, p, bool(replacement)) if p else None
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
        "replacement": bool(replacement),
        "n_steps": n_steps,
        "thin": thin,
        "dtype": str(m.dtype),
        "kernel": kernel,
        "wall_time_s": wall,
        "steps_per_s": n_steps / wall if wall > 0 else float("inf"),
        "cpu_time_s": cpu,
        "mode_time_s": mode_time,
        "theta_star": None if fp is None else fp.theta_star.astype(np.float64).tolist(),
        "grad_norm_at_mode": None if fp is None else fp.grad_norm,
        "final_state": theta.copy(),
    }
    return SampleResult(draws=draws, method=method, diagnostics=diag)
