"""Emulated FP8 training layers and the recipe that configures them.

Following Wang et al. (NeurIPS 2018, arXiv:1812.08011), every GEMM of a converted layer --
the forward product, the backward-data product and the weight-gradient product -- takes
its two inputs rounded to nearest in the data format (FP8, 1-5-2) and accumulates in the
accumulation format (FP16, 1-6-9) in chunks (:func:`~neurips18.lowprec.chunked_matmul`).
The first and last layers keep a wider data format (the paper keeps them in FP16). Layers
are swapped in place by :func:`convert_to_fp8`; the parameters are the same objects, so an
optimizer built before or after conversion still works. Pair the model with
:class:`~neurips18.lowprec.StochasticRoundingSGD` for FP16 master weights and updates.

Emulation details: convolutions are lowered to GEMMs with ``unfold``; in the backward-data
pass the overlapping column gradients are added by ``fold`` in float32 and the result is
rounded once to the accumulation format. Bias addition and the bias gradient (a chunked
sum over the batch) are done in the accumulation format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from neurips18.lowprec import _native
from neurips18.lowprec.accumulate import (
    _MODES,
    _grid_subset,
    _left_fast,
    _matmul,
    _sum_fast,
    chunked_sum,
)
from neurips18.lowprec.formats import E5M2, E6M9, FloatFormat
from neurips18.lowprec.quantize import quantize


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
        for name in ("data_format", "acc_format", "high_format"):
            if not isinstance(getattr(self, name), FloatFormat):
                raise TypeError(f"{name} must be a FloatFormat, got {getattr(self, name)!r}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk <= 0:
            raise ValueError(f"chunk must be a positive int, got {self.chunk!r}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if not isinstance(self.keep_first_last, bool):
            raise TypeError(f"keep_first_last must be a bool, got {self.keep_first_last!r}")
        ls = self.loss_scale
        if not isinstance(ls, int | float) or not (0 < ls < float("inf")):
            raise ValueError(f"loss_scale must be a positive finite number, got {ls!r}")

    def for_layer(self, high: bool) -> _LayerCfg:
        return _LayerCfg(self.high_format if high else self.data_format, self.acc_format,
                         self.chunk, self.mode, float(self.loss_scale))


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


def _bias_grad(g2: torch.Tensor, cfg: _LayerCfg) -> torch.Tensor:
    return chunked_sum(g2, cfg.acc, chunk=cfg.chunk, dim=0, mode=cfg.mode)


def _unscale(x: torch.Tensor, s: float) -> torch.Tensor:
    return x if s == 1.0 else x / s


class _Fp8LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x2: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                cfg: _LayerCfg) -> torch.Tensor:
        xq = quantize(x2, cfg.data)
        wq = quantize(w, cfg.data)
        y = cfg.mm(xq, wq.t())
        if b is not None:
            y = quantize(y + b.detach().float(), cfg.acc)
        ctx.save_for_backward(xq, wq)
        ctx.cfg = cfg
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> Any:
        xq, wq = ctx.saved_tensors
        cfg: _LayerCfg = ctx.cfg
        s = cfg.loss_scale
        gq = quantize(gy * s if s != 1.0 else gy, cfg.data)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _unscale(cfg.mm(gq, wq), s)
        if ctx.needs_input_grad[1]:
            gw = _unscale(cfg.mm(gq.t(), xq), s)  # the long sum: over the batch
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = _unscale(_bias_grad(gq, cfg), s)
        return gx, gw, gb, None


class Fp8Linear(nn.Linear):
    """``nn.Linear`` whose three GEMMs run in emulated FP8 with chunked FP16 accumulation."""

    cfg: _LayerCfg

    @classmethod
    def from_linear(cls, lin: nn.Linear, cfg: _LayerCfg) -> Fp8Linear:
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = lin.in_features, lin.out_features
        new.weight = lin.weight
        new.bias = lin.bias  # type: ignore[assignment]
        new.cfg = cfg
        new.train(lin.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = _Fp8LinearFn.apply(x.reshape(-1, x.shape[-1]), self.weight, self.bias, self.cfg)
        return y.reshape(*lead, self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"{super().extra_repr()}, data={c.data.name}, acc={c.acc.name}, "
                f"chunk={c.chunk}, mode={c.mode}")


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
    (patches (B*L, K), weights (O, K), errors (B*L, O)). With the native kernels in fast mode
    the backward-data product and the bias gradient work on the errors in their (B, O, L)
    layout (:func:`~neurips18.lowprec.accumulate._left_fast`, ``_sum_fast``), chunking the
    same flattened matrices in the same order, without transposed copies."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                geom: tuple[Any, ...], cfg: _LayerCfg) -> torch.Tensor:
        bsz, _, h, wd = x.shape
        o, _, kh, kw = w.shape
        xq = quantize(x, cfg.data)
        wq = quantize(w, cfg.data).reshape(o, -1)
        x2 = _im2row(xq, (kh, kw), geom)  # (B*L, K)
        n_pos = x2.shape[0] // bsz if bsz else 0
        stride, padding, dilation = geom
        ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        y2 = cfg.mm(x2, wq.t())  # (B*L, O)
        if b is not None:
            y2 = quantize(y2 + b.detach().float(), cfg.acc)
        ctx.save_for_backward(x2, wq)
        ctx.meta = (geom, cfg, (h, wd), (kh, kw), n_pos, bsz, b is not None)
        return y2.reshape(bsz, n_pos, o).transpose(1, 2).reshape(bsz, o, ho, wo)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> Any:
        x2, wq = ctx.saved_tensors
        geom, cfg, hw, khw, n_pos, bsz, has_bias = ctx.meta
        stride, padding, dilation = geom
        o = wq.shape[0]
        s = cfg.loss_scale
        g3 = gy.reshape(bsz, o, n_pos).float()
        gq = quantize(g3 * s if s != 1.0 else g3, cfg.data)  # (B, O, L)
        layout = cfg.mode == "fast" and _native.usable(gq, wq)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            if layout:
                gcols = _left_fast(wq.t(), gq, cfg.acc, cfg.chunk)  # (B, K, L)
            else:
                g2 = gq.transpose(1, 2).reshape(bsz * n_pos, o)
                gcols = cfg.mm(g2, wq).reshape(bsz, n_pos, -1).transpose(1, 2)
            gx = F.fold(gcols, hw, khw, dilation=dilation, padding=padding, stride=stride)
            gx = _unscale(quantize(gx, cfg.acc), s)
        if ctx.needs_input_grad[1]:  # the long sum: over batch x positions
            g2t = gq.permute(1, 0, 2).reshape(o, bsz * n_pos)
            gw = _unscale(cfg.mm(g2t, x2), s).reshape(o, -1, *khw)
        if has_bias and ctx.needs_input_grad[2]:
            gb = None
            if layout and _grid_subset(cfg.data, cfg.acc):
                gb = _sum_fast(gq, cfg.acc, cfg.chunk)
            if gb is None:
                gb = _bias_grad(gq.transpose(1, 2).reshape(bsz * n_pos, o), cfg)
            gb = _unscale(gb, s)
        return gx, gw, gb, None, None


class Fp8Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (groups=1, zero padding) with emulated FP8 GEMMs (im2col lowering)."""

    cfg: _LayerCfg

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, cfg: _LayerCfg) -> Fp8Conv2d:
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                     "dilation", "transposed", "output_padding", "groups", "padding_mode",
                     "_reversed_padding_repeated_twice"):
            setattr(new, attr, getattr(conv, attr))
        new.weight = conv.weight
        new.bias = conv.bias  # type: ignore[assignment]
        new.cfg = cfg
        new.train(conv.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"Fp8Conv2d expects a 4-D (N, C, H, W) input, got {tuple(x.shape)}")
        geom = (tuple(self.stride), tuple(self.padding), tuple(self.dilation))
        y = _Fp8Conv2dFn.apply(x, self.weight, self.bias, geom, self.cfg)
        return y.to(x.dtype)


