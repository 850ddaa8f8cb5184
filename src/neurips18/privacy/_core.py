"""Private k-means: the Kaplan-Stemmer pipeline, DPLloyd, and the non-private solver.

Neighbouring data sets differ in one record (one row replaced by another); the number of
rows ``n`` is public. Every data pass is a map-reduce (:mod:`neurips18.privacy._data`) and
every release goes through :mod:`neurips18.privacy._mechanisms`, charged to a
:class:`~neurips18.privacy.Ledger` first.

Kaplan and Stemmer (NeurIPS 2018), centralised model, as implemented here:

1. *Private centres over a geometric grid of radii* (from fine to coarse). For radius r the
   points still uncovered are hashed by a locality-sensitive hash tuned to r (a random
   projection to ``p`` dimensions, scaled to keep lengths, and a randomly shifted grid of
   side r); a thresholded Gaussian histogram of the non-empty cells (a stability-based
   histogram: approximate zCDP) releases the heavy cells; each heavy cell gets a noisy sum
   of its points, so its noisy mean is a candidate centre; its points count as covered and
   leave the finer-to-coarser sweep. The hash family and shifts are public randomness.
2. *Private coreset*: noisy counts of the points nearest to each candidate.
3. A non-private constant-factor k-means (weighted k-means++ and Lloyd, several restarts) on
   the weighted candidates: post-processing.
4. (practical mode only) a few private Lloyd steps on the data from those centres: noisy
   per-cluster counts and sums, the standard DPLloyd step.

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

from neurips18.privacy import _data
from neurips18.privacy._accountant import Ledger
from neurips18.privacy._mechanisms import (
    gaussian_noise_params,
    gaussian_release,
    laplace_release,
    threshold_for,
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
def _sqdist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0)


def weighted_kmeans(points: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator,
                    *, n_init: int = 8, max_iter: int = 100) -> np.ndarray:
    """Weighted k-means++ seeding and Lloyd iterations, best of ``n_init``: the non-private
    constant-factor solver run on a private coreset (post-processing)."""
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
            if np.allclose(new, centres, rtol=0, atol=1e-12):
                centres = new
                break
            centres = new
        cost = float((w * _sqdist(points, centres).min(1)).sum())
        if cost < best_cost:
            best, best_cost = centres, cost
    assert best is not None
    return best


def _clip_rows(c: np.ndarray, radius: float) -> np.ndarray:
    norms = np.linalg.norm(c, axis=1)
    return c * np.minimum(1.0, radius / np.maximum(norms, 1e-300))[:, None]


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


def _sweep_pass(xf: np.ndarray, q: np.ndarray, hasher: Hasher, heavy: list[np.ndarray],
                i: int, want_counts: bool) -> dict[str, Any]:
    """Pass ``i`` of the sweep over the points not covered at radii < i - 1: the exact sums
    of the heavy cells of radius i - 1 (their points then count as covered) and the cell
    counts of radius i over the points still free."""
    upto = min(i + 1, len(hasher.widths)) if want_counts else i
    keys = hasher.keys(xf, upto)
    free = np.ones(xf.shape[0], dtype=bool)
    for r in range(i - 1):
        free &= _member(keys[:, r], heavy[r]) < 0
    out: dict[str, Any] = {}
    if i >= 1:  # sums of the heavy cells of radius i-1, over points free before it
        lab = np.where(free, _member(keys[:, i - 1], heavy[i - 1]), -1)
        cnt, sums = _data.exact_group_sums(q, lab, heavy[i - 1].size)
        out["sum_counts"], out["sums"] = cnt, sums
        free &= lab < 0
    if want_counts:
        uniq, counts = np.unique(keys[free, i], return_counts=True)
        out["cells"] = (uniq, counts.astype(np.int64))
    return out


def _sweep_fn(xf, q, hasher, heavy, i, want_counts):  # type: ignore[no-untyped-def]
    r = _sweep_pass(xf, q, hasher, heavy, i, want_counts)
    # flatten the keyed table into the dict form _data.merge understands
    out: dict[str, Any] = {}
    if "cells" in r:
        out["keys"], out["cell_counts"] = r["cells"]
    if "sums" in r:
        out["__sum_counts"], out["__sums"] = r["sum_counts"], r["sums"]
    return out


# ----------------------------------------------------------------------------- sweep
def private_centres(X: Any, radius: float, widths: list[float], p: int, ledger: Ledger,
                    rho_counts: list[float], rho_sums: list[float], delta_counts: list[float],
                    rng: np.random.Generator, info: FitInfo) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: candidate centres (noisy means of heavy cells) and their noisy counts."""
    n, d = X.shape
    unit = radius / 2.0**UNIT_BITS
    hasher = Hasher.draw(d, p, widths, rng)
    R = len(widths)
    heavy: list[np.ndarray] = []
    heavy_counts: list[np.ndarray] = []
    cands, weights = [], []
    for i in range(R + 1):
        want = i < R
        agg = _sweep_reduce(X, radius, hasher, heavy, i, want, info)
        if i == 0:
            info.clipped = agg["clipped"]
        if i >= 1 and heavy[i - 1].size:
            sums = gaussian_release(agg["sums"], sensitivity=2.0**(UNIT_BITS + 1),
                                    rho=rho_sums[i - 1], unit=unit, changed=2 * d, rng=rng,
                                    ledger=ledger, step=f"cell sums, radius {i - 1}")
            cnt = heavy_counts[i - 1]
            cands.append(_clip_rows(sums / np.maximum(cnt, 1.0)[:, None], radius))
            weights.append(cnt)
        elif i >= 1:
            ledger.charge_unused(rho_sums[i - 1], f"cell sums, radius {i - 1} (none heavy)")
        if want:
            keys, counts = agg["keys"], agg["cell_counts"]
            j, s2, _ = gaussian_noise_params(math.sqrt(2.0), rho_counts[i], 2)
            sigma = math.sqrt(s2) * 2.0**j
            tau = threshold_for(sigma, delta_counts[i])
            noisy = gaussian_release(counts, sensitivity=math.sqrt(2.0), rho=rho_counts[i],
                                     unit=1.0, changed=2, rng=rng, ledger=ledger,
                                     step=f"cell histogram, radius {i} (width {widths[i]:.4g})",
                                     threshold=tau, delta=delta_counts[i])
            keep = noisy >= tau
            heavy.append(keys[keep])
            heavy_counts.append(noisy[keep])
    info.details["heavy_cells"] = [int(h.size) for h in heavy]
    if cands:
        return np.concatenate(cands), np.concatenate(weights)
    return np.zeros((0, d)), np.zeros(0)


