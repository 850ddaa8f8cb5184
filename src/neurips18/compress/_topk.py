"""Top-k selection by magnitude and error feedback (residual memory).

Alistarh, Hoefler, Johansson, Khirirat, Konstantinov, Renggli, "The Convergence of
Sparsified Gradient Methods", NeurIPS 2018 (arXiv:1809.10505): each node adds its
accumulated residual to the new (scaled) gradient, sends the K largest-magnitude coordinates
of the sum and keeps the rest as the next residual.

Selection algorithm
-------------------
``torch.topk`` on a long vector is slow on CPU. :func:`topk` instead

1. estimates a magnitude threshold ``t`` from a strided sample of ``|g|`` of ``S`` entries
   (``S`` chosen so that about 400 sampled entries lie above the k-th largest magnitude,
   between 8,192 and 65,536 entries): ``t`` is the sample quantile at ``k * slack`` expected
   exceedances, slightly *below* the k-th largest magnitude
   (``slack = 1.05 + 3 / sqrt(expected sampled hits)``, three standard deviations of the
   sample count);
2. makes one counting pass: the flat indices of every ``|g_i| >= t`` (the candidates; on CPU
   the compare and the index extraction run through NumPy's vectorised ``flatnonzero``, 4x
   faster than ``torch.nonzero`` on a bool mask);
3. if there are at least ``k`` candidates they contain every true top-k coordinate and
   ``torch.topk`` on the candidates only (about ``k * slack`` entries) gives the **exact**
   answer; otherwise ``t`` was too high: the slack is doubled and the pass repeated (at most
   three times, then ``torch.topk`` on the whole vector).

``exact=True`` (default) always returns exactly the top-k (ties may be broken either way, as by
any top-k). ``exact=False`` is the approximate threshold selection: the first pass uses a
smaller slack (``1 + 1.5 / sqrt(hits)``), and when it finds fewer than ``k`` but at least
``0.99 k`` candidates, those are returned instead of running a second pass. Every returned
coordinate is above all the coordinates not returned, so **recall is at least 0.99 and the
count error at most 1 % by construction** (not only statistically); with ``>= k`` candidates
the result is exact. Both are measured in ``benchmarks/bench_compress.py`` over Gaussian,
Student-t and log-normal vectors and several seeds.

The sample is strided (deterministic, no generator needed); a gradient with structure at the
sampling period only makes the estimate worse, which costs a repeated pass, never a wrong
exact answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch

from neurips18._validation import BOOL, Interval, check, check_tensor, invalid

from ._sparse import SparseGradient

__all__ = ["ErrorFeedback", "topk", "topk_sparsify"]

_SMALL = 1 << 16  # below this many coordinates, torch.topk is fast enough
_HITS = 400  # sampled entries expected above the k-th largest magnitude
_SAMPLE_MIN, _SAMPLE_MAX = 1 << 13, 1 << 16
_APPROX_RECALL = 0.99  # approximate mode: accept >= this fraction of k without a second pass
_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16)
_SCALE = Interval(float)  # any finite number


def _ge_indices(a: torch.Tensor, thr: float) -> torch.Tensor:
    """Flat int64 indices of the entries of the 1-D tensor ``a`` with ``a >= thr``.

    CPU float tensors go through NumPy (vectorised compare + ``flatnonzero``, zero-copy);
    other devices and dtypes use ``torch.nonzero``. ``thr`` is compared in ``a``'s dtype.
    """
    if a.device.type == "cpu" and a.dtype in _NUMPY_DTYPES and a.is_contiguous():
        ax = a.detach().numpy()
        return torch.from_numpy(np.flatnonzero(ax >= ax.dtype.type(thr)))
    return torch.nonzero(a >= thr).squeeze(1)


def _sample_size(d: int, k: int) -> int:
    s = int(math.ceil(_HITS * d / k))
    return min(d, max(_SAMPLE_MIN, min(_SAMPLE_MAX, s)))


def _sample_threshold(a: torch.Tensor, k: int, slack: float, sample: int) -> float:
    """Magnitude above which about ``k * slack`` coordinates of ``a`` are expected."""
    d = a.numel()
    step = max(1, d // sample)
    picked = a[step // 2 :: step]
    m = picked.numel()
    # number of sample entries expected above the threshold
    r = min(m, max(1, int(math.ceil(k * slack * m / d))))
    return float(torch.topk(picked, r, sorted=False).values.min())


def _ge_values(a: torch.Tensor, thr: float) -> torch.Tensor:
    """The entries of the 1-D tensor ``a`` with ``a >= thr``, in index order."""
    if a.device.type == "cpu" and a.dtype in _NUMPY_DTYPES and a.is_contiguous():
        ax = a.detach().numpy()
        return torch.from_numpy(np.compress(ax >= ax.dtype.type(thr), ax))
    return a[a >= thr]


def _candidates(
    a: torch.Tensor, k: int, min_count: int | None = None, values: bool = False
) -> torch.Tensor | None:
    """Flat indices (``values=True``: the values) of the entries of ``a >= 0`` above a
    sampled threshold.

    With ``min_count=None`` the result has at least ``k`` entries and so includes the top-k.
    With ``min_count < k`` (approximate mode) a first pass that finds between ``min_count``
    and ``k`` entries is accepted. Returns None when three passes fall short (the caller falls
    back to a full ``torch.topk`` / sort).
    """
    d = a.numel()
    sample = _sample_size(d, k)
    hits = max(1.0, k * sample / d)
    if min_count is None:
        min_count, slack = k, 1.05 + 3.0 / math.sqrt(hits)
    else:
        slack = 1.0 + 1.5 / math.sqrt(hits)
    for _ in range(3):
        thr = _sample_threshold(a, k, slack, sample)
        cand = _ge_values(a, thr) if values else _ge_indices(a, thr)
        if cand.numel() >= min_count:
            return cand
        slack = max(2.0 * slack, 1.05 + 3.0 / math.sqrt(hits))
    return None


def topk(
    g: torch.Tensor, k: int, exact: bool = True, sorted: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest-magnitude entries of ``g`` (flattened), like ``torch.topk(|g|, k)``.

    Parameters
    ----------
    g : non-empty floating tensor of any shape (NaN/inf raise
        :class:`~neurips18._validation.ValidationError`, a ``ValueError``).
    k : number of entries, ``1 <= k <= g.numel()``.
    exact : True returns exactly the top-k (sampled threshold pre-filter + exact trim);
        False may return between ``0.99 k`` and ``k`` of the largest entries when that saves
        a second pass (recall >= 0.99, count error <= 1 %; see the module docstring).
    sorted : return entries in decreasing magnitude (as ``torch.topk``).

    Returns
    -------
    (values, indices): the signed values ``g.flatten()[indices]`` and int64 flat indices.
    """
    check_tensor("g", g)
    flat = g.reshape(-1)
    k = check("k", k, Interval(int, 1, flat.numel()))
    # bool() made exact=None the approximate selection and exact="False" the exact one
    exact = bool(check("exact", exact, BOOL))
    sorted = bool(check("sorted", sorted, BOOL))
    idx = _select(flat.abs(), k, exact, sorted)
    return flat[idx], idx


