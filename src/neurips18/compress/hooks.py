"""PyTorch DDP communication hooks that send sparse gradients.

Register like any built-in hook::

    state = TopKState(process_group=None, density=0.01, error_feedback=True)
    ddp_model.register_comm_hook(state, topk_hook)

Each rank compresses its bucket (top-k of gradient + residual, Alistarh et al., NeurIPS 2018,
arXiv:1809.10505; or Wangni et al.'s optimal unbiased sparsifier, NeurIPS 2018,
arXiv:1710.09854), packs ``(indices, values)`` into one byte buffer and exchanges it with a
single ``all_gather``. No dense allreduce is issued after the warm-up steps. Every rank then
decodes the same gathered buffers in rank order with the same operations, so the averaged
gradient is bit-identical on every rank (and equal to :class:`~neurips18.compress.Simulator`).

Design choices that keep ranks in lock-step
-------------------------------------------
* All collectives are issued from inside the hook call, in bucket order, never from a future
  callback. Top-k messages have exactly k entries; unbiased messages are padded to a fixed
  capacity (mean + 8 standard deviations of their random size, see
  :meth:`UnbiasedSparsifyState._fixed_capacity`); only the approximate top-k exchanges its
  sizes first (synchronously).
* Non-finite gradients: a rank whose accumulated gradient has NaN/inf sends an empty message
  with a flag instead of its values. Every rank sees the flags after the gather and applies the
  same policy: ``nonfinite="raise"`` (default) fails the backward pass on **all** ranks with a
  ``FloatingPointError`` naming the offending ranks; ``nonfinite="skip"`` returns a zero
  gradient for that bucket on all ranks (the residual keeps the finite local values). A NaN is
  never broadcast into the model.
* After DDP rebuilds its buckets (after the first iteration), a residual whose size no longer
  matches its bucket is reset. ``warmup_steps`` (default 1) runs plain allreduce steps first,
  which also avoids that case.

Cost per step
-------------
With error feedback the residual is double-buffered: ``acc = grad + residual`` is written into
the buffer freed two steps earlier, ``|acc|`` into a per-size scratch buffer, and the average
is written back into the bucket's own buffer, so a compressed step allocates no dense tensor
(tensors in ``state.memory`` are therefore reused; copy them, or pickle the state, to keep a
snapshot). Selection is the sampled-threshold top-k of :func:`~neurips18.compress.topk`
(exact). Every bucket pays a fixed Python + collective overhead, so fewer, larger buckets
(``DistributedDataParallel(..., bucket_cap_mb=...)``) cost less; ``benchmarks/bench_compress.py``
measures both layouts.

States are picklable for checkpoints: the process group is dropped (``None`` means the default
group when the hook next runs) and generators are stored by their state.

Multi-node: the hooks use only ``all_gather`` on the given process group, so they run
unchanged under ``torchrun --nnodes=N --nproc-per-node=M ...`` with gloo or NCCL.
"""

import math
from typing import Any

import torch
import torch.distributed as dist

from ._checks import all_finite, check_density, k_for_density
from .sparse import SparseGradient
from .topk import _select
from .unbiased import _probs_from_scale, _scale_from_abs

__all__ = ["TopKState", "UnbiasedSparsifyState", "topk_hook", "unbiased_sparsify_hook"]

_HEADER = 8  # int32 flag + int32 count
_NONFINITE = ("raise", "skip")


def _align8(n: int) -> int:
    return (n + 7) // 8 * 8


def _index_width(numel: int) -> int:
    """Bytes per index: 2 below 2**16 coordinates, 3 below 2**24, else 4."""
    return 2 if numel <= 1 << 16 else 3 if numel <= 1 << 24 else 4


def pack(
    msg: SparseGradient | None, cap: int, dtype: torch.dtype, flag: int, numel: int
) -> torch.Tensor:
    """Pack a message into a uint8 buffer whose size depends only on ``cap`` and ``numel``.

    Layout: int32 flag, int32 count, ``cap`` little-endian indices of 2, 3 or 4 bytes
    (enough for ``numel``), padding to 8 bytes, ``cap`` values of ``dtype``.
    """
    esize = torch.empty((), dtype=dtype).element_size()
    iw = _index_width(numel)
    idx_bytes = _align8(iw * cap)
    buf = torch.zeros(_HEADER + idx_bytes + esize * cap, dtype=torch.uint8)
    n = 0 if msg is None else msg.nnz
    if n > cap:
        raise RuntimeError(f"message of {n} entries exceeds capacity {cap}")
    buf[:_HEADER].view(torch.int32).copy_(torch.tensor([flag, n], dtype=torch.int32))
    if n:
        assert msg is not None
        raw = msg.indices.to(torch.int32).view(torch.uint8).view(n, 4)[:, :iw]
        buf[_HEADER : _HEADER + iw * n].view(n, iw).copy_(raw)
        off = _HEADER + idx_bytes
        buf[off : off + esize * n].view(dtype).copy_(msg.values.to(dtype))
    return buf


