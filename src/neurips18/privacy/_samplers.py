"""Exact samplers for the discrete Laplace and discrete Gaussian distributions.

Floating-point Laplace or Gaussian noise leaks through the pattern of representable values
(Mironov, CCS 2012). The mechanisms of this package therefore release integers (values on a
fixed grid) plus integer noise drawn exactly, with integer arithmetic only, by the rejection
samplers of Canonne, Kamath and Steinke ("The Discrete Gaussian for Differential Privacy",
NeurIPS 2020, Algorithms 1-3). The only source of randomness is uniform integers from a
``numpy.random.Generator`` (``Generator.integers``, which is exact); every loop is vectorised
over the requested samples.

Two devices keep the number of calls into NumPy small without changing any distribution:

* the sequential trials of a sample (Algorithm 1's Bernoulli(gamma / k) for k = 1, 2, ...;
  the Bernoulli(exp(-1)) successes that make a geometric variable) are drawn ``BLOCK`` at a
  time per sample, the result read off the first failure; samples whose block holds no
  failure draw another block. Trials drawn past a sample's first failure are discarded,
  which is harmless because every trial is independent of the others.
* a rejection sampler draws enough proposals for the samples still missing (the expected
  number, from the acceptance probability, plus a margin) and keeps the first accepted ones
  in order; if too few were accepted it draws again for the rest. Which proposals are kept
  depends on the accept/reject decisions only, and given those decisions the accepted
  values are independent draws of the target law, so the output is exact whatever the
  margin. The acceptance probability is used for the batch size only.

* :func:`discrete_laplace` -- ``P(z) ~ exp(-|z| / t)`` on the integers, ``t`` a positive int;
* :func:`discrete_gaussian` -- ``P(z) ~ exp(-z^2 / (2 s2))``, ``s2`` a positive int (the
  variance parameter), ``s2 < 2**30``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurips18._validation import Interval, as_numpy_generator, check, invalid

__all__ = ["bernoulli_exp", "discrete_gaussian", "discrete_laplace", "MAX_GAUSSIAN_S2"]

MAX_GAUSSIAN_S2 = 2**30
"""Largest variance parameter of :func:`discrete_gaussian` (keeps 2 s2 t^2 below 2**63)."""

BLOCK = 4
"""Trials of Algorithm 1 drawn at once per sample (any value >= 1 gives the same laws; a
sample runs past 4 trials with probability at most 1/4! = 1/24)."""

GEOMETRIC_BLOCK = 2
"""Bernoulli(exp(-1)) trials of a geometric variable drawn at once per sample (any value
>= 1 gives the same laws; one runs past 2 with probability e^-2)."""

OVERSAMPLE = 1.1
"""Proposals drawn per expected acceptance in the rejection samplers, plus ``_EXTRA``
(any value > 0 gives the same laws)."""
_EXTRA = 8
_ROUND_SAMPLES = 2**17  # samples produced per round at most (bounds the temporary arrays)
_LCM_MAX = 2**62  # largest common range of the Bernoulli(1/k) draws of a block


def _int_array(name: str, values: Any, low: int) -> np.ndarray:
    """``values`` as int64, or an error naming ``name`` unless they are integers >= ``low``
    in the int64 range (a float array was truncated: num 0.5 became 0, probability 1)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise invalid(name, arr, f"an array of integers, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < low or int(arr.max()) > np.iinfo(np.int64).max):
        raise invalid(name, arr, f"integers in [{low}, 2**63)")
    return arr.astype(np.int64, copy=False)


def _bernoulli_frac(num: np.ndarray, den: np.ndarray | int, rng: np.random.Generator,
                    shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Bernoulli(num / den) for int64 ``num`` with 0 <= num <= den < 2**63; ``den`` an array
    of the same shape or one int for all (then ``shape`` is the output's shape)."""
    if isinstance(den, np.ndarray):
        return rng.integers(0, den, dtype=np.int64) < num
    return rng.integers(0, den, size=shape, dtype=np.int64) < num


def _one_over_k(m: int, k0: int, rng: np.random.Generator) -> np.ndarray:
    """(m, BLOCK) independent Bernoulli(1/k), k = k0 .. k0 + BLOCK - 1 along the columns.

    Each is drawn as U % k == 0 for U uniform on {0, ..., L - 1}, L = lcm(k0 .. k0+BLOCK-1):
    k divides L, so U % k is uniform on {0, ..., k - 1}. (One range for the whole block is
    several times faster to draw than a range per column.) Beyond ``_LCM_MAX`` each column
    gets its own range."""
    ks = np.arange(k0, k0 + BLOCK, dtype=np.int64)
    lcm = math.lcm(*range(k0, k0 + BLOCK))
    if lcm <= _LCM_MAX:
        return rng.integers(0, lcm, size=(m, BLOCK), dtype=np.int64) % ks == 0
    return rng.integers(0, ks, size=(m, BLOCK), dtype=np.int64) == 0


def _bernoulli_exp_unit(num: np.ndarray, den: np.ndarray | int,
                        rng: np.random.Generator) -> np.ndarray:
    """Bernoulli(exp(-num/den)) for 1-D int64 ``num`` with 0 <= num <= den (gamma in
    [0, 1]); ``den`` an array like ``num`` or one int for all.

    CKS 2020, Algorithm 1: trials A_k ~ Bernoulli(gamma / k), k = 1, 2, ..., each drawn as
    Bernoulli(1/k) and Bernoulli(gamma) (every integer stays in range); the result is 1 iff
    the first failing k is odd. The trials k0 .. k0 + BLOCK - 1 of the samples still running
    are drawn together."""
    n = num.shape[0]
    out = np.zeros(n, dtype=bool)
    idx = np.arange(n)
    k0 = 1
    scalar = not isinstance(den, np.ndarray)
    while idx.size:
        m = idx.size
        trial = _one_over_k(m, k0, rng)
        if scalar:
            trial &= _bernoulli_frac(num[idx][:, None], int(den), rng, (m, BLOCK))  # type: ignore[arg-type]
        else:
            trial &= _bernoulli_frac(num[idx][:, None], np.broadcast_to(
                den[idx][:, None], (m, BLOCK)), rng)  # type: ignore[index]
        failed = ~trial
        stopped = failed.any(axis=1)
        first = failed.argmax(axis=1)  # the first failure, where there is one
        out[idx[stopped]] = (k0 + first[stopped]) % 2 == 1
        idx = idx[~stopped]
        k0 += BLOCK
    return out


def _bernoulli_exp_minus_one(size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` draws of Bernoulli(exp(-1)): Algorithm 1 with gamma = 1, whose
    Bernoulli(gamma) factors are all 1 and are not drawn."""
    out = np.zeros(size, dtype=bool)
    idx = np.arange(size)
    k0 = 1
    while idx.size:
        failed = ~_one_over_k(idx.size, k0, rng)
        stopped = failed.any(axis=1)
        first = failed.argmax(axis=1)
        out[idx[stopped]] = (k0 + first[stopped]) % 2 == 1
        idx = idx[~stopped]
        k0 += BLOCK
    return out


def _geometric(size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` draws of V = the number of successes of Bernoulli(exp(-1)) before the first
    failure: P(V >= v) = exp(-v), P(V = v) = (1 - e^-1) e^-v."""
    v = np.zeros(size, dtype=np.int64)
    idx = np.arange(size)
    g = GEOMETRIC_BLOCK
    while idx.size:
        ok = _bernoulli_exp_minus_one(idx.size * g, rng).reshape(idx.size, g)
        stopped = ~ok.all(axis=1)
        v[idx] += np.where(stopped, ok.argmin(axis=1), g)
        idx = idx[~stopped]
    return v


def _bernoulli_exp_split(whole: np.ndarray, frac: np.ndarray, den: np.ndarray | int,
                         rng: np.random.Generator) -> np.ndarray:
    """Bernoulli(exp(-(whole + frac/den))) for 1-D int64 arrays, whole >= 0,
    0 <= frac < den: Bernoulli(exp(-frac/den)) and, where that is 1, Bernoulli(exp(-whole)),
    which is the event V >= whole for V of :func:`_geometric` (``whole`` independent
    Bernoulli(exp(-1)) draws all 1)."""
    out = _bernoulli_exp_unit(frac, den, rng)
    pend = np.flatnonzero(out & (whole > 0))
    if pend.size:
        out[pend] = _geometric(pend.size, rng) >= whole[pend]
    return out


def bernoulli_exp(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-num/den)) for int64 arrays, num >= 0, 0 < den < 2**63.

    With gamma = num/den = whole + frac/den: Algorithm 1 of CKS 2020 for exp(-frac/den),
    and for exp(-whole) the event that ``whole`` draws of Bernoulli(exp(-1)) are all 1."""
    rng = as_numpy_generator(rng, "rng")  # a Generator, or an int seed
    num = _int_array("num", num, 0)
    den_a = _int_array("den", den, 1)
    shape = num.shape
    try:
        den = np.broadcast_to(den_a, shape).ravel()
    except ValueError:
        raise invalid("den", den_a, f"an array broadcastable to num's shape {shape}") from None
    num = num.ravel()
    whole, frac = np.divmod(num, den)
    if den.size and (den == den[0]).all():  # one range for all: the faster draws
        return _bernoulli_exp_split(whole, frac, int(den[0]), rng).reshape(shape)
    return _bernoulli_exp_split(whole, frac, den, rng).reshape(shape)


def _batch(need: int, p_accept: float) -> int:
    return int(math.ceil(min(need, _ROUND_SAMPLES) / p_accept * OVERSAMPLE)) + _EXTRA


def discrete_laplace(t: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` exact draws of the discrete Laplace law ``P(z) ~ exp(-|z|/t)``, t >= 1 int
    (CKS 2020, Algorithm 2 with s = 1: U uniform on {0..t-1} kept with probability
    exp(-U/t), X = U + t V with V of :func:`_geometric`, a random sign, and (-, 0)
    rejected)."""
    rng = as_numpy_generator(rng, "rng")  # a Generator, or an int seed
    # an int, not int(t): a float scale 2.5 was drawn as 2, less noise than asked for
    t = check("t", t, Interval(int, 1, 2**62, closed="left"))
    size = check("size", size, Interval(int, 0, None))
    out = np.zeros(size, dtype=np.int64)
    tt = np.int64(t)
    q = -math.expm1(-1.0 / t)  # 1 - exp(-1/t)
    # P(U kept) = (1 - e^-1) / (t q); given that, P(X = 0) = q and half of those are rejected
    p_accept = max(min(1.0, -math.expm1(-1.0) / (t * q)) * (1.0 - q / 2.0), 1e-3)
    filled = 0
    while filled < size:
        need = size - filled
        m = _batch(need, p_accept)
        u = rng.integers(0, tt, size=m, dtype=np.int64)
        kept = np.flatnonzero(_bernoulli_exp_unit(u, t, rng))  # u < t: gamma < 1
        x = u[kept] + tt * _geometric(kept.size, rng)
        b = rng.integers(0, 2, size=kept.size, dtype=np.int64)
        z = np.where(b == 1, -x, x)[~((b == 1) & (x == 0))][:need]
        out[filled:filled + z.size] = z
        filled += z.size
    return out


def discrete_gaussian(s2: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` exact draws of the discrete Gaussian ``P(z) ~ exp(-z^2 / (2 s2))`` with an
    integer variance parameter ``1 <= s2 < 2**30`` (CKS 2020, Algorithm 3: a discrete
    Laplace proposal of scale t = floor(sqrt(s2)) + 1, accepted with probability
    exp(-(|y| - s2/t)^2 / (2 s2)), computed as exp(-(t|y| - s2)^2 / (2 s2 t^2)) exactly)."""
    rng = as_numpy_generator(rng, "rng")  # a Generator, or an int seed
    s2 = check("s2", s2, Interval(int, 1, MAX_GAUSSIAN_S2, closed="left"))
    t = _isqrt(s2) + 1
    den = 2 * s2 * t * t  # < 2**61
    # sum over y of Laplace(y) x acceptance(y) = tanh(1/(2t)) e^(-s2/(2t^2)) sum_y
    # e^(-y^2/(2 s2)), the last sum being sqrt(2 pi s2) to within e^(-2 pi^2 s2)
    p_accept = max(min(1.0, math.tanh(0.5 / t) * math.exp(-s2 / (2.0 * t * t))
                       * math.sqrt(2.0 * math.pi * s2)), 1e-3)
    size = check("size", size, Interval(int, 0, None))
    out = np.zeros(size, dtype=np.int64)
    filled = 0
    while filled < size:
        need = size - filled
        m = _batch(need, p_accept)
        y = discrete_laplace(t, m, rng)
        if np.abs(y).max(initial=0) >= 2**46:  # pragma: no cover - probability ~ e^(-2**31)
            raise OverflowError("discrete Laplace proposal out of the exact range")
        a = t * np.abs(y) - s2  # |a| < 2**63 while |y| < 2**46
        big = np.abs(a) >= 2**31  # a*a would overflow int64: exact divmod with Python ints
        num_whole = np.zeros(m, dtype=np.int64)
        num_frac = np.zeros(m, dtype=np.int64)
        small = ~big
        sq = a[small] * a[small]
        num_whole[small], num_frac[small] = np.divmod(sq, den)
        for i in np.flatnonzero(big):
            qq, r = divmod(int(a[i]) * int(a[i]), den)
            num_whole[i], num_frac[i] = min(qq, 2**62), r
        ok = _bernoulli_exp_split(num_whole, num_frac, den, rng)
        z = y[ok][:need]
        out[filled:filled + z.size] = z
        filled += z.size
    return out


def _isqrt(n: int) -> int:
    return math.isqrt(n)
