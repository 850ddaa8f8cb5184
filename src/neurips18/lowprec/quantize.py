"""Rounding float32 tensors to a narrower :class:`~neurips18.lowprec.FloatFormat`.

The rounding works on the bit pattern of float32 (no table look-ups, no float64):

* normal results: round-to-nearest-even adds ``2**(s-1) - 1 + lsb`` to the integer
  representation and clears the ``s = 23 - man_bits`` low bits, letting a mantissa carry
  ripple into the exponent; stochastic rounding adds ``s`` uniform random bits instead and
  truncates, so the probability of rounding up is exactly the discarded fraction of an ulp
  (Wang et al. 2018, Sec. 3: ``round(x) = floor(x) + eps`` with probability
  ``(x - floor(x)) / eps``);
* subnormal results: the 24-bit significand is shifted right by a per-element amount and
  rounded the same way, then scaled back by the subnormal spacing ``2**(emin - man_bits)``
  (exact in float32 for every supported format).

Random bits for stochastic rounding come from a counter-based hash (two rounds of a
32-bit integer mixer over the element index) keyed by two 32-bit words drawn from the
caller's ``torch.Generator``. Results are therefore a pure function of the tensor, the format
and the generator state, identical with and without ``torch.compile`` and on any thread
count, and each call advances the generator by one small draw. Stochastic rounding is exactly
unbiased for results in the normal range; for subnormal results the noise has 30 bits, so
the probability of rounding up is exact to 2**-30 of an ulp.

Execution: on CPU the kernel runs as one call into a small native (C) library with the same
bit manipulation and the same hash (:mod:`neurips18.lowprec._native`, built with the system C
compiler at first use, never at import; ``NEURIPS18_LOWPREC_NATIVE=0`` disables it), except
for tensors of ``>= 2**20`` elements while PyTorch uses several threads. Otherwise tensors of
``>= 2**12`` elements go through a ``torch.compile``-d version of the kernel (compiled at first
use; set ``NEURIPS18_LOWPREC_COMPILE=0`` to stay in eager mode) and smaller ones through the
eager kernel. All paths give identical bits.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from neurips18._validation import InstanceOf, Options, as_torch_generator, check, check_tensor
from neurips18.lowprec import _native
from neurips18.lowprec.formats import FORMAT, FloatFormat

Rounding = Literal["nearest", "stochastic"]
_ROUNDINGS = ("nearest", "stochastic")
_COMPILE_MIN_NUMEL = 1 << 12
_NATIVE_MT_MIN_NUMEL = 1 << 20  # with several threads, larger tensors use the compiled kernel
_INF_BITS = 0x7F800000
_MASK32 = 0xFFFFFFFF
_HASH_MUL = 0x45D9F3B  # < 2**27, so products of 32-bit values stay below 2**59 in int64

# index of each constant in the int32 constant vector
_SHIFT, _HALF, _LSBM, _KEEP, _LOW, _MINN, _MAXB, _OVFB, _SUBB, _SUBOK = range(10)


@functools.lru_cache(maxsize=64)
def _constants_cpu(fmt: FloatFormat) -> tuple[torch.Tensor, torch.Tensor]:
    m = fmt.man_bits
    shift = 23 - m
    keep = ~((1 << shift) - 1)
    max_bits = ((fmt.emax + 127) << 23) | (((1 << m) - 1) << shift)
    ovf_bits = _INF_BITS if fmt.overflow == "inf" else max_bits
    ints = torch.tensor(
        [
            shift,
            (1 << (shift - 1)) - 1 if shift > 0 else 0,
            1 if shift > 0 else 0,
            keep,
            (1 << shift) - 1,
            (fmt.emin + 127) << 23,  # bits of the smallest normal
            max_bits,
            ovf_bits,
            150 + fmt.emin - m,  # right shift of the significand for a biased exponent of 0
            1 if fmt.subnormals else 0,
        ],
        dtype=torch.int32,
    )
    q = torch.tensor(2.0 ** (fmt.emin - m), dtype=torch.float32)  # subnormal spacing
    return ints, q


def _constants(fmt: FloatFormat, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ints, q = _constants_cpu(fmt)
    if device.type != "cpu":
        return ints.to(device), q.to(device)
    return ints, q


def _mix(h: torch.Tensor) -> torch.Tensor:
    h = (((h >> 16) ^ h) * _HASH_MUL) & _MASK32
    h = (((h >> 16) ^ h) * _HASH_MUL) & _MASK32
    return (h >> 16) ^ h


def _noise(n: int, key: torch.Tensor, device: torch.device) -> torch.Tensor:
    """32 random bits per element (as int32 in [0, 2**31) after masking), from the key."""
    idx = torch.arange(n, dtype=torch.int64, device=device)
    h = _mix((idx & _MASK32) ^ key[0])
    h = _mix(h ^ key[1] ^ (idx >> 32))
    return (h & 0x7FFFFFFF).to(torch.int32)


def _round_normal(a: torch.Tensor, c: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """Round magnitudes ``a`` (int32 bit patterns) assuming a normal result."""
    if noise is None:
        r = (a + c[_HALF] + ((a >> c[_SHIFT]) & c[_LSBM])) & c[_KEEP]
    else:
        r = (a + (noise & c[_LOW])) & c[_KEEP]
    return torch.where(r > c[_MAXB], c[_OVFB], r)


def _round_subnormal(a: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
                     noise: torch.Tensor | None) -> torch.Tensor:
    """Round magnitudes ``a`` assuming a subnormal result (bit patterns of the result)."""
    e = a >> 23
    sig = (a & 0x7FFFFF) | ((e > 0).to(torch.int32) << 23)
    s = c[_SUBB] - torch.clamp(e, min=1)
    z = (s < 1).to(torch.int32)  # s == 0 (float32 subnormals into FP32): shift by 1 from 2*sig
    sig = sig << z
    s = s + z
    s_c = torch.clamp(s, min=1, max=30)  # elements in the normal range get a harmless 1
    if noise is None:
        half = (torch.ones_like(s_c) << (s_c - 1)) - 1
        n = (sig + half + ((sig >> s_c) & 1)) >> s_c
    else:
        sig = sig >> torch.clamp(s - s_c, min=0)  # only far below range: drops bits < 2**-30
        low = (torch.ones_like(s_c) << s_c) - 1
        n = (sig + (noise & low)) >> s_c
    # without subnormals, anything that does not round up to the smallest normal is zero
    n = n * torch.clamp(c[_SUBOK] + (n >> (23 - c[_SHIFT])), max=1)
    return (n.to(torch.float32) * q).view(torch.int32)


def _kernel(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
            noise: torch.Tensor | None) -> torch.Tensor:
    """Round flat float32 ``x``; ``noise`` (int32, >= 0) selects stochastic rounding.

    Branch-free: every element goes through both the normal and the subnormal path (this is
    the version that gets compiled).
    """
    b = x.view(torch.int32)
    a = b & 0x7FFFFFFF
    r = torch.where(a < c[_MINN], _round_subnormal(a, c, q, noise), _round_normal(a, c, noise))
    out = torch.where(a >= _INF_BITS, b, (b & -0x80000000) | r)  # NaN and inf pass through
    return out.view(torch.float32)


def _kernel_eager(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
                  noise: torch.Tensor | None) -> torch.Tensor:
    """Same results as :func:`_kernel`, with fewer operations on typical data.

    The subnormal and non-finite paths only run when some element needs them, which cuts
    the per-call overhead that dominates the sequential accumulation loops.
    """
    b = x.view(torch.int32)
    a = b & 0x7FFFFFFF
    r = _round_normal(a, c, noise)
    small = a < c[_MINN]
    if bool(small.any()):
        r = torch.where(small, _round_subnormal(a, c, q, noise), r)
    r = r | (b & -0x80000000)
    special = a >= _INF_BITS
    if bool(special.any()):
        r = torch.where(special, b, r)
    return r.view(torch.float32)


@functools.lru_cache(maxsize=64)
def _np_constants(fmt: FloatFormat) -> tuple[Any, ...]:
    ints, q = _constants_cpu(fmt)
    return (*(np.int32(v) for v in ints.tolist()), np.float32(q.item()))


def round_nearest_np(x: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Internal: nearest rounding of a float32 NumPy array (same results as the torch kernel).

    Used for the many tiny roundings of sequential accumulation, where NumPy's per-call
    overhead is several times lower than torch's.
    """
    shift, half, lsbm, keep, _low, minn, maxb, ovfb, subb, subok, q = _np_constants(fmt)
    b = x.view(np.int32)
    a = b & np.int32(0x7FFFFFFF)
    r = (a + half + ((a >> shift) & lsbm)) & keep
    r = np.where(r > maxb, ovfb, r)
    small = a < minn
    if small.any():
        e = a >> 23
        sig = (a & np.int32(0x7FFFFF)) | ((e > 0).astype(np.int32) << 23)
        s = subb - np.maximum(e, 1)
        z = (s < 1).astype(np.int32)
        sig = sig << z
        s_c = np.clip(s + z, 1, 30).astype(np.int32)
        hv = (np.int32(1) << (s_c - 1)) - 1
        n = (sig + hv + ((sig >> s_c) & 1)) >> s_c
        n = n * np.minimum(subok + (n >> (23 - shift)), 1)
        sub = (n.astype(np.float32) * q).view(np.int32)
        r = np.where(small, sub, r)
    r = r | (b & np.int32(-0x80000000))
    special = a >= _INF_BITS
    if special.any():
        r = np.where(special, b, r)
    return r.view(np.float32)


