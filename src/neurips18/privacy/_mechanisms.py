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

import dataclasses
import math

import numpy as np

from neurips18._validation import Interval, check, invalid
from neurips18.privacy._accountant import Ledger, LedgerEntry
from neurips18.privacy._samplers import MAX_GAUSSIAN_S2, discrete_gaussian, discrete_laplace

__all__ = ["gaussian_feasible", "gaussian_noise_params", "gaussian_release",
           "laplace_feasible", "laplace_release", "threshold_for", "thresholded_histogram"]

_MAX_LAPLACE_T = 2**56


_POSITIVE = Interval(float, 0, None, closed="neither")
_INT64_MAX = np.iinfo(np.int64).max


def _grid_values(name: str, values: object) -> np.ndarray:
    """``values`` as an int64 array of grid steps, or an error naming ``name``: a float
    array was cast with truncation toward zero (2.7 released as 2 + noise), a NaN or a
    value past int64 became -2**63, with at most a RuntimeWarning."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise invalid(name, arr, f"an array of integers (steps of the grid), got dtype "
                      f"{arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        raise invalid(name, arr, "integers within the int64 range")
    return arr.astype(np.int64, copy=False)


def _check_release(sensitivity: float, unit: float, changed: int) -> tuple[float, float, int]:
    """The common parameters of a release: a finite ``sensitivity >= 0`` (a negative one
    gave Laplace noise of scale 1 whatever the budget), a ``unit > 0`` (a negative one
    flipped the sign of the output) and ``changed >= 1`` coordinates (0 left the rounding
    to a coarser grid out of the sensitivity)."""
    return (check("sensitivity", sensitivity, Interval(float, 0, None)),
            check("unit", unit, _POSITIVE), check("changed", changed, Interval(int, 1, None)))


def _round_to(values: np.ndarray, j: int) -> np.ndarray:
    if j == 0:
        return values.astype(np.int64, copy=True)
    half = np.int64(1) << np.int64(j - 1)
    return (values.astype(np.int64) + half) >> np.int64(j)


def gaussian_feasible(sens: float, rho: float, changed: int) -> bool:
    """Whether some grid ``2**j`` gives the discrete Gaussian for ``rho`` a variance
    parameter in the exact sampler's range: the sensitivity in steps of that grid,
    ``sens / 2**j + sqrt(changed)`` (j > 0), decreases to ``sqrt(changed)``, the rounding's
    part, so beyond ``changed / (2 rho) >= 2**29`` no grid is coarse enough."""
    lim = MAX_GAUSSIAN_S2 / 2
    return rho > 0 and (sens * sens / (2.0 * rho) < lim or changed / (2.0 * rho) < lim)


def laplace_feasible(sens: float, epsilon: float, changed: int) -> bool:
    """As :func:`gaussian_feasible` for the discrete Laplace (scale below 2**56)."""
    return epsilon > 0 and (sens / epsilon < _MAX_LAPLACE_T
                            or changed / epsilon < _MAX_LAPLACE_T)


def gaussian_noise_params(sens: float, rho: float, changed: int) -> tuple[int, int, float]:
    """(j, s2, effective sensitivity in steps) with s2 < 2**30 and D_j^2 / (2 s2) <= rho;
    ValueError when there is none (:func:`gaussian_feasible`)."""
    if not gaussian_feasible(sens, rho, changed):
        raise ValueError(f"rho {rho:.3g} too small for sensitivity {sens:.3g} over {changed} "
                         "coordinate(s): its discrete Gaussian noise is past the exact "
                         "sampler's range (s2 < 2**30) on every grid")
    j = 0
    while True:
        d_j = sens / 2.0**j + (math.sqrt(changed) if j > 0 else 0.0)
        s2_f = d_j * d_j / (2.0 * rho)
        if s2_f < MAX_GAUSSIAN_S2 / 2:
            s2 = max(1, math.ceil(s2_f))
            while d_j * d_j / (2.0 * s2) > rho:  # the smallest integer that is enough
                s2 += 1
            return j, s2, d_j
        j += 1


def gaussian_release(values: np.ndarray, *, sensitivity: float, rho: float, unit: float,
                     changed: int, rng: np.random.Generator, ledger: Ledger, step: str,
                     threshold: float | None = None, delta: float = 0.0,
                     floor: int | None = None) -> np.ndarray:
    """``values`` (int64, in grid ``unit``) plus exact discrete Gaussian noise for
    ``rho``-zCDP under L2 ``sensitivity`` (in units), returned as float64 in data units.

    The ledger is charged ``rho`` (and ``delta`` for a thresholded histogram, whose
    ``threshold`` and count ``floor`` are recorded) before any noise is drawn; a charge past
    the plan raises and nothing is released."""
    values = _grid_values("values", values)
    sensitivity, unit, changed = _check_release(sensitivity, unit, changed)
    rho = check("rho", rho, _POSITIVE)
    delta = check("delta", delta, Interval(float, 0, 1, closed="left"))
    j, s2, d_j = gaussian_noise_params(sensitivity, rho, changed)
    ledger.charge_rho(rho, step, delta=delta)  # both, or neither when one is refused
    noise = discrete_gaussian(s2, values.size, rng).reshape(values.shape)
    g = unit * 2.0**j
    out = (_round_to(values, j) + noise).astype(np.float64) * g
    ledger.record(LedgerEntry(step=step, mechanism="gaussian", norm="l2",
                              sensitivity=d_j * g, noise=math.sqrt(s2) * g, size=int(values.size),
                              rho=d_j * d_j / (2.0 * s2), charged_rho=rho, delta=delta,
                              threshold=threshold, floor=floor, granularity=g))
    return out


def laplace_release(values: np.ndarray, *, sensitivity: float, epsilon: float, unit: float,
                    changed: int, rng: np.random.Generator, ledger: Ledger,
                    step: str) -> np.ndarray:
    """``values`` (int64, in grid ``unit``) plus exact discrete Laplace noise for
    ``epsilon``-DP under L1 ``sensitivity`` (in units), as float64 in data units."""
    values = _grid_values("values", values)
    sensitivity, unit, changed = _check_release(sensitivity, unit, changed)
    epsilon = check("epsilon", epsilon, _POSITIVE)
    if not laplace_feasible(float(sensitivity), float(epsilon), int(changed)):
        raise ValueError(f"epsilon {epsilon:.3g} too small for sensitivity {sensitivity:.3g} "
                         f"over {changed} coordinate(s): its discrete Laplace scale is past "
                         "2**56 on every grid")
    ledger.charge_epsilon(epsilon, step)
    j = 0
    while True:
        d_j = float(sensitivity) / 2.0**j + (changed if j > 0 else 0)
        t_f = d_j / epsilon
        if t_f < _MAX_LAPLACE_T:
            t = max(1, math.ceil(t_f))
            while d_j / t > epsilon:  # the smallest integer scale that is enough
                t += 1
            break
        j += 1
    noise = discrete_laplace(t, values.size, rng).reshape(values.shape)
    g = unit * 2.0**j
    out = (_round_to(values, j) + noise).astype(np.float64) * g
    ledger.record(LedgerEntry(step=step, mechanism="laplace", norm="l1", sensitivity=d_j * g,
                              noise=t * g, size=int(values.size), epsilon=d_j / t,
                              charged_epsilon=epsilon, granularity=g))
    return out


def threshold_for(sigma: float, delta: float, changed: int = 2, floor: int = 1) -> float:
    """Release threshold of a Gaussian-noised histogram of the cells holding at least
    ``floor`` points (``floor = 1``: the non-empty cells). A cell kept in one data set and
    not in its neighbour holds exactly ``floor`` points there and is released with
    probability P(floor + Z >= tau) <= exp(-(tau - floor)^2 / (2 sigma^2)) (the discrete
    Gaussian is sub-Gaussian with variance parameter sigma^2, Canonne-Kamath-Steinke 2020);
    ``changed`` such cells share ``delta``."""
    sigma = check("sigma", sigma, _POSITIVE)
    delta = check("delta", delta, Interval(float, 0, 1, closed="neither"))
    changed = check("changed", changed, Interval(int, 1, None))
    floor = check("floor", floor, Interval(int, 1, None))
    return floor + sigma * math.sqrt(2.0 * math.log(changed / delta))


def thresholded_histogram(keys: np.ndarray, counts: np.ndarray, *, floor: int, rho: float,
                          delta: float, rng: np.random.Generator, ledger: Ledger,
                          step: str) -> tuple[np.ndarray, np.ndarray]:
    """The stability-based histogram: of the cells (``keys``, exact int ``counts``) holding
    at least ``floor`` points, release those whose count plus discrete Gaussian noise
    (rho-zCDP under L2 sensitivity sqrt 2: one row replaced moves one point between two
    cells) reaches ``threshold_for(sigma, delta, floor=floor)``; returns their keys and
    noisy counts. Cells below the floor, and absent cells, take no part (no noise is drawn
    for them): the two cells of neighbouring data sets that can be kept in one and not in
    the other hold exactly ``floor`` points there, released with probability at most
    ``delta / 2`` each, so the release is ``delta``-approximately rho-zCDP."""
    keys, counts = np.asarray(keys), _grid_values("counts", counts)
    if keys.shape != counts.shape or keys.ndim != 1:
        raise invalid("counts", counts, f"a 1-D array of the shape of keys {keys.shape}, "
                      f"got shape {counts.shape}")
    floor = check("floor", floor, Interval(int, 1, None))
    rho = check("rho", rho, _POSITIVE)
    delta = check("delta", delta, Interval(float, 0, 1, closed="neither"))
    at_floor = counts >= floor
    keys, counts = keys[at_floor], counts[at_floor]
    j, s2, _ = gaussian_noise_params(math.sqrt(2.0), rho, 2)
    tau = threshold_for(math.sqrt(s2) * 2.0**j, delta, floor=int(floor))
    noisy = gaussian_release(counts, sensitivity=math.sqrt(2.0), rho=rho, unit=1.0, changed=2,
                             rng=rng, ledger=ledger, step=step, threshold=tau, delta=delta,
                             floor=int(floor))
    keep = noisy >= tau
    # the entry's size is the number of cells released: the number that took part (the
    # exact count of cells at the floor, before thresholding) is not private, and an
    # entry of the ledger, which is meant to be shown, must not carry it
    entry = ledger.entries[-1]
    ledger.entries[-1] = dataclasses.replace(entry, size=int(keep.sum()))
    return keys[keep], noisy[keep]
