"""Optimal unbiased gradient sparsification.

Wangni, Wang, Liu, Zhang, "Gradient Sparsification for Communication-Efficient Distributed
Optimization", NeurIPS 2018 (arXiv:1710.09854).

Each coordinate is kept independently with probability ``p_i`` and rescaled by ``1/p_i``, so
the message ``Q(g)_i = Z_i g_i / p_i`` (``Z_i ~ Bernoulli(p_i)``) is an unbiased estimate of
``g`` with second moment ``E||Q(g)||^2 = sum_i g_i^2 / p_i``. Among all ``p`` with expected
density ``sum_i p_i = rho * d`` the second moment is smallest for ``p_i = min(lambda |g_i|, 1)``:
the largest coordinates are sent exactly and all the others that are sent carry the same
magnitude ``1/lambda`` (so they cost a sign bit each under hybrid coding).

``lambda`` is found either exactly, by sorting ``|g|`` (water filling), or with the paper's
greedy fixed-point iteration, which starts from ``p_i = min(rho d |g_i| / ||g||_1, 1)`` and
repeatedly rescales the unsaturated probabilities by
``c = (rho d - #saturated) / sum_{unsaturated} p_i`` until ``c <= 1`` or ``max_iter`` passes.
We use ``|g_i|`` in the l1 norm (a public implementation forgets the absolute value). The
loop above and its stopping rule ``c <= 1`` follow an independent public implementation
(scottjiao/Gradient-Compression-Methods, ``utils.py``); the paper's own listing: not
recovered. Both methods keep a single ``lambda`` internally and use O(d) memory.

:func:`sparsify_unbiased` and the DDP hook draw the message with one routine
(:func:`_sample`), so both give the same message for the same vector and generator state.
"""

from __future__ import annotations

import math

import torch

from neurips18._validation import (
    Interval,
    Options,
    as_torch_generator,
    check,
    check_tensor,
    invalid,
)

from ._sparse import SparseGradient
from ._topk import _SMALL, _candidates

__all__ = [
    "optimal_probabilities",
    "optimal_scale",
    "sparsify_unbiased",
    "sparsification_variance",
]

_METHODS = Options({"exact", "greedy"})
_SAMPLINGS = Options({"optimal", "uniform"})
DENSITY = Interval(float, 0.0, 1.0, closed="right")
MAX_ITER = Interval(int, 0, None)
_CANCEL = 1e-3  # if unsaturated mass < this fraction of ||g||_1, recompute ||g||_1 in float64


def _top_sorted(a: torch.Tensor, m: int) -> torch.Tensor:
    """At least the ``m`` largest entries of ``a`` (>= 0), sorted decreasingly, as float64.

    Uses the sampled-threshold pre-filter of :func:`~neurips18.compress.topk`, so only about
    ``m`` entries are sorted instead of all ``d``.
    """
    d = a.numel()
    if d > _SMALL and 4 * m <= d:
        cand = _candidates(a, m)
        if cand is not None:
            return torch.sort(a[cand], descending=True).values.double()  # sort in a's dtype
    return torch.sort(a, descending=True).values.double()


def _lambda_exact(a: torch.Tensor, target: float, total: float, nnz: int) -> float:
    """lambda with sum(min(lambda a, 1)) = target (a >= 0, 1-D, nnz > target).

    With k coordinates saturated, lambda_k = (target - k) / (sum of all but the k largest);
    the answer is the smallest k for which the (k+1)-th largest does not saturate. Since at
    most ``target`` coordinates saturate, only the ``floor(target) + 1`` largest are needed.
    """
    kmax = min(nnz, int(math.floor(target)) + 1)
    s = _top_sorted(a, kmax)[:kmax]
    suffix = total - (torch.cumsum(s, 0) - s)  # mass of all but the k largest, k < kmax
    k = _first_feasible(s, suffix, target)
    if float(suffix[k]) <= _CANCEL * total:
        # the saturated coordinates hold nearly all the mass: ``total - prefix`` cancels, so
        # redo it with suffix sums of the fully sorted vector (rare, O(d log d))
        s_all = torch.sort(a, descending=True).values.double()
        suffix = s_all.flip(0).cumsum(0).flip(0)[:kmax]
        s = s_all[:kmax]
        k = _first_feasible(s, suffix, target)
    return float((target - k) / suffix[k])


def _first_feasible(s: torch.Tensor, suffix: torch.Tensor, target: float) -> int:
    ks = torch.arange(s.numel(), dtype=torch.float64, device=s.device)
    ok = ((target - ks) * s <= suffix) & (ks < target)
    return int(torch.argmax(ok.to(torch.uint8))) if bool(ok.any()) else s.numel() - 1


