"""Private k-means: the Kaplan-Stemmer pipeline, DPLloyd, and the non-private solver.

Neighbouring data sets differ in one record (one row replaced by another); the number of
rows ``n`` is public. Every data pass is a map-reduce (:mod:`neurips18.privacy._data`) and
every release goes through :mod:`neurips18.privacy._mechanisms`, charged to a
:class:`~neurips18.privacy.Ledger` first.

Kaplan and Stemmer (NeurIPS 2018), centralised model, as implemented here:

1. *Private centres over a geometric grid of radii* (from fine to coarse). For radius r the
   points still uncovered are hashed by a locality-sensitive hash tuned to r (a random
   projection to ``p`` dimensions, scaled to keep lengths, and a randomly shifted grid of
   side r); a thresholded Gaussian histogram of the cells (a stability-based histogram:
   approximate zCDP) releases the heavy cells, whose points count as covered and leave the
   finer-to-coarser sweep. Then the sums of the points of every heavy cell of every radius
   (each point in one cell at most) are released at once, so each heavy cell's noisy mean
   is a candidate centre. The hash family and shifts are public randomness.
2. *Private coreset*: noisy counts of the points nearest to each candidate (practical mode:
   at most 32 k candidates, more merged by a weighted k-means over them first, so that the
   pass stays linear in n).
3. A non-private constant-factor k-means (weighted k-means++ and Lloyd, several restarts) on
   the weighted candidates: post-processing.
4. (practical mode only) two private Lloyd steps on the data from those centres, each
   with its points' offsets from their centre clipped to a radius released privately from
   the clusters' spread (:func:`clipped_lloyd_step`): the noise of a step scales with the
   size of the clusters, not of the domain.

``faithful=True`` sweeps the paper's whole grid of radii, Lambda 2^-i for i = 0..ceil(log2 n),
splits the budget evenly over it and stops after step 3. The default keeps the pipeline with
a short grid of five radii, larger budget shares where they pay, and step 4. Both are
differentially private by the same accounting (the ledger records every charge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurips18._validation import check, check_array, invalid
from neurips18.privacy import _data
from neurips18.privacy._accountant import Ledger
from neurips18.privacy._mechanisms import (
    gaussian_release,
    laplace_release,
    thresholded_histogram,
)

UNIT_BITS = _data.FRACTION_BITS


@dataclass
class FitInfo:
    n: int = 0
    clipped: int = 0
    candidates: int = 0
    rounds: int = 0
    passes: int = 0
    details: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- non-private
def _sqdist(x: np.ndarray, c: np.ndarray, xsq: np.ndarray | None = None) -> np.ndarray:
    """Squared distances of the rows of ``x`` to those of ``c``; ``xsq`` the rows' squared
    norms ``(x * x).sum(1)`` when already known. The factor 2 is applied to the product
    (exactly, a power of two) rather than to a copy of ``x``."""
    if xsq is None:
        xsq = (x * x).sum(1)
    d = x @ c.T
    d *= -2.0
    d += xsq[:, None]
    d += (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0, out=d)


def weighted_kmeans(points: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator,
                    *, n_init: int = 8, max_iter: int = 100, tol: float = 1e-12) -> np.ndarray:
    """Weighted k-means++ seeding and Lloyd iterations, best of ``n_init``: the non-private
    constant-factor solver run on a private coreset (post-processing). Lloyd stops when no
    centre coordinate moves by more than ``tol``, in the data's units (callers pass
    1e-12 x the domain's radius, so the result does not depend on the unit)."""
    m, d = points.shape
    w = np.maximum(np.asarray(weights, dtype=np.float64), 0.0)
    if m == 0 or w.sum() <= 0:
        return np.zeros((k, d))
    best, best_cost = None, math.inf
    for _ in range(n_init):
        centres = np.empty((k, d))
        centres[0] = points[rng.choice(m, p=w / w.sum())]
        dist = _sqdist(points, centres[:1])[:, 0]
        for j in range(1, k):
            p = w * dist
            tot = p.sum()
            idx = rng.choice(m, p=p / tot) if tot > 0 else rng.choice(m, p=w / w.sum())
            centres[j] = points[idx]
            dist = np.minimum(dist, _sqdist(points, centres[j:j + 1])[:, 0])
        for _ in range(max_iter):
            lab = _sqdist(points, centres).argmin(1)
            wsum = np.bincount(lab, weights=w, minlength=k)
            new = centres.copy()
            for j in range(d):
                s = np.bincount(lab, weights=w * points[:, j], minlength=k)
                new[:, j] = np.where(wsum > 0, s / np.where(wsum > 0, wsum, 1.0), centres[:, j])
            if np.allclose(new, centres, rtol=0, atol=tol):
                centres = new
                break
            centres = new
        cost = float((w * _sqdist(points, centres).min(1)).sum())
        if cost < best_cost:
            best, best_cost = centres, cost
    assert best is not None
    return best


