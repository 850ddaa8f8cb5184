"""One step of LMC, SGLD, SGLDFP and SGD, as pure functions with an explicit generator.

With potential U = U0 + sum_i U_i (see :mod:`neurips18.sgmcmc.models`), step size gamma,
a minibatch S of size p and Z ~ N(0, I_d), following Brosse, Durmus, Moulines, "The promises
and pitfalls of Stochastic Gradient Langevin Dynamics" (NeurIPS 2018, arXiv:1811.10072):

* LMC (unadjusted Langevin):  theta - gamma grad U(theta) + sqrt(2 gamma) Z
* SGLD:   theta - gamma [grad U0(theta) + (N/p) sum_{i in S} grad U_i(theta)] + sqrt(2 gamma) Z
* SGLDFP: theta - gamma [grad U0(theta) - grad U0(theta*)
          + (N/p) sum_{i in S} (grad U_i(theta) - grad U_i(theta*))] + sqrt(2 gamma) Z
  where theta* is the mode (grad U(theta*) = 0), so no full gradient is needed per step;
* SGD:    SGLD without the noise.

The Welling-Teh convention ``theta += (eps/2) grad log pi + sqrt(eps) xi`` is gamma = eps/2.
Minibatches are index arrays from :func:`minibatch_indices` (with or without replacement).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neurips18.sgmcmc.models import Array, Model, as_model, check_theta, find_mode

__all__ = [
    "FixedPoint",
    "fixed_point",
    "lmc_step",
    "minibatch_indices",
    "sgd_step",
    "sgld_step",
    "sgldfp_step",
]


def _check_generator(generator: Any) -> np.random.Generator:
    if not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"generator must be a numpy.random.Generator, got {type(generator).__name__}"
        )
    return generator


def _check_step_size(step_size: Any) -> float:
    if isinstance(step_size, bool) or not isinstance(
        step_size, int | float | np.integer | np.floating
    ):
        raise TypeError(f"step_size must be a positive number, got {step_size!r}")
    g = float(step_size)
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    return g


def _check_batch_size(batch_size: Any, n_data: int, replacement: bool) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be an integer, got {batch_size!r}")
    p = int(batch_size)
    if p < 1 or p > n_data:
        raise ValueError(f"batch_size must be in [1, n_data={n_data}], got {p}")
    return p


def _check_minibatch(model: Model, minibatch: ArrayLike) -> NDArray[np.intp]:
    idx = np.asarray(minibatch)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise ValueError(
            f"minibatch must be a non-empty 1-d integer index array, got shape {idx.shape} "
            f"dtype {idx.dtype}"
        )
    if idx.min() < 0 or idx.max() >= model.n_data:
        raise ValueError(f"minibatch indices must lie in [0, {model.n_data}), got "
                         f"[{idx.min()}, {idx.max()}]")
    return idx.astype(np.intp, copy=False)


def minibatch_indices(
    generator: np.random.Generator, n_data: int, batch_size: int, replacement: bool = True
) -> NDArray[np.intp]:
    """``batch_size`` indices in ``[0, n_data)``, i.i.d. uniform or a uniform subset."""
    _check_generator(generator)
    if isinstance(n_data, bool) or not isinstance(n_data, int | np.integer) or n_data < 1:
        raise ValueError(f"n_data must be a positive integer, got {n_data!r}")
    p = _check_batch_size(batch_size, int(n_data), replacement)
    if replacement:
        return generator.integers(0, n_data, size=p).astype(np.intp)
    return generator.choice(int(n_data), size=p, replace=False, shuffle=False).astype(np.intp)


@dataclass(frozen=True)
class FixedPoint:
    """The SGLDFP centre: the mode, the prior gradient there, and the cached difference.

    ``diff(theta, idx)`` returns ``sum_{i in idx} [grad log p_i(theta) - grad log p_i(theta*)]``
    (for GLMs from one cached scalar per example, so a step costs one minibatch product).
    """

    theta_star: Array
    grad_log_prior_star: Array
    diff: Callable[[Array, NDArray[np.intp]], Array]
    grad_norm: float


def fixed_point(model: Any, theta_star: ArrayLike | None = None) -> FixedPoint:
    """Build the SGLDFP centre, finding the mode with :func:`find_mode` unless given."""
    m = as_model(model)
    ts64 = find_mode(m) if theta_star is None else check_theta(m, theta_star, "theta_star")
    ts = np.asarray(ts64, dtype=m.dtype)
    gn = float(np.linalg.norm(np.asarray(m.grad_potential(ts), dtype=np.float64)))
    return FixedPoint(
        theta_star=ts,
        grad_log_prior_star=np.asarray(m.grad_log_prior(ts), dtype=m.dtype),
        diff=m.control_variate(ts),
        grad_norm=gn,
    )


# --------------------------------------------------------------------------- gradient estimates
# Estimates of grad U (the potential); unchecked, shared by the kernels and the sampler loop.


def _grad_full(m: Model, theta: Array) -> Array:
    return -(m.grad_log_prior(theta) + m.grad_log_likelihood_sum(theta))


def _grad_sgld(m: Model, theta: Array, idx: NDArray[np.intp], scale: Any) -> Array:
    return -(m.grad_log_prior(theta) + scale * m.grad_log_likelihood_sum(theta, idx))


def _grad_sgldfp(
    m: Model, theta: Array, idx: NDArray[np.intp], scale: Any, fp: FixedPoint
) -> Array:
    return -((m.grad_log_prior(theta) - fp.grad_log_prior_star) + scale * fp.diff(theta, idx))


def _scale(m: Model, idx: NDArray[np.intp]) -> Any:
    return m.dtype.type(m.n_data / len(idx))


def _noise(m: Model, generator: np.random.Generator, step_size: float) -> Array:
    z = generator.standard_normal(m.dim, dtype=m.dtype)
    return z * m.dtype.type(math.sqrt(2.0 * step_size))


def lmc_step(model: Any, theta: ArrayLike, step_size: float,
             generator: np.random.Generator) -> Array:
    """One Langevin Monte Carlo (unadjusted Langevin) step with the full-data gradient."""
    m = as_model(model)
    t = check_theta(m, theta)
    g = _check_step_size(step_size)
    gen = _check_generator(generator)
    return t - m.dtype.type(g) * _grad_full(m, t) + _noise(m, gen, g)


def sgld_step(model: Any, theta: ArrayLike, step_size: float, minibatch: ArrayLike,
              generator: np.random.Generator) -> Array:
    """One SGLD step on the minibatch ``minibatch`` (indices, see :func:`minibatch_indices`)."""
    m = as_model(model)
    t = check_theta(m, theta)
    g = _check_step_size(step_size)
    idx = _check_minibatch(m, minibatch)
    gen = _check_generator(generator)
    return t - m.dtype.type(g) * _grad_sgld(m, t, idx, _scale(m, idx)) + _noise(m, gen, g)


def sgldfp_step(model: Any, theta: ArrayLike, step_size: float, minibatch: ArrayLike,
                generator: np.random.Generator, centre: FixedPoint) -> Array:
    """One SGLD Fixed Point step: SGLD with control variates at the mode (``centre``)."""
    m = as_model(model)
    t = check_theta(m, theta)
    g = _check_step_size(step_size)
    idx = _check_minibatch(m, minibatch)
    gen = _check_generator(generator)
    if not isinstance(centre, FixedPoint):
        raise TypeError(f"centre must be a FixedPoint from fixed_point(), got {type(centre)}")
    return t - m.dtype.type(g) * _grad_sgldfp(m, t, idx, _scale(m, idx), centre) + _noise(
        m, gen, g
    )


def sgd_step(model: Any, theta: ArrayLike, step_size: float, minibatch: ArrayLike) -> Array:
    """One stochastic gradient descent step on U (SGLD without the injected noise)."""
    m = as_model(model)
    t = check_theta(m, theta)
    g = _check_step_size(step_size)
    idx = _check_minibatch(m, minibatch)
    return t - m.dtype.type(g) * _grad_sgld(m, t, idx, _scale(m, idx))
