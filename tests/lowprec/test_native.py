"""The native (C) kernels give the same bits as the PyTorch kernels, path by path.

Each test runs an operation twice: with the native kernels and with them switched off
(``_native.available``/``usable`` patched to False, as on a machine without a C compiler),
and compares bit patterns. Inputs of the layer tests are chosen so that every float32 chunk
sum is exact (E5M2 values in [1/4, 4], short chunks), which makes the result independent of
the summation order inside a GEMM and therefore a pure function of the chunking.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurips18.lowprec import (
    BF16,
    E4M3,
    E5M2,
    E6M9,
    FP16,
    FP32,
    FloatFormat,
    Fp8Recipe,
    _native,
    chunked_matmul,
    chunked_sum,
    convert_to_fp8,
    quantize,
)
from neurips18.lowprec.accumulate import _grid_subset
from neurips18.lowprec.quantize import _constants, _kernel_eager, _noise, draw_key

pytestmark = pytest.mark.skipif(not _native.available(),
                                reason="native kernels unavailable (no C compiler)")

FORMATS = [E5M2, E6M9, FP16, BF16, FP32, E4M3, FloatFormat(5, 2, subnormals=False),
           FloatFormat(6, 9, overflow="saturate"), FloatFormat(2, 0)]


def _bits(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x), torch.full_like(x, float("nan")), x).view(torch.int32)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool((_bits(a) == _bits(b)).all())


def _off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_native, "available", lambda: False)
    monkeypatch.setattr(_native, "usable", lambda *t: False)


def _hard_values(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * torch.exp2(
        torch.randint(-150, 130, (n,), generator=g).float())
    x[::997] = float("nan")
    x[1::997] = float("inf")
    x[2::997] = -float("inf")
    x[3::997] = -0.0
    x[4::7] = torch.randn(len(x[4::7]), generator=g) * 1e-39  # float32 subnormals
    return x


def _mostly_normal(n: int, seed: int) -> torch.Tensor:
    """Normal values and zeros, with a rare special value: most blocks of the native kernels
    take their short path, a few the full one."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-12, 12, (n,), generator=g).float())
    x[::3] = 0.0
    x[5::3001] = -0.0
    x[7::5003] = 1e-30  # subnormal or zero in most formats
    x[11::7919] = float("inf")
    x[13::9973] = 7e4  # overflows the 5-bit-exponent formats
    return x


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("data", ["hard", "mostly-normal"])
def test_native_rounding_matches_torch_kernel(fmt, data):
    x = _hard_values(1 << 16, 0) if data == "hard" else _mostly_normal(1 << 16, 1)
    c, q = _constants(fmt, x.device)
    assert _same(_native.round_(x, c, q), _kernel_eager(x, c, q, None))
    key = draw_key(torch.Generator().manual_seed(3))
    assert _same(_native.round_(x, c, q, key),
                 _kernel_eager(x, c, q, _noise(x.numel(), key, x.device)))
    one = _native.round_sum1_(_kernel_eager(x, c, q, None) * 1.0, c, q)
    want = _kernel_eager(_kernel_eager(x, c, q, None) + 0.0, c, q, None)  # round(+0 + round(x))
    assert _same(one, want)


@pytest.mark.parametrize("fmt", [E6M9, FP16, FloatFormat(4, 3, subnormals=False)],
                         ids=lambda f: f.name)
