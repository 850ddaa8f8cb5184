"""PyTorch DDP communication hooks that send sparse gradients.

Register like any built-in hook::

    state = TopKState(process_group=None, density=0.01, error_feedback=True)
    ddp_model.register_comm_hook(state, topk_hook)

Each rank compresses its bucket (top-k of gradient + residual, Alistarh et al., NeurIPS 2018,
arXiv:1809.10505; or Wangni et al.'s optimal unbiased sparsifier, NeurIPS 2018,
arXiv:1710.09854), packs ``(indices, values)`` into one byte buffer and exchanges it with a
single ``all_gather``. No dense allreduce is issued after the warm-up steps, except for a
bucket whose sparse message would cost at least its dense bytes (high density), which is
allreduced instead (``state.dense_fallbacks``). Every rank decodes the same gathered buffers
in rank order with the same operations, so the averaged gradient is bit-identical on every
rank and equal to :class:`~neurips18.compress.Simulator`'s: both run the one exchange of
:mod:`._exchange`.

Design choices that keep ranks in lock-step
-------------------------------------------
* All collectives are issued from inside the hook call, in bucket order, never from a future
  callback. Top-k messages have exactly k entries; unbiased messages are padded to a fixed
  capacity; only the approximate top-k exchanges its sizes first (synchronously).
* Non-finite gradients: a rank whose accumulated gradient has NaN/inf sends its flag instead
  of its values. ``nonfinite="raise"`` (default) makes ``backward()`` raise the same
  :class:`FloatingPointError`, naming the offending ranks, on every rank (from the hook call
  of the iteration's last bucket, so it surfaces as that type); ``nonfinite="skip"`` returns
  a zero gradient for that bucket on all ranks (the residual keeps the finite local values).
  A NaN is never broadcast into the model, warm-up steps included.

Residuals belong to parameters
------------------------------
DDP builds its first iteration's buckets from the module's parameter order and then rebuilds
them in the order gradients become ready. A state keys each parameter by its position in the
first iteration it sees on a model and keeps each bucket's residual in that bucket's parameter
order; when DDP's layout changes, every parameter's residual moves with it. A state restored
from a checkpoint into a fresh DDP of the same model exchanges that DDP's first (initial)
buckets as the checkpoint's buckets, so the resumed run is bit-identical to the uninterrupted
one (the DDP arguments unchanged). This holds for a checkpoint taken after two or more
iterations, once DDP has rebuilt its buckets; a checkpoint taken after the very first
iteration holds only the initial layout, so the first resumed iteration is compressed over
DDP's initial buckets (every residual still belongs to its parameter). Under
``static_graph=True`` DDP rebuilds its buckets only after its second iteration, so the same
holds for a checkpoint taken after three or more iterations. With other DDP
arguments (bucket sizes) the resumed run adopts the new buckets, each parameter keeping its
residual. A state restored into a different model is refused. The state must be registered
before the DDP's first backward pass (as DDP requires).

Unused parameters (``find_unused_parameters=True``): DDP hands the hook zeros for a parameter
a rank did not use and leaves the gradient of a parameter that no rank used untouched,
whatever the hook returns. With error feedback, a parameter whose gradient in the bucket is
exactly zero keeps its residual (nothing of it is sent, so top-k may send fewer than k
entries) until its gradient is nonzero again, so no residual is lost; the simulator, whose
buckets have no parameters, does not do this.

Cost per step
-------------
With error feedback the residual is double-buffered: ``acc = grad + residual`` is written into
the buffer freed two steps earlier, ``|acc|`` into a per-size scratch buffer, and the average
is written back into the bucket's own buffer, so a compressed step allocates no dense tensor
(tensors in ``state.memory`` are therefore reused; pickle the state to keep a snapshot).
The residual of a float16 or bfloat16 bucket, and its sum with the gradient, are kept in
float32 (in the bucket's dtype small gradients vanished into a large waiting residual); the
values sent are rounded to the bucket's dtype and the rounding stays in the residual.
Selection is the sampled-threshold top-k of :func:`~neurips18.compress.topk` (exact). Every
bucket pays a fixed Python + collective overhead, so fewer, larger buckets
(``DistributedDataParallel(..., bucket_cap_mb=...)``) cost less; ``benchmarks/bench_compress.py``
measures both layouts.

Checkpoints: ``torch.save({"model": ddp.state_dict(), "hook": state}, path)`` stores the
state as plain data (the process group is dropped and rejoined when the hook next runs, the
generator kept by its state); ``torch.load(path)`` with its default safe loading restores it
once :mod:`neurips18.compress` is imported.

Multi-node: the hooks use only ``all_gather``/``all_reduce`` on the given process group, so
they run unchanged under ``torchrun --nnodes=N --nproc-per-node=M ...`` with gloo or NCCL.
"""

# no ``from __future__ import annotations``: DDP checks the hooks' annotations at runtime
from typing import Any

import torch
import torch.distributed as dist

from neurips18._validation import invalid

from ._config import HookConfig
from ._exchange import ExchangeState

__all__ = ["TopKState", "UnbiasedSparsifyState", "topk_hook", "unbiased_sparsify_hook"]


