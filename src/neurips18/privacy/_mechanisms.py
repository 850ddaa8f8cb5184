"""The Gaussian and Laplace mechanisms on a fixed grid, with exact integer noise.

A query's true value is an array of integers in units of a grid step ``unit`` (the data are
stored on a fixed-point grid, so sums are exact and independent of the order of addition).
The noise is drawn on a coarser power-of-two multiple ``g = unit * 2**j`` of that step, the
smallest one that keeps the exact sampler's integers in range: the value is rounded to a
multiple of ``g`` (``floor(v / 2**j + 1/2)``), which can move each of the ``changed``
coordinates that differ between neighbouring data sets by at most one step more, so the
sensitivity in steps is ``sensitivity / g + sqrt(changed)`` (L2) or ``+ changed`` (L1),
and the noise is calibrated to that. Then an exact discrete Gaussian / Laplace integer is
added (:mod:`neurips18.privacy._samplers`) and the result is scaled back: nothing about the
true value survives in the low-order bits of the output (Mironov 2012).

The discrete Gaussian with L2 sensitivity D and variance parameter s2 is D^2/(2 s2)-zCDP and
the discrete Laplace of scale t with L1 sensitivity D is (D/t)-DP (Canonne, Kamath, Steinke
2020, Theorems 14-15 and Section 2.2).
"""

from __future__ import annotations

import math

import numpy as np

from neurips18.privacy._accountant import Ledger, LedgerEntry
from neurips18.privacy._samplers import MAX_GAUSSIAN_S2, discrete_gaussian, discrete_laplace

__all__ = ["gaussian_noise_params", "gaussian_release", "laplace_release", "threshold_for"]

_MAX_LAPLACE_T = 2**56


def _round_to(values: np.ndarray, j: int) -> np.ndarray:
    if j == 0:
        return values.astype(np.int64, copy=True)
    half = np.int64(1) << np.int64(j - 1)
    return (values.astype(np.int64) + half) >> np.int64(j)


def gaussian_noise_params(sens: float, rho: float, changed: int) -> tuple[int, int, float]:
    """(j, s2, effective sensitivity in steps) with s2 < 2**30 and D_j^2 / (2 s2) <= rho."""
    j = 0
    while True:
        d_j = sens / 2.0**j + (math.sqrt(changed) if j > 0 else 0.0)
        s2_f = d_j * d_j / (2.0 * rho)
        if s2_f < MAX_GAUSSIAN_S2 / 2:
            s2 = max(1, math.ceil(s2_f * (1 + 1e-12)) + 1)
            return j, s2, d_j
        j += 1


def gaussian_release(values: np.ndarray, *, sensitivity: float, rho: float, unit: float,
                     changed: int, rng: np.random.Generator, ledger: Ledger, step: str,
                     threshold: float | None = None, delta: float = 0.0) -> np.ndarray:
    """``values`` (int64, in grid ``unit``) plus exact discrete Gaussian noise for
    ``rho``-zCDP under L2 ``sensitivity`` (in units), returned as float64 in data units.

    The ledger is charged ``rho`` (and ``delta`` for a thresholded histogram) before any
    noise is drawn; a charge past the plan raises and nothing is released."""
    values = np.asarray(values)
    ledger.charge_rho(rho, step)
    if delta:
        ledger.charge_delta(delta, step)
    j, s2, d_j = gaussian_noise_params(float(sensitivity), float(rho), int(changed))
    noise = discrete_gaussian(s2, values.size, rng).reshape(values.shape)
    g = unit * 2.0**j
    out = (_round_to(values, j) + noise).astype(np.float64) * g
    ledger.record(LedgerEntry(step=step, mechanism="gaussian", norm="l2",
                              sensitivity=d_j * g, noise=math.sqrt(s2) * g, size=int(values.size),
                              rho=d_j * d_j / (2.0 * s2), charged_rho=rho, delta=delta,
                              threshold=threshold, granularity=g))
    return out


def laplace_release(values: np.ndarray, *, sensitivity: float, epsilon: float, unit: float,
                    changed: int, rng: np.random.Generator, ledger: Ledger,
                    step: str) -> np.ndarray:
    """``values`` (int64, in grid ``unit``) plus exact discrete Laplace noise for
    ``epsilon``-DP under L1 ``sensitivity`` (in units), as float64 in data units."""
    values = np.asarray(values)
    ledger.charge_epsilon(epsilon, step)
    j = 0
    while True:
        d_j = float(sensitivity) / 2.0**j + (changed if j > 0 else 0)
        t_f = d_j / epsilon
        if t_f < _MAX_LAPLACE_T:
            t = max(1, math.ceil(t_f * (1 + 1e-12)) + 1)
            break
        j += 1
    noise = discrete_laplace(t, values.size, rng).reshape(values.shape)
    g = unit * 2.0**j
    out = (_round_to(values, j) + noise).astype(np.float64) * g
    ledger.record(LedgerEntry(step=step, mechanism="laplace", norm="l1", sensitivity=d_j * g,
                              noise=t * g, size=int(values.size), epsilon=d_j / t,
                              charged_epsilon=epsilon, granularity=g))
    return out


def threshold_for(sigma: float, delta: float, changed: int = 2) -> float:
    """Release threshold of a Gaussian-noised histogram of non-empty cells: a cell that holds
    one point in one data set and is absent from its neighbour is released with probability
    P(1 + Z >= tau) <= exp(-(tau - 1)^2 / (2 sigma^2)) (the discrete Gaussian is
    sub-Gaussian with variance parameter sigma^2, Canonne-Kamath-Steinke 2020); ``changed``
    such cells share ``delta``."""
    return 1.0 + sigma * math.sqrt(2.0 * math.log(changed / delta))