def _clip_rows(c: np.ndarray, radius: float) -> np.ndarray:
    """The rows of ``c`` longer than ``radius`` scaled onto the sphere. The factor
    radius / norm is formed for those rows only: for a centre at the origin (an empty
    cluster's, a padding row) and a radius above about 1.8e8, radius / 1e-300 overflowed,
    a RuntimeWarning in an ordinary fit (under -W error the fit stopped after the accountant
    was charged). The result is the same bits as before."""
    norms = np.linalg.norm(c, axis=1)
    over = norms > radius
    return c * np.where(over, radius / np.where(over, norms, 1.0), 1.0)[:, None]


# ----------------------------------------------------------------------------- hashing
@dataclass(frozen=True)
class Hasher:
    """Locality-sensitive hashes for a list of radii (public randomness): for radius i, the
    cell of x is floor((x Q_i sqrt(d/p) + s_i) / r_i), folded to one int64 key."""

    proj: np.ndarray  # (d, p * R)
    shifts: np.ndarray  # (R, p)
    widths: np.ndarray  # (R,)
    mult: np.ndarray  # (p,) uint64 odd multipliers
    p: int

    @classmethod
    def draw(cls, d: int, p: int, widths: list[float], rng: np.random.Generator) -> Hasher:
        mats = []
        for _ in widths:
            if d <= p:
                q, _r = np.linalg.qr(rng.standard_normal((d, d)))
                mats.append(q)
            else:
                q, _r = np.linalg.qr(rng.standard_normal((d, p)))
                mats.append(q * math.sqrt(d / p))
        pp = min(d, p)
        shifts = np.stack([rng.uniform(0.0, w, size=pp) for w in widths])
        mult = (rng.integers(1, 2**62, size=pp, dtype=np.int64).astype(np.uint64) * np.uint64(2)
                + np.uint64(1))
        return cls(np.concatenate(mats, axis=1), shifts, np.asarray(widths, float), mult, pp)

    def keys(self, xf: np.ndarray, upto: int | None = None) -> np.ndarray:
        """(n, R') int64 keys for the first ``upto`` radii."""
        R = len(self.widths) if upto is None else upto
        y = xf @ self.proj[:, : self.p * R]
        out = np.empty((xf.shape[0], R), dtype=np.int64)
        for i in range(R):
            cell = np.floor((y[:, i * self.p:(i + 1) * self.p] + self.shifts[i]) / self.widths[i])
            out[:, i] = (cell.astype(np.int64).astype(np.uint64) * self.mult).sum(
                axis=1, dtype=np.uint64).view(np.int64)
        return out