@functools.cache
def _compiled(stochastic: bool) -> Callable[..., torch.Tensor] | None:
    if os.environ.get("NEURIPS18_LOWPREC_COMPILE", "1") == "0":
        return None
    try:
        if stochastic:
            def fn(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
                   key: torch.Tensor) -> torch.Tensor:
                return _kernel(x, c, q, _noise(x.numel(), key, x.device))
        else:
            def fn(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor,  # type: ignore[misc]
                   key: torch.Tensor) -> torch.Tensor:
                return _kernel(x, c, q, None)
        return torch.compile(fn, dynamic=True)
    except Exception:  # pragma: no cover - depends on the installation
        return None


_compile_failed: set[bool] = set()


def native_ok(x: torch.Tensor) -> bool:
    """Internal: use the native kernels for this (flat, contiguous) tensor?

    On CPU, whenever they are available, except for large tensors when PyTorch runs
    several threads (the compiled kernel is multi-threaded, the native one is not).
    """
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if x.numel() >= _NATIVE_MT_MIN_NUMEL and torch.get_num_threads() > 1:
        return False
    return _native.available()


def _run(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor, key: torch.Tensor | None) -> Any:
    if native_ok(x):
        return _native.round_(x, c, q, key)
    stochastic = key is not None
    if x.numel() >= _COMPILE_MIN_NUMEL and stochastic not in _compile_failed:
        fn = _compiled(stochastic)
        if fn is not None:
            try:
                return fn(x, c, q, key if key is not None else c)
            except Exception as exc:  # pragma: no cover - depends on the installation
                _compile_failed.add(stochastic)
                warnings.warn(f"torch.compile of the quantize kernel failed ({exc!r}); "
                              "using the eager kernel", RuntimeWarning, stacklevel=3)
    noise = None if key is None else _noise(x.numel(), key, x.device)
    return _kernel_eager(x, c, q, noise)