def _lambda_greedy(a: torch.Tensor, target: float, total: float, max_iter: int) -> float:
    """The paper's greedy iteration, run on the candidates that can ever saturate.

    Every threshold ``1/lambda`` of the iteration stays above the ``ceil(target)``-th largest
    magnitude (lambda only grows towards the exact value and the exact solution saturates at
    most ``target`` coordinates), so the saturated set is always inside the top
    ``floor(target) + 1`` entries: each pass costs O(target), after one O(d) pre-filter.
    """
    lam = target / total
    cand: torch.Tensor | None = None
    for _ in range(max_iter):
        t = 1.0 / lam
        if cand is None:
            # the values that can ever saturate, compacted once (one O(d) pass; the global
            # maximum is among them, so no separate max pass is needed)
            m = min(a.numel(), int(math.floor(target)) + 1)
            vals = None
            if a.numel() > _SMALL and 4 * m <= a.numel():
                vals = _candidates(a, m, values=True)
            cand = (a if vals is None else vals).double()
        sat = cand[cand >= t]  # compared in float64: t may not be representable in a.dtype
        n_sat = sat.numel()
        if n_sat == 0:
            break
        unsat = total - float(sat.sum(dtype=torch.float64))
        if unsat <= _CANCEL * total:  # cancellation: sum the unsaturated entries directly
            a64 = a.double()
            unsat = float(a64[a64 < t].sum())
            if unsat == 0.0:
                return math.inf  # every nonzero coordinate is saturated
        sum_unsat_p = lam * unsat
        if sum_unsat_p <= 0.0:
            break
        c = (target - n_sat) / sum_unsat_p
        if c <= 1.0 + 1e-12:
            break
        lam *= c
    return lam


def _probs_from_scale(a: torch.Tensor, lam: float) -> torch.Tensor:
    """``min(lam * a, 1)`` computed in place in ``a`` (``lam = inf``: ``1`` where ``a > 0``)."""
    if math.isinf(lam):
        return (a > 0).to(a.dtype)
    fi = torch.finfo(a.dtype)
    if lam * float(fi.tiny) > 1.0 or lam > float(fi.max) or lam < float(fi.tiny):
        # lam does not fit the dtype (too large, or subnormal, where it keeps only a few
        # significant bits: huge float32 gradients had p off by 1e-3 relative): multiply
        # and decide saturation in float64
        return torch.where(a.double() * lam >= 1.0, 1.0, a.double() * lam).to(a.dtype)
    return a.mul_(lam).clamp_(max=1.0)


def _check_common(g: torch.Tensor, density: float, method: str,
                  max_iter: int) -> tuple[torch.Tensor, float]:
    """Checks shared by the public functions; finiteness is checked later, by the l1 sum."""
    check_tensor("g", g, finite=False)
    density = check("density", density, DENSITY)
    check("method", method, _METHODS)
    check("max_iter", max_iter, MAX_ITER)
    return g.reshape(-1), density


def optimal_scale(
    g: torch.Tensor, density: float, method: str = "exact", max_iter: int = 2
) -> float:
    """The ``lambda`` of :func:`optimal_probabilities`.

    ``inf`` when every nonzero coordinate saturates (all-zero gradient, or fewer nonzeros
    than ``density * d``).
    """
    flat, density = _check_common(g, density, method, max_iter)
    return _scale_from_abs(flat.abs(), density, method, max_iter, check=True)


def _scale_from_abs(
    a: torch.Tensor, density: float, method: str, max_iter: int, check: bool = False
) -> float:
    """lambda for ``a = |g|``. ``check=True``: ``g`` was not checked for NaN/inf yet; a
    finite l1 sum proves every entry finite, so only a non-finite sum costs a full check."""
    target = density * a.numel()
    if a.numel() <= _SMALL:
        total = float(a.sum(dtype=torch.float64))
    else:  # cascade float32 sum: ~1e-7 relative error, 30x faster than a float64 sum;
        # redone in float64 when a cancellation could bite. Half-precision input is summed
        # into a float32 result: its own sum is rounded to 8 (bfloat16) or 11 (float16)
        # bits, which moved lambda and the budget sum(p) by up to 0.2 %
        acc = torch.float32 if a.dtype in (torch.float16, torch.bfloat16) else None
        total = float(a.sum(dtype=acc))
    if not math.isfinite(total):
        if check:
            bad = int((~torch.isfinite(a)).sum())
            if bad:
                raise invalid("g", a, f"finite values; found {bad} NaN or inf")
        total = float(a.sum(dtype=torch.float64))  # finite entries, float32 sum overflowed
    if total == 0.0:
        return math.inf
    if method == "exact":
        nnz = int(torch.count_nonzero(a))
        if nnz <= target:  # every nonzero saturates
            return math.inf
        return _lambda_exact(a, target, total, nnz)
    return _lambda_greedy(a, target, total, max_iter)


