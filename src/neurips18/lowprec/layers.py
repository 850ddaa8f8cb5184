"""Emulated FP8 training layers, the recipe that configures them, and the conversion.

Following Wang et al. (NeurIPS 2018, arXiv:1812.08011), every GEMM of a converted layer --
the forward product, the backward-data product and the weight-gradient product -- takes
its two inputs rounded to nearest in the data format (FP8, 1-5-2) and accumulates in the
accumulation format (FP16, 1-6-9) in chunks (:func:`~neurips18.lowprec.chunked_matmul`).
The first and last layers keep a wider data format (the paper keeps them in FP16).
:func:`convert_to_fp8` converts the layers of a model in place: the modules keep their
identity, parameters, hooks and training mode (only their class changes), so an optimizer
built before or after conversion still works. Pair the model with
:class:`~neurips18.lowprec.StochasticRoundingSGD` for FP16 master weights and updates.

What is emulated (everything else -- normalisation, activations, softmax, pooling, residual
additions -- runs in float32, as the paper's recipe reduces the precision of GEMMs and
weight updates):

* ``nn.Linear``: its three GEMMs; bias addition and the bias gradient (a chunked sum over
  the batch) in the accumulation format.
* ``nn.Conv1d`` / ``nn.Conv2d`` (any stride, dilation, groups -- depthwise included --,
  ``padding="same"``/``"valid"`` and every padding mode): lowered to GEMMs with im2col, one
  GEMM per group. In the backward-data pass the overlapping column gradients are added by
  ``fold`` in float32 and the result is rounded once to the accumulation format; for the
  reflect/replicate/circular padding modes the padding's adjoint adds the border gradients
  in float32 too.
* ``nn.Embedding``: the product of the one-hot inputs with the table. The forward product
  selects rows of the table rounded to the data format (exact: each sum has one term); the
  weight gradient sums the errors of every position that holds a token, chunked along the
  flattened positions as the one-hot GEMM would be.
* ``nn.MultiheadAttention`` (and so ``nn.TransformerEncoderLayer``/``DecoderLayer``):
  the input and output projections and the two batched products (scores ``Q K^T`` and
  ``P V``), see :mod:`neurips18.lowprec.attention`.
* ``nn.RNN``/``nn.LSTM``/``nn.GRU``: the input projections of all steps as one GEMM, the
  recurrent projections step by step, their weight gradients as one GEMM over all steps,
  see :mod:`neurips18.lowprec.recurrent`.

Emulation details: convolutions are lowered to GEMMs with ``unfold``; bias addition and the
bias gradient are done in the accumulation format. In a float64 model the GEMM inputs
(weights, activations and the errors of the backward pass) are rounded from their float64
values, once, as :func:`~neurips18.lowprec.quantize` rounds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from neurips18._validation import InstanceOf, Interval, Options, check, invalid
from neurips18.lowprec import _native
from neurips18.lowprec.accumulate import (
    _MODES,
    _grid_subset,
    _left_fast,
    _matmul,
    _sum_fast,
    batched_matmul,
    chunked_sum,
)
from neurips18.lowprec.formats import E5M2, E6M9, FORMAT, FloatFormat
from neurips18.lowprec.quantize import _float64_to_float32, round_float32

_RECIPE_FIELDS = {
    "data_format": (FORMAT,),
    "acc_format": (FORMAT,),
    "chunk": (Interval(int, 1, None),),
    "mode": (Options(_MODES),),
    "keep_first_last": (InstanceOf(bool, "True or False"),),
    "high_format": (FORMAT,),
    "loss_scale": (Interval(float, 0, None, closed="neither"),),
}


@dataclass(frozen=True)
class Fp8Recipe:
    """How to emulate FP8 training (defaults: the paper's recipe).

    Attributes
    ----------
    data_format : format of GEMM inputs (weights, activations, errors). Paper: E5M2.
    acc_format : accumulation format of the GEMMs. Paper: E6M9.
    chunk : chunk length of the accumulation. Paper: 64.
    mode : ``"fast"`` (float32 inside a chunk, rounding between chunks; default, fast enough
        to train on a CPU) or ``"exact"`` (rounding after every addition, as the hardware
        would; much slower). See :func:`~neurips18.lowprec.chunked_matmul`.
    keep_first_last : keep the first and the last converted layer at ``high_format``.
    high_format : data format of the layers kept at higher precision. Paper: FP16 (E6M9).
    loss_scale : the errors entering the backward GEMMs are multiplied by this before the
        FP8 rounding and divided afterwards (equivalent to scaling the loss, for these
        GEMMs); 1 disables it. A power of two keeps the division exact.
    """

    data_format: FloatFormat = E5M2
    acc_format: FloatFormat = E6M9
    chunk: int = 64
    mode: Literal["exact", "fast"] = "fast"
    keep_first_last: bool = True
    high_format: FloatFormat = E6M9
    loss_scale: float = 1.0

    def __post_init__(self) -> None:
        for name, rules in _RECIPE_FIELDS.items():
            object.__setattr__(self, name, check(name, getattr(self, name), *rules))

    def for_layer(self, high: bool) -> _LayerCfg:
        return _LayerCfg(self.high_format if high else self.data_format, self.acc_format,
                         self.chunk, self.mode, float(self.loss_scale))


class _NoHigherOrder(torch.autograd.Function):
    """Passes a gradient through; differentiating it again raises (see :func:`_first_order`)."""

    @staticmethod
    def forward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return g.clone()

    @staticmethod
    def backward(ctx: Any, _: torch.Tensor) -> Any:
        raise RuntimeError(
            "the FP8 layers have no higher-order gradients: a gradient computed with "
            "create_graph=True through an FP8 layer cannot be differentiated again (its "
            "backward GEMMs are emulated outside autograd); compute such penalties with "
            "unconverted layers")


def _first_order(backward: Any) -> Any:
    """Decorate the backward of an FP8 autograd Function.

    The emulated backward GEMMs run outside autograd, so a gradient taken with
    ``create_graph=True`` would look differentiable while treating everything the FP8
    layers computed as constants: a gradient penalty backpropagated through it got no
    gradient for the FP8 layers and a wrong one for the others. With ``create_graph``,
    every gradient the backward returns is marked so that differentiating it raises; the
    first-order values are unchanged. (``torch.autograd.function.once_differentiable``
    marks them only when an incoming gradient requires grad, which misses the common
    case of a loss's own gradient, a constant.)"""
    def wrapper(ctx: Any, *grads: Any) -> Any:
        with torch.no_grad():
            outs = backward(ctx, *grads)
        if not torch.is_grad_enabled():
            return outs
        return tuple(o if not isinstance(o, torch.Tensor)
                     else _NoHigherOrder.apply(o.detach().requires_grad_()) for o in outs)

    wrapper.__name__ = backward.__name__
    wrapper.__doc__ = backward.__doc__
    return wrapper


def _round(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """``x`` rounded to nearest in ``fmt``, as float32; float64 values are rounded once
    (a cast to float32 first could round them twice, as :func:`quantize` avoids)."""
    xd = x.detach()
    xf = _float64_to_float32(xd, fmt) if xd.dtype == torch.float64 else xd.float()
    return round_float32(xf, fmt)


def _like(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A product's float32 result, as float64 for a float64 input ``x``: autograd then
    hands the backward its errors in float64, so that they too are rounded once."""
    return y.to(torch.float64) if x.dtype == torch.float64 else y


@dataclass(frozen=True)
class _LayerCfg:
    data: FloatFormat
    acc: FloatFormat
    chunk: int
    mode: Literal["exact", "fast"]
    loss_scale: float

    def mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Chunked product of float32 matrices (any strides; no copies, no checks)."""
        return _matmul(a, b, self.acc, self.chunk, self.mode)

    def bmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Chunked product of float32 batches (B, M, K) @ (B, K, N), matrix by matrix."""
        return batched_matmul(a, b, self.acc, self.chunk, self.mode)

    def q(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` rounded to nearest in the data format (float32)."""
        return _round(x, self.data)

    def qa(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` rounded to nearest in the accumulation format (float32)."""
        return _round(x, self.acc)

    def scaled_errors(self, g: torch.Tensor) -> torch.Tensor:
        """Errors entering a backward GEMM: scaled by the loss scale, rounded to the data
        format.

        A loss scale that pushes a finite error past the format's range would turn it into
        inf (or clamp it to the largest value, for a saturating format), and the weight
        gradients into inf/NaN or a silently clipped value: that raises FloatingPointError
        naming the loss scale instead."""
        g = g if g.dtype == torch.float64 else g.float()
        if self.loss_scale == 1.0:
            return self.q(g)
        s = g * self.loss_scale
        if s.numel():
            amax = float(s.abs().amax())
            fmt = self.data
            # values from here on round past max_value (half of the top binade's step above it)
            limit = fmt.max_value + 2.0 ** (fmt.emax - fmt.man_bits - 1)
            # an inf that only the scaling made (a finite error times the scale beyond
            # float32's range) is the loss scale's doing too; an inf error is not
            if amax >= limit and (math.isfinite(amax) or bool(torch.isfinite(g).all())):
                largest = float(g.abs().amax())
                raise FloatingPointError(
                    f"loss_scale={self.loss_scale:g} makes the backward errors overflow the "
                    f"data format {fmt.name} (largest error {largest:.4g}, scaled "
                    f"{largest * self.loss_scale:.4g}; largest finite value "
                    f"{fmt.max_value:g}): use a loss_scale "
                    f"of at most {fmt.max_value / largest:.4g} (a power of two below it keeps "
                    "the unscaling exact)")
        return self.q(s)

    def unscale(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.loss_scale == 1.0 else x / self.loss_scale


def _bias_grad(g2: torch.Tensor, cfg: _LayerCfg) -> torch.Tensor:
    return chunked_sum(g2, cfg.acc, chunk=cfg.chunk, dim=0, mode=cfg.mode)


def affine(xq: torch.Tensor, wq: torch.Tensor, b: torch.Tensor | None,
           cfg: _LayerCfg) -> torch.Tensor:
    """Internal: ``xq @ wq^T`` accumulated under the recipe, plus ``b`` in the accumulation
    format (the forward product of every linear map)."""
    y = cfg.mm(xq, wq.t())
    return y if b is None else cfg.qa(y + b.detach())  # float64 bias: added in float64


class _Fp8LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x2: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                cfg: _LayerCfg) -> torch.Tensor:
        xq = cfg.q(x2)
        wq = cfg.q(w)
        y = affine(xq, wq, b, cfg)
        ctx.save_for_backward(xq, wq)
        ctx.cfg = cfg
        ctx.has_bias = b is not None
        return _like(y, x2)

    @staticmethod
    @_first_order
    def backward(ctx: Any, gy: torch.Tensor) -> Any:
        xq, wq = ctx.saved_tensors
        cfg: _LayerCfg = ctx.cfg
        gq = cfg.scaled_errors(gy)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = cfg.unscale(cfg.mm(gq, wq))
        if ctx.needs_input_grad[1]:
            gw = cfg.unscale(cfg.mm(gq.t(), xq))  # the long sum: over the batch
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = cfg.unscale(_bias_grad(gq, cfg))
        return gx, gw, gb, None


def _check_floating(x: torch.Tensor) -> None:
    """Refuse what torch's layers refuse: the emulation computes in float32 and returns the
    input's dtype, so an integer input would come back truncated."""
    if not x.is_floating_point():
        raise invalid("input", x, "a floating-point tensor")


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               cfg: _LayerCfg) -> torch.Tensor:
    """Internal: ``F.linear`` with the recipe's three GEMMs, for inputs of any rank."""
    _check_floating(x)
    lead = x.shape[:-1]
    y = _Fp8LinearFn.apply(x.reshape(-1, x.shape[-1]), weight, bias, cfg)
    return y.reshape(*lead, weight.shape[0]).to(x.dtype)  # type: ignore[union-attr]


class _Fp8BmmFn(torch.autograd.Function):
    """``a @ b`` for batches (B, M, K) and (B, K, N): both inputs rounded to the data format,
    chunked accumulation; the backward products likewise, from the scaled errors."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, cfg: _LayerCfg) -> torch.Tensor:
        aq, bq = cfg.q(a), cfg.q(b)
        ctx.save_for_backward(aq, bq)
        ctx.cfg = cfg
        return _like(cfg.bmm(aq, bq), a)

    @staticmethod
    @_first_order
    def backward(ctx: Any, gy: torch.Tensor) -> Any:
        aq, bq = ctx.saved_tensors
        cfg: _LayerCfg = ctx.cfg
        gq = cfg.scaled_errors(gy)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = cfg.unscale(cfg.bmm(gq, bq.transpose(1, 2)))
        if ctx.needs_input_grad[1]:
            gb = cfg.unscale(cfg.bmm(aq.transpose(1, 2), gq))
        return ga, gb, None


def fp8_bmm(a: torch.Tensor, b: torch.Tensor, cfg: _LayerCfg) -> torch.Tensor:
    """Internal: ``torch.bmm`` with the recipe (forward and both backward products)."""
    return _Fp8BmmFn.apply(a, b, cfg).to(a.dtype)  # type: ignore[union-attr]


class _Fp8Mixin:
    """What every converted layer has: its :class:`_LayerCfg` and a description of it."""

    cfg: _LayerCfg

    def _fp8_repr(self) -> str:
        c = self.cfg
        return f"data={c.data.name}, acc={c.acc.name}, chunk={c.chunk}, mode={c.mode}"


class Fp8Linear(_Fp8Mixin, nn.Linear):
    """``nn.Linear`` whose three GEMMs run in emulated FP8 with chunked FP16 accumulation.

    Made by :func:`convert_to_fp8` from an ``nn.Linear`` (the same module object)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x, self.weight, self.bias, self.cfg)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._fp8_repr()}"


def _im2row(x: torch.Tensor, khw: tuple[int, int], geom: tuple[Any, ...]) -> torch.Tensor:
    """(B*L, C*kh*kw) patch matrix of ``x``: row ``b*L + l`` holds the patch of output
    position ``l`` of image ``b``, columns in ``F.unfold``'s (c, i, j) order. One strided copy
    (``unfold`` followed by a transpose would copy twice)."""
    stride, padding, dilation = geom
    if padding[0] or padding[1]:
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    x = x.contiguous()
    bsz, c, h, w = x.shape
    kh, kw = khw
    ho = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    s0, s1, s2, s3 = x.stride()
    view = x.as_strided((bsz, ho, wo, c, kh, kw),
                        (s0, s2 * stride[0], s3 * stride[1], s1, s2 * dilation[0],
                         s3 * dilation[1]))
    return view.reshape(bsz * ho * wo, c * kh * kw)


class _Fp8Conv2dFn(torch.autograd.Function):
    """im2col convolution: the three GEMMs are chunked products of the flattened matrices
    (patches (B*L, K), weights (O, K), errors (B*L, O)); with ``groups`` > 1 one product
    per group (patch columns and output channels of that group). With the native kernels
    in fast mode and one group, the backward-data product and the bias gradient work on
    the errors in their (B, O, L) layout (``accumulate._left_fast``, ``_sum_fast``),
    chunking the same flattened matrices in the same order, without transposed copies."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                geom: tuple[Any, ...], groups: int, cfg: _LayerCfg) -> torch.Tensor:
        bsz, _, h, wd = x.shape
        o, _, kh, kw = w.shape
        xq = cfg.q(x)
        wq = cfg.q(w).reshape(o, -1)
        x2 = _im2row(xq, (kh, kw), geom)  # (B*L, K)
        n_pos = x2.shape[0] // bsz if bsz else 0
        stride, padding, dilation = geom
        ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        if groups == 1:
            y2 = cfg.mm(x2, wq.t())  # (B*L, O)
        else:
            xg = x2.reshape(bsz * n_pos, groups, -1).transpose(0, 1)  # (G, B*L, Kg)
            wg = wq.reshape(groups, o // groups, -1)  # (G, Og, Kg)
            y2 = cfg.bmm(xg, wg.transpose(1, 2)).transpose(0, 1).reshape(bsz * n_pos, o)
        if b is not None:
            y2 = cfg.qa(y2 + b.detach())
        ctx.save_for_backward(x2, wq)
        ctx.meta = (geom, groups, cfg, (h, wd), (kh, kw), n_pos, bsz, b is not None)
        return _like(y2.reshape(bsz, n_pos, o).transpose(1, 2).reshape(bsz, o, ho, wo), x)

    @staticmethod
    @_first_order
    def backward(ctx: Any, gy: torch.Tensor) -> Any:
        x2, wq = ctx.saved_tensors
        geom, groups, cfg, hw, khw, n_pos, bsz, has_bias = ctx.meta
        stride, padding, dilation = geom
        o = wq.shape[0]
        gq = cfg.scaled_errors(gy.reshape(bsz, o, n_pos))  # (B, O, L)
        layout = groups == 1 and cfg.mode == "fast" and _native.usable(gq, wq)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            if layout:
                gcols = _left_fast(wq.t(), gq, cfg.acc, cfg.chunk)  # (B, K, L)
            elif groups == 1:
                g2 = gq.transpose(1, 2).reshape(bsz * n_pos, o)
                gcols = cfg.mm(g2, wq).reshape(bsz, n_pos, -1).transpose(1, 2)
            else:
                gg = gq.reshape(bsz, groups, o // groups, n_pos).permute(1, 0, 3, 2)
                wg = wq.reshape(groups, o // groups, -1)  # (G, Og, Kg)
                cols = cfg.bmm(gg.reshape(groups, bsz * n_pos, o // groups), wg)
                gcols = cols.reshape(groups, bsz, n_pos, -1).permute(1, 0, 3, 2).reshape(
                    bsz, -1, n_pos)
            gx = F.fold(gcols, hw, khw, dilation=dilation, padding=padding, stride=stride)
            gx = cfg.unscale(cfg.qa(gx))
        if ctx.needs_input_grad[1]:  # the long sum: over batch x positions
            if groups == 1:
                g2t = gq.permute(1, 0, 2).reshape(o, bsz * n_pos)
                gw = cfg.mm(g2t, x2)
            else:
                gg = gq.reshape(bsz, groups, o // groups, n_pos).permute(1, 2, 0, 3)
                xg = x2.reshape(bsz * n_pos, groups, -1).transpose(0, 1)  # (G, B*L, Kg)
                gw = cfg.bmm(gg.reshape(groups, o // groups, bsz * n_pos), xg)
            gw = cfg.unscale(gw).reshape(o, -1, *khw)
        if has_bias and ctx.needs_input_grad[2]:
            gb = None
            if layout and _grid_subset(cfg.data, cfg.acc):
                gb = _sum_fast(gq, cfg.acc, cfg.chunk)
            if gb is None:
                gb = _bias_grad(gq.transpose(1, 2).reshape(bsz * n_pos, o), cfg)
            gb = cfg.unscale(gb)
        return gx, gw, gb, None, None, None


def _conv_padding(conv: nn.Conv1d | nn.Conv2d) -> list[tuple[int, int]]:
    """(before, after) padding of each spatial dimension, ``"same"``/``"valid"`` resolved
    as PyTorch does (the odd extra element of ``"same"`` goes after)."""
    ks, dil = conv.kernel_size, conv.dilation
    if conv.padding == "valid":
        return [(0, 0)] * len(ks)
    if conv.padding == "same":
        out = []
        for k, d in zip(ks, dil, strict=True):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return out
    return [(int(p), int(p)) for p in conv.padding]


def _conv2d(x: torch.Tensor, conv: nn.Conv1d | nn.Conv2d, weight: torch.Tensor,
            pads: list[tuple[int, int]], stride: tuple[int, int], dilation: tuple[int, int],
            cfg: _LayerCfg) -> torch.Tensor:
    """The emulated 2-D convolution of ``x`` with ``pads`` ((top, bottom), (left, right))."""
    _check_floating(x)
    symmetric = all(a == b for a, b in pads)
    if conv.padding_mode == "zeros" and symmetric:
        padding = (pads[0][0], pads[1][0])
    else:
        mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]), mode=mode)
        padding = (0, 0)
    y = _Fp8Conv2dFn.apply(x, weight, conv.bias, (stride, padding, dilation), conv.groups,
                           cfg)
    return y.to(x.dtype)  # type: ignore[union-attr]


class Fp8Conv2d(_Fp8Mixin, nn.Conv2d):
    """``nn.Conv2d`` with emulated FP8 GEMMs (im2col lowering, one GEMM per group)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # unbatched (C, H, W), as nn.Conv2d accepts
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 4:
            raise invalid("input", x, "a 3-D (C, H, W) or 4-D (N, C, H, W) tensor")
        return _conv2d(x, self, self.weight, _conv_padding(self),
                       (self.stride[0], self.stride[1]), (self.dilation[0], self.dilation[1]),
                       self.cfg)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._fp8_repr()}"


class Fp8Conv1d(_Fp8Mixin, nn.Conv1d):
    """``nn.Conv1d`` with emulated FP8 GEMMs (as a 2-D convolution of height 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # unbatched (C, L)
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 3:
            raise invalid("input", x, "a 2-D (C, L) or 3-D (N, C, L) tensor")
        (pad,) = _conv_padding(self)
        y = _conv2d(x.unsqueeze(2), self, self.weight.unsqueeze(2), [(0, 0), pad],
                    (1, self.stride[0]), (1, self.dilation[0]), self.cfg)
        return y.squeeze(2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._fp8_repr()}"


# ----------------------------------------------------------------------------- embedding
def _rank_in_groups(keys: torch.Tensor) -> torch.Tensor:
    """For sorted ``keys``, the position of each element within its run of equal keys."""
    _, counts = torch.unique_consecutive(keys, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(len(keys), device=keys.device) - torch.repeat_interleave(starts,
                                                                                 counts)


def _accumulate_by_rank(terms: torch.Tensor, group: torch.Tensor, rank: torch.Tensor,
                        n_groups: int, cfg: _LayerCfg) -> torch.Tensor:
    """``out[g] = round(... round(round(+0 + t_0) + t_1) ...)``: the terms of each group
    added in order of ``rank`` with a rounding to the accumulation format after each
    addition (vectorised over the groups: one step per rank)."""
    out = torch.zeros((n_groups, terms.shape[1]), dtype=torch.float32, device=terms.device)
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        sel = rank == r
        g = group[sel]
        out[g] = cfg.qa(out[g] + terms[sel])
    return out


def _embedding_grad(idx: torch.Tensor, gq: torch.Tensor, num: int,
                    cfg: _LayerCfg) -> torch.Tensor:
    """``onehot(idx)^T @ gq`` with the recipe's chunked accumulation along the positions
    (``idx`` flattened, ``gq`` (P, D) already in the data format), without forming the
    one-hot matrix: a row's sum only has terms where its token occurs (adding zero leaves
    a representable sum unchanged). Fast mode: each chunk's terms summed in float32, the
    chunk sums rounded and added in chunk order; exact mode: a rounding after each term."""
    p, d = gq.shape
    cl = min(cfg.chunk, max(p, 1))
    nc = max(1, -(-p // cl))
    pos = torch.arange(p, device=idx.device)
    # (token, chunk) in int64: with int32 indices, token * nc wraps past 2**31 (a large
    # vocabulary times many chunks) and rows would be summed into the wrong tokens
    key = idx.to(torch.int64) * nc + pos // cl
    order = torch.argsort(key, stable=True)  # by token, then chunk, then position
    key_s = key[order]
    ukey, inv = torch.unique_consecutive(key_s, return_inverse=True)
    if cfg.mode == "fast":
        partial = torch.zeros((len(ukey), d), dtype=torch.float32, device=gq.device)
        partial.index_add_(0, inv, gq[order])
        partial = cfg.qa(partial)
    else:  # round after every term inside the chunk
        partial = _accumulate_by_rank(cfg.qa(gq[order]), inv, _rank_in_groups(key_s),
                                      len(ukey), cfg)
    tok = ukey // nc
    utok, tinv = torch.unique_consecutive(tok, return_inverse=True)
    rows = _accumulate_by_rank(partial, tinv, _rank_in_groups(tok), len(utok), cfg)
    out = torch.zeros((num, d), dtype=torch.float32, device=gq.device)
    out[utok] = rows
    return out


class _Fp8EmbeddingFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, idx: torch.Tensor, w: torch.Tensor, padding_idx: int | None,
                cfg: _LayerCfg) -> torch.Tensor:
        flat = idx.reshape(-1)
        ctx.save_for_backward(flat)
        ctx.meta = (w.shape[0], padding_idx, cfg)
        return _like(cfg.q(w.detach()[flat]).reshape(*idx.shape, w.shape[1]), w)

    @staticmethod
    @_first_order
    def backward(ctx: Any, gy: torch.Tensor) -> Any:
        (flat,) = ctx.saved_tensors
        num, padding_idx, cfg = ctx.meta
        gq = cfg.scaled_errors(gy.reshape(len(flat), -1))
        gw = cfg.unscale(_embedding_grad(flat, gq, num, cfg))
        if padding_idx is not None:
            gw[padding_idx] = 0.0
        return None, gw, None, None


class Fp8Embedding(_Fp8Mixin, nn.Embedding):
    """``nn.Embedding`` as the emulated one-hot GEMM (see the module docstring).

    ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` are not emulated (such layers are
    reported and left unconverted by :func:`convert_to_fp8`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # as F.embedding: int32/int64 indices in [0, num_embeddings) (plain indexing would
        # wrap negative ones and read a bool tensor as a mask)
        if x.dtype not in (torch.int32, torch.int64):
            raise invalid("input", x, "int32 or int64 indices")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_embeddings):
            raise IndexError(f"Fp8Embedding: index out of range: indices must be in "
                             f"[0, {self.num_embeddings}), got [{int(x.min())}, "
                             f"{int(x.max())}]")
        y = _Fp8EmbeddingFn.apply(x, self.weight, self.padding_idx, self.cfg)
        return y.to(self.weight.dtype)  # type: ignore[union-attr]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._fp8_repr()}"