def unpack(
    buf: torch.Tensor, cap: int, dtype: torch.dtype, numel: int
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack`: (flag, int64 indices, values)."""
    esize = torch.empty((), dtype=dtype).element_size()
    iw = _index_width(numel)
    idx_bytes = _align8(iw * cap)
    head = buf[:_HEADER].view(torch.int32)
    flag, n = int(head[0]), int(head[1])
    raw = torch.zeros(n, 4, dtype=torch.uint8)
    raw[:, :iw] = buf[_HEADER : _HEADER + iw * n].view(n, iw)
    idx = raw.view(torch.int32).reshape(n).to(torch.int64)
    off = _HEADER + idx_bytes
    vals = buf[off : off + esize * n].view(dtype)
    return flag, idx, vals


def aggregate(
    numel: int,
    dtype: torch.dtype,
    parts: list[tuple[torch.Tensor, torch.Tensor]],
    device: Any,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Average of sparse messages, summed in rank order (deterministic on every device).

    ``out`` (optional, ``numel`` entries of ``dtype``) is overwritten with the result; the
    hooks pass the bucket's own buffer so no dense tensor is allocated per step.
    """
    if out is None:
        out = torch.zeros(numel, dtype=dtype, device=device)
    else:
        out.zero_()
    for idx, vals in parts:
        if idx.numel():
            # indices are unique within a message, so index_add_ has no write conflicts
            # and the sum is deterministic on every device
            out.index_add_(0, idx.to(device), vals.to(device=device, dtype=dtype))
    out.div_(len(parts))
    return out


class _SparseState:
    """Shared machinery of the sparse hook states (see the module docstring)."""

    _fields: tuple[str, ...] = (
        "density",
        "error_feedback",
        "warmup_steps",
        "nonfinite",
        "seed",
        "iter",
        "memory",
        "rank",
        "world_size",
        "bytes_sent",
        "dense_bytes",
        "bits_coded",
        "compressed_steps",
        "overflows",
    )

    def __init__(
        self,
        process_group: Any = None,
        density: float = 0.01,
        error_feedback: bool = True,
        warmup_steps: int = 1,
        nonfinite: str = "raise",
        seed: int = 0,
    ) -> None:
        self.process_group = process_group
        self.density = check_density(density)
        if not isinstance(error_feedback, bool):
            raise TypeError(f"error_feedback must be a bool, got {error_feedback!r}")
        self.error_feedback = error_feedback
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative int, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.seed = int(seed)
        self.iter = 0
        self.memory: dict[int, torch.Tensor] = {}
        self.rank: int | None = None
        self.world_size: int | None = None
        self.generator: torch.Generator | None = None
        self._pending: dict[int, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = {}
        self._spare: dict[int, torch.Tensor] = {}  # reusable residual buffers (not pickled)
        self._scratch: dict[tuple[int, torch.dtype], torch.Tensor] = {}
        # accounting, per rank, summed over compressed steps
        self.bytes_sent = 0
        self.dense_bytes = 0
        self.bits_coded = 0
        self.compressed_steps = 0
        self.overflows = 0

    # ---- pickling (checkpoints) -------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = {f: getattr(self, f) for f in self._fields}
        state["_extra"] = self._extra_state()
        state["generator_state"] = None if self.generator is None else self.generator.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        extra = state.pop("_extra", {})
        gen_state = state.pop("generator_state", None)
        for k, v in state.items():
            setattr(self, k, v)
        for k, v in extra.items():
            setattr(self, k, v)
        self.process_group = None
        self._pending = {}
        self._spare = {}
        self._scratch = {}
        self.generator = None
        if gen_state is not None:
            self.generator = torch.Generator()
            self.generator.set_state(gen_state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    # ---- rank binding -----------------------------------------------------------------
    def _bind(self, rank: int, world_size: int) -> None:
        if self.world_size is not None and self.world_size != world_size:
            raise ValueError(
                f"this state was used with world_size={self.world_size} but the process group "
                f"has {world_size} ranks; create a new state for a different world size"
            )
        if self.rank is not None and self.rank != rank:
            raise ValueError(f"this state belongs to rank {self.rank}, not rank {rank}")
        self.rank, self.world_size = rank, world_size
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + rank)

    # ---- kernels shared with the simulator ---------------------------------------------
    def _compress(self, acc: torch.Tensor) -> SparseGradient:
        raise NotImplementedError

    def _fixed_capacity(self, numel: int) -> int | None:
        """Message capacity when every rank always sends the same size, else None."""
        return None

    def _abs_buffer(self, acc: torch.Tensor) -> torch.Tensor:
        """``|acc|`` in a scratch buffer reused across steps (one per bucket size)."""
        key = (acc.numel(), acc.dtype)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = torch.empty_like(acc)
        return torch.abs(acc, out=buf)

    def encode(self, key: int, flat: torch.Tensor) -> tuple[SparseGradient | None, int]:
        """Compress one rank's bucket; returns (message or None if non-finite, flag).

        With error feedback, ``acc = flat + residual`` is written into a buffer reused from
        two steps ago (the residuals are double-buffered), so a step allocates no dense
        tensor; without it, ``flat`` is only read.
        """
        flat = flat.detach()
        mem = self.memory.get(key)
        if mem is not None and (mem.numel() != flat.numel() or mem.dtype != flat.dtype):
            mem = None  # DDP rebuilt its buckets: the old residual no longer lines up
            self.memory.pop(key, None)
        if self.error_feedback:
            acc = self._spare.pop(key, None)
            if acc is None or acc.shape != flat.shape or acc.dtype != flat.dtype:
                acc = torch.empty_like(flat)
            if mem is None:
                acc.copy_(flat)
            else:
                torch.add(flat, mem, out=acc)
        else:
            acc = flat
        if not all_finite(acc):
            self._pending[key] = (acc, None, flat)
            return None, 1
        msg = self._compress(acc)
        cap = self._fixed_capacity(acc.numel())
        if cap is not None and msg.nnz > cap:
            # (unbiased sparsifier, probability < 1e-15 per bucket) keep the largest entries;
            # the rest is dropped, or carried in the residual with error feedback
            keep = torch.topk(msg.values.abs(), cap).indices
            sat = None if msg.saturated is None else msg.saturated[keep]
            msg = SparseGradient(msg.indices[keep], msg.values[keep], msg.shape, sat, msg.scale)
            self.overflows += 1
        self._pending[key] = (acc, msg.indices, msg.values)
        return msg, 0

    def finish(self, key: int, flags: list[int]) -> None:
        """Update the residual once every rank's flag is known."""
        acc, idx, vals = self._pending.pop(key)
        if not self.error_feedback:
            return
        old = self.memory.get(key)
        if not any(flags):
            assert idx is not None
            acc[idx] -= vals.to(acc.dtype)
            self.memory[key] = acc
        elif self.nonfinite == "skip" and idx is not None:
            self.memory[key] = acc  # nothing applied this step; keep the finite local sum
        else:
            old = acc  # residual unchanged; the buffer is free again
        if old is not None and old is not self.memory.get(key):
            self._spare[key] = old

    def decode(
        self,
        key: int,
        bufs: list[torch.Tensor],
        cap: int,
        numel: int,
        dtype: torch.dtype,
        device: Any,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        parts, flags = [], []
        for b in bufs:
            flag, idx, vals = unpack(b, cap, dtype, numel)
            flags.append(flag)
            parts.append((idx, vals))
        self.finish(key, flags)
        if any(flags):
            bad = [r for r, f in enumerate(flags) if f]
            if self.nonfinite == "raise":
                raise FloatingPointError(
                    f"non-finite gradient (NaN/inf) on rank(s) {bad} in bucket {key} at "
                    f"iteration {self.iter}; no rank applied it. Use nonfinite='skip' to drop "
                    "such steps instead."
                )
            return torch.zeros(numel, dtype=dtype, device=device)
        return aggregate(numel, dtype, parts, device, out)

    def account_dense(self, flat: torch.Tensor) -> None:
        """A warm-up (dense allreduce) step: the whole bucket counts as sent."""
        n = flat.numel() * flat.element_size()
        self.bytes_sent += n
        self.dense_bytes += n
        self.bits_coded += 8 * n

    def account(self, msg: SparseGradient | None, payload_bytes: int, flat: torch.Tensor) -> None:
        self.bytes_sent += payload_bytes
        self.dense_bytes += flat.numel() * flat.element_size()
        if msg is not None:
            self.bits_coded += msg.bits("hybrid", value_bits=8 * flat.element_size())


class TopKState(_SparseState):
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
        super().__init__(process_group, density, error_feedback, warmup_steps, nonfinite, seed)
        self.exact = bool(exact)

    def _extra_state(self) -> dict[str, Any]:
        return {"exact": self.exact}

    def _compress(self, acc: torch.Tensor) -> SparseGradient:
        k = k_for_density(self.density, acc.numel())
        idx = _select(self._abs_buffer(acc), k, exact=self.exact, sorted=False)
        return SparseGradient(idx, acc[idx], (acc.numel(),))

    def _fixed_capacity(self, numel: int) -> int | None:
        return k_for_density(self.density, numel) if self.exact else None


class UnbiasedSparsifyState(_SparseState):
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
        super().__init__(process_group, density, error_feedback, warmup_steps, nonfinite, seed)
        if method not in ("exact", "greedy"):
            raise ValueError(f"method must be 'exact' or 'greedy', got {method!r}")
        if sampling not in ("optimal", "uniform"):
            raise ValueError(f"sampling must be 'optimal' or 'uniform', got {sampling!r}")
        self.method = method
        self.max_iter = int(max_iter)
        self.sampling = sampling

    def _extra_state(self) -> dict[str, Any]:
        return {"method": self.method, "max_iter": self.max_iter, "sampling": self.sampling}

    def _fixed_capacity(self, numel: int) -> int | None:
        """Messages are padded to ``E + 8 sqrt(E) + 16`` entries, ``E = density * numel``.

        The number kept is a sum of independent Bernoullis with mean ``<= E`` and variance
        ``<= E``, so exceeding the capacity has probability below 1e-15; a fixed size lets
        the all-gather run asynchronously without first exchanging sizes.
        """
        e = self.density * numel
        return int(min(numel, math.ceil(e + 8.0 * math.sqrt(e) + 16)))

    def _compress(self, acc: torch.Tensor) -> SparseGradient:
        if self.sampling == "uniform":
            u = torch.rand(acc.numel(), generator=self.generator, dtype=acc.dtype)
            idx = torch.nonzero(u < self.density).squeeze(1)
            return SparseGradient(idx, acc[idx] / self.density, (acc.numel(),))
        a = acc.abs()
        lam = _scale_from_abs(a, self.density, self.method, self.max_iter)
        if math.isinf(lam):
            idx = torch.nonzero(a > 0).squeeze(1)
            sat = torch.ones(idx.numel(), dtype=torch.bool)
            return SparseGradient(idx, acc[idx], (acc.numel(),), saturated=sat)
        p = _probs_from_scale(a, lam)
        u = torch.rand(acc.numel(), generator=self.generator, dtype=p.dtype)
        idx = torch.nonzero(u < p).squeeze(1)
        sat = p[idx] >= 1.0
        gk = acc[idx]
        scale = 1.0 / lam
        vals = torch.where(sat, gk, torch.sign(gk) * scale)
        return SparseGradient(idx, vals, (acc.numel(),), saturated=sat, scale=scale)


# ---- the hooks ------------------------------------------------------------------------


def _group(state: _SparseState) -> Any:
    return state.process_group if state.process_group is not None else dist.group.WORLD


def _sparse_hook(state: _SparseState, bucket: Any) -> torch.futures.Future[torch.Tensor]:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks as default

    group = _group(state)
    world = dist.get_world_size(group)
    state._bind(dist.get_rank(group), world)
    buf = bucket.buffer()
    if state.iter < state.warmup_steps:
        if bucket.is_last():
            state.iter += 1
        state.account_dense(buf)
        return default._allreduce_fut(group, buf)

    key = bucket.index()
    if bucket.is_last():
        state.iter += 1
    flat = buf.detach().reshape(-1)
    device, dtype, numel = flat.device, flat.dtype, flat.numel()
    if numel >= 2**31:
        raise ValueError(f"bucket {key} has {numel} entries; indices are sent as int32")
    cpu = flat.cpu() if device.type != "cpu" else flat
    msg, flag = state.encode(key, cpu)
    cap = state._fixed_capacity(numel)
    extra = 0
    if cap is None:
        # variable-size messages: exchange sizes first (synchronously, inside the hook)
        n = torch.tensor([0 if msg is None else msg.nnz], dtype=torch.int64)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
        dist.all_gather(sizes, n, group=group)
        cap = max(1, max(int(s) for s in sizes))
        extra = 8
    payload = pack(msg, cap, dtype, flag, numel)
    state.account(msg, payload.numel() + extra, flat)
    state.compressed_steps += int(bucket.is_last())
    if device.type != "cpu":
        payload = payload.to(device)
    outs = [torch.empty_like(payload) for _ in range(world)]
    work = dist.all_gather(outs, payload, group=group, async_op=True)
    fut = work.get_future()

    def _done(_: Any) -> torch.Tensor:
        # the average is written into the bucket's own buffer (as an in-place allreduce
        # would), so DDP's copy back is a no-op and no dense tensor is allocated
        return state.decode(key, [o.cpu() for o in outs], cap, numel, dtype, device, out=flat)

    return fut.then(_done)


def topk_hook(state: TopKState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: top-k sparsification with error feedback (all-gather)."""
    return _sparse_hook(state, bucket)


def unbiased_sparsify_hook(
    state: UnbiasedSparsifyState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: Wangni et al.'s optimal unbiased sparsifier (all-gather)."""
    return _sparse_hook(state, bucket)
