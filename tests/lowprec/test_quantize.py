"""quantize / FloatFormat against independent references (torch casts, ml_dtypes, NumPy)."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurips18.lowprec import BF16, E4M3, E5M2, E6M9, FP16, FP32, FloatFormat, quantize
from neurips18.lowprec.quantize import (
    _constants,
    _kernel,
    _kernel_eager,
    _noise,
    draw_key,
    round_nearest_np,
)


def _all_codes(np_dtype, nbits: int) -> np.ndarray:
    """Every value of a binary format, decoded by the reference library, as float32."""
    int_t = np.uint8 if nbits == 8 else np.uint16
    vals = np.arange(2**nbits, dtype=np.uint32).astype(int_t).view(np_dtype).astype(np.float32)
    return vals


def _candidates(values: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Representable values, their midpoints, the float32 neighbours of both, random bits."""
    fin = np.unique(values[np.isfinite(values)]).astype(np.float64)
    mids = ((fin[1:] + fin[:-1]) / 2).astype(np.float32)  # exact: midpoints fit float32
    base = np.concatenate([fin.astype(np.float32), mids])
    up = np.nextafter(base, np.float32(np.inf))
    down = np.nextafter(base, np.float32(-np.inf))
    big = float(fin.max())
    with np.errstate(over="ignore"):
        extra = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, big * 1.25, -big * 1.25, 1e30,
                          -1e30, 3.4e38, 1e-40, -1e-45, 1e-30], dtype=np.float64
                         ).astype(np.float32)
    rand = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(
        np.float32)
    allv = np.concatenate([base, up, down, extra, rand])
    return torch.from_numpy(allv.copy())