def test_public_functions_same_bits_with_and_without_native(fmt, monkeypatch):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(37, 150, generator=g) * 8
    b = torch.randn(150, 29, generator=g)
    a8, b8 = quantize(a, E5M2), quantize(b, E5M2)
    x = _hard_values(3 * 1000, 2).reshape(3, 1000)
    xn = _mostly_normal(7 * 3000, 3).reshape(7, 3000)
    big = torch.randn(300, 300, generator=g)  # >= 2**16 outputs: per-chunk path when off
    runs = []
    for native in (True, False):
        if not native:
            _off(monkeypatch)
        out = [quantize(x, fmt), quantize(x, fmt, "stochastic", torch.Generator().manual_seed(5))]
        for mode in ("exact", "fast"):
            out += [chunked_matmul(a, b, fmt, 64, mode), chunked_matmul(a8, b8, fmt, 16, mode),
                    chunked_matmul(a8.t().contiguous().t(), b8, fmt, 7, mode),
                    chunked_sum(a8, fmt, 64, mode=mode), chunked_sum(x, fmt, 10, mode=mode),
                    chunked_sum(xn, fmt, 64, dim=0, mode=mode),
                    chunked_matmul(xn[:, :40].t(), xn[:, 40:90], fmt, 4, mode)]
        out.append(chunked_matmul(big[:, :100], big[:100], fmt, 64, "exact"))
        runs.append(out)
    for i, (p, r) in enumerate(zip(*runs, strict=True)):
        assert _same(p, r), i


def _exact_friendly(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """E5M2 values with magnitudes in [1/4, 4] and random signs: short float32 sums of their
    products are exact."""
    mag = torch.rand(shape, generator=g) * 3.75 + 0.25
    sign = torch.randint(0, 2, shape, generator=g).float() * 2 - 1
    return quantize(mag * sign, E5M2)


@pytest.mark.parametrize("hw, k, kw", [
    (12, 5, {}),                          # L = 64 = chunk: one chunk per image
    (14, 3, {}),                          # L = 144: chunks straddle images -> general wgrad
    (6, 3, {"stride": 1}),                # L = 16: four images per chunk (with padding)
    (9, 3, {"stride": 2, "padding": 1}),  # L = 25
    (20, 5, {"bias": False}),             # L = 256: four chunks per image
])
@pytest.mark.parametrize("loss_scale", [1.0, 8.0])
def test_conv_layout_path_same_bits_as_general_path(hw, k, kw, loss_scale, monkeypatch):
    g = torch.Generator().manual_seed(hw * 10 + k)
    conv = nn.Conv2d(3, 6, k, **kw)
    with torch.no_grad():
        conv.weight.copy_(_exact_friendly(conv.weight.shape, g))
        if conv.bias is not None:
            conv.bias.copy_(_exact_friendly(conv.bias.shape, g))
    x = _exact_friendly((6, 3, hw, hw), g)
    recipe = Fp8Recipe(chunk=64, mode="fast", keep_first_last=False, loss_scale=loss_scale)
    results = []
    for native in (True, False):
        if not native:
            _off(monkeypatch)
        emu = convert_to_fp8(nn.Sequential(conv), recipe)
        xi = x.clone().requires_grad_(True)
        y = emu(xi)
        gy = _exact_friendly(y.shape, torch.Generator().manual_seed(0)) / 64
        emu.zero_grad()
        y.backward(gy)
        grads = [xi.grad, conv.weight.grad] + ([conv.bias.grad] if conv.bias is not None else [])
        results.append([y.detach(), *[t.clone() for t in grads]])
    for i, (p, r) in enumerate(zip(*results, strict=True)):
        assert _same(p, r), i


def test_grid_subset_against_brute_force():
    """_grid_subset(d, a) is True iff quantizing every value of d to a changes nothing."""
    def values(f: FloatFormat) -> torch.Tensor:
        # every float32 with at most 10 stored mantissa bits, rounded to f: all values of f
        # (man_bits <= 10 for every format below)
        bits = torch.arange(0, 1 << 19, dtype=torch.int32) << 13
        return quantize(bits.view(torch.float32), f)

    fmts = [E5M2, E4M3, E6M9, FP16, BF16, FloatFormat(5, 2, subnormals=False),
            FloatFormat(3, 2), FloatFormat(6, 2, subnormals=False)]
    for d in fmts:
        v = values(d)
        v = v[torch.isfinite(v)]
        for a in fmts:
            assert _grid_subset(d, a) == bool(torch.equal(quantize(v, a), v)), (d, a)
