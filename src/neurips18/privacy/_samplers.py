"""Exact samplers for the discrete Laplace and discrete Gaussian distributions.

Floating-point Laplace or Gaussian noise leaks through the pattern of representable values
(Mironov, CCS 2012). The mechanisms of this package therefore release integers (values on a
fixed grid) plus integer noise drawn exactly, with integer arithmetic only, by the rejection
samplers of Canonne, Kamath and Steinke ("The Discrete Gaussian for Differential Privacy",
NeurIPS 2020, Algorithms 1-3). The only source of randomness is uniform integers from a
``numpy.random.Generator`` (``Generator.integers``, which is exact); every loop is vectorised
over the requested samples.

* :func:`discrete_laplace` -- ``P(z) ~ exp(-|z| / t)`` on the integers, ``t`` a positive int;
* :func:`discrete_gaussian` -- ``P(z) ~ exp(-z^2 / (2 s2))``, ``s2`` a positive int (the
  variance parameter), ``s2 < 2**30``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bernoulli_exp", "discrete_gaussian", "discrete_laplace", "MAX_GAUSSIAN_S2"]

MAX_GAUSSIAN_S2 = 2**30
"""Largest variance parameter of :func:`discrete_gaussian` (keeps 2 s2 t^2 below 2**63)."""


def _bernoulli_frac(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bernoulli(num / den) for int64 arrays with 0 <= num <= den < 2**63."""
    return rng.integers(0, den, dtype=np.int64) < num


def bernoulli_exp(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-num/den)) for int64 arrays, num >= 0, 0 < den < 2**63.

    For gamma = num/den in [0, 1]: draw A_k ~ Bernoulli(gamma / k) for k = 1, 2, ... until
    one is 0; the result is 1 iff that k is odd (CKS 2020, Algorithm 1). Bernoulli(gamma/k)
    is drawn as Bernoulli(1/k) and Bernoulli(gamma), which keeps every integer in range.
    For gamma > 1, floor(gamma) draws of Bernoulli(exp(-1)) and one of exp(-frac) must all
    be 1.
    """
    num = np.asarray(num, dtype=np.int64)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), num.shape).copy()
    whole, frac = np.divmod(num, den)
    out = _bernoulli_exp_unit(frac, den, rng)
    pending = out & (whole > 0)
    ones = np.ones(1, dtype=np.int64)
    while pending.any():
        idx = np.flatnonzero(pending)
        ok = _bernoulli_exp_unit(np.broadcast_to(ones, idx.shape), np.broadcast_to(ones, idx.shape),
                                 rng)
        out[idx[~ok]] = False
        whole[idx] -= 1
        pending = out & (whole > 0)
    return out


def _bernoulli_exp_unit(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bernoulli(exp(-num/den)) for 0 <= num <= den (gamma in [0, 1])."""
    n = num.shape[0]
    k = np.ones(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        a = _bernoulli_frac(np.ones(idx.size, np.int64), k[idx], rng)
        a &= _bernoulli_frac(num[idx], den[idx], rng)
        k[idx[a]] += 1
        active[idx[~a]] = False
    return (k % 2) == 1


def discrete_laplace(t: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` exact draws of the discrete Laplace law ``P(z) ~ exp(-|z|/t)``, t >= 1 int
    (CKS 2020, Algorithm 2 with s = 1)."""
    t = int(t)
    if t < 1 or t >= 2**62:
        raise ValueError(f"discrete Laplace scale must be an int in [1, 2**62), got {t}")
    out = np.zeros(size, dtype=np.int64)
    todo = np.arange(size)
    tt = np.int64(t)
    while todo.size:
        m = todo.size
        u = rng.integers(0, tt, size=m, dtype=np.int64)
        d = bernoulli_exp(u, np.full(m, tt), rng)
        # V ~ Geometric(1 - exp(-1)): the number of successes of Bernoulli(exp(-1))
        v = np.zeros(m, dtype=np.int64)
        going = d.copy()
        ones = np.ones(m, dtype=np.int64)
        while going.any():
            idx = np.flatnonzero(going)
            a = bernoulli_exp(ones[idx], ones[idx], rng)
            v[idx[a]] += 1
            going[idx[~a]] = False
        x = u + tt * v
        b = rng.integers(0, 2, size=m, dtype=np.int64)
        accept = d & ~((b == 1) & (x == 0))
        out[todo[accept]] = np.where(b[accept] == 1, -x[accept], x[accept])
        todo = todo[~accept]
    return out


def discrete_gaussian(s2: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` exact draws of the discrete Gaussian ``P(z) ~ exp(-z^2 / (2 s2))`` with an
    integer variance parameter ``1 <= s2 < 2**30`` (CKS 2020, Algorithm 3: a discrete
    Laplace proposal of scale t = floor(sqrt(s2)) + 1, accepted with probability
    exp(-(|y| - s2/t)^2 / (2 s2)), computed as exp(-(t|y| - s2)^2 / (2 s2 t^2)) exactly)."""
    s2 = int(s2)
    if not 1 <= s2 < MAX_GAUSSIAN_S2:
        raise ValueError(f"discrete Gaussian s2 must be an int in [1, 2**30), got {s2}")
    t = _isqrt(s2) + 1
    den = 2 * s2 * t * t  # < 2**61
    out = np.zeros(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        m = todo.size
        y = discrete_laplace(t, m, rng)
        a = t * np.abs(y) - s2  # |a| < 2**63 while |y| < 2**46, i.e. always in practice
        if np.abs(y).max(initial=0) >= 2**46:  # pragma: no cover - probability ~ e^(-2**31)
            raise OverflowError("discrete Laplace proposal out of the exact range")
        big = np.abs(a) >= 2**31  # a*a would overflow int64: exact divmod with Python ints
        num_whole = np.zeros(m, dtype=np.int64)
        num_frac = np.zeros(m, dtype=np.int64)
        small = ~big
        sq = a[small] * a[small]
        num_whole[small], num_frac[small] = np.divmod(sq, den)
        for i in np.flatnonzero(big):
            q, r = divmod(int(a[i]) * int(a[i]), den)
            num_whole[i], num_frac[i] = min(q, 2**62), r
        # exp(-(whole + frac/den)) = exp(-whole) * exp(-frac/den): pass whole * den + frac
        # only when it fits; else draw the two parts separately.
        c = bernoulli_exp(num_frac, np.full(m, den, dtype=np.int64), rng)
        pending = c & (num_whole > 0)
        ones = np.ones(m, dtype=np.int64)
        while pending.any():
            idx = np.flatnonzero(pending)
            ok = bernoulli_exp(ones[idx], ones[idx], rng)
            c[idx[~ok]] = False
            num_whole[idx] -= 1
            pending = c & (num_whole > 0)
        out[todo[c]] = y[c]
        todo = todo[~c]
    return out


def _isqrt(n: int) -> int:
    import math

    return math.isqrt(n)
