"""P virtual workers in one process, sharing the DDP hooks' kernels.

:class:`Simulator` holds one hook state per virtual rank and performs, for a list of P local
gradients, exactly what the P ranks' hooks do: compress (with each rank's residual and random
generator), pack into the same byte buffers, unpack, and average in rank order. Compressed
steps are therefore bit-identical to a real ``torch.distributed`` run with the same seeds and
the same bucket contents; warm-up (dense) steps average ``g_r / P`` in rank order, which equals
gloo's allreduce exactly for two ranks and up to float rounding of the summation order beyond.

Use it for experiments without ``torch.distributed`` (the reproductions do), or to check a
distributed run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .hooks import TopKState, UnbiasedSparsifyState, _SparseState, aggregate, pack, unpack

__all__ = ["Simulator"]

_KINDS = {"topk": TopKState, "unbiased": UnbiasedSparsifyState}


class Simulator:
    """Simulate ``world_size`` workers exchanging sparse gradients.

    Parameters
    ----------
    world_size : number of virtual workers P (>= 1).
    compressor : ``"topk"`` (:class:`TopKState`) or ``"unbiased"``
        (:class:`UnbiasedSparsifyState`).
    **state_kwargs : passed to every worker's state (density, error_feedback, warmup_steps,
        seed, ...). ``process_group`` is not allowed.

    Attributes
    ----------
    states : the per-worker states (residuals, generators, byte and bit counters).
    """

    def __init__(self, world_size: int, compressor: str = "topk", **state_kwargs: Any) -> None:
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive int, got {world_size!r}")
        if compressor not in _KINDS:
            raise ValueError(f"compressor must be one of {sorted(_KINDS)}, got {compressor!r}")
        if "process_group" in state_kwargs:
            raise TypeError("the simulator has no process group; do not pass process_group")
        self.world_size = world_size
        self.compressor = compressor
        self.states: list[_SparseState] = []
        for r in range(world_size):
            st = _KINDS[compressor](**state_kwargs)
            st._bind(r, world_size)
            self.states.append(st)

    @property
    def iter(self) -> int:
        return self.states[0].iter

    def step(self, grads: Sequence[torch.Tensor], key: int = 0, last: bool = True) -> torch.Tensor:
        """Average of the P workers' compressed gradients for one bucket ``key``.

        ``grads[r]`` is worker r's (flat or shaped) gradient; all must have the same size and
        dtype. ``last`` marks the last bucket of an iteration (advances the step counter).
        Returns the flat averaged gradient every worker would apply.
        """
        if len(grads) != self.world_size:
            raise ValueError(
                f"expected one gradient per worker (world_size={self.world_size}), "
                f"got {len(grads)}"
            )
        flats = [g.detach().reshape(-1) for g in grads]
        numel, dtype = flats[0].numel(), flats[0].dtype
        for r, f in enumerate(flats):
            if f.numel() != numel or f.dtype != dtype:
                raise ValueError(
                    f"gradient of worker {r} has {f.numel()} entries of {f.dtype}; worker 0 "
                    f"has {numel} of {dtype}"
                )
        st0 = self.states[0]
        if st0.iter < st0.warmup_steps:
            out = torch.zeros(numel, dtype=dtype)
            for st, f in zip(self.states, flats, strict=True):
                out += f / self.world_size
                st.account_dense(f)
            if last:
                for st in self.states:
                    st.iter += 1
            return out
        if last:
            for st in self.states:
                st.iter += 1
        encoded = [st.encode(key, f) for st, f in zip(self.states, flats, strict=True)]
        cap = st0._fixed_capacity(numel)
        extra = 0
        if cap is None:
            cap = max(1, max(0 if m is None else m.nnz for m, _ in encoded))
            extra = 8
        payloads = [pack(m, cap, dtype, flag, numel) for m, flag in encoded]
        for st, (m, _), p, f in zip(self.states, encoded, payloads, flats, strict=True):
            st.account(m, p.numel() + extra, f)
            st.compressed_steps += int(last)
        unpacked = [unpack(p, cap, dtype, numel) for p in payloads]
        flags = [u[0] for u in unpacked]
        for st in self.states:
            st.finish(key, flags)
        if any(flags):
            bad = [r for r, fl in enumerate(flags) if fl]
            if st0.nonfinite == "raise":
                raise FloatingPointError(
                    f"non-finite gradient (NaN/inf) on worker(s) {bad} in bucket {key} at "
                    f"iteration {st0.iter}; no worker applied it"
                )
            return torch.zeros(numel, dtype=dtype)
        return aggregate(numel, dtype, [(u[1], u[2]) for u in unpacked], "cpu")

    def bits(self) -> dict[str, int]:
        """Totals over workers: payload bytes sent, dense bytes, coded bits."""
        return {
            "bytes_sent": sum(s.bytes_sent for s in self.states),
            "dense_bytes": sum(s.dense_bytes for s in self.states),
            "bits_coded": sum(s.bits_coded for s in self.states),
        }
