"""P virtual workers in one process, running the DDP hooks' exchange.

:class:`Simulator` holds one hook state per virtual rank and performs, for a list of P local
gradients, exactly what the P ranks' hooks do (:mod:`._exchange`): compress (with each rank's
residual and random generator), pack into the same byte buffers, unpack, and average in rank
order. Compressed steps are therefore bit-identical to a real ``torch.distributed`` run with
the same seeds and the same bucket contents (except where a parameter's whole gradient is
zero on a rank: the hooks, which know the parameters, then hold its residual back, see
:mod:`._hooks`); dense steps (warm-up, or a bucket that is cheaper
sent densely) sum ``g_r / P`` in rank order, which equals gloo's allreduce exactly for two
ranks and up to float rounding of the summation order beyond.

Use it for experiments without ``torch.distributed`` (the reproductions do), or to check a
distributed run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from neurips18._validation import Interval, Options, check, check_tensor, invalid

from ._exchange import ExchangeState
from ._hooks import TopKState, UnbiasedSparsifyState

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
        world_size = check("world_size", world_size, Interval(int, 1, None))
        check("compressor", compressor, Options(set(_KINDS)))
        if "process_group" in state_kwargs:
            raise invalid("process_group", state_kwargs["process_group"],
                          "no process group: the simulator has none")
        self.world_size = world_size
        self.compressor = compressor
        self.states: list[ExchangeState] = []
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
        Returns the flat averaged gradient every worker would apply, on the gradients'
        device. A non-finite gradient under ``nonfinite="raise"`` raises
        :class:`FloatingPointError` (the hooks' message).
        """
        if isinstance(grads, torch.Tensor) or len(grads) != self.world_size:
            raise invalid("grads", grads, f"a sequence of {self.world_size} gradients, one "
                          f"per worker (world_size={self.world_size})")
        for r, g in enumerate(grads):
            check_tensor(f"grads[{r}]", g, finite=False)
        device = grads[0].device
        flats = [g.detach().reshape(-1).cpu() for g in grads]
        numel, dtype = flats[0].numel(), flats[0].dtype
        for r, f in enumerate(flats):
            if f.numel() != numel or f.dtype != dtype:
                raise invalid(f"grads[{r}]", grads[r],
                              f"{numel} entries of {dtype}, as grads[0]")
        outs = [st.start(key, f, last) for st, f in zip(self.states, flats, strict=True)]
        if outs[0].mode == "sparse":
            if outs[0].cap is None:
                sizes = [o.nnz for o in outs]
                for st, o in zip(self.states, outs, strict=True):
                    st.set_capacity(o, sizes)
            received: Any = [st.pack(o) for st, o in zip(self.states, outs, strict=True)]
        else:
            received = torch.zeros_like(outs[0].payload)  # type: ignore[arg-type]
            for o in outs:
                received += o.payload  # type: ignore[operator]
        # every rank computes the same average: update each residual, average once
        res, err = self.states[0].complete(outs[0], received)
        for st, o in zip(self.states[1:], outs[1:], strict=True):
            st.complete(o, received, average=False)
        if err is not None:
            raise err
        assert res is not None
        return res.to(device)

    def bits(self) -> dict[str, int]:
        """Totals over workers: payload bytes sent, dense bytes, coded bits."""
        return {
            "bytes_sent": sum(s.bytes_sent for s in self.states),
            "dense_bytes": sum(s.dense_bytes for s in self.states),
            "bits_coded": sum(s.bits_coded for s in self.states),
        }