def _convertible(m: nn.Module) -> bool:
    if isinstance(m, Fp8Linear | Fp8Conv2d):
        return False
    if isinstance(m, nn.Linear):
        return True
    return (isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros"
            and not isinstance(m.padding, str))


def convert_to_fp8(module: nn.Module, recipe: Fp8Recipe | None = None, *,
                   module_filter: Callable[[nn.Module, str], bool] | None = None) -> nn.Module:
    """Swap the ``nn.Linear`` / ``nn.Conv2d`` layers of ``module`` for emulated FP8 layers.

    Parameters
    ----------
    module : the model, converted in place (and returned). A bare Linear/Conv2d is
        returned as its converted copy.
    recipe : an :class:`Fp8Recipe` (default: the paper's).
    module_filter : ``fn(module, fully_qualified_name) -> bool``; only layers for which it
        returns True are converted (like torchao's ``module_filter_fn``).

    Layers that cannot be emulated (grouped or non-zero-padded convolutions, ``padding=
    "same"``) are left unchanged. With ``recipe.keep_first_last`` the first and last
    converted layers (in registration order) use ``recipe.high_format`` as data format.
    """
    recipe = Fp8Recipe() if recipe is None else recipe
    if not isinstance(recipe, Fp8Recipe):
        raise TypeError(f"recipe must be an Fp8Recipe, got {type(recipe).__name__}")
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    if module_filter is not None and not callable(module_filter):
        raise TypeError("module_filter must be callable (module, name) -> bool")
    targets = [(name, m) for name, m in module.named_modules()
               if _convertible(m) and (module_filter is None or module_filter(m, name))]
    if not targets:
        return module
    last = len(targets) - 1

    def swap(i: int, m: nn.Module) -> nn.Module:
        cfg = recipe.for_layer(recipe.keep_first_last and i in (0, last))
        if isinstance(m, nn.Linear):
            return Fp8Linear.from_linear(m, cfg)
        return Fp8Conv2d.from_conv(m, cfg)  # type: ignore[arg-type]

    if targets[0][0] == "":  # the module itself
        return swap(0, module)
    for i, (name, m) in enumerate(targets):
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, swap(i, m))
    return module