@functools.cache
def _compiled_step(kind: str) -> Callable[..., torch.Tensor] | None:
    """Compiled nearest-rounding accumulation step.

    ``kind``: "plain" ``round(acc + u)``; "product" ``round(acc + round(u * v))``;
    "rounded" ``round(acc + round(u))``.
    """
    if os.environ.get("NEURIPS18_LOWPREC_COMPILE", "1") == "0":
        return None
    try:
        def fn(acc: torch.Tensor, u: torch.Tensor, v: torch.Tensor, c: torch.Tensor,
               q: torch.Tensor) -> torch.Tensor:
            if kind == "product":
                u = _kernel((u * v).reshape(-1), c, q, None).reshape(acc.shape)
            elif kind == "rounded":
                u = _kernel(u.reshape(-1), c, q, None).reshape(acc.shape)
            return _kernel((acc + u).reshape(-1), c, q, None).reshape(acc.shape)

        return torch.compile(fn, dynamic=True)
    except Exception:  # pragma: no cover
        return None


def round_nearest_(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Internal: nearest rounding of a float32 tensor with precomputed constants."""
    return _run(x.contiguous().reshape(-1), c, q, None).reshape(x.shape)  # type: ignore[no-any-return]


def add_round(acc: torch.Tensor, u: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
              v: torch.Tensor | None = None, round_u: bool = False) -> torch.Tensor:
    """Internal: ``round(acc + u)``; ``round(acc + round(u * v))`` when ``v`` is given;
    ``round(acc + round(u))`` with ``round_u``.

    ``acc`` has the broadcast shape of the result. Tensors of >= 2**12 elements use one
    fused compiled kernel; small ones the eager kernel.
    """
    kind = "product" if v is not None else ("rounded" if round_u else "plain")
    if acc.numel() >= _COMPILE_MIN_NUMEL and False not in _compile_failed:
        fn = _compiled_step(kind)
        if fn is not None:
            try:
                return fn(acc, u, u if v is None else v, c, q)
            except Exception as exc:  # pragma: no cover
                _compile_failed.add(False)
                warnings.warn(f"torch.compile of the accumulation kernel failed ({exc!r}); "
                              "using the eager kernel", RuntimeWarning, stacklevel=2)
    if v is not None:
        u = _kernel_eager((u * v).reshape(-1), c, q, None).reshape(acc.shape)
    elif round_u:
        u = _kernel_eager(u.contiguous().reshape(-1), c, q, None).reshape(acc.shape)
    return _kernel_eager((acc + u).reshape(-1), c, q, None).reshape(acc.shape)


def _check_format(fmt: object, name: str = "fmt") -> FloatFormat:
    return check(name, fmt, FORMAT)  # type: ignore[no-any-return]


def _as_float32(x: object, name: str = "x", fmt: FloatFormat | None = None) -> torch.Tensor:
    """Checked float32 copy of ``x``; with ``fmt``, float64 values go through
    :func:`_float64_to_float32` so that rounding the result to ``fmt`` rounds ``x``
    correctly (a plain cast followed by that rounding may round twice)."""
    t: torch.Tensor = check_tensor(name, x, floating=True, finite=False, nonempty=False)
    if fmt is not None and t.dtype == torch.float64:
        return _float64_to_float32(t.detach(), fmt).contiguous()
    return t.detach().to(torch.float32).contiguous()


def draw_key(generator: torch.Generator | None, device: torch.device | None = None
             ) -> torch.Tensor:
    """Draw the two 32-bit words that key one stochastic-rounding call."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    key = torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64, device=gdev)
    return key if device is None or key.device == device else key.to(device)


def round_float32(xf: torch.Tensor, fmt: FloatFormat, key: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Internal: round a float32 tensor (nearest, or stochastic with the noise ``key``).

    The unchecked core of :func:`quantize` for the layers and the optimizer."""
    if xf.numel() == 0:
        return xf.clone()
    c, q = _constants(fmt, xf.device)
    with torch.no_grad():
        return _run(xf.contiguous().reshape(-1), c, q, key).reshape(xf.shape)  # type: ignore[no-any-return]


_F32_MAX = float(torch.finfo(torch.float32).max)


def _float64_to_float32(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """float64 -> float32 so that rounding the result to ``fmt`` rounds ``x`` correctly.

    A float32 round-to-nearest cast followed by a second rounding can land on the wrong side
    of a tie (double rounding). Rounding to odd instead -- truncate, then set the lowest bit
    when the cast was inexact -- keeps the information of the discarded bits, and makes the
    second rounding correct whenever float32 has at least two more significand bits than
    ``fmt`` (``man_bits <= 21``; Boldo & Melquiond 2008). Wider formats take the plain cast
    (exactly right for ``FP32``, where the cast is the rounding).
    """
    y = x.to(torch.float32)
    if fmt.man_bits > 21:
        if fmt.overflow == "saturate":  # a finite x beyond float32's range: not inf
            big = torch.isinf(y) & torch.isfinite(x)
            y = torch.where(big, torch.copysign(torch.full_like(y, _F32_MAX), y), y)
        return y
    back = y.to(torch.float64)
    inexact = (back != x) & torch.isfinite(x)
    too_big = inexact & (back.abs() > x.abs())  # the cast rounded away from zero
    y = torch.where(too_big, torch.nextafter(y, torch.zeros_like(y)), y)
    bits = y.view(torch.int32)
    return torch.where(inexact, bits | 1, bits).view(torch.float32)


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, fmt: FloatFormat, key: torch.Tensor | None
                ) -> torch.Tensor:  # type: ignore[override]
        return _quantize(x, fmt, key)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        return grad, None, None


def _quantize(x: torch.Tensor, fmt: FloatFormat, key: torch.Tensor | None) -> torch.Tensor:
    xd = x.detach()
    if xd.dtype == torch.float64:
        return round_float32(_float64_to_float32(xd, fmt), fmt, key).to(torch.float64)
    return round_float32(xd.to(torch.float32), fmt, key)


def quantize(x: torch.Tensor, fmt: FloatFormat, rounding: Rounding = "nearest",
             generator: torch.Generator | int | None = None, *,
             straight_through: bool = False) -> torch.Tensor:
    """Round ``x`` to the nearest (or a stochastically chosen) value of ``fmt``.

    Parameters
    ----------
    x : floating-point tensor. float32 and float64 inputs keep their dtype; float16 and
        bfloat16 inputs give float32 (most formats' values do not all fit in half
        precision). float64 is rounded correctly (through float32 rounded to odd) for every
        format with at most 21 mantissa bits. Stochastic rounding of float64 draws on that
        float32 value: its probabilities are exact to within a float32 ulp of ``x``
        (2^-24 relative; negligible for FP8 formats), and with more than 21 mantissa bits
        (FP32) it is the float32 cast, rounded to nearest.
    fmt : the target :class:`FloatFormat`.
    rounding : ``"nearest"`` (round half to even, IEEE default) or ``"stochastic"`` (round up
        with probability equal to the distance from the lower neighbour in ulps; unbiased).
    generator : ``torch.Generator`` or int seed for stochastic rounding (torch's default
        generator if None); ignored for nearest rounding. An int seed gives the same
        rounding on every call.
    straight_through : gradients. By default the result is detached from ``x``'s autograd
        graph (rounding has zero derivative almost everywhere); with ``True`` it carries
        the straight-through estimator instead (the gradient passes through unchanged).

    Returns
    -------
    A new tensor of ``x``'s shape whose values are all representable in ``fmt`` (with
    +-inf, NaN and -0 preserved). ``x`` itself is never modified.
    """
    check_tensor("x", x, floating=True, finite=False, nonempty=False)
    fmt = check("fmt", fmt, FORMAT)
    rounding = check("rounding", rounding, Options(_ROUNDINGS))
    straight_through = check("straight_through", straight_through,
                             InstanceOf(bool, "True or False"))
    key = None
    if rounding == "stochastic":
        key = draw_key(as_torch_generator(generator, allow_none=True), x.device)
    elif generator is not None:
        as_torch_generator(generator)  # a wrong generator is an error even when unused
    if straight_through and x.requires_grad:
        return _StraightThrough.apply(x, fmt, key)  # type: ignore[no-any-return]
    return _quantize(x, fmt, key)


def is_representable(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Boolean mask of the elements of ``x`` that ``fmt`` represents exactly (NaN counts)."""
    check_tensor("x", x, floating=True, finite=False, nonempty=False)
    fmt = check("fmt", fmt, FORMAT)
    xd = x.detach()
    if xd.dtype != torch.float64:
        xd = xd.to(torch.float32)
    y = _quantize(xd, fmt, None)
    return (y == xd) | (torch.isnan(xd) & torch.isnan(y))
