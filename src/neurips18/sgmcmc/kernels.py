"""Gradient estimators and one Langevin step: the pieces every sampler here is made of.

With potential U = U0 + sum_i U_i (see :mod:`neurips18.sgmcmc.models`), step size gamma,
a minibatch S of size p and Z ~ N(0, I_d), Brosse, Durmus, Moulines, "The promises and
pitfalls of Stochastic Gradient Langevin Dynamics" (NeurIPS 2018, arXiv:1811.10072) compare
four chains that share one step,

    theta' = theta - gamma g(theta, S) + sqrt(2 gamma) Z          (:func:`langevin_step`)

and differ only in the gradient estimate g, an unbiased estimate of grad U(theta):

* LMC:    the full gradient, g = grad U(theta)  (:class:`MinibatchGradient` on ``None``);
* SGLD:   g = grad U0(theta) + (N/p) sum_{i in S} grad U_i(theta)  (:func:`minibatch_gradient`);
* SGLDFP: SGLD with control variates at the mode theta* (:func:`control_variates`),
  g = grad U0(theta) - grad U0(theta*) + (N/p) sum_{i in S} (grad U_i(theta) - grad U_i(theta*)),
  which needs no full gradient per step because grad U(theta*) = 0;
* SGD:    the SGLD estimate and the step without the noise.

This is the shape of BlackJAX's ``sgmcmc`` module (a gradient estimator, a diffusion step):
:func:`~neurips18.sgmcmc.sample` composes exactly these pieces, and its fused C kernel for the
built-in GLMs is tested to give the same chain as chaining :func:`langevin_step` on the same
draws. The Welling-Teh convention ``theta += (eps/2) grad log pi + sqrt(eps) xi`` is
gamma = eps/2. Minibatches are index arrays from :func:`minibatch_indices` (with or without
replacement); every random function takes ``generator=`` (a ``numpy.random.Generator`` or an
int seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neurips18._validation import (
    BOOL,
    Interval,
    as_numpy_generator,
    check,
    check_array,
    invalid,
)
from neurips18.sgmcmc.models import (
    Array,
    Model,
    _default_rtol,
    as_model,
    check_theta,
    find_mode,
)

__all__ = [
    "ControlVariateGradient",
    "MinibatchGradient",
    "control_variates",
    "langevin_step",
    "lmc_step",
    "minibatch_gradient",
    "minibatch_indices",
    "sgd_step",
    "sgld_step",
    "sgldfp_step",
]


# --------------------------------------------------------------------------- checks
def _check_step_size(step_size: Any) -> float:
    """gamma as a float in (0, inf)."""
    return float(check("step_size", step_size, Interval(float, 0.0, None, closed="neither")))


def _check_batch_size(batch_size: Any, n_data: int) -> int:
    """p as an int in [1, n_data]."""
    return int(check("batch_size", batch_size, Interval(int, 1, n_data)))


def _check_flag(name: str, value: Any) -> bool:
    """A switch as a bool (a Python or NumPy bool only: the string "False" is truthy)."""
    return bool(check(name, value, BOOL))


def _check_minibatch(model: Model, minibatch: ArrayLike) -> NDArray[np.intp]:
    idx = check_array("minibatch", minibatch, ndim=1, dtype=None)
    if idx.dtype.kind not in "iu":
        raise invalid("minibatch", minibatch, "an array of integer indices")
    if idx.min() < 0 or idx.max() >= model.n_data:
        raise invalid("minibatch", minibatch,
                      f"indices in [0, {model.n_data}), got [{idx.min()}, {idx.max()}]")
    return idx.astype(np.intp, copy=False)


# --------------------------------------------------------------------------- minibatches
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


def minibatch_indices(
    generator: Any, n_data: int, batch_size: int, replacement: bool = True, *,
    n_batches: int | None = None,
) -> NDArray[np.int64]:
    """``batch_size`` indices in ``[0, n_data)``: i.i.d. uniform (``replacement=True``) or a
    uniform random subset. With ``n_batches`` an ``(n_batches, batch_size)`` array of
    independent minibatches, drawn exactly as :func:`~neurips18.sgmcmc.sample` draws a block.
    ``generator``: a ``numpy.random.Generator`` (the same object for every minibatch of a
    chain) or an int seed, which makes a fresh generator at each call: the same int in a
    loop returns the same minibatch every time."""
    gen = as_numpy_generator(generator)
    n = int(check("n_data", n_data, Interval(int, 1, None)))
    p = _check_batch_size(batch_size, n)
    repl = _check_flag("replacement", replacement)
    if n_batches is None:
        return _minibatch_block(gen, n, 1, p, repl)[0]
    b = int(check("n_batches", n_batches, Interval(int, 1, None)))
    return _minibatch_block(gen, n, b, p, repl)


# --------------------------------------------------------------------------- estimators
@dataclass(frozen=True, eq=False)
class MinibatchGradient:
    """The minibatch estimate of grad U: ``g(theta, S) = grad U0(theta) + (N/|S|) sum_{i in S}
    grad U_i(theta)``; with ``S = None`` the full gradient grad U(theta) (LMC).

    Built by :func:`minibatch_gradient`; called as ``g(theta, minibatch)`` with ``theta`` in
    the model's dtype (unchecked: the step functions check their inputs)."""

    model: Model

    def __call__(self, theta: Array, minibatch: NDArray[np.intp] | None = None) -> Array:
        m = self.model
        if minibatch is None:
            return -(m.grad_log_prior(theta) + m.grad_log_likelihood_sum(theta))
        scale = m.dtype.type(m.n_data / len(minibatch))
        return -(m.grad_log_prior(theta) + scale * m.grad_log_likelihood_sum(theta, minibatch))


