"""Local-model private k-means (Kaplan and Stemmer, NeurIPS 2018, local model), simulated.

Every user holds one point and sends one message in one round through her own randomizer,
which is epsilon-differentially private on its own (local DP: the server sees only the
messages). The server's randomness (the hash, the split of users into groups, the order of
rounds) is public and independent of the data. Two rounds:

1. users of group A report their locality-sensitive hash bucket by k-ary randomized
   response; users of group B report the bucket (randomized response, epsilon/2) and a noisy
   copy of their point (exact discrete Laplace on the fixed-point grid, epsilon/2). The
   server estimates bucket frequencies (A) and bucket sums (B), unbiased, and takes the
   noisy means of the 2k most frequent buckets as candidate centres;
2. users of group C report the index of their nearest candidate by randomized response;
   the server's unbiased counts weight the candidates and a non-private weighted k-means
   on them gives the centres.

Randomized response draws its coin as ``U < c`` for ``U = Generator.random()`` (a multiple
of 2**-53) and a cut ``c`` on that grid whose flip probability ``1 - c`` is rounded up from
the one of epsilon(1 - 1e-9): the output is a bucket index, so there are no low-order bits to
attack; the point's noise is the exact integer sampler.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from neurips18._validation import Interval, as_numpy_generator, check, check_array, invalid
from neurips18.privacy import _core, _data
from neurips18.privacy._mechanisms import _MAX_LAPLACE_T
from neurips18.privacy._samplers import discrete_laplace

__all__ = ["LocalKMeansResult", "local_kmeans", "point_noise_scale", "randomized_response"]


class LocalKMeansResult(NamedTuple):
    cluster_centers: np.ndarray
    n_rounds: int
    n_candidates: int


def _rr_probabilities(k: int, eps: float) -> tuple[float, float]:
    """(keep, each other) probabilities of k-ary randomized response at level ``eps``,
    written with e^-eps so that a large epsilon does not overflow (keep -> 1, other -> 0)."""
    if k <= 1:
        return 1.0, 0.0
    t = math.exp(-eps)
    return 1.0 / (1.0 + (k - 1) * t), t / (1.0 + (k - 1) * t)


def randomized_response(values: np.ndarray, n_values: int, epsilon: float,
                        rng: np.random.Generator) -> np.ndarray:
    """k-ary randomized response, one independent randomizer per entry: keep the true
    value with probability e^eps / (e^eps + k - 1), else report one of the k - 1 others
    uniformly. ``P(report | v) / P(report | v') <= e^eps`` for all values.

    ``values``: a 1-D array of ints in [0, n_values); ``rng``: a ``numpy.random.Generator``
    or a non-negative int seed."""
    k = check("n_values", n_values, Interval(int, 1, None))
    epsilon = check("epsilon", epsilon, Interval(float, 0, None, closed="neither"))
    rng = as_numpy_generator(rng, "rng")
    values = check_array("values", values, ndim=1, dtype=None, min_rows=0)
    if values.size and (values.dtype.kind not in "iu" or values.min() < 0
                        or values.max() >= k):
        raise invalid("values", values, f"integers in [0, n_values={k})")
    return _randomized_response(values.astype(np.int64, copy=False), k, epsilon, rng)


_COIN_BITS = 53  # Generator.random() returns j 2**-53, j uniform on {0, ..., 2**53 - 1}


def _keep_cut(k: int, epsilon: float) -> float:
    """The cut ``c`` of the coin ``U < c`` (U = ``Generator.random()``) that keeps the true
    value: a multiple of 2**-53, so ``P(U < c) = c`` exactly, with the probability of
    reporting another value, ``1 - c``, rounded *up* to a multiple of 2**-53 from the
    (k - 1) e^-eps / (1 + (k - 1) e^-eps) of randomized response at ``epsilon``. Comparing
    U with the float keep probability instead rounds that one to the nearest float: past
    eps ~ 37 it is 1.0 and no report is ever changed, and from eps ~ 20 the flip
    probability can fall below the one the ratio e^eps needs."""
    if k <= 1:
        return 1.0
    t = math.exp(-epsilon)
    flip = (k - 1) * t / (1.0 + (k - 1) * t)
    steps = max(1, math.ceil(flip * 2.0**_COIN_BITS))  # at least one of the 2**53 values
    return (2**_COIN_BITS - steps) / 2.0**_COIN_BITS


def _randomized_response(values: np.ndarray, k: int, epsilon: float,
                         rng: np.random.Generator) -> np.ndarray:
    keep = rng.random(values.shape[0]) < _keep_cut(k, epsilon * (1 - 1e-9))
    other = rng.integers(0, max(k - 1, 1), size=values.shape[0])
    other = other + (other >= values)  # uniform over the values different from the truth
    return np.where(keep, values, other).astype(np.int64)


def _rr_debias(reports: np.ndarray, k: int, epsilon: float, weights: np.ndarray | None = None):
    p, q = _rr_probabilities(k, epsilon * (1 - 1e-9))
    if weights is None:
        c = np.bincount(reports, minlength=k).astype(float)
        tot = reports.size
        return (c - tot * q) / (p - q)
    sums = np.stack([np.bincount(reports, weights=weights[:, j], minlength=k)
                     for j in range(weights.shape[1])], axis=1)
    total = weights.sum(0)
    return (sums - q * total[None, :]) / (p - q)


def point_noise_scale(d: int, epsilon: float) -> tuple[int, int]:
    """(grid factor g, discrete Laplace scale t_g) of a user's noisy point, for
    ``epsilon``-DP: the point's L1 sensitivity is 2**31 sqrt(d) grid steps (two points of the
    ball), and when the grid is coarsened by g (to keep t_g in the sampler's range) the
    rounding of each of the d coordinates adds up to one coarse step, d in all."""
    t = math.ceil(2.0**(_data.FRACTION_BITS + 1) * math.sqrt(d) / epsilon * (1 + 1e-12)) + 1
    scale_j = max(0, math.ceil(math.log2(t)) - 50)
    g = 2**scale_j  # coarsen the grid so the sampler's integers stay in range
    if g == 1:
        return 1, t + d
    return g, math.ceil(t / g + d / epsilon * (1 + 1e-12)) + 1


def _randomizers_work(d: int, k: int, epsilon: float) -> bool:
    """Whether every randomizer of :func:`local_kmeans` (``k`` clusters, ``d`` features)
    can run at ``epsilon``: each randomized response tells values apart (its keep and
    other probabilities differ in floating point; when they did not, the debiasing divided
    by p - q = 0) and the point's discrete Laplace scale at epsilon / 2 is in the exact
    sampler's range (below 2**56, as for the central mechanisms)."""
    buckets = _n_buckets(k)
    for values, eps in ((buckets, epsilon), (buckets, epsilon / 2), (2 * k, epsilon)):
        p, q = _rr_probabilities(values, eps * (1 - 1e-9))
        if not p > q:
            return False
    return point_noise_scale(d, epsilon / 2)[1] < _MAX_LAPLACE_T


def _least_local_epsilon(d: int, k: int) -> float:
    """The smallest epsilon (to within a factor 1 + 1e-9) :func:`_randomizers_work` takes
    (a monotone rule: a larger epsilon means less noise)."""
    lo, hi = -800.0, 0.0  # log2 of epsilon: 2**-800 is refused, 1 is accepted
    while hi - lo > 1e-9:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if _randomizers_work(d, k, 2.0**mid) else (mid, hi)
    return 2.0**hi


def _n_buckets(k: int) -> int:
    return max(4 * k, 8)


def local_kmeans(X: Any, n_clusters: int, *, epsilon: float, radius: float,
                 random_state: Any) -> LocalKMeansResult:
    """Centres from ``epsilon``-locally-private reports of the rows of ``X`` (each row one
    user, each user one message), in two rounds of interaction.

    ``radius``: the ball bounding every user's point (rows outside are scaled onto it by
    their own randomizer). ``random_state``: an int seed or a ``numpy.random.Generator``.
    Returns ``LocalKMeansResult(cluster_centers, n_rounds, n_candidates)``."""
    # "numeric" as in kmeans_cost and fit: a complex X was cast to float64 here, its
    # imaginary part dropped with only NumPy's ComplexWarning, and a pd.NA was "not
    # convertible to float64" instead of a missing value
    X = np.asarray(check_array("X", X, ndim=2, dtype="numeric", finite=True, min_cols=1),
                   dtype=np.float64)
    n, d = X.shape
    k = check("n_clusters", n_clusters, Interval(int, 1, None))
    if k > n:
        raise invalid("n_clusters", k, f"at most n_samples = {n}")
    epsilon = check("epsilon", epsilon, Interval(float, 0, None, closed="neither"))
    if not _randomizers_work(d, k, epsilon):  # NumPy's "Probabilities contain NaN", an
        # invalid sampler scale t or an OverflowError came out of the protocol instead
        least = _least_local_epsilon(d, k)
        raise invalid("epsilon", epsilon, f"a budget the users' randomizers can use: at "
                      f"d={d}, n_clusters={k}, epsilon of about {least:.3g} or more")
    if radius is None:
        raise invalid("radius", None, "a positive number chosen without looking at the data")
    radius = check("radius", radius, _data.RADIUS_RANGE)
    rng = as_numpy_generator(random_state, "random_state")
    # public randomness: groups, the hash and its buckets
    group = rng.permutation(n) % 3
    n_buckets = _n_buckets(k)
    hasher = _core.Hasher.draw(d, _core.PROJECTION_DIM, [radius / 4], rng)
    salt = np.uint64(rng.integers(1, 2**62) * 2 + 1)
    xf, q, _ = _data.prepare(X, radius)  # each user clips her own point
    keys = hasher.keys(xf)[:, 0].view(np.uint64)
    bucket = ((keys * salt) >> np.uint64(40)).astype(np.int64) % n_buckets
    # round 1, group A: bucket by randomized response
    a = group == 0
    freq = _rr_debias(_randomized_response(bucket[a], n_buckets, epsilon, rng), n_buckets,
                      epsilon) / max(a.sum(), 1)
    # round 1, group B: bucket (eps/2) and a noisy point (eps/2, L1 sensitivity 2 R sqrt(d))
    b = group == 1
    unit = radius / 2.0**_data.FRACTION_BITS
    g, t_g = point_noise_scale(d, epsilon / 2)
    noisy = ((q[b] + g // 2) // g + discrete_laplace(t_g, int(b.sum()) * d, rng).reshape(-1, d))
    noisy = noisy.astype(np.float64) * (g * unit)
    rb = _randomized_response(bucket[b], n_buckets, epsilon / 2, rng)
    bsums = _rr_debias(rb, n_buckets, epsilon / 2, weights=noisy)
    bfreq = freq * b.sum()
    top = np.argsort(-freq, kind="stable")[: 2 * k]
    cands = bsums[top] / np.maximum(bfreq[top], 1.0)[:, None]
    cands = _core._clip_rows(cands, radius)
    # round 2, group C: nearest candidate by randomized response
    c = group == 2
    near = _core._sqdist(xf[c], cands).argmin(1)
    w = _rr_debias(_randomized_response(near, cands.shape[0], epsilon, rng), cands.shape[0],
                   epsilon)
    centres = _core.weighted_kmeans(cands, np.maximum(w, 0.0), k, rng, tol=1e-12 * radius)
    return LocalKMeansResult(centres, 2, int(cands.shape[0]))