class TopKState(ExchangeState):
    """State of :func:`topk_hook`.

    Parameters
    ----------
    process_group : the group to communicate in (None: the default group).
    density : fraction of each bucket's coordinates sent per step (k = ceil(density * n)).
    error_feedback : keep the unsent part as a residual added to the next gradient
        (Alistarh et al.'s memory). Without it top-k is biased and may not converge.
    warmup_steps : number of initial iterations that use a plain dense allreduce.
    exact : exact top-k (True) or the approximate threshold selection (False; about k
        entries, sizes exchanged first).
    nonfinite : ``"raise"`` or ``"skip"`` (see the module docstring).
    seed : unused by top-k (kept for a uniform interface).

    The settings are held, validated and frozen, in ``state.config`` (a
    :class:`HookConfig`); ``state.stats()`` gives the counters.
    """

    def __init__(
        self,
        process_group: Any = None,
        density: float = 0.01,
        error_feedback: bool = True,
        warmup_steps: int = 1,
        exact: bool = True,
        nonfinite: str = "raise",
        seed: int = 0,
    ) -> None:
        super().__init__(HookConfig("topk", density, error_feedback, warmup_steps, nonfinite,
                                    seed, exact=exact), process_group)

    @property
    def exact(self) -> bool:
        return self.config.exact


class UnbiasedSparsifyState(ExchangeState):
    """State of :func:`unbiased_sparsify_hook` (Wangni et al.'s optimal unbiased sparsifier).

    Parameters are those of :class:`TopKState` plus ``method`` / ``max_iter`` (how lambda is
    found, see :func:`~neurips18.compress.optimal_probabilities`), ``seed`` (each rank
    draws from its own generator seeded by ``seed`` and its rank) and ``sampling``
    (``"optimal"``, or ``"uniform"``: every coordinate kept with probability ``density`` and
    rescaled, the random-k baseline). ``error_feedback`` defaults to False: the sparsifier is
    unbiased and needs no memory.
    """

    def __init__(
        self,
        process_group: Any = None,
        density: float = 0.01,
        error_feedback: bool = False,
        warmup_steps: int = 1,
        method: str = "greedy",
        max_iter: int = 2,
        nonfinite: str = "raise",
        seed: int = 0,
        sampling: str = "optimal",
    ) -> None:
        super().__init__(HookConfig("unbiased", density, error_feedback, warmup_steps,
                                    nonfinite, seed, method=method, max_iter=max_iter,
                                    sampling=sampling), process_group)

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def max_iter(self) -> int:
        return self.config.max_iter

    @property
    def sampling(self) -> str:
        return self.config.sampling


# ---- the hooks ------------------------------------------------------------------------


def _group(state: ExchangeState) -> Any:
    return state.process_group if state.process_group is not None else dist.group.WORLD


def _sparse_hook(state: ExchangeState, bucket: Any) -> torch.futures.Future[torch.Tensor]:
    group = _group(state)
    world = dist.get_world_size(group)
    state._bind(dist.get_rank(group), world)
    buf = bucket.buffer()
    flat = buf.detach().reshape(-1)
    device, numel = flat.device, flat.numel()
    if numel >= 2**31:
        raise invalid(f"bucket {bucket.index()}", f"{numel} entries",
                      "fewer than 2**31 entries (indices are sent as int32)")
    last = bucket.is_last()
    parts = state._parts(bucket.index(), list(bucket.parameters()))
    exchanges = []
    for j, (key, idx) in enumerate(parts):
        x = flat if idx is None else flat.index_select(0, idx.to(device))
        out = state.start(key, x.cpu() if device.type != "cpu" else x,
                          last and j == len(parts) - 1)
        if out.mode == "sparse":
            if out.cap is None:
                # variable-size messages: exchange sizes first (synchronously, in the hook)
                n = torch.tensor([out.nnz], dtype=torch.int64)
                sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
                dist.all_gather(sizes, n, group=group)
                state.set_capacity(out, [int(s) for s in sizes])
            payload = state.pack(out).to(device)
            received: Any = [torch.empty_like(payload) for _ in range(world)]
            work = dist.all_gather(received, payload, group=group, async_op=True)
        else:
            received = out.payload.to(device)  # type: ignore[union-attr]
            work = dist.all_reduce(received, group=group, async_op=True)
        exchanges.append((out, idx, received, work.get_future()))

    def _done(_: Any) -> torch.Tensor:
        # the average is written into the bucket's own buffer (as an in-place allreduce
        # would), so DDP's copy back is a no-op and no dense tensor is allocated
        for out, idx, received, _fut in exchanges:
            res, err = state.complete(out, received, device, dest=flat if idx is None else None)
            assert res is not None
            if idx is not None:
                flat.index_copy_(0, idx.to(device), res)
            if err is not None and state._error is None:
                state._error = err
        return buf

    futs = [e[3] for e in exchanges]
    fut = futs[0] if len(futs) == 1 else torch.futures.collect_all(futs)
    result = fut.then(_done)
    if state.config.nonfinite == "raise":
        state._inflight.append(result)
        if last:
            # raised from the hook call itself, so backward() surfaces the documented type
            pending, state._inflight = state._inflight, []
            torch.futures.wait_all(pending)
            err, state._error = state._error, None
            if err is not None:
                raise err
    return result


def topk_hook(state: TopKState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: top-k sparsification with error feedback (all-gather)."""
    return _sparse_hook(state, bucket)


def unbiased_sparsify_hook(
    state: UnbiasedSparsifyState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: Wangni et al.'s optimal unbiased sparsifier (all-gather)."""
    return _sparse_hook(state, bucket)