def _member(keys: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of each key in the sorted ``table`` or -1."""
    if table.size == 0:
        return np.full(keys.shape, -1, dtype=np.int64)
    pos = np.searchsorted(table, keys)
    pos = np.minimum(pos, table.size - 1)
    return np.where(table[pos] == keys, pos, -1)


def _block_keys(xf: np.ndarray, q: Any, hasher: Hasher, upto: int) -> np.ndarray:
    """``hasher.keys(xf, upto)``; for a prepared block, the keys of all the radii are
    computed on the first pass and reused (the key of radius i does not depend on how many
    radii are hashed together)."""
    memo = _data.block_memo(q)
    if memo is None:
        return hasher.keys(xf, upto)
    return memo.get("keys", lambda: hasher.keys(xf), owner=hasher)[:, :upto]


def _free_keys(xf: np.ndarray, q: Any, hasher: Hasher, heavy: list[np.ndarray],
               upto: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the first ``upto`` radii and the mask of points covered by no heavy cell of
    the radii in ``heavy`` (those released so far)."""
    keys = _block_keys(xf, q, hasher, upto)
    free = np.ones(xf.shape[0], dtype=bool)
    for r, table in enumerate(heavy):
        free &= _member(keys[:, r], table) < 0
    return keys, free


def _histogram_fn(xf: np.ndarray, q: np.ndarray, hasher: Hasher, heavy: list[np.ndarray],
                  capacity: int) -> dict[str, Any]:
    """Pass of radius i = len(heavy): a summary of at most ``capacity`` cells of radius i
    over the points covered by no heavy cell of a finer radius (the cell counts themselves
    while the table is small, :func:`_data.prune` beyond)."""
    i = len(heavy)
    keys, free = _free_keys(xf, q, hasher, heavy, i + 1)
    uniq, counts = np.unique(keys[free, i], return_counts=True)
    out = {"keys": uniq, "cell_counts": counts.astype(np.int64), "__pruned": np.int64(0)}
    return _data.prune(out, capacity)


def _recount_fn(xf: np.ndarray, q: np.ndarray, hasher: Hasher, heavy: list[np.ndarray],
                cand: np.ndarray) -> dict[str, Any]:
    """Exact counts of the candidate cells ``cand`` (sorted) of radius i = len(heavy) over
    the points covered by no heavy cell of a finer radius."""
    i = len(heavy)
    keys, free = _free_keys(xf, q, hasher, heavy, i + 1)
    lab = _member(keys[free, i], cand)
    return {"counts": np.bincount(lab[lab >= 0], minlength=cand.size).astype(np.int64)}


def _cell_sums_fn(xf: np.ndarray, q: np.ndarray, hasher: Hasher,
                  heavy: list[np.ndarray]) -> dict[str, Any]:
    """Exact sums of the points of every heavy cell, each point in the first (finest) heavy
    cell that holds it; cells of all radii numbered one after the other."""
    keys = _block_keys(xf, q, hasher, len(heavy))
    lab = np.full(xf.shape[0], -1, dtype=np.int64)
    offset = 0
    for r, table in enumerate(heavy):
        pos = _member(keys[:, r], table)
        new = (lab < 0) & (pos >= 0)
        lab[new] = pos[new] + offset
        offset += table.size
    return {"sums": _data.exact_group_sums(q, lab, offset)[1]}


def _pruning_merge(capacity: int):  # type: ignore[no-untyped-def]
    def combine(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
        return _data.prune(_data.merge(a, b), capacity)
    return combine


# ----------------------------------------------------------------------------- sweep
HEAVY_CAPACITY = 2**16
"""Most cells of one radius a fit holds in memory (the heavy-hitter summary's size)."""


def cell_floor(n: int, capacity: int | None = None) -> int:
    """The fewest points a cell must hold to enter a radius's histogram:
    ``n // (capacity + 1) + 1``, the smallest count above ``n / (capacity + 1)``; 1 (every
    non-empty cell) while ``n <= capacity``. A function of the public n only."""
    cap = HEAVY_CAPACITY if capacity is None else capacity
    return int(n) // (cap + 1) + 1


def private_centres(X: Any, radius: float, widths: list[float], p: int, ledger: Ledger,
                    rho_counts: list[float], rho_sums: float, delta_counts: list[float],
                    rng: np.random.Generator, info: FitInfo) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: candidate centres (noisy means of heavy cells) and their noisy counts.

    *Histograms.* From the finest radius to the coarsest, the histogram of radius i is
    released for the cells holding at least ``floor = cell_floor(n)`` points not covered
    by a heavy cell of a finer radius: each gets its exact count plus discrete Gaussian
    noise of sigma (L2 sensitivity sqrt 2: one row replaced moves one point from a cell to
    another) and is released when the noisy count reaches ``tau = floor + sigma sqrt(2
    ln(2 / delta_i))``. Privacy (the stability-based histogram): the cells kept in two
    neighbouring data sets differ by at most two cells, each holding exactly ``floor``
    points in one of them and fewer (so not kept) in the other; each is released with
    probability ``P(floor + Z >= tau) <= exp(-(tau - floor)^2 / (2 sigma^2)) = delta_i / 2``
    (the discrete Gaussian is sub-Gaussian), and outside that event of probability at most
    ``delta_i`` the release is the Gaussian mechanism on the common cells, post-processed:
    ``delta_i``-approximate zCDP with the rho of that mechanism. With ``floor = 1`` this is
    the usual histogram of all non-empty cells. Which points are covered depends only on
    the heavy cells already released (adaptive composition over the radii).

    *Sums.* Once every histogram is out, each point belongs to at most one heavy cell (the
    finest heavy cell holding it): the sums of all heavy cells of all radii are one vector
    in which a replaced row changes at most two cells' sums, by at most 2 ``radius`` in L2,
    so they are released together by one Gaussian mechanism with the whole ``rho_sums``
    (no split over the radii).

    *Memory.* The floor bounds it: at most ``n / floor < HEAVY_CAPACITY + 1`` cells hold
    that many points. They are found without holding the table of all cells (about one per
    point at the fine radii): a first pass keeps a mergeable Misra-Gries summary of
    ``HEAVY_CAPACITY`` cells (:func:`_data.prune`), which contains every cell of more than
    ``n / (HEAVY_CAPACITY + 1)`` points; when the summary had to be pruned, a second pass
    recounts its cells exactly. Which cells are recounted never reaches the output: the
    release is a function of the exact counts of the cells at or above the floor, the same
    for any blocking of the data (in memory or Dask)."""
    n, d = X.shape
    unit = radius / 2.0**UNIT_BITS
    hasher = Hasher.draw(d, p, widths, rng)
    cap = HEAVY_CAPACITY
    floor = cell_floor(n, cap)
    info.details["cell_floor"] = floor
    info.details["recounted"] = []
    heavy: list[np.ndarray] = []
    heavy_counts: list[np.ndarray] = []
    for i in range(len(widths)):
        info.passes += 1
        agg = _data.map_reduce(X, radius, _histogram_fn, hasher, heavy, cap,
                               combine=_pruning_merge(cap))
        if i == 0:
            info.clipped = int(agg["clipped"])
        keys, counts = agg["keys"], agg["cell_counts"]
        if agg["__pruned"]:  # the summary's counts are lower bounds: count its cells again
            info.passes += 1
            info.details["recounted"].append(i)
            counts = _data.map_reduce(X, radius, _recount_fn, hasher, heavy, keys)["counts"]
        hk, hc = thresholded_histogram(
            keys, counts, floor=floor, rho=rho_counts[i], delta=delta_counts[i], rng=rng,
            ledger=ledger, step=f"cell histogram, radius {i} (width {widths[i]:.4g})")
        heavy.append(hk)
        heavy_counts.append(hc)
    info.details["heavy_cells"] = [int(h.size) for h in heavy]
    m = sum(h.size for h in heavy)
    if m == 0:
        ledger.charge_unused(rho_sums, "cell sums (no heavy cell)")
        return np.zeros((0, d)), np.zeros(0)
    info.passes += 1
    agg = _data.map_reduce(X, radius, _cell_sums_fn, hasher, heavy)
    sums = gaussian_release(agg["sums"], sensitivity=2.0**(UNIT_BITS + 1), rho=rho_sums,
                            unit=unit, changed=2 * d, rng=rng, ledger=ledger,
                            step=f"cell sums ({m} heavy cells, all radii)")
    cnt = np.concatenate(heavy_counts)
    return _clip_rows(sums / np.maximum(cnt, 1.0)[:, None], radius), cnt


DIST_ELEMENTS = 2**18
"""Largest distance matrix (rows x centres) formed at once: the candidates of a large fit
number in the thousands, so a block's distances to them are taken a few rows at a time."""


def row_sqnorms(xf: np.ndarray, q: Any) -> np.ndarray:
    """``(xf * xf).sum(1)``, computed once per prepared block and fit."""
    memo = _data.block_memo(q)
    if memo is None:
        return (xf * xf).sum(1)
    return memo.get("sqnorms", lambda: (xf * xf).sum(1))


def nearest(x: np.ndarray, centres: np.ndarray,
            xsq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's nearest centre and the squared distance to it, in row slices
    that keep the distance matrix below ``DIST_ELEMENTS`` entries (``xsq``: the rows'
    squared norms, when known)."""
    m = x.shape[0]
    lab = np.zeros(m, dtype=np.int64)
    dist = np.zeros(m)
    if centres.shape[0] == 0:
        return lab, np.full(m, np.inf)
    step = max(1, DIST_ELEMENTS // centres.shape[0])
    for s in range(0, m, step):
        dd = _sqdist(x[s:s + step], centres, None if xsq is None else xsq[s:s + step])
        lab[s:s + step] = dd.argmin(1)
        dist[s:s + step] = dd[np.arange(dd.shape[0]), lab[s:s + step]]
    return lab, dist


def _assign_fn(xf: np.ndarray, q: np.ndarray, centres: np.ndarray) -> dict[str, Any]:
    lab = nearest(xf, centres, row_sqnorms(xf, q))[0]
    cnt, sums = _data.exact_group_sums(q, lab, centres.shape[0])
    return {"counts": cnt, "sums": sums}


def _count_fn(xf: np.ndarray, q: np.ndarray, centres: np.ndarray) -> dict[str, Any]:
    return {"counts": np.bincount(nearest(xf, centres, row_sqnorms(xf, q))[0],
                                  minlength=centres.shape[0]).astype(np.int64)}


def _cost_fn(xf: np.ndarray, q: np.ndarray, centres: np.ndarray) -> dict[str, Any]:
    return {"cost": np.float64(nearest(xf, centres, row_sqnorms(xf, q))[1].sum())}


def lloyd_step(X: Any, radius: float, centres: np.ndarray, ledger: Ledger, rng, *,
               rho: float | None = None, eps: float | None = None, count_share: float,
               step: str, info: FitInfo) -> np.ndarray:
    """One private Lloyd step: noisy per-cluster counts and sums, new centre = sum/count
    (kept where the noisy count is below one point). Gaussian (rho) or Laplace (eps)."""
    d = centres.shape[1]
    unit = radius / 2.0**UNIT_BITS
    info.passes += 1
    agg = _data.map_reduce(X, radius, _assign_fn, centres)
    info.clipped = int(agg["clipped"])
    if rho is not None:
        cnt = gaussian_release(agg["counts"], sensitivity=math.sqrt(2.0), rho=rho * count_share,
                               unit=1.0, changed=2, rng=rng, ledger=ledger,
                               step=f"{step}: cluster counts")
        sums = gaussian_release(agg["sums"], sensitivity=2.0**(UNIT_BITS + 1),
                                rho=rho * (1 - count_share), unit=unit, changed=2 * d, rng=rng,
                                ledger=ledger, step=f"{step}: cluster sums")
    else:
        assert eps is not None
        cnt = laplace_release(agg["counts"], sensitivity=2.0, epsilon=eps * count_share,
                              unit=1.0, changed=2, rng=rng, ledger=ledger,
                              step=f"{step}: cluster counts")
        sums = laplace_release(agg["sums"], sensitivity=2.0**(UNIT_BITS + 1) * math.sqrt(d),
                               epsilon=eps * (1 - count_share), unit=unit, changed=2 * d,
                               rng=rng, ledger=ledger, step=f"{step}: cluster sums")
    ok = cnt >= 1.0
    new = centres.copy()
    new[ok] = sums[ok] / cnt[ok, None]
    return _clip_rows(new, radius)


SPREAD_BITS = 30
REFINE_SPREAD_SHARE, REFINE_COUNT_SHARE = 0.05, 0.15
"""Shares of a clipped Lloyd step's rho for the spread and the counts (the rest: sums)."""
LLOYD_ITERATIONS, LLOYD_COUNT_SHARE = 5, 0.25
"""DPLloyd's number of steps and the share of a step's budget for its counts."""



def _spread_fn(xf: np.ndarray, q: np.ndarray, centres: np.ndarray,
               cap: float) -> dict[str, Any]:
    """Sum over the rows of min(squared distance to the nearest centre, cap), each term on
    the grid cap 2^-SPREAD_BITS (rounded down): an exact int64."""
    lab = nearest(xf, centres, row_sqnorms(xf, q))[0]
    diff = xf - centres[lab]
    sq = np.minimum(np.einsum("ij,ij->i", diff, diff), cap)
    return {"spread": np.floor(sq * (2.0**SPREAD_BITS / cap)).astype(np.int64).sum()}


def _offset_fn(xf: np.ndarray, q: np.ndarray, centres: np.ndarray,
               clip: float) -> dict[str, Any]:
    """Per nearest centre: the count and the exact sum of the offsets x - c, each scaled
    onto the ball of radius ``clip`` when longer and put on the grid clip 2^-30."""
    lab = nearest(xf, centres, row_sqnorms(xf, q))[0]
    off = xf - centres[lab]
    norms = np.sqrt(np.einsum("ij,ij->i", off, off))
    over = norms > clip
    if over.any():
        off = off * np.where(over, clip / np.where(over, norms, 1.0), 1.0)[:, None]
    qo = np.trunc(off * (2.0**UNIT_BITS / clip))
    cnt, sums = _data.exact_group_sums(qo, lab, centres.shape[0])
    return {"counts": cnt, "sums": sums}


def clipped_lloyd_step(X: Any, radius: float, centres: np.ndarray, ledger: Ledger,
                       rng: np.random.Generator, *, rho: float, step: str, info: FitInfo,
                       spread_share: float = REFINE_SPREAD_SHARE,
                       count_share: float = REFINE_COUNT_SHARE,
                       scale: float = 1.0) -> np.ndarray:
    """A private Lloyd step whose sums have a sensitivity set by the clusters' spread
    rather than by the domain: each point's offset from its nearest (public) centre is
    clipped to a radius ``r`` and the new centre is c + (noisy offset sum) / (noisy count).

    ``r`` = ``scale`` x the root mean squared distance to the nearest centre, itself
    released first: the sum over the rows of min(distance^2, (2 radius)^2) has sensitivity
    (2 radius)^2 under one row replaced, and n is public. Then the counts (L2 sensitivity
    sqrt 2) and the offset sums (2 r: one offset of norm <= r replaced by another, in the
    same cluster or two) are Gaussian releases; the three add up to ``rho``. Clipping makes
    the step shorter than Lloyd's when a centre is far from its points; it never makes it
    less private."""
    n, d = X.shape
    cap = 4.0 * radius * radius
    info.passes += 2
    agg = _data.map_reduce(X, radius, _spread_fn, centres, cap)
    info.clipped = int(agg["clipped"])
    spread = gaussian_release(np.asarray([agg["spread"]], dtype=np.int64),
                              sensitivity=2.0**SPREAD_BITS, rho=rho * spread_share,
                              unit=cap / 2.0**SPREAD_BITS, changed=1, rng=rng, ledger=ledger,
                              step=f"{step}: spread (sum of squared distances)")[0]
    clip = float(np.clip(scale * math.sqrt(max(spread, 0.0) / n), radius * 2.0**-12,
                         2.0 * radius))
    agg = _data.map_reduce(X, radius, _offset_fn, centres, clip)
    cnt = gaussian_release(agg["counts"], sensitivity=math.sqrt(2.0), rho=rho * count_share,
                           unit=1.0, changed=2, rng=rng, ledger=ledger,
                           step=f"{step}: cluster counts")
    sums = gaussian_release(agg["sums"], sensitivity=2.0**(UNIT_BITS + 1),
                            rho=rho * (1.0 - spread_share - count_share),
                            unit=clip / 2.0**UNIT_BITS, changed=2 * d, rng=rng, ledger=ledger,
                            step=f"{step}: offset sums (offsets clipped to {clip!r})")
    ok = cnt >= 1.0
    step_ = np.zeros_like(centres)
    step_[ok] = sums[ok] / cnt[ok, None]
    info.details.setdefault("clip", []).append(clip)
    return _clip_rows(centres + step_, radius)


# ----------------------------------------------------------------------------- methods
PRACTICAL: dict[str, Any] = {
    "exponents": (5, 4, 3, 2, 1),  # widths Lambda 2^-e, fine -> coarse
    "counts": 0.20, "sums": 0.15, "coreset": 0.05, "refine": 0.60, "steps": 2,
    "clip_scale": 1.0, "candidates_per_cluster": 32, "centre_noise": 0.2,
    "pad_radius": 0.1,
}
"""The practical mode's schedule: the radii, the shares of rho (histograms, cell sums,
coreset counts, refinement), the number of clipped Lloyd steps, their clipping radius in
units of the released root mean squared distance, the most candidate centres per
cluster the coreset step counts (:func:`merge_candidates`), the largest expected squared
noise of a refined centre in units of the squared clipping radius
(:func:`refined_centres`) and the radius, in units of the domain's, of the public
random centres that stand in for missing candidates."""
PROJECTION_DIM = 5


def _schedule(n: int, faithful: bool) -> tuple[list[int], dict[str, float], int]:
    """The Kaplan-Stemmer schedule, a function of the public n only: the radii's exponents
    (fine -> coarse), the shares of rho and the number of clipped Lloyd steps."""
    if faithful:
        R = max(1, math.ceil(math.log2(max(n, 2)))) + 1
        exps = list(range(R - 1, -1, -1))  # fine -> coarse: Lambda 2^-(R-1) ... Lambda
        return exps, {"counts": 0.45, "sums": 0.45, "coreset": 0.10, "refine": 0.0}, 0
    shares = {key: PRACTICAL[key] for key in ("counts", "sums", "coreset", "refine")}
    return list(PRACTICAL["exponents"]), shares, int(PRACTICAL["steps"])


def noise_plan(method: str, faithful: bool, n: int, d: int,
               pure: bool) -> list[tuple[str, float, float, int]]:
    """Every release a fit may make, as (step, share of the plan's rho -- of its epsilon
    when ``pure`` --, sensitivity in grid steps, coordinates changed by one row replaced),
    from the public (n, d) and the schedule alone: the noise scales can be checked before
    anything is spent or computed."""
    cell = 2.0**(UNIT_BITS + 1)
    if method == "lloyd":
        per = 1.0 / LLOYD_ITERATIONS
        if pure:
            return [("Lloyd step: cluster counts", per * LLOYD_COUNT_SHARE, 2.0, 2),
                    ("Lloyd step: cluster sums", per * (1 - LLOYD_COUNT_SHARE),
                     cell * math.sqrt(d), 2 * d)]
        return [("Lloyd step: cluster counts", per * LLOYD_COUNT_SHARE, math.sqrt(2.0), 2),
                ("Lloyd step: cluster sums", per * (1 - LLOYD_COUNT_SHARE), cell, 2 * d)]
    exps, shares, steps = _schedule(n, faithful)
    plan = [("cell histograms", shares["counts"] / len(exps), math.sqrt(2.0), 2),
            ("cell sums", shares["sums"], cell, 2 * d),
            ("coreset counts", shares["coreset"], math.sqrt(2.0), 2)]
    if steps:
        per = shares["refine"] / steps
        plan += [("Lloyd step: spread", per * REFINE_SPREAD_SHARE, 2.0**SPREAD_BITS, 1),
                 ("Lloyd step: cluster counts", per * REFINE_COUNT_SHARE, math.sqrt(2.0), 2),
                 ("Lloyd step: offset sums",
                  per * (1.0 - REFINE_SPREAD_SHARE - REFINE_COUNT_SHARE), cell, 2 * d)]
    return plan


def merge_candidates(cands: np.ndarray, counts: np.ndarray, m: int,
                     rng: np.random.Generator, radius: float) -> np.ndarray:
    """At most ``m`` candidate centres: when there are more, the weighted means of the
    groups of a weighted k-means (``m`` groups, weights the released cell counts) over the
    candidates. Post-processing of released values only. The number of heavy cells grows
    with n (a fixed noise level lets more cells clear the threshold), and the coreset pass
    costs n x candidates distances: merging keeps that pass, and the fit, linear in n. The
    coreset counts are then taken for the merged centres, from the data."""
    if cands.shape[0] <= m:
        return cands
    return weighted_kmeans(cands, np.maximum(counts, 0.0) + 1e-12, m, rng, n_init=1,
                           max_iter=20, tol=1e-9 * radius)


def refined_centres(n: int, d: int, k: int, rho_step: float) -> int:
    """How many centres the clipped Lloyd steps refine: the largest ``m <= k`` whose
    centres' expected squared noise stays within ``centre_noise`` (0.2) times the squared
    clipping radius ``r^2``, at least 1. A refined centre is (sum of clipped offsets +
    Gaussian noise of sigma ``2 r / sqrt(2 rho_sums)`` per coordinate) / count, and a
    cluster of ``m`` equal ones holds ``n / m`` points, so its squared error is about
    ``d (2 / sqrt(2 rho_sums))^2 (m / n)^2 r^2``, while ``r^2`` is the mean squared distance
    to the nearest centre: the bound caps the noise's share of the cost near 20 %. With
    ``m`` below ``k`` more centres would each be refined from fewer points and end noisier
    than the clusters they split. A function of the public (n, d, k, rho) only: it spends
    nothing and its value is not data-dependent."""
    rho_sums = rho_step * (1.0 - REFINE_SPREAD_SHARE - REFINE_COUNT_SHARE)
    per_point = 2.0 / math.sqrt(2.0 * rho_sums) / n  # noise sd of a mean of n points / r
    limit = float(PRACTICAL["centre_noise"])
    m = int(math.floor(math.sqrt(limit / d) / per_point)) if per_point > 0 else k
    return max(1, min(k, m))


def kaplan_stemmer(X: Any, k: int, radius: float, ledger: Ledger, rng: np.random.Generator,
                   *, faithful: bool) -> tuple[np.ndarray, FitInfo]:
    n, d = X.shape
    info = FitInfo(n=n)
    rho = ledger.rho
    exps, shares, steps = _schedule(n, faithful)
    R = len(exps)
    widths = [radius * 2.0**-e for e in exps]
    rc = [rho * shares["counts"] / R] * R
    rs = rho * shares["sums"]
    dc = [ledger.delta_threshold / R] * R
    cands, w = private_centres(X, radius, widths, PROJECTION_DIM, ledger, rc, rs, dc, rng, info)
    info.candidates = int(cands.shape[0])
    if not faithful:
        cands = merge_candidates(cands, w, int(PRACTICAL["candidates_per_cluster"]) * k, rng,
                                 radius)
    info.details["coreset_centres"] = int(cands.shape[0])
    # step 2: private coreset, noisy counts of nearest candidates
    if cands.shape[0]:
        info.passes += 1
        agg = _data.map_reduce(X, radius, _count_fn, cands)
        w = gaussian_release(agg["counts"], sensitivity=math.sqrt(2.0),
                             rho=rho * shares["coreset"], unit=1.0, changed=2, rng=rng,
                             ledger=ledger, step="coreset counts")
    else:
        ledger.charge_unused(rho * shares["coreset"], "coreset counts (no candidate)")
    if not steps:  # the paper's schedule: the coreset's k-means is the release
        info.details["refined_centres"] = 0
        info.rounds = R
        return weighted_kmeans(cands, w, k, rng, tol=1e-12 * radius), info
    # step 3 (practical mode): clipped Lloyd steps on as many centres as their noise
    # supports, started from the coreset's k-means and, where the histograms gave fewer
    # candidates, from public points (the ball's centre first, then random directions)
    m = refined_centres(n, d, k, rho * shares["refine"] / steps)
    info.details["refined_centres"] = m
    start = weighted_kmeans(cands, w, min(m, cands.shape[0]), rng, tol=1e-12 * radius)
    if start.shape[0] < m:
        g = rng.standard_normal((m - start.shape[0], d))
        g *= float(PRACTICAL["pad_radius"]) * radius / np.linalg.norm(g, axis=1, keepdims=True)
        if start.shape[0] == 0:
            g[0] = 0.0
        start = np.vstack([start, g])
    centres = start
    for t in range(steps):
        centres = clipped_lloyd_step(X, radius, centres, ledger, rng,
                                     rho=rho * shares["refine"] / steps,
                                     step=f"Lloyd step {t + 1}", info=info,
                                     scale=PRACTICAL["clip_scale"])
    # k rows are released: the refined centres, then their public starting points (a
    # point nearer to one of them than to its noisy refined centre keeps it), repeated
    # when k > 2 m
    rest = np.vstack([start, centres])
    centres = np.vstack([centres, rest[np.arange(k - m) % rest.shape[0]]])
    info.rounds = R
    return centres, info


def dp_lloyd(X: Any, k: int, radius: float, ledger: Ledger, rng: np.random.Generator,
             *, n_iter: int = LLOYD_ITERATIONS) -> tuple[np.ndarray, FitInfo]:
    """DPLloyd (Su et al. 2016): k data-independent random centres in the ball, then
    ``n_iter`` private Lloyd steps with the budget split evenly (Laplace when delta = 0,
    Gaussian in zCDP otherwise)."""
    n, d = X.shape
    info = FitInfo(n=n)
    g = rng.standard_normal((k, d))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    centres = g * (radius * rng.uniform(0, 1, size=(k, 1)) ** (1.0 / d))
    for t in range(n_iter):
        if ledger.mode == "zcdp":
            centres = lloyd_step(X, radius, centres, ledger, rng, rho=ledger.rho / n_iter,
                                 count_share=LLOYD_COUNT_SHARE, step=f"Lloyd step {t + 1}",
                                 info=info)
        else:
            centres = lloyd_step(X, radius, centres, ledger, rng, eps=ledger.epsilon / n_iter,
                                 count_share=LLOYD_COUNT_SHARE, step=f"Lloyd step {t + 1}",
                                 info=info)
    info.rounds = n_iter
    return centres, info


def clipped_rows(X: Any, radius: float) -> int:
    def fn(xf: np.ndarray, q: np.ndarray) -> dict[str, Any]:
        return {}
    return int(_data.map_reduce(X, radius, fn)["clipped"])


def cost(X: Any, centres: np.ndarray, radius: float | None = None) -> float:
    """The k-means cost of ``centres`` on ``X``: the sum of squared distances to the nearest
    centre. With ``radius`` the points are first clipped to that ball (the domain a private
    fit used), and ``X`` may be a Dask array; with None it is the plain cost."""
    centres = check_array("centres", centres, ndim=2, dtype="float64", finite=True)
    if radius is not None:
        radius = check("radius", radius, _data.RADIUS_RANGE)
    if _data.is_dask(X) and radius is not None:  # (a NaN row gave a NaN cost, no rows 0)
        _data.check_dask_matrix(X)
    else:
        X = check_array("X", X, ndim=2, dtype="numeric", finite=True, min_cols=1)
    if X.shape[1] != centres.shape[1]:
        raise invalid("centres", centres, f"{X.shape[1]} columns, as X has")
    if radius is None:
        x = np.asarray(X, dtype=np.float64)
        total = 0.0
        for s in range(0, x.shape[0], _data.CHUNK_ROWS):
            total += float(nearest(x[s:s + _data.CHUNK_ROWS], centres)[1].sum())
        return total
    return float(_data.map_reduce(X, radius, _cost_fn, centres)["cost"])
