"""One exchange of a gradient bucket, written once for the DDP hooks and the simulator.

Every rank runs the same steps on its bucket; only the transport differs (``all_gather`` /
``all_reduce`` on a process group in :mod:`._hooks`, lists in one process in
:mod:`._simulator`):

1. :meth:`ExchangeState.start` decides how the bucket travels and prepares this rank's part:

   * ``"warmup"`` (the first ``warmup_steps`` iterations): the gradient, densely;
   * ``"dense"``: when the sparse message would cost at least as many bytes as the dense
     bucket (high density), the accumulated gradient (gradient + residual) is sent densely
     and the residual becomes zero; counted in ``dense_fallbacks``;
   * ``"sparse"``: the compressed message (top-k of gradient + residual, or the unbiased
     sparsifier's draw), packed into a byte buffer whose size depends only on the capacity,
     so all ranks exchange buffers of one size.

   A dense part is ``[x / P, flags]``: the ``P`` trailing entries carry, summed by the
   allreduce, which ranks had a non-finite gradient. A sparse part carries the flag in its
   header. The decision depends only on the configuration and the bucket's size and dtype,
   so every rank takes the same one.
2. (variable-size messages only, approximate top-k) the ranks exchange their sizes and
   :meth:`ExchangeState.set_capacity` fixes the buffer size to the largest.
3. :meth:`ExchangeState.pack` builds the sparse buffer and counts the bytes.
4. the transport: every rank receives all buffers (sparse) or their sum (dense);
5. :meth:`ExchangeState.complete` decodes, updates the residual once every rank's flag is
   known, applies the non-finite policy and averages the messages in rank order (so the
   result is bit-identical on every rank and in the simulator).

Non-finite policy: a rank whose (accumulated) gradient holds NaN/inf sends no values, only
its flag. ``nonfinite="raise"`` makes every rank fail with the same
:class:`FloatingPointError` (:func:`nonfinite_error`); ``"skip"`` gives a zero update for that
bucket on every rank, the residual keeping the finite local values. A NaN never reaches the
model.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from neurips18._validation import invalid

from ._config import HookConfig
from ._sparse import SparseGradient
from ._topk import _select, k_for_density
from ._unbiased import _sample

_HEADER = 8  # int32 flag + int32 count
_SIZE_BYTES = 8  # one int64 per rank when sizes are exchanged first


def _residual_dtype(dtype: torch.dtype) -> torch.dtype:
    """dtype of the error-feedback sum ``gradient + residual`` of a bucket of ``dtype``.

    Half-precision buckets keep it in float32: in bfloat16 a residual of 256 swallowed
    every later gradient below 1 (half its ulp), so error feedback stopped accumulating
    exactly where it waits longest (low density)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _align8(n: int) -> int:
    return (n + 7) // 8 * 8


def _index_width(numel: int) -> int:
    """Bytes per index: 2 up to 2**16 coordinates, 3 up to 2**24, else 4."""
    return 2 if numel <= 1 << 16 else 3 if numel <= 1 << 24 else 4