@dataclass(frozen=True, eq=False)
class ControlVariateGradient:
    """The SGLDFP estimate of grad U: the minibatch estimate with control variates at the mode,
    ``g(theta, S) = grad U0(theta) - grad U0(theta*) + (N/|S|) sum_{i in S} [grad U_i(theta)
    - grad U_i(theta*)]`` (with ``S = None``: grad U(theta) - grad U(theta*)).

    ``theta_star`` is the centre (in the model's dtype), ``grad_norm`` the norm of the full
    gradient there (0 at the exact mode). For the GLMs the difference comes from one cached
    scalar per example, so a step costs one minibatch product. Built by
    :func:`control_variates`.
    """

    model: Model
    theta_star: Array
    grad_norm: float
    grad_log_prior_star: Array = field(repr=False)
    diff: Callable[[Array, NDArray[np.intp]], Array] = field(repr=False)
    grad_star: Array = field(repr=False)

    def __call__(self, theta: Array, minibatch: NDArray[np.intp] | None = None) -> Array:
        m = self.model
        if minibatch is None:
            return m.grad_potential(theta) - self.grad_star
        scale = m.dtype.type(m.n_data / len(minibatch))
        return -((m.grad_log_prior(theta) - self.grad_log_prior_star)
                 + scale * self.diff(theta, minibatch))


GradientEstimator = MinibatchGradient | ControlVariateGradient


def minibatch_gradient(model: Any) -> MinibatchGradient:
    """The minibatch gradient estimator of ``model`` (SGLD, SGD; LMC with no minibatch)."""
    return MinibatchGradient(as_model(model))


