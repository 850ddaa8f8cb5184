"""Chunk-based accumulation in a narrow floating-point format.

Wang et al. (NeurIPS 2018, arXiv:1812.08011, Sec. 3) show that summing a long dot product
in FP16 (1-6-9) loses most of the small addends once the running sum has grown
("swamping"): every addition rounds to the sum's ulp. Cutting the sum into chunks of length
``CL``, summing each chunk in FP16 and then summing the chunk results in FP16 keeps every
running sum short.

Error (u = 2**-(man_bits+1), unit roundoff of the accumulation format; S = sum |x_i|):

* sequential (``chunk >= n`` or ``chunk == 1``): |error| <= (n - 1) u S to first order, and
  in practice a sum of many same-sign terms stalls once the terms fall below half an ulp of
  the running sum (relative error -> 1 for n u >> 1);
* chunked, exact mode: |error| <= (CL - 1 + n/CL) u S to first order when the terms are
  representable in the format (add u S if they must be rounded first), minimised near
  CL = sqrt(n);
* chunked, fast mode (each chunk summed in float32, then rounded once, chunk results summed
  in the format): |error| <= (n/CL + 1) u S + (CL - 1) 2**-24 S.

Terms are first rounded to the accumulation format (in ``chunked_matmul``: each product,
formed in float32, which is exact when both inputs are E5M2 and the format is E6M9, as in
the paper). Each addition is then done in float32 and rounded to nearest-even in the format;
for formats with ``man_bits <= 10`` this equals the correctly rounded sum, because float32
has at least 2p + 2 significand bits (p = man_bits + 1), which makes double rounding
innocuous. Wider formats (``man_bits > 10``) may see a rare double-rounding difference.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from neurips18._validation import Interval, Options, check, invalid
from neurips18.lowprec import _native
from neurips18.lowprec.formats import FloatFormat
from neurips18.lowprec.quantize import (
    _as_float32,
    _check_format,
    _constants,
    add_round,
    round_nearest_,
    round_nearest_np,
)

_NUMPY_MAX_NUMEL = 1 << 12  # below this, sequential loops run in NumPy (less call overhead)
_FAST_LOOP_MIN_NUMEL = 1 << 16  # fast mode without native kernels: per-chunk GEMMs
_PARTIALS_BUDGET = 1 << 22  # fast mode: at most this many chunk results in memory at once


def _accumulate(terms: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Sum ``terms`` along dim 0 in order, rounding every addition to nearest in ``fmt``.

    Starts from +0, so the first term is itself rounded. Vectorised over the other dims.
    """
    out_shape = terms.shape[1:]
    if _native.usable(terms):
        out = torch.empty(out_shape, dtype=torch.float32)
        return _native.accumulate_(out, terms.contiguous(), *_constants(fmt, terms.device),
                                   round_terms=False, init=True)
    if terms.device.type == "cpu" and terms[0].numel() <= _NUMPY_MAX_NUMEL:
        t = terms.contiguous().numpy()
        acc = np.zeros(out_shape, dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in torch
            for i in range(t.shape[0]):
                acc = round_nearest_np(acc + t[i], fmt)
        return torch.from_numpy(acc)
    c, q = _constants(fmt, terms.device)
    acc_t = torch.zeros(out_shape, dtype=torch.float32, device=terms.device)
    for i in range(terms.shape[0]):
        acc_t = add_round(acc_t, terms[i], c, q)
    return acc_t

Mode = Literal["exact", "fast"]
_MODES = ("exact", "fast")


CHUNK = Interval(int, 1, None)
MODE = Options(_MODES)


def _check_chunk(chunk: object) -> int:
    return check("chunk", chunk, CHUNK)  # type: ignore[no-any-return]


def _low_bit_stats(x: torch.Tensor) -> tuple[int, float, float, float] | None:
    """(significand bits, smallest lowest-set-bit value, min |x| > 0, max |x|) of a tensor.

    None if ``x`` holds a non-finite value or a float32 subnormal (then no shortcut).
    """
    bits = x.reshape(-1).view(torch.int32) & 0x7FFFFFFF
    nz = bits[bits != 0]
    if nz.numel() == 0:
        return 1, float("inf"), float("inf"), 0.0
    if bool(((nz >= 0x7F800000) | (nz < 0x00800000)).any()):
        return None
    mant = (nz & 0x7FFFFF) | 0x800000
    low = mant & -mant  # lowest set bit of the 24-bit significand
    tz = torch.log2(low.to(torch.float32)).round().to(torch.int32)
    sig = int((24 - tz).max())
    exp = (nz >> 23) - 127
    lowbit = float(torch.exp2((exp - 23 + tz).min().to(torch.float32)))
    mag = nz.view(torch.float32)
    return sig, lowbit, float(mag.min()), float(mag.max())


def _products_exact(a: torch.Tensor, b: torch.Tensor, fmt: FloatFormat) -> bool:
    """True if every product a[i,k] * b[k,j] is exactly representable in ``fmt``.

    Checked from per-tensor bounds (significand widths, lowest set bits, magnitudes): this
    holds for E5M2 inputs and an E6M9 accumulator, where the paper's hardware multiplies
    exactly, and lets the exact mode skip rounding the products.
    """
    sa, sb = _low_bit_stats(a), _low_bit_stats(b)
    if sa is None or sb is None:
        return False
    if sa[0] + sb[0] > fmt.man_bits + 1:
        return False
    if sa[3] * sb[3] > fmt.max_value:
        return False
    if fmt.subnormals:
        return sa[1] * sb[1] >= fmt.min_subnormal
    return sa[2] * sb[2] >= fmt.min_normal


def chunked_sum(x: torch.Tensor, acc_fmt: FloatFormat, chunk: int = 64,
                dim: int = -1, mode: Mode = "exact") -> torch.Tensor:
    """Sum ``x`` along ``dim`` in ``acc_fmt`` with chunk-based accumulation.

    The terms are rounded to ``acc_fmt`` first (float64 terms correctly, as by
    :func:`~neurips18.lowprec.quantize`); then every addition is rounded to
    nearest-even in ``acc_fmt``: inside each chunk of ``chunk``
    consecutive elements, then across the chunk results in order. ``chunk=1`` (or any
    ``chunk >= x.shape[dim]``) is plain sequential accumulation. The loops run over the chunk
    length and the number of chunks, vectorised over everything else. ``mode="fast"`` sums
    each chunk in float32 and rounds only between chunks (as in :func:`chunked_matmul`).

    Returns a float32 tensor with ``dim`` removed, representable in ``acc_fmt``. It carries
    no gradient: this is the emulation's kernel, not a differentiable op (train through the
    layers of :func:`~neurips18.lowprec.convert_to_fp8`, whose backward pass uses it).
    """
    acc_fmt = _check_format(acc_fmt, "acc_fmt")
    chunk = _check_chunk(chunk)
    mode = check("mode", mode, MODE)
    xf = _as_float32(x, fmt=acc_fmt)  # float64 terms: one correct rounding, as quantize
    if xf.dim() == 0:
        raise invalid("x", x, "at least one dimension to sum over")
    dim = check("dim", dim, Interval(int, -xf.dim(), xf.dim() - 1))
    xm = xf.movedim(dim, -1)
    lead = xm.shape[:-1]
    n = xm.shape[-1]
    if n == 0:
        return torch.zeros(lead, dtype=torch.float32, device=xf.device)
    cl = min(chunk, n)
    nc = -(-n // cl)
    rows = round_nearest_(xm.reshape(-1, n), *_constants(acc_fmt, xf.device))
    if nc * cl != n:  # zero padding adds nothing: round(s + 0) == s for representable s
        rows = torch.nn.functional.pad(rows, (0, nc * cl - n))
    blocks = rows.reshape(-1, nc, cl)
    with torch.no_grad():
        if mode == "fast":
            partial = round_nearest_(blocks.sum(-1), *_constants(acc_fmt, xf.device))
        else:
            partial = _accumulate(blocks.permute(2, 0, 1), acc_fmt)  # (B, nc): chunk sums
        total = _accumulate(partial.t(), acc_fmt)  # (B,): sum of the chunk sums
    return total.reshape(lead)


def chunked_matmul(a: torch.Tensor, b: torch.Tensor, acc_fmt: FloatFormat, chunk: int = 64,
                   mode: Mode = "exact") -> torch.Tensor:
    """Matrix product ``a @ b`` accumulated in ``acc_fmt`` with chunks of length ``chunk``.

    Parameters
    ----------
    a, b : floating tensors of shapes (..., M, K) and (..., K, N); leading (batch)
        dimensions broadcast as in :func:`torch.matmul`, and each matrix of the batch is
        multiplied as a 2-D product. The caller quantizes them to the data format first
        (e.g. ``quantize(a, E5M2)``); they are used as given, in float32 (a float64
        value that float32 does not hold is cast to float32 first).
    acc_fmt : accumulation format (the paper: ``E6M9``).
    chunk : chunk length CL along K (the paper: 64).
    mode : ``"exact"`` rounds every product and every addition to ``acc_fmt``, inside the
        chunks and between them (a loop over K, vectorised over the M x N outputs);
        ``"fast"`` sums each chunk in float32 (one batched matmul), rounds each chunk result
        to ``acc_fmt`` and adds the chunk results in order with rounding. See the module
        docstring for the error of each.

    Returns a float32 tensor of shape (..., M, N) representable in ``acc_fmt``. It carries
    no gradient: this is the emulation's kernel, not a differentiable op (train through the
    layers of :func:`~neurips18.lowprec.convert_to_fp8`, whose backward pass uses it).
    """
    acc_fmt = _check_format(acc_fmt, "acc_fmt")
    chunk = _check_chunk(chunk)
    mode = check("mode", mode, MODE)
    af = _as_float32(a, "a")
    bf = _as_float32(b, "b")
    if af.dim() < 2:
        raise invalid("a", a, "at least 2 dimensions (..., M, K)")
    if bf.dim() < 2:
        raise invalid("b", b, "at least 2 dimensions (..., K, N)")
    if af.shape[-1] != bf.shape[-2]:
        raise invalid("b", b, f"{af.shape[-1]} rows to match a of shape {tuple(af.shape)}")
    if af.device != bf.device:
        raise invalid("b", b, f"a tensor on a's device {af.device}, not {bf.device}")
    try:
        lead = torch.broadcast_shapes(af.shape[:-2], bf.shape[:-2])
    except RuntimeError:
        raise invalid("b", b, f"batch dimensions that broadcast with a's "
                      f"{tuple(af.shape[:-2])}") from None
    if not lead:
        return _matmul(af, bf, acc_fmt, chunk, mode)
    return batched_matmul(af.expand(*lead, *af.shape[-2:]), bf.expand(*lead, *bf.shape[-2:]),
                          acc_fmt, chunk, mode)


def batched_matmul(a: torch.Tensor, b: torch.Tensor, acc_fmt: FloatFormat, chunk: int,
                   mode: Mode) -> torch.Tensor:
    """Internal: :func:`chunked_matmul` of checked float32 tensors (..., M, K) @ (..., K, N)
    with equal batch dimensions: the 2-D product of each batch element, with its chunking.

    In fast mode the chunk products of the whole batch come from one batched matmul per
    group of chunks and are accumulated by one call, as in the 2-D case."""
    lead = a.shape[:-2]
    m, k = a.shape[-2:]
    n = b.shape[-1]
    a3 = a.reshape(-1, m, k)
    b3 = b.reshape(-1, k, n)
    g = a3.shape[0]
    if g * m * n == 0 or k == 0:
        return torch.zeros((*lead, m, n), dtype=torch.float32, device=a.device)
    if mode == "exact" or g == 1:
        out = torch.stack([_matmul(a3[i], b3[i], acc_fmt, chunk, mode) for i in range(g)])
        return out.reshape(*lead, m, n)
    c, q = _constants(acc_fmt, a.device)
    cl = min(chunk, k)
    nc = -(-k // cl)
    with torch.no_grad():
        if nc == 1:
            out = torch.bmm(a3, b3)
            if _native.usable(out):
                return _native.round_sum1_(out, c, q).reshape(*lead, m, n)
            return (round_nearest_(out, c, q) + 0.0).reshape(*lead, m, n)
        out = torch.empty((g, m, n), dtype=torch.float32, device=a.device)
        group = max(1, min(nc, _PARTIALS_BUDGET // (g * m * n)))
        for g0 in range(0, nc, group):
            g1 = min(nc, g0 + group)
            buf = torch.empty((g1 - g0, g, m, n), dtype=torch.float32, device=a.device)
            for i in range(g0, g1):
                lo, hi = i * cl, min((i + 1) * cl, k)
                torch.bmm(a3[:, :, lo:hi], b3[:, lo:hi, :], out=buf[i - g0])
            if _native.usable(out, buf):
                _native.accumulate_(out, buf, c, q, round_terms=True, init=g0 == 0)
            else:
                parts = round_nearest_(buf, c, q)
                acc = torch.zeros_like(out) if g0 == 0 else out
                for j in range(parts.shape[0]):
                    acc = add_round(acc, parts[j], c, q)
                out = acc
    return out.reshape(*lead, m, n)


def _matmul(af: torch.Tensor, bf: torch.Tensor, acc_fmt: FloatFormat, chunk: int,
            mode: Mode) -> torch.Tensor:
    """:func:`chunked_matmul` on checked float32 2-D tensors (any strides)."""
    m, k = af.shape
    n = bf.shape[1]
    if k == 0 or m == 0 or n == 0:
        return torch.zeros((m, n), dtype=torch.float32, device=af.device)
    c, q = _constants(acc_fmt, af.device)
    cl = min(chunk, k)
    with torch.no_grad():
        if mode == "exact":
            return _matmul_exact(af, bf, acc_fmt, c, q, cl)
        return _matmul_fast(af, bf, acc_fmt, c, q, cl)


def _matmul_exact(af: torch.Tensor, bf: torch.Tensor, acc_fmt: FloatFormat, c: torch.Tensor,
                  q: torch.Tensor, cl: int) -> torch.Tensor:
    m, k = af.shape
    exact_products = _products_exact(af, bf, acc_fmt)
    if _native.usable(af, bf):  # the whole triple loop in one native call
        return _native.matmul_exact(af, bf, c, q, cl, exact_products)
    out = torch.zeros((m, bf.shape[1]), dtype=torch.float32, device=af.device)
    for i in range(-(-k // cl)):
        partial = torch.zeros_like(out)
        for kk in range(i * cl, min((i + 1) * cl, k)):
            if exact_products:  # one float32 op, then one rounding
                partial = round_nearest_(
                    torch.addcmul(partial, af[:, kk:kk + 1], bf[kk:kk + 1, :]), c, q)
            else:
                partial = add_round(partial, af[:, kk:kk + 1], c, q, bf[kk:kk + 1, :])
        out = add_round(out, partial, c, q)
    return out


def _chunk_products(af: torch.Tensor, bf: torch.Tensor, cl: int, g0: int, g1: int
                    ) -> torch.Tensor:
    """float32 products of chunks g0..g1-1 (chunk i covers k in [i*cl, (i+1)*cl)), stacked."""
    m, k = af.shape
    n = bf.shape[1]
    full = min(g1, k // cl)  # chunks g0..full-1 are complete; chunk `full` may be short
    buf = torch.empty((g1 - g0, m, n), dtype=torch.float32, device=af.device)
    if full > g0:
        a3 = af[:, g0 * cl:full * cl].unflatten(1, (full - g0, cl)).transpose(0, 1)
        b3 = bf[g0 * cl:full * cl].unflatten(0, (full - g0, cl))
        torch.bmm(a3, b3, out=buf[:full - g0])
    if g1 > full:
        torch.mm(af[:, full * cl:], bf[full * cl:], out=buf[full - g0])
    return buf


def _matmul_fast(af: torch.Tensor, bf: torch.Tensor, acc_fmt: FloatFormat, c: torch.Tensor,
                 q: torch.Tensor, cl: int) -> torch.Tensor:
    m, k = af.shape
    n = bf.shape[1]
    nc = -(-k // cl)
    if _native.usable(af, bf):  # groups of chunk products, each group accumulated in one call
        if nc == 1:  # one chunk: round the product in place
            return _native.round_sum1_(af @ bf, c, q)
        out = torch.empty((m, n), dtype=torch.float32)
        group = max(1, min(nc, _PARTIALS_BUDGET // (m * n)))
        for g0 in range(0, nc, group):
            parts = _chunk_products(af, bf, cl, g0, min(nc, g0 + group))
            _native.accumulate_(out, parts, c, q, round_terms=True, init=g0 == 0)
        return out
    out = torch.zeros((m, n), dtype=torch.float32, device=af.device)
    if m * n >= _FAST_LOOP_MIN_NUMEL:  # large outputs: one GEMM per chunk, fused rounding
        for i in range(nc):
            part = af[:, i * cl:(i + 1) * cl] @ bf[i * cl:(i + 1) * cl, :]
            out = add_round(out, part, c, q, round_u=True)
        return out
    partials = round_nearest_(_chunk_products(af, bf, cl, 0, nc), c, q)
    return _accumulate(partials, acc_fmt)


# ------------------------------------------------------------------------------------------
# Fast-mode products in the layouts of an im2col convolution (internal; native kernels only).
# The errors of a convolution arrive as (B, O, L): batch, channels, output positions. These
# helpers work in that layout -- no transposed copies -- with exactly the chunking of
# ``chunked_matmul``/``chunked_sum(..., mode="fast")`` applied to the flattened matrices:
# chunks of the reduction dimension for the backward-data product, chunks of the flattened
# (batch, position) index, in row-major order, for the bias gradient.

def _grid_subset(data: FloatFormat, acc: FloatFormat) -> bool:
    """True if every finite value of ``data`` is a value of ``acc`` (rounding is a no-op).

    Every value of ``data`` is a multiple of its smallest spacing ``2**(emin - man_bits)``
    with at most ``man_bits + 1`` significant bits.
    """
    if data.man_bits > acc.man_bits or data.max_value > acc.max_value:
        return False
    if data.emin - data.man_bits < acc.emin - acc.man_bits:
        return False
    return acc.subnormals or data.min_subnormal >= acc.min_normal


def _left_fast(a: torch.Tensor, bt: torch.Tensor, fmt: FloatFormat, chunk: int
               ) -> torch.Tensor:
    """``out[b] = a @ bt[b]`` for a (M, K) and bt (B, K, L): (B, M, L), chunks along K."""
    m, k = a.shape
    bsz, _, ln = bt.shape
    c, q = _constants(fmt, a.device)
    if k == 0:
        return torch.zeros((bsz, m, ln), dtype=torch.float32)
    cl = min(chunk, k)
    nc = -(-k // cl)
    if nc == 1:  # one chunk: round the product in place
        return _native.round_sum1_(torch.bmm(a.expand(bsz, m, k), bt), c, q)
    out = torch.empty((bsz, m, ln), dtype=torch.float32)
    group = max(1, min(nc, _PARTIALS_BUDGET // max(1, bsz * m * ln)))
    for g0 in range(0, nc, group):
        g1 = min(nc, g0 + group)
        buf = torch.empty((g1 - g0, bsz, m, ln), dtype=torch.float32)
        for i in range(g0, g1):
            lo, hi = i * cl, min((i + 1) * cl, k)
            torch.bmm(a[:, lo:hi].expand(bsz, m, hi - lo), bt[:, lo:hi, :], out=buf[i - g0])
        _native.accumulate_(out, buf, c, q, round_terms=True, init=g0 == 0)
    return out


def _bl_chunks(bsz: int, ln: int, chunk: int) -> tuple[str, int] | None:
    """How chunks of the flattened (batch, position) index fall: ("split", chunks per image)
    if each image holds a whole number of chunks, ("group", images per chunk) if each chunk
    holds a whole number of images, None otherwise."""
    cl = min(chunk, bsz * ln)
    if ln % cl == 0:
        return "split", ln // cl
    if cl % ln == 0:
        return "group", cl // ln
    return None


def _sum_fast(g: torch.Tensor, fmt: FloatFormat, chunk: int) -> torch.Tensor | None:
    """``sum_{b,l} g[b, :, l]`` for g (B, M, L) (terms already representable in ``fmt``),
    chunked along the flattened (b, l) index in row-major order, as
    ``chunked_sum(g.transpose(1, 2).reshape(-1, M), fmt, chunk, dim=0, mode="fast")``;
    None if the chunks straddle images unevenly."""
    bsz, m, ln = g.shape
    how = _bl_chunks(bsz, ln, chunk)
    if how is None or bsz * ln == 0:
        return None
    c, q = _constants(fmt, g.device)
    kind, r = how
    if kind == "split":
        terms = g.reshape(bsz, m, r, ln // r).sum(-1).transpose(1, 2).reshape(-1, m)
    else:
        per_img = g.sum(-1)
        pad = -bsz % r
        if pad:
            per_img = torch.cat([per_img, per_img.new_zeros((pad, m))])
        terms = per_img.reshape(-1, r, m).sum(1)
    out = torch.empty(m, dtype=torch.float32)
    return _native.accumulate_(out, terms.contiguous(), c, q, round_terms=True, init=True)
