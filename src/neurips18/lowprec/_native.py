"""Optional native (C) kernels for the CPU emulation: rounding and sequential accumulation.

The emulation's hot loops are long chains of tiny dependent operations -- the chunk results
of a GEMM added one after the other with a rounding after each addition, and the rounding
itself (a dozen integer operations per element). In PyTorch each link of such a chain is a
separate kernel launch; here one C call runs the whole chain over a contiguous float32
buffer.

The kernels compute exactly what the PyTorch kernels of :mod:`neurips18.lowprec.quantize`
compute (same bit manipulation, same counter-based hash for the stochastic-rounding noise),
so results are identical with and without them; the tests check this bit for bit.

The C source, ``_native.c`` beside this module (shipped as package data), is plain C11 with
no Python or PyTorch headers. It is compiled with the system C compiler the first time a
kernel is needed -- never at import -- into the per-user cache
(``$NEURIPS18_CACHE_DIR``, else ``$XDG_CACHE_HOME/neurips18``, else ``~/.cache/neurips18``)
and loaded with :mod:`ctypes`, by the shared machinery of :mod:`neurips18._native`. If no
compiler is found or the build fails, every caller falls back to the PyTorch kernels. Set
``NEURIPS18_LOWPREC_NATIVE=0`` to disable the native kernels.
"""

from __future__ import annotations

import ctypes
import functools
from importlib import resources
from typing import Any

import torch

from neurips18 import _native as _build

_SOURCE = "_native.c"  # package data beside this module

_vp, _i64, _f32, _u32, _i32 = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_uint32,
                               ctypes.c_int)
_SIGNATURES: dict[str, _build.Signature] = {
    "lp_round_nearest": ([_vp, _vp, _i64, _vp, _f32], None),
    "lp_round_stochastic": ([_vp, _vp, _i64, _vp, _f32, _u32, _u32], None),
    "lp_round_sum1": ([_vp, _i64, _vp, _f32], None),
    "lp_accumulate": ([_vp, _vp, _i64, _i64, _vp, _f32, _i32, _i32], None),
    "lp_matmul_exact": ([_vp, _i64, _i64, _vp, _i64, _vp, _i64, _i64, _i64, _i64, _vp, _f32,
                         _i32], ctypes.c_int),
}


@functools.cache
def _lib() -> Any:
    source = resources.files(__package__).joinpath(_SOURCE).read_text(encoding="utf-8")
    return _build.load("lowprec", source, _SIGNATURES, switch="NEURIPS18_LOWPREC_NATIVE")


def available() -> bool:
    """True if the native kernels could be built (or loaded from the cache)."""
    return _lib() is not None


def usable(*tensors: torch.Tensor) -> bool:
    """True if the native kernels are available and every tensor is a CPU float32 tensor."""
    return (all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and _lib() is not None)


@functools.lru_cache(maxsize=64)
def _q_float(q: torch.Tensor) -> float:
    return float(q.item())


def round_(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
           key: torch.Tensor | None = None) -> torch.Tensor:
    """Round a contiguous CPU float32 tensor into a new tensor (stochastic if ``key``)."""
    lib = _lib()
    y = torch.empty_like(x)
    if key is None:
        lib.lp_round_nearest(x.data_ptr(), y.data_ptr(), x.numel(), c.data_ptr(), _q_float(q))
    else:
        k0, k1 = (int(v) for v in key.tolist())
        lib.lp_round_stochastic(x.data_ptr(), y.data_ptr(), x.numel(), c.data_ptr(),
                                _q_float(q), k0, k1)
    return y


def accumulate_(acc: torch.Tensor, terms: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
                round_terms: bool, init: bool = False) -> torch.Tensor:
    """In place: ``acc <- round(acc + terms[i])`` for every i in order (contiguous tensors,
    ``terms`` of shape ``(g, *acc.shape)``); with ``init`` ``acc`` starts at +0 (its
    contents are ignored, so it may come from ``torch.empty``). ``acc`` must not overlap
    ``terms``."""
    _lib().lp_accumulate(acc.data_ptr(), terms.data_ptr(), terms.shape[0], acc.numel(),
                         c.data_ptr(), _q_float(q), int(round_terms), int(init))
    return acc


def matmul_exact(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, q: torch.Tensor,
                 chunk: int, exact_products: bool) -> torch.Tensor:
    """Exact-mode chunked product; ``a`` any strides, ``b`` with unit column stride."""
    m, k = a.shape
    n = b.shape[1]
    if b.stride(1) != 1:
        b = b.contiguous()
    out = torch.zeros((m, n), dtype=torch.float32)
    rc = _lib().lp_matmul_exact(a.data_ptr(), a.stride(0), a.stride(1), b.data_ptr(),
                                b.stride(0), out.data_ptr(), m, k, n, chunk, c.data_ptr(),
                                _q_float(q), int(exact_products))
    if rc != 0:
        raise MemoryError("lp_matmul_exact: out of memory")
    return out


def round_sum1_(x: torch.Tensor, c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """In place ``x <- round(+0 + round(x))`` (a one-term chunked sum); contiguous ``x``."""
    _lib().lp_round_sum1(x.data_ptr(), x.numel(), c.data_ptr(), _q_float(q))
    return x