def _select(a: torch.Tensor, k: int, exact: bool = True, sorted: bool = False) -> torch.Tensor:
    """Flat indices of the top-k of ``a = |g|`` (1-D, finite, ``1 <= k <= a.numel()``).

    The kernel behind :func:`topk`, without its input checks (the DDP hooks check once per
    bucket and pass a preallocated ``|g|`` buffer).
    """
    d = a.numel()
    if d <= _SMALL or k * 4 > d:
        return torch.topk(a, k, sorted=sorted).indices
    min_count = None if exact else int(math.ceil(_APPROX_RECALL * k))
    cand = _candidates(a, k, min_count)
    if cand is None:
        return torch.topk(a, k, sorted=sorted).indices
    if cand.numel() <= k:  # approximate mode, first pass came up (at most 1 %) short
        if sorted:
            cand = cand[torch.argsort(a[cand], descending=True)]
        return cand
    pos = torch.topk(a[cand], k, sorted=sorted).indices
    return cand[pos]


def k_for_density(density: float, numel: int) -> int:
    """Number of coordinates a top-k compressor keeps at ``density`` (at least 1)."""
    return max(1, min(numel, int(math.ceil(density * numel))))


def topk_sparsify(g: torch.Tensor, k: int, exact: bool = True) -> SparseGradient:
    """:func:`topk` packaged as a :class:`SparseGradient` (values sent exactly)."""
    vals, idx = topk(g, k, exact=exact, sorted=False)
    return SparseGradient(idx, vals, tuple(g.shape))


class ErrorFeedback:
    """Residual memory for biased compressors (Alistarh et al.'s update), outside DDP too.

    For each key (a parameter name, a bucket index, ...)::

        acc  = memory + scale * g          # accumulate()
        sent = compressor(acc)             # e.g. top-k of acc
        memory = acc - sent                # update()

    :meth:`step` does all three. The memory is a plain dict of tensors;
    :meth:`state_dict` / :meth:`load_state_dict` checkpoint it.

    Examples
    --------
    >>> ef = ErrorFeedback()
    >>> msg = ef.step("w", grad, lambda acc: topk_sparsify(acc, k=10))  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.memory: dict[Hashable, torch.Tensor] = {}

    def accumulate(self, key: Hashable, g: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``memory[key] + scale * g`` as a new flat tensor (memory starts at zero).

        ``scale`` (the step size alpha of Alistarh et al.'s update) must be a finite number:
        a NaN or inf scale would turn the whole residual non-finite."""
        check_tensor("g", g, finite=False)
        scale = check("scale", scale, _SCALE)
        flat = g.reshape(-1)
        mem = self.memory.get(key)
        if mem is not None and mem.shape != flat.shape:
            raise invalid("g", g, f"{mem.numel()} entries, as the error-feedback memory of "
                          f"key {key!r} (call reset({key!r}) if the layout changed)")
        acc = flat * scale if scale != 1.0 else flat.clone()
        if mem is not None:
            acc.add_(mem)
        return acc

    def update(self, key: Hashable, acc: torch.Tensor, sent: SparseGradient) -> None:
        """Store ``acc - sent`` as the new residual for ``key``."""
        mem = acc.reshape(-1).clone()
        mem[sent.indices] -= sent.values.to(mem.dtype)
        self.memory[key] = mem

    def step(
        self,
        key: Hashable,
        g: torch.Tensor,
        compressor: Callable[[torch.Tensor], SparseGradient],
        scale: float = 1.0,
    ) -> SparseGradient:
        """Accumulate, compress and update; returns the message to send."""
        acc = self.accumulate(key, g, scale)
        sent = compressor(acc)
        self.update(key, acc, sent)
        return sent

    def reset(self, key: Hashable | None = None) -> None:
        if key is None:
            self.memory.clear()
        else:
            self.memory.pop(key, None)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": {k: v.clone() for k, v in self.memory.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory = {k: v.clone() for k, v in state["memory"].items()}