def optimal_probabilities(
    g: torch.Tensor, density: float, method: str = "exact", max_iter: int = 2
) -> torch.Tensor:
    """Keep-probabilities ``p_i = min(lambda |g_i|, 1)`` with ``sum p = density * d``.

    Parameters
    ----------
    g : gradient (any shape, floating, finite).
    density : target expected fraction of coordinates kept, in (0, 1].
    method : ``"exact"`` (sort |g|; ``sum p`` equals ``density * d`` up to rounding) or
        ``"greedy"`` (the paper's O(d)-per-pass iteration; ``sum p <= density * d``, equal
        once the iteration has converged).
    max_iter : number of greedy rescaling passes (ignored by ``"exact"``). The paper uses
        a small constant; 2 is enough for most gradients, more passes approach the exact
        solution.

    Returns
    -------
    p with the shape and dtype of ``g``. If ``g`` has fewer than ``density * d`` nonzero
    entries, every nonzero gets ``p = 1`` and zeros get ``p = 0`` (``sum p = nnz``).
    """
    flat, density = _check_common(g, density, method, max_iter)
    a = flat.abs()
    lam = _scale_from_abs(a, density, method, max_iter, check=True)
    return _probs_from_scale(a, lam).reshape(g.shape)


def sparsify_unbiased(
    g: torch.Tensor,
    density: float,
    generator: torch.Generator | int | None = None,
    *,
    sampling: str = "optimal",
    method: str = "exact",
    max_iter: int = 2,
) -> SparseGradient:
    """Unbiased random sparsification ``Q(g)_i = Z_i g_i / p_i``.

    Parameters
    ----------
    g : gradient (finite; non-finite input raises
        :class:`~neurips18._validation.ValidationError`, a ``ValueError``).
    density : expected fraction of coordinates sent, in (0, 1].
    generator : ``torch.Generator`` or int seed for the Bernoulli draws (pass one for
        repeatable results; ``None`` draws from torch's default generator).
    sampling : ``"optimal"`` (Wangni's ``p_i = min(lambda |g_i|, 1)``) or ``"uniform"``
        (every coordinate kept with probability ``density``: the random-k baseline).
    method, max_iter : how ``lambda`` is found (see :func:`optimal_probabilities`).

    Returns
    -------
    A :class:`SparseGradient` of the shape of ``g``. For optimal sampling its non-saturated
    values are exactly ``sign(g_i) / lambda`` (the value the receiver reconstructs under
    hybrid coding). A message that does not fit the gradient's dtype (uniform sampling of
    a float16 gradient sends ``g / density``) raises
    :class:`~neurips18._validation.ValidationError` instead of holding inf.

    Notes
    -----
    The Bernoulli draws compare ``p_i`` with a uniform in the gradient's precision (float32
    for float32, float16 and bfloat16 gradients, float64 for float64). torch's float32
    uniforms lie on a grid of 2**-24, so a coordinate is kept with probability
    ``ceil(p_i 2**24) / 2**24`` rather than ``p_i``: the expected message differs from
    ``g_i`` by at most ``2**-24 / lambda`` per coordinate (relatively, ``2**-24 / p_i``),
    which matters only for coordinates with ``p_i`` near or below 2**-24. Pass float64
    gradients for the exact law.
    """
    check_tensor("g", g)
    flat, density = _check_common(g, density, method, max_iter)
    check("sampling", sampling, _SAMPLINGS)
    gen = as_torch_generator(generator, allow_none=True)
    msg = _sample(flat, tuple(g.shape), density, gen, sampling, method, max_iter)
    if msg.nnz and not bool(torch.isfinite(msg.values).all()):
        wider = "float64" if g.dtype == torch.float32 else "float32 or float64"
        if sampling == "uniform":
            # uniform sampling sends g / density, which can exceed a half-precision dtype
            big = float(flat.abs().max())
            raise invalid("density", density,
                          f"a density at which the message g / density fits {g.dtype}: "
                          f"max |g| / density = {big / density:.6g} overflows (pass a "
                          f"{wider} gradient, a larger density or sampling='optimal')")
        # optimal sampling sends the shared magnitude 1/lambda (at least the l1 mass of the
        # unsaturated coordinates over the budget left for them), which can exceed the dtype
        raise invalid("density", density,
                      f"a density at which the shared magnitude 1/lambda of the sampled "
                      f"coordinates fits {g.dtype}: 1/lambda = {msg.scale:.6g} overflows "
                      f"(pass a {wider} gradient or a larger density)")
    return msg