def _same(y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Bitwise equality, with every NaN equal to every NaN."""
    return (y.view(torch.int32) == r.view(torch.int32)) | (torch.isnan(y) & torch.isnan(r))


def _assert_bits_equal(x, y, r):
    ok = _same(y, r)
    if not bool(ok.all()):
        bad = (~ok).nonzero()[:5, 0]
        raise AssertionError(f"mismatch at x={x[bad].tolist()}: ours {y[bad].tolist()} "
                             f"reference {r[bad].tolist()}")


def test_e5m2_matches_torch_and_ml_dtypes_bit_for_bit():
    x = _candidates(_all_codes(ml_dtypes.float8_e5m2, 8), np.random.default_rng(0))
    y = quantize(x, E5M2)
    _assert_bits_equal(x, y, x.to(torch.float8_e5m2).to(torch.float32))
    with np.errstate(all="ignore"):
        r = torch.from_numpy(x.numpy().astype(ml_dtypes.float8_e5m2).astype(np.float32))
    _assert_bits_equal(x, y, r)


def test_e4m3_matches_ml_dtypes_ieee_e4m3():
    x = _candidates(_all_codes(ml_dtypes.float8_e4m3, 8), np.random.default_rng(1))
    with np.errstate(all="ignore"):
        r = torch.from_numpy(x.numpy().astype(ml_dtypes.float8_e4m3).astype(np.float32))
    _assert_bits_equal(x, quantize(x, E4M3), r)


def test_fp16_matches_numpy_float16_over_all_codes():
    x = _candidates(_all_codes(np.float16, 16), np.random.default_rng(2))
    with np.errstate(all="ignore"):
        r = torch.from_numpy(x.numpy().astype(np.float16).astype(np.float32))
    _assert_bits_equal(x, quantize(x, FP16), r)


def test_bf16_matches_torch_bfloat16_over_all_codes():
    x = _candidates(_all_codes(ml_dtypes.bfloat16, 16), np.random.default_rng(3))
    _assert_bits_equal(x, quantize(x, BF16), x.to(torch.bfloat16).to(torch.float32))


def test_e6m9_matches_exact_rational_reference(ref):
    # every E6M9 value is decoded independently from its fields, then midpoints and neighbours
    vals = []
    for exp_field in range(0, 63):
        for man in range(0, 512, 7):
            if exp_field == 0:
                v = man / 512 * 2.0 ** (-30)
            else:
                v = (1 + man / 512) * 2.0 ** (exp_field - 31)
            vals += [v, -v]
    x = _candidates(np.array(vals, dtype=np.float32), np.random.default_rng(4))[:40_000]
    y = quantize(x, E6M9)
    r = torch.tensor([ref.round(float(v), 6, 9) for v in x.tolist()], dtype=torch.float32)
    _assert_bits_equal(x, y, r)


@pytest.mark.parametrize("fmt", [E5M2, E6M9, E4M3, FloatFormat(3, 1), FloatFormat(8, 0)])
def test_saturate_and_flush_to_zero_against_reference(fmt, ref):
    rng = np.random.default_rng(5)
    x = torch.from_numpy((rng.standard_normal(3000) * 10.0 ** rng.uniform(-12, 12, 3000))
                         .astype(np.float32))
    for sub in (True, False):
        for ovf in ("inf", "saturate"):
            f = FloatFormat(fmt.exp_bits, fmt.man_bits, subnormals=sub, overflow=ovf)
            r = torch.tensor([ref.round(v, f.exp_bits, f.man_bits, sub, ovf)
                              for v in x.tolist()], dtype=torch.float32)
            _assert_bits_equal(x, quantize(x, f), r)


def test_edge_cases():
    sat = E5M2.with_overflow("saturate")
    mx = E5M2.max_value
    assert mx == 57344.0
    x = torch.tensor([mx, 61439.0, 61440.0, 1e9, float("inf"), -float("inf"), -0.0,
                      float("nan"), 2.0**-16, 2.0**-17, 2.0**-17 * 1.0001, 3 * 2.0**-17])
    y = quantize(x, E5M2)
    # 61440 = max + ulp/2 is a tie: rounds to even, i.e. up, i.e. overflows
    exp = [mx, mx, float("inf"), float("inf"), float("inf"), -float("inf"), -0.0]
    assert y[:7].tolist() == exp
    assert torch.signbit(y[6])
    assert torch.isnan(y[7])
    assert y[8:].tolist() == [2.0**-16, 0.0, 2.0**-16, 2.0**-15]  # ties to even at subnormals
    ys = quantize(x, sat)
    assert ys[:6].tolist() == [mx, mx, mx, mx, float("inf"), -float("inf")]
    assert quantize(torch.tensor([-1e9]), sat).item() == -mx


def test_float32_format_is_identity_and_dtypes():
    x = torch.randn(1000)
    assert torch.equal(quantize(x, FP32), x)
    # float32 subnormals too, on every kernel path (the last bit is the easiest to lose)
    sub = torch.arange(1, 1 << 13, dtype=torch.int32).view(torch.float32) * torch.tensor(
        [1.0, -1.0]).repeat(1 << 12)[1:]
    for n in (100, (1 << 13) - 1):
        xs = sub[:n]
        assert torch.equal(quantize(xs, FP32).view(torch.int32), xs.view(torch.int32))
        g = torch.Generator().manual_seed(0)
        assert torch.equal(quantize(xs, FP32, "stochastic", g).view(torch.int32),
                           xs.view(torch.int32))
        c, q = _constants(FP32, xs.device)
        assert torch.equal(_kernel_eager(xs, c, q, None), xs)
        assert torch.equal(_kernel(xs, c, q, None), xs)
        assert np.array_equal(round_nearest_np(xs.numpy(), FP32).view(np.int32),
                              xs.numpy().view(np.int32))
    y = quantize(x.double(), E5M2)
    assert y.dtype == torch.float64 and y.shape == x.shape  # float64 stays float64
    assert torch.equal(y, quantize(x, E5M2).double())
    assert quantize(torch.empty(0, 3), E5M2).shape == (0, 3)
    h = torch.randn(100).half()
    assert torch.equal(quantize(h, FP16), h.float())


def test_compiled_and_eager_kernels_agree_bit_for_bit():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1 << 17, generator=g) * torch.exp2(torch.randint(-40, 20, (1 << 17,),
                                                                     generator=g).float())
    x[::1000] = float("nan")
    x[1::1000] = float("inf")
    for fmt in (E5M2, E6M9):
        c, q = _constants(fmt, x.device)
        _assert_bits_equal(x, quantize(x, fmt), _kernel_eager(x, c, q, None))
        g1 = torch.Generator().manual_seed(11)
        g2 = torch.Generator().manual_seed(11)
        y = quantize(x, fmt, "stochastic", g1)
        key = draw_key(g2)
        _assert_bits_equal(x, y, _kernel_eager(x, c, q, _noise(x.numel(), key, x.device)))


# ---------------------------------------------------------------- stochastic rounding
@pytest.mark.parametrize("fmt", [E5M2, E6M9])
@pytest.mark.parametrize("value", ["1.1", "-0.3", "123.456", "sub", "-normal"])
def test_stochastic_rounding_is_unbiased(fmt, value):
    """Mean of 4M roundings within 1e-3 relative of the input (>= 4 standard errors here)."""
    v = {"sub": 2.3 * fmt.min_subnormal, "-normal": -1.37 * fmt.min_normal}.get(value)
    g = torch.Generator().manual_seed(123)
    x = torch.full((4_000_000,), float(value) if v is None else v)
    xv = float(x[0])
    y = quantize(x, fmt, "stochastic", generator=g)
    lo, hi = y.min().item(), y.max().item()
    assert len(torch.unique(y)) <= 2
    if lo == hi:  # value happens to be representable
        assert lo == xv
        return
    p_up = (xv - lo) / (hi - lo)
    se = (hi - lo) * (p_up * (1 - p_up) / x.numel()) ** 0.5
    assert se < 2.5e-4 * abs(xv)  # the 1e-3 tolerance is at least 4 standard errors
    assert abs(y.double().mean().item() - xv) <= 1e-3 * abs(xv)


def test_stochastic_rounding_picks_a_neighbour_and_is_repeatable():
    codes = np.unique(_all_codes(ml_dtypes.float8_e5m2, 8))
    codes = codes[np.isfinite(codes)]
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(50_000, generator=g) - 0.5) * 1e5
    y1 = quantize(x, E5M2, "stochastic", torch.Generator().manual_seed(42))
    y2 = quantize(x, E5M2, "stochastic", torch.Generator().manual_seed(42))
    y3 = quantize(x, E5M2, "stochastic", torch.Generator().manual_seed(43))
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, y3)
    xn = x.numpy()
    hi = codes[np.searchsorted(codes, xn, side="left")]
    lo = codes[np.searchsorted(codes, xn, side="right") - 1]
    yn = y1.numpy()
    assert np.all((yn == lo) | (yn == hi))
    # the generator advances: two calls in a row differ
    gg = torch.Generator().manual_seed(1)
    assert not torch.equal(quantize(x, E5M2, "stochastic", gg), quantize(x, E5M2,
                                                                        "stochastic", gg))


def test_stochastic_noise_is_uniform():
    """Chi-square test of the low 8 bits of the hash noise (fixed seed, 1e-4 level)."""
    key = draw_key(torch.Generator().manual_seed(5))
    bits = _noise(1 << 18, key, torch.device("cpu")) & 255
    counts = torch.bincount(bits, minlength=256).double()
    expected = bits.numel() / 256
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 340  # chi2(255) 0.9999 quantile is about 341
    top = (_noise(1 << 18, key, torch.device("cpu")) >> 23).double()
    assert abs(top.mean().item() - 127.5) < 0.5  # sd of the mean is about 0.14


# ---------------------------------------------------------------- properties
@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1,
                max_size=50))
def test_property_matches_ml_dtypes_and_is_idempotent_and_monotone(vals):
    x = torch.tensor(vals, dtype=torch.float32)
    y = quantize(x, E5M2)
    with np.errstate(all="ignore"):
        r = torch.from_numpy(x.numpy().astype(ml_dtypes.float8_e5m2).astype(np.float32))
    _assert_bits_equal(x, y, r)
    _assert_bits_equal(y, quantize(y, E5M2), y)
    fin = x[torch.isfinite(x)].sort().values
    yq = quantize(fin, E6M9)
    assert bool((yq[1:] >= yq[:-1]).all())


# ---------------------------------------------------------------- formats and bad input
def test_format_constants_against_library_finfo():
    f16 = np.finfo(np.float16)
    assert FP16.max_value == float(f16.max)
    assert FP16.min_normal == float(f16.tiny)
    assert FP16.min_subnormal == float(f16.smallest_subnormal)
    assert FP16.eps == float(f16.eps)
    bf = torch.finfo(torch.bfloat16)
    assert BF16.max_value == bf.max and BF16.min_normal == bf.tiny and BF16.eps == bf.eps
    e4 = ml_dtypes.finfo(ml_dtypes.float8_e4m3)
    assert E4M3.max_value == float(e4.max) == 240.0
    e5 = torch.finfo(torch.float8_e5m2)
    assert E5M2.max_value == e5.max and E5M2.min_normal == e5.tiny
    assert E6M9.bias == 31 and E6M9.bits == 16
    assert E6M9.max_value == (2 - 2**-9) * 2.0**31
    assert E6M9.min_subnormal == 2.0**-39


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(exp_bits=1, man_bits=2), ValueError, "exp_bits"),
        (dict(exp_bits=9, man_bits=2), ValueError, "exp_bits"),
        (dict(exp_bits=5, man_bits=-1), ValueError, "man_bits"),
        (dict(exp_bits=5, man_bits=24), ValueError, "man_bits"),
        (dict(exp_bits=5.0, man_bits=2), TypeError, "exp_bits"),
        (dict(exp_bits=5, man_bits=2, overflow="clip"), ValueError, "overflow"),
    ],
)
def test_bad_formats(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        FloatFormat(**kwargs)


def test_bad_quantize_arguments():
    with pytest.raises(TypeError, match="floating-point"):
        quantize(torch.arange(3), E5M2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        quantize([1.0], E5M2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fmt"):
        quantize(torch.ones(3), "E5M2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rounding"):
        quantize(torch.ones(3), E5M2, rounding="up")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        quantize(torch.ones(3), E5M2, "stochastic", generator=-1)
    with pytest.raises(TypeError, match="generator"):
        quantize(torch.ones(3), E5M2, "stochastic", generator="seed")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="straight_through"):
        quantize(torch.ones(3), E5M2, straight_through=1)  # type: ignore[arg-type]


def test_float64_input_keeps_its_dtype_and_is_rounded_once(ref):
    """x just above a tie of two E5M2 neighbours: a float32 cast would land on the tie and
    round to even (down); rounding float64 correctly goes up."""
    eps = 2.0**-40
    xs = [1.125 + eps, -(1.125 + eps), 1.375 - eps, 2.5 + eps, 3e-5 * (1 + eps), 70000.0,
          1e300, -1e-300, 5.0]
    x = torch.tensor(xs, dtype=torch.float64)
    for fmt, (e, m) in ((E5M2, (5, 2)), (E6M9, (6, 9)), (FP16, (5, 10))):
        y = quantize(x, fmt)
        assert y.dtype == torch.float64
        assert y.tolist() == [ref.round(v, e, m) for v in xs]
    assert quantize(torch.tensor([1.125 + eps], dtype=torch.float64), E5M2).item() == 1.25
    assert quantize(torch.tensor([1.125 + eps]), E5M2).item() == 1.0  # float32 is the tie


def test_quantize_is_detached_unless_straight_through():
    x = torch.randn(10, requires_grad=True)
    assert not quantize(x, E5M2).requires_grad
    y = quantize(x, E5M2, straight_through=True)
    assert torch.equal(y, quantize(x, E5M2)) and y.requires_grad
    (y * torch.arange(10.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(10.0))  # the gradient passes through


def test_an_int_seed_is_a_generator_for_stochastic_rounding():
    x = torch.randn(1000)
    a = quantize(x, E5M2, "stochastic", 7)
    assert torch.equal(a, quantize(x, E5M2, "stochastic", torch.Generator().manual_seed(7)))
    assert torch.equal(a, quantize(x, E5M2, "stochastic", 7))  # the same seed, the same draw


@pytest.mark.parametrize("man_bits", [20, 22, 23])
def test_float64_beyond_float32_range_saturates(man_bits):
    """With more than 21 mantissa bits a float64 beyond float32's range was cast to inf
    and passed through, whatever the format's overflow rule."""
    fmt = FloatFormat(8, man_bits, overflow="saturate")
    x = torch.tensor([1e39, -1e300, math.inf, 1.0], dtype=torch.float64)
    top = fmt.max_value
    for rounding in ("nearest", "stochastic"):
        y = quantize(x, fmt, rounding, generator=0)
        assert y.tolist() == [top, -top, math.inf, 1.0]
    assert quantize(x, FloatFormat(8, man_bits), "nearest").tolist()[:2] == [math.inf, -math.inf]