def payload_size(cap: int, numel: int, dtype: torch.dtype) -> int:
    """Bytes of a packed message of capacity ``cap`` for a bucket of ``numel`` entries."""
    esize = torch.empty((), dtype=dtype).element_size()
    return _HEADER + _align8(_index_width(numel) * cap) + esize * cap


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

    Half-precision messages (float16, bfloat16) are summed in float32 and rounded once:
    summed in float16, two ranks' finite 40000 overflowed to inf before the division by
    the number of ranks, where the dense average (which divides first) is 40000.
    """
    if out is None:
        out = torch.zeros(numel, dtype=dtype, device=device)
    else:
        out.zero_()
    acc = out
    if dtype in (torch.float16, torch.bfloat16):
        acc = torch.zeros(numel, dtype=torch.float32, device=device)
    for idx, vals in parts:
        if idx.numel():
            # indices are unique within a message, so index_add_ has no write conflicts
            # and the sum is deterministic on every device
            acc.index_add_(0, idx.to(device), vals.to(device=device, dtype=acc.dtype))
    acc.div_(len(parts))
    if acc is not out:
        out.copy_(acc)
    return out


def all_finite(t: torch.Tensor) -> bool:
    """True when every entry is finite (a finite sum proves it; only a non-finite sum costs
    the elementwise check)."""
    if bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


_OVERFLOW = 2  # flag of a finite gradient whose compressed message overflowed its dtype


def nonfinite_error(ranks: list[int], bucket: int, iteration: int,
                    overflowed: list[int] | None = None) -> FloatingPointError:
    """The error every rank raises under ``nonfinite="raise"``."""
    why = ""
    if overflowed:
        why = (f" (on rank(s) {overflowed} the gradient was finite but its rescaled message "
               "overflowed the gradient's dtype (uniform sampling sends g / density, "
               "optimal sampling the shared magnitude 1/lambda, error feedback the gradient "
               "plus its residual): use a wider gradient "
               "dtype or a larger density, or optimal instead of uniform sampling)")
    return FloatingPointError(
        f"non-finite gradient (NaN/inf) on rank(s) {ranks} in bucket {bucket} at iteration "
        f"{iteration}{why}; no rank applied it. Use nonfinite='skip' to drop such steps "
        "instead."
    )


@dataclass
class Outgoing:
    """One rank's part of one bucket exchange, between :meth:`ExchangeState.start` and
    :meth:`ExchangeState.complete`."""

    key: int
    mode: str  # "warmup" | "dense" | "sparse"
    numel: int
    dtype: torch.dtype
    flag: int
    payload: torch.Tensor | None = None  # dense: [x / P, flags]; sparse: set by pack()
    msg: SparseGradient | None = None
    cap: int | None = None
    extra: int = 0  # bytes of the size exchange

    @property
    def nnz(self) -> int:
        return 0 if self.msg is None else self.msg.nnz


@dataclass
class _Pending:
    acc: torch.Tensor | None  # the accumulated gradient (owned by the state), if any
    idx: torch.Tensor | None  # sent indices (sparse), None when nothing valid was sent
    vals: torch.Tensor | None
    sent_all: bool = False  # dense exchange of acc: the residual becomes zero
    held: tuple[tuple[int, int], ...] = ()  # (offset, numel) of parameters not sent


class ExchangeState:
    """Per-rank state of a sparse exchange: the configuration (:class:`HookConfig`), the
    iteration, the residuals, the random generator and the byte/bit counters.

    The residual of every bucket is a flat tensor in the bucket's parameter order; the
    hooks tie it to the parameters (:meth:`_parts`), so that a change of DDP's bucket
    layout, or a resume into a new DDP, moves each parameter's residual with it.
    """

    _COUNTERS = ("iter", "bytes_sent", "dense_bytes", "bits_coded", "compressed_steps",
                 "dense_fallbacks", "overflows")

    def __init__(self, config: HookConfig, process_group: Any = None) -> None:
        self.config = config
        self.process_group = process_group
        self.rank: int | None = None
        self.world_size: int | None = None
        self.generator: torch.Generator | None = None
        self.memory: dict[int, torch.Tensor] = {}
        # accounting, per rank
        self.iter = 0
        self.bytes_sent = 0
        self.dense_bytes = 0
        self.bits_coded = 0
        self.compressed_steps = 0
        self.dense_fallbacks = 0
        self.overflows = 0
        # parameter layout of the buckets: bucket -> ((parameter key, numel), ...)
        self._buckets: dict[int, tuple[tuple[int, int], ...]] = {}
        self._loose: dict[int, torch.Tensor] = {}  # residuals of parameters in no bucket yet
        self._reset_transient()

    def _reset_transient(self) -> None:
        self._pending: dict[int, _Pending] = {}
        self._spare: dict[int, torch.Tensor] = {}  # reusable residual buffers
        self._scratch: dict[tuple[int, torch.dtype], torch.Tensor] = {}
        self._keys: dict[int, tuple[weakref.ref, int]] = {}  # id(param) -> (ref, key)
        self._next_key = 0
        self._new_iteration = True
        self._first_on_model = False
        # DDP buckets exchanged as the state's own buckets (a resume), by DDP bucket index:
        # kept so while that DDP still presents them (static_graph keeps its initial
        # buckets for two iterations)
        self._mapped: dict[int, tuple[tuple[int, int], ...]] = {}
        self._inflight: list[Any] = []
        self._error: FloatingPointError | None = None

    # ---- configuration, read-only ------------------------------------------------------
    @property
    def density(self) -> float:
        return self.config.density

    @property
    def error_feedback(self) -> bool:
        return self.config.error_feedback

    @property
    def warmup_steps(self) -> int:
        return self.config.warmup_steps

    @property
    def nonfinite(self) -> str:
        return self.config.nonfinite

    @property
    def seed(self) -> int:
        return self.config.seed

    def stats(self) -> dict[str, int]:
        """Counters of this rank: iterations, payload bytes sent, dense bytes (what a dense
        allreduce would have sent), bits under the hybrid coding model, iterations after the
        warm-up (``compressed_steps``), bucket exchanges sent densely because sparse would cost more
        (``dense_fallbacks``), unbiased messages cut to capacity (``overflows``)."""
        return {k: int(getattr(self, k)) for k in self._COUNTERS}

    # ---- checkpoints: plain data, loadable by torch.load's default (weights_only) ------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "counters": self.stats(),
            "rank": self.rank,
            "world_size": self.world_size,
            "generator_state": None if self.generator is None else self.generator.get_state(),
            "memory": {int(k): v.clone() for k, v in self.memory.items()},
            "buckets": {int(b): [list(e) for e in sig] for b, sig in self._buckets.items()},
            "loose": {int(k): v.clone() for k, v in self._loose.items()},
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = HookConfig(**state["config"])
        self.process_group = None
        for k, v in state["counters"].items():
            setattr(self, k, int(v))
        self.rank, self.world_size = state["rank"], state["world_size"]
        self.generator = None
        if state["generator_state"] is not None:
            self.generator = torch.Generator()
            self.generator.set_state(state["generator_state"])
        self.memory = dict(state["memory"])
        self._buckets = {int(b): tuple((int(k), int(n)) for k, n in sig)
                         for b, sig in state["buckets"].items()}
        self._loose = dict(state["loose"])
        self._reset_transient()

    # ---- rank binding -------------------------------------------------------------------
    def _bind(self, rank: int, world_size: int) -> None:
        if self.world_size is not None and self.world_size != world_size:
            raise invalid("world_size", world_size,
                          f"{self.world_size}, the world size this state was used with "
                          "(a state loaded from a checkpoint does not keep its process "
                          "group: set its process_group to the group it was used in; create "
                          "a new state only for a different world size, which drops the "
                          "error-feedback residuals)")
        if self.rank is not None and self.rank != rank:
            raise invalid("rank", rank, f"{self.rank}, the rank this state belongs to")
        self.rank, self.world_size = rank, world_size
        if self.generator is None:
            # torch seeds are 64-bit: a larger seed (SeedSequence entropy is 128-bit) raised
            # OverflowError from the first backward pass; reduced, every seed below about
            # 1.8e13 keeps its stream
            self.generator = torch.Generator().manual_seed(
                (self.config.seed * 1_000_003 + rank) % 2**64)

    # ---- parameters and buckets (DDP hooks) ---------------------------------------------
    def _known(self, p: torch.Tensor) -> bool:
        entry = self._keys.get(id(p))
        return entry is not None and entry[0]() is p

    def _key_of(self, p: torch.Tensor) -> int:
        entry = self._keys.get(id(p))
        if entry is not None and entry[0]() is p:
            return entry[1]
        key = self._next_key
        self._next_key += 1
        self._keys[id(p)] = (weakref.ref(p), key)
        return key

    def _parts(self, index: int, params: list[torch.Tensor]) -> list[tuple[int, Any]]:
        """The state's buckets that make up DDP's bucket ``index``: ``[(bucket, None)]`` when
        the layouts agree, else ``[(bucket, positions in DDP's buffer), ...]``.

        A parameter's key is its position in the first iteration the state sees on a model
        (DDP's initial layout, the same for a fresh DDP of the same model). In that first
        iteration, a DDP bucket made of whole buckets of the state (a checkpoint's layout)
        is exchanged as those buckets, exactly as the checkpointed run would have, and stays
        so for as long as DDP presents that bucket unchanged; at any other layout change
        the state adopts DDP's buckets, each parameter taking its residual along.
        """
        if self._new_iteration:
            self._new_iteration = False
            known = all(self._known(p) for p in params)
            self._first_on_model = not known
            if not known:  # a new model (or a state loaded from a checkpoint): keys anew
                self._keys, self._next_key = {}, 0
                self._mapped = {}
        keys = [self._key_of(p) for p in params]
        sig = tuple((k, int(p.numel())) for k, p in zip(keys, params, strict=True))
        if self._buckets.get(index) == sig:
            return [(index, None)]
        owner = {k: b for b, s in self._buckets.items() for k, _ in s}
        sizes = {k: n for s in self._buckets.values() for k, n in s}
        for k, n in sig:
            if k in sizes and sizes[k] != n:
                raise invalid("hook state", f"parameter #{k} with {sizes[k]} entries",
                              f"the model's parameter #{k}, which has {n} entries: the "
                              "state belongs to another model")
        covering = {owner.get(k) for k, _ in sig}
        # a DDP bucket exchanged as the state's buckets in the first iteration stays so
        # while DDP keeps it unchanged: static_graph=True rebuilds DDP's buckets only
        # after its second iteration, and adopting DDP's initial buckets for that one
        # iteration made a resumed run differ from the uninterrupted one
        mapped = self._first_on_model or self._mapped.get(index) == sig
        if not mapped:
            self._mapped.pop(index, None)  # DDP changed this bucket: the state adopts it
        if mapped and None not in covering and (
                sum(len(self._buckets[b]) for b in covering) == len(sig)):
            self._mapped[index] = sig
            offsets, pos = {}, 0
            for k, n in sig:
                offsets[k] = pos
                pos += n
            parts = []
            for b in sorted(covering):  # type: ignore[type-var]
                idx = torch.cat([torch.arange(offsets[k], offsets[k] + n)
                                 for k, n in self._buckets[b]])
                parts.append((b, idx))
            return parts
        for b in {b for b in covering if b is not None}:
            self._dissolve(b)
        new = index if index not in self._buckets else max(self._buckets) + 1
        self._buckets[new] = sig
        self._assemble(new)
        return [(new, None)]

    def _dissolve(self, b: int) -> None:
        """Move bucket ``b``'s residual to its parameters (``_loose``)."""
        sig = self._buckets.pop(b)
        self._spare.pop(b, None)
        mem = self.memory.pop(b, None)
        if mem is None:
            return
        off = 0
        for k, n in sig:
            self._loose[k] = mem[off : off + n].clone()
            off += n

    def _assemble(self, b: int) -> None:
        """Build bucket ``b``'s residual from its parameters' residuals (zero if none)."""
        sig = self._buckets[b]
        if not any(k in self._loose for k, _ in sig):
            return
        dtype = next(self._loose[k] for k, _ in sig if k in self._loose).dtype
        self.memory[b] = torch.cat([
            self._loose.pop(k) if k in self._loose else torch.zeros(n, dtype=dtype)
            for k, n in sig])

    # ---- compression (per compressor) ---------------------------------------------------
    def _compress(self, acc: torch.Tensor, dtype: torch.dtype) -> SparseGradient:
        """The message of ``acc``, its values in the bucket's ``dtype`` (what is sent)."""
        cfg = self.config
        if cfg.compressor == "topk":
            k = k_for_density(cfg.density, acc.numel())
            idx = _select(self._abs_buffer(acc), k, exact=cfg.exact, sorted=False)
            return SparseGradient(idx, acc[idx].to(dtype), (acc.numel(),))
        return _sample(acc, (acc.numel(),), cfg.density, self.generator, cfg.sampling,
                       cfg.method, cfg.max_iter, out_dtype=dtype)

    def _fixed_capacity(self, numel: int) -> int | None:
        """Message capacity when every rank's message has a known bound, else None.

        Top-k (exact) sends exactly k. The unbiased sparsifier's count is a sum of
        independent Bernoullis with mean ``E = density * numel`` (at most) and variance at
        most ``E``: padding to ``E + 8 sqrt(E) + 16`` makes an overflow less likely than
        1e-15 per bucket, so no sizes need exchanging.
        """
        cfg = self.config
        if cfg.compressor == "topk":
            return k_for_density(cfg.density, numel) if cfg.exact else None
        e = cfg.density * numel
        return int(min(numel, math.ceil(e + 8.0 * math.sqrt(e) + 16)))

    def dense_is_cheaper(self, numel: int, dtype: torch.dtype) -> bool:
        """Whether the sparse message of a bucket costs at least its dense bytes."""
        cap = self._fixed_capacity(numel)
        extra = 0
        if cap is None:
            cap, extra = k_for_density(self.config.density, numel), _SIZE_BYTES
        esize = torch.empty((), dtype=dtype).element_size()
        return payload_size(cap, numel, dtype) + extra >= numel * esize

    def _abs_buffer(self, acc: torch.Tensor) -> torch.Tensor:
        """``|acc|`` in a scratch buffer reused across steps (one per bucket size)."""
        key = (acc.numel(), acc.dtype)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = torch.empty_like(acc)
        return torch.abs(acc, out=buf)

    def _accumulate(self, key: int, flat: torch.Tensor) -> torch.Tensor:
        """``flat + residual`` in a buffer freed two steps earlier (residuals are
        double-buffered, so a step allocates no dense tensor); ``flat`` itself without
        error feedback."""
        if not self.config.error_feedback:
            return flat
        rdt = _residual_dtype(flat.dtype)
        mem = self.memory.get(key)
        if (mem is not None and mem.dtype == flat.dtype != rdt
                and mem.numel() == flat.numel()):
            # a half-precision residual (a checkpoint of an earlier version): widened
            mem = self.memory[key] = mem.to(rdt)
        if mem is not None and (mem.numel() != flat.numel() or mem.dtype != rdt):
            raise invalid(f"gradient of bucket {key}", flat,
                          f"{mem.numel()} entries, its residual being {mem.dtype}")
        acc = self._spare.pop(key, None)
        if acc is None or acc.shape != flat.shape or acc.dtype != rdt:
            acc = torch.empty(flat.shape, dtype=rdt)
        if mem is None:
            acc.copy_(flat)
        else:
            torch.add(flat, mem, out=acc)
        return acc

    # ---- the exchange -------------------------------------------------------------------
    def start(self, key: int, flat: torch.Tensor, last: bool) -> Outgoing:
        """Step 1: this rank's part of bucket ``key`` (a 1-D CPU tensor; ``last`` marks the
        iteration's last exchange)."""
        cfg = self.config
        numel, dtype = flat.numel(), flat.dtype
        world = self.world_size or 1
        if self.iter < cfg.warmup_steps:
            mode = "warmup"
        elif self.dense_is_cheaper(numel, dtype):
            mode = "dense"
        else:
            mode = "sparse"
        if last:
            self.iter += 1
            self._new_iteration = True
            self.compressed_steps += int(mode != "warmup")
        if mode == "sparse":
            msg, flag = self._encode(key, flat)
            out = Outgoing(key, mode, numel, dtype, flag, msg=msg,
                           cap=self._fixed_capacity(numel))
            if out.cap is None:
                out.extra = _SIZE_BYTES
            return out
        x = flat if mode == "warmup" else self._accumulate(key, flat)
        flag = int(not all_finite(x))
        held: tuple[tuple[int, int], ...] = ()
        send = x
        if mode == "dense" and not flag and x is not flat:
            held = self._held(key, flat, x)
            if held:  # their residuals stay here: DDP may drop what is sent for them
                send = x.clone()
                for off, n in held:
                    send[off : off + n] = 0
        payload = torch.zeros(numel + world, dtype=dtype)
        if send.dtype == dtype:
            torch.div(send, world, out=payload[:numel])
        else:  # a half-precision bucket's float32 sum: divided, then rounded once
            payload[:numel].copy_(send / world)
            if not flag and not all_finite(payload[:numel]):
                flag = 1  # the sum does not fit the bucket's dtype: never sent as inf
        self._pending[key] = _Pending(x if mode == "dense" else None, None, None,
                                      sent_all=(mode == "dense" and not flag), held=held)
        payload[numel + (self.rank or 0)] = float(flag)
        n = payload.numel() * payload.element_size()
        self.bytes_sent += n
        self.dense_bytes += numel * flat.element_size()
        self.bits_coded += 8 * n
        self.dense_fallbacks += int(mode == "dense")
        return Outgoing(key, mode, numel, dtype, flag, payload=payload)

    def _held(self, key: int, flat: torch.Tensor, acc: torch.Tensor,
              sent: torch.Tensor | None = None) -> tuple[tuple[int, int], ...]:
        """(offset, numel) of the parameters of bucket ``key`` whose gradient on this rank is
        exactly zero everywhere while their residual is not (with ``sent``: only those
        holding a sent index).

        DDP with ``find_unused_parameters=True`` hands the hook zeros for a parameter that
        took no part in this rank's forward pass, and leaves the gradient of a parameter no
        rank used untouched, whatever the hook returns for it: a residual sent for such a
        parameter would leave the memory without ever reaching the model. An all-zero
        gradient is how an unused parameter looks from the hook, so such a parameter's
        residual is held back (neither sent nor cleared) until its gradient is nonzero
        again; nothing is lost either way. Only the hooks know the parameter layout; the
        simulator's flat buckets have none."""
        sig = self._buckets.get(key)
        if not sig or key not in self.memory:  # no parameters known, or no residual
            return ()
        zero = None
        if sent is not None:
            zero = sent[flat[sent] == 0]
            if not zero.numel():  # the common case: every sent gradient entry is nonzero
                return ()
        ends = torch.tensor([n for _, n in sig], dtype=torch.int64).cumsum(0)
        cand = (range(len(sig)) if zero is None
                else sorted(set(torch.searchsorted(ends, zero, right=True).tolist())))
        out = []
        for j in cand:
            end = int(ends[j])
            off = end - sig[j][1]
            if not bool(flat[off:end].any()) and bool(acc[off:end].any()):
                out.append((off, end - off))
        return tuple(out)

    def _encode(self, key: int, flat: torch.Tensor) -> tuple[SparseGradient | None, int]:
        acc = self._accumulate(key, flat)
        if not all_finite(acc):
            self._pending[key] = _Pending(acc if acc is not flat else None, None, None)
            return None, 1
        msg = self._compress(acc, flat.dtype)
        if not all_finite(msg.values):
            # a finite gradient whose message does not fit its dtype (uniform sampling of a
            # float16 bucket sends g / density): sent as a flag, like a non-finite gradient,
            # instead of an inf that no rank would have reported
            self._pending[key] = _Pending(acc if acc is not flat else None, None, None)
            return None, _OVERFLOW
        if acc is not flat and msg.nnz:
            held = self._held(key, flat, acc, msg.indices)
            if held:  # keep those parameters' residuals: DDP may drop what is sent for them
                keep = torch.ones(msg.nnz, dtype=torch.bool)
                for off, n in held:
                    keep &= (msg.indices < off) | (msg.indices >= off + n)
                sat = None if msg.saturated is None else msg.saturated[keep]
                msg = SparseGradient(msg.indices[keep], msg.values[keep], msg.shape, sat,
                                     msg.scale)
        cap = self._fixed_capacity(acc.numel())
        if cap is not None and msg.nnz > cap:
            # (unbiased sparsifier, probability < 1e-15 per bucket) keep the largest entries;
            # the rest is dropped, or carried in the residual with error feedback
            keep = torch.topk(msg.values.abs(), cap).indices
            sat = None if msg.saturated is None else msg.saturated[keep]
            msg = SparseGradient(msg.indices[keep], msg.values[keep], msg.shape, sat, msg.scale)
            self.overflows += 1
        self._pending[key] = _Pending(acc if acc is not flat else None, msg.indices, msg.values)
        return msg, 0

    def set_capacity(self, out: Outgoing, sizes: list[int]) -> None:
        """Step 2 (variable-size messages): the buffer size from every rank's size."""
        out.cap = max(1, max(int(s) for s in sizes))

    def pack(self, out: Outgoing) -> torch.Tensor:
        """Step 3: the sparse buffer of ``out``, counted in this rank's statistics."""
        assert out.cap is not None
        out.payload = pack(out.msg, out.cap, out.dtype, out.flag, out.numel)
        esize = torch.empty((), dtype=out.dtype).element_size()
        self.bytes_sent += out.payload.numel() + out.extra
        self.dense_bytes += out.numel * esize
        if out.msg is not None:
            self.bits_coded += out.msg.bits("hybrid", value_bits=8 * esize)
        return out.payload

    def complete(self, out: Outgoing, received: Any, device: Any = "cpu",
                 dest: torch.Tensor | None = None, average: bool = True,
                 ) -> tuple[torch.Tensor | None, FloatingPointError | None]:
        """Step 5: the averaged bucket from what this rank received (the list of every
        rank's buffer, or the summed dense buffer), with the residual updated. Returns the
        average (written into ``dest`` when given; ``None`` with ``average=False``, which
        only updates the residual) and the error to raise, if any (the average is then
        zero)."""
        if out.mode == "sparse":
            flags, parts = [], []
            for b in received:
                flag, idx, vals = unpack(b.cpu(), out.cap, out.dtype, out.numel)
                flags.append(flag)
                parts.append((idx, vals))
        else:
            summed = received.to(device)
            flags = [int(v != 0) for v in summed[out.numel:].cpu().tolist()]
        self._finish(out, flags)
        if not average:
            return None, None
        if any(flags):
            bad = [r for r, f in enumerate(flags) if f]
            over = [r for r, f in enumerate(flags) if f == _OVERFLOW]
            err = (nonfinite_error(bad, out.key, self.iter, over)
                   if self.config.nonfinite == "raise" else None)
            zero = torch.zeros(out.numel, dtype=out.dtype, device=device)
            if dest is not None:
                dest.copy_(zero)
                zero = dest
            return zero, err
        if out.mode == "sparse":
            return aggregate(out.numel, out.dtype, parts, device, dest), None
        if dest is not None:
            dest.copy_(summed[: out.numel])
            return dest, None
        return summed[: out.numel].clone(), None

    def _finish(self, out: Outgoing, flags: list[int]) -> None:
        """Update the residual once every rank's flag is known."""
        pend = self._pending.pop(out.key)
        acc = pend.acc
        if acc is None or not self.config.error_feedback:
            return
        old = self.memory.get(out.key)
        local_ok = pend.idx is not None or pend.sent_all
        if not any(flags):
            if pend.sent_all and pend.held:
                # everything was sent except the held parameters, whose residual stays
                mask = torch.ones(acc.numel(), dtype=torch.bool)
                for off, n in pend.held:
                    mask[off : off + n] = False
                acc[mask] = 0
                self.memory[out.key] = acc
            elif pend.sent_all:
                self.memory.pop(out.key, None)  # everything was sent: the residual is zero
                self._spare[out.key] = acc
                acc = None
            else:
                assert pend.idx is not None and pend.vals is not None
                acc[pend.idx] -= pend.vals.to(acc.dtype)
                self.memory[out.key] = acc
        elif self.config.nonfinite == "skip" and local_ok:
            self.memory[out.key] = acc  # nothing applied this step; keep the finite local sum
        else:
            self._spare[out.key] = acc  # residual unchanged; the buffer is free again
            return
        if old is not None and old is not self.memory.get(out.key):
            self._spare[out.key] = old