def _sample(
    flat: torch.Tensor,
    shape: tuple[int, ...],
    density: float,
    generator: torch.Generator | None,
    sampling: str,
    method: str,
    max_iter: int,
    out_dtype: torch.dtype | None = None,
) -> SparseGradient:
    """The unbiased message for the finite 1-D ``flat`` (the kernel behind
    :func:`sparsify_unbiased` and the DDP hook; no checks), its values in ``out_dtype``
    (default: ``flat``'s; the hooks pass the bucket's dtype when error feedback keeps a
    half-precision bucket's sum in float32).

    Half-precision gradients (float16, bfloat16) are sparsified in float32: uniforms drawn
    in their dtype lie on a grid of 2**-11 or 2**-8, which keeps a coordinate of small
    ``p`` far more often than ``p``. Their shared magnitude is rounded to the gradient's
    dtype first and the probabilities are computed from that rounded value, so the values
    sent (``sign * scale`` in the gradient's dtype) stay unbiased; the same is done for a
    shared magnitude below the smallest normal number of a float32 or float64 gradient."""
    d = flat.numel()
    out_dtype = flat.dtype if out_dtype is None else out_dtype
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    if sampling == "uniform":
        u = torch.rand(d, generator=generator, dtype=flat.dtype, device=flat.device)
        idx = torch.nonzero(u < density).squeeze(1)
        vals = (flat[idx] / density).to(out_dtype)
        sat = torch.full((idx.numel(),), density >= 1.0, dtype=torch.bool, device=flat.device)
        return SparseGradient(idx, vals, shape, saturated=sat, scale=None)
    a = flat.abs()
    lam = _scale_from_abs(a, density, method, max_iter)
    if math.isinf(lam):
        idx = torch.nonzero(a > 0).squeeze(1)
        sat = torch.ones(idx.numel(), dtype=torch.bool, device=flat.device)
        return SparseGradient(idx, flat[idx].to(out_dtype), shape, saturated=sat, scale=None)
    if out_dtype != flat.dtype or 1.0 / lam < float(torch.finfo(out_dtype).tiny):
        # the shared magnitude is sent in the gradient's dtype: round it first and derive
        # p from the rounded value. Needed for half precision, and for a magnitude below
        # the dtype's smallest normal number, where rounding to a subnormal is coarse (a
        # float32 scale of 2.5 * 2**-149 was sent as 2 * 2**-149: E[Q] = 0.8 g)
        rounded = float(torch.tensor(1.0 / lam, dtype=out_dtype))
        if 0.0 < rounded < math.inf:
            lam = 1.0 / rounded
    p = _probs_from_scale(a, lam)
    u = torch.rand(d, generator=generator, dtype=p.dtype, device=p.device)
    idx = torch.nonzero(u < p).squeeze(1)
    sat = p[idx] >= 1.0
    gk = flat[idx]
    scale = 1.0 / lam
    vals = torch.where(sat, gk, torch.sign(gk) * scale).to(out_dtype)
    return SparseGradient(idx, vals, shape, saturated=sat, scale=scale)


def sparsification_variance(g: torch.Tensor, p: torch.Tensor) -> float:
    """Closed-form second moment ``E||Q(g)||^2 = sum_{p_i > 0} g_i^2 / p_i``.

    Coordinates with ``g_i != 0`` and ``p_i = 0`` make the estimator biased; they are
    reported as ``inf``.
    """
    check_tensor("g", g)
    check_tensor("p", p)
    gf = g.reshape(-1).double()
    pf = p.reshape(-1).double()
    if gf.shape != pf.shape:
        raise invalid("p", p, f"{gf.numel()} entries, as g")
    if bool((pf < 0).any()) or bool((pf > 1).any()):
        raise invalid("p", p, "probabilities in [0, 1]")
    if bool(((pf == 0) & (gf != 0)).any()):
        return math.inf
    m = pf > 0
    return float((gf[m] ** 2 / pf[m]).sum())