def control_variates(model: Any, theta_star: ArrayLike | None = None, *,
                     rtol: float | None = None) -> ControlVariateGradient:
    """The control-variate gradient estimator of ``model`` centred at its mode (SGLDFP).

    The mode is found with :func:`~neurips18.sgmcmc.find_mode` (to ``rtol``) unless
    ``theta_star`` is given. A given ``theta_star`` must be a mode to the same test:
    ``||grad U(theta_star)|| <= rtol * max(1, ||grad log prior(0)||, ||sum_i grad log
    p_i(0)||)`` (the two norms taken at ``theta_star`` instead when they are not finite at
    0, as for a parameter whose domain excludes 0), with ``rtol`` (default find_mode's,
    and at least 1e-5 for a float32 model, whose gradient sums round at about that level)
    checked on the gradient in the model's dtype. The estimator's mean is grad U(theta) -
    grad U(theta_star), so a chain centred at a point that is not the mode is drawn to
    that point instead of the posterior."""
    m = as_model(model)
    if rtol is not None:
        rtol = float(check("rtol", rtol, Interval(float, 0.0, None, closed="neither")))
    if theta_star is None:
        ts64 = find_mode(m) if rtol is None else find_mode(m, rtol=rtol)
    else:
        ts64 = check_theta(m, theta_star, "theta_star")
    ts = np.asarray(ts64, dtype=m.dtype)
    # copies of what the model returns: the estimator keeps them for the whole chain, and a
    # model may hand out one buffer that its next call overwrites
    g = np.array(m.grad_potential(ts), dtype=m.dtype, copy=True)
    grad_norm = float(np.linalg.norm(g.astype(np.float64)))
    if theta_star is not None:
        tol = _default_rtol(m) if rtol is None else rtol
        if m.dtype != np.float64:
            tol = max(tol, 1e-5)
        scale = m._mode_scale(np.zeros(m.dim, dtype=m.dtype))
        if not math.isfinite(scale):
            # 0 lies outside the parameter's domain (a log barrier, say): an infinite scale
            # would accept any centre, so the gradient parts are measured at the centre
            scale = m._mode_scale(ts)
        limit = tol * scale
        if not (math.isfinite(grad_norm) and grad_norm <= limit):
            raise invalid("theta_star", theta_star,
                          f"a mode of the posterior, ||grad U(theta_star)|| <= {limit:.3g} "
                          f"(rtol={tol:g}), got {grad_norm:.3g}: SGLDFP centred at a point "
                          "that is not the mode samples around that point, not the "
                          "posterior; omit theta_star to have the mode found, or pass a "
                          "larger rtol (mode_rtol= in sample()) to accept this centre")
    return ControlVariateGradient(
        model=m, theta_star=ts,
        grad_norm=grad_norm,
        grad_log_prior_star=np.array(m.grad_log_prior(ts), dtype=m.dtype, copy=True),
        diff=m.control_variate(ts), grad_star=g,
    )


def _estimator_for(model: Any, estimator: Any) -> tuple[Model, GradientEstimator]:
    """``(model, estimator)`` with the estimator checked to belong to the model."""
    if isinstance(model, MinibatchGradient | ControlVariateGradient) and estimator is None:
        return model.model, model
    m = as_model(model)
    if estimator is None:
        return m, MinibatchGradient(m)
    if not isinstance(estimator, MinibatchGradient | ControlVariateGradient):
        raise invalid("estimator", estimator,
                      "a gradient estimator from minibatch_gradient() or control_variates()")
    em = estimator.model
    if em is not m and getattr(em, "_obj", None) is not model:
        raise invalid("estimator", estimator, "an estimator built on this model")
    return em, estimator


# --------------------------------------------------------------------------- the step
def _langevin(theta: Array, grad: Array, gamma: Any, scaled_noise: Array | None) -> Array:
    """theta - gamma grad (+ scaled_noise), in theta's dtype; ``gamma`` and the noise are
    already in that dtype (the sampler scales a block of noise at once)."""
    out = theta - gamma * grad
    if scaled_noise is not None:
        out += scaled_noise
    return out