def _sweep_reduce(X: Any, radius: float, hasher: Hasher, heavy: list[np.ndarray], i: int,
                  want: bool, info: FitInfo) -> dict[str, Any]:
    info.passes += 1
    agg = _data.map_reduce(X, radius, _sweep_fn, hasher, heavy, i, want)
    out: dict[str, Any] = {"clipped": int(agg["clipped"]), "rows": int(agg["rows"])}
    if want:
        out["keys"], out["cell_counts"] = agg["keys"], agg["cell_counts"]
    if "__sums" in agg:
        out["sums"] = agg["__sums"]
    return out


def _assign_fn(xf: np.ndarray, q: np.ndarray, centres: np.ndarray) -> dict[str, Any]:
    lab = _sqdist(xf, centres).argmin(1) if centres.shape[0] else np.zeros(0, np.int64)
    cnt, sums = _data.exact_group_sums(q, lab.astype(np.int64), centres.shape[0])
    return {"counts": cnt, "sums": sums}


def _cost_fn(xf: np.ndarray, q: np.ndarray, centres: np.ndarray) -> dict[str, Any]:
    return {"cost": np.float64(_sqdist(xf, centres).min(1).sum())}


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


# ----------------------------------------------------------------------------- methods
PRACTICAL_RADII = 5
PROJECTION_DIM = 5


def kaplan_stemmer(X: Any, k: int, radius: float, ledger: Ledger, rng: np.random.Generator,
                   *, faithful: bool) -> tuple[np.ndarray, FitInfo]:
    n, d = X.shape
    info = FitInfo(n=n)
    rho = ledger.rho
    if faithful:
        R = max(1, math.ceil(math.log2(max(n, 2)))) + 1
        exps = list(range(R - 1, -1, -1))  # fine -> coarse: Lambda 2^-(R-1) ... Lambda
        shares = {"counts": 0.45, "sums": 0.45, "coreset": 0.10, "refine": 0.0}
        steps = 0
    else:
        R = PRACTICAL_RADII
        exps = list(range(R, 0, -1))  # Lambda/32 ... Lambda/2
        shares = {"counts": 0.20, "sums": 0.15, "coreset": 0.05, "refine": 0.60}
        steps = 2
    widths = [radius * 2.0**-e for e in exps]
    rc = [rho * shares["counts"] / R] * R
    rs = [rho * shares["sums"] / R] * R
    dc = [ledger.delta_threshold / R] * R
    cands, w = private_centres(X, radius, widths, PROJECTION_DIM, ledger, rc, rs, dc, rng, info)
    info.candidates = int(cands.shape[0])
    # step 2: private coreset, noisy counts of nearest candidates
    if cands.shape[0]:
        info.passes += 1
        agg = _data.map_reduce(X, radius, _assign_fn, cands)
        w = gaussian_release(agg["counts"], sensitivity=math.sqrt(2.0),
                             rho=rho * shares["coreset"], unit=1.0, changed=2, rng=rng,
                             ledger=ledger, step="coreset counts")
    else:
        ledger.charge_unused(rho * shares["coreset"], "coreset counts (no candidate)")
    centres = weighted_kmeans(cands, w, k, rng)
    for t in range(steps):
        centres = lloyd_step(X, radius, centres, ledger, rng, rho=rho * shares["refine"] / steps,
                             count_share=0.15, step=f"Lloyd step {t + 1}", info=info)
    info.rounds = R
    return centres, info


def dp_lloyd(X: Any, k: int, radius: float, ledger: Ledger, rng: np.random.Generator,
             *, n_iter: int = 5) -> tuple[np.ndarray, FitInfo]:
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
                                 count_share=0.25, step=f"Lloyd step {t + 1}", info=info)
        else:
            centres = lloyd_step(X, radius, centres, ledger, rng, eps=ledger.epsilon / n_iter,
                                 count_share=0.25, step=f"Lloyd step {t + 1}", info=info)
    info.rounds = n_iter
    return centres, info


def clipped_rows(X: Any, radius: float) -> int:
    def fn(xf: np.ndarray, q: np.ndarray) -> dict[str, Any]:
        return {}
    return int(_data.map_reduce(X, radius, fn)["clipped"])


def cost(X: Any, centres: np.ndarray, radius: float | None = None) -> float:
    """Sum of squared distances to the nearest centre (no clipping when radius is None)."""
    if radius is None:
        x = np.asarray(X, dtype=np.float64)
        total = 0.0
        for s in range(0, x.shape[0], _data.CHUNK_ROWS):
            total += float(_sqdist(x[s:s + _data.CHUNK_ROWS], centres).min(1).sum())
        return total
    return float(_data.map_reduce(X, radius, _cost_fn, centres)["cost"])