def langevin_step(theta: ArrayLike, gradient: ArrayLike, step_size: float,
                  noise: ArrayLike | None) -> Array:
    """One Langevin step ``theta - step_size * gradient + sqrt(2 step_size) * noise``.

    ``gradient`` is an estimate of grad U(theta) (from a gradient estimator), ``noise`` a draw
    of N(0, I_d) (``None``: no noise, an SGD step). Computed in ``theta``'s dtype (float32 or
    float64); returns a new array."""
    t = check_array("theta", theta, ndim=1, dtype="numeric")
    if t.dtype not in (np.float32, np.float64):
        t = t.astype(np.float64)
    g = check_array("gradient", gradient, ndim=1, dtype=t.dtype)
    if g.shape != t.shape:
        raise invalid("gradient", gradient, f"shape {t.shape} like theta")
    gamma = _check_step_size(step_size)
    dt = t.dtype.type
    z = None
    if noise is not None:
        z = check_array("noise", noise, ndim=1, dtype=t.dtype)
        if z.shape != t.shape:
            raise invalid("noise", noise, f"shape {t.shape} like theta")
        z = dt(math.sqrt(2.0 * gamma)) * z
    return _langevin(t, g, dt(gamma), z)


def _draw(m: Model, generator: Any) -> Array:
    return as_numpy_generator(generator).standard_normal(m.dim, dtype=m.dtype)


def lmc_step(model: Any, theta: ArrayLike, step_size: float, generator: Any) -> Array:
    """One Langevin Monte Carlo (unadjusted Langevin) step with the full-data gradient.

    ``generator``: a ``numpy.random.Generator`` (pass the same object to every step of a
    chain) or an int seed, which makes a fresh generator at each call: the same int at
    every step of a loop draws the same noise every time, and the chain samples nothing.
    """
    m, est = _estimator_for(model, None)
    t = check_theta(m, theta)
    gamma = _check_step_size(step_size)
    dt = m.dtype.type
    return _langevin(t, est(t, None), dt(gamma), dt(math.sqrt(2 * gamma)) * _draw(m, generator))


def sgld_step(model: Any, theta: ArrayLike, step_size: float, minibatch: ArrayLike,
              generator: Any, *, estimator: GradientEstimator | None = None) -> Array:
    """One SGLD step on ``minibatch`` (indices, see :func:`minibatch_indices`).

    ``estimator`` is the gradient estimator of ``model`` (default:
    :func:`minibatch_gradient`); with :func:`control_variates` this is an SGLDFP step.
    ``model`` may itself be an estimator.

    ``generator``: a ``numpy.random.Generator`` (pass the same object to every step of a
    chain) or an int seed, which makes a fresh generator at each call: the same int at
    every step of a loop draws the same noise every time, and the chain samples nothing.
    """
    m, est = _estimator_for(model, estimator)
    t = check_theta(m, theta)
    gamma = _check_step_size(step_size)
    idx = _check_minibatch(m, minibatch)
    dt = m.dtype.type
    return _langevin(t, est(t, idx), dt(gamma), dt(math.sqrt(2 * gamma)) * _draw(m, generator))


def sgldfp_step(model: Any, theta: ArrayLike, step_size: float, minibatch: ArrayLike,
                generator: Any, centre: ControlVariateGradient) -> Array:
    """One SGLD Fixed Point step: :func:`sgld_step` with the control-variate estimator
    ``centre`` (from :func:`control_variates`, built once for the whole chain)."""
    if not isinstance(centre, ControlVariateGradient):
        raise invalid("centre", centre, "a ControlVariateGradient from control_variates()")
    return sgld_step(model, theta, step_size, minibatch, generator, estimator=centre)


def sgd_step(model: Any, theta: ArrayLike, step_size: float, minibatch: ArrayLike, *,
             estimator: GradientEstimator | None = None) -> Array:
    """One stochastic gradient descent step on U: SGLD without the injected noise."""
    m, est = _estimator_for(model, estimator)
    t = check_theta(m, theta)
    gamma = _check_step_size(step_size)
    idx = _check_minibatch(m, minibatch)
    return _langevin(t, est(t, idx), m.dtype.type(gamma), None)
