"""chunked_sum / chunked_matmul against scalar references and closed forms."""

from __future__ import annotations

import pytest
import torch

from neurips18.lowprec import E5M2, E6M9, FP16, FloatFormat, quantize
from neurips18.lowprec.accumulate import chunked_matmul, chunked_sum


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a.view(torch.int32) == b.view(torch.int32))
                 | (torch.isnan(a) & torch.isnan(b))).all())


@pytest.mark.parametrize("chunk", [1, 3, 8, 64, 500])
@pytest.mark.parametrize("fmt", [E6M9, FloatFormat(4, 3)])
def test_chunked_sum_matches_scalar_reference(chunk, fmt, ref):
    g = torch.Generator().manual_seed(chunk)
    x = quantize(torch.rand(4, 203, generator=g) * 3 - 0.5, E5M2)
    got = chunked_sum(x, fmt, chunk=chunk)
    want = torch.tensor([ref.chunked_sum(row.tolist(), fmt.exp_bits, fmt.man_bits, chunk)
                         for row in x], dtype=torch.float32)
    assert _bits_equal(got, want), (got, want)


def test_chunked_sum_dim_and_shapes(ref):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 70, 2, generator=g)
    got = chunked_sum(x, E6M9, chunk=16, dim=1)
    assert got.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert got[i, j].item() == ref.chunked_sum(x[i, :, j].tolist(), 6, 9, 16)
    assert chunked_sum(torch.zeros(4, 0), E6M9).shape == (4,)
    assert torch.equal(chunked_sum(x, E6M9, chunk=1, dim=1),
                       chunked_sum(x, E6M9, chunk=10_000, dim=1))


def test_swamping_closed_form():
    """Summing ones in E6M9 (9 mantissa bits) stalls at 2**10: 1024 + 1 is a tie to even."""
    ones = torch.ones(1, 4096)
    assert chunked_sum(ones, E6M9, chunk=1).item() == 1024.0
    assert chunked_sum(ones, E6M9, chunk=64).item() == 4096.0
    # IEEE half: stalls at 2048
    assert chunked_sum(ones, FP16, chunk=4096).item() == 2048.0


def test_chunked_error_within_documented_bound():
    g = torch.Generator().manual_seed(1)
    n, cl = 4096, 64
    u = 2.0 ** -10  # unit roundoff of E6M9
    x = quantize(torch.rand(16, n, generator=g) * torch.rand(16, n, generator=g), E5M2)
    exact = x.double().sum(-1)
    s_abs = x.double().abs().sum(-1)
    err = (chunked_sum(x, E6M9, chunk=cl).double() - exact).abs()
    bound = (cl - 1 + n / cl) * u * s_abs
    assert bool((err <= bound).all())
    # and chunking beats sequential accumulation by an order of magnitude here
    seq = (chunked_sum(x, E6M9, chunk=1).double() - exact).abs()
    assert seq.median() > 10 * err.median()


def _ref_matmul_exact(a, b, e, m, chunk, ref):
    mm, k = a.shape
    n = b.shape[1]
    out = torch.zeros(mm, n)
    for i in range(mm):
        for j in range(n):
            prods = [ref.round(a[i, t].item() * b[t, j].item(), e, m) for t in range(k)]
            out[i, j] = ref.chunked_sum(prods, e, m, chunk)
    return out


@pytest.mark.parametrize("k, chunk", [(1, 64), (37, 8), (70, 64), (70, 1)])
def test_chunked_matmul_exact_matches_scalar_reference(k, chunk, ref):
    g = torch.Generator().manual_seed(k)
    a = torch.randn(3, k, generator=g)  # not FP8: product rounding matters
    b = torch.randn(k, 4, generator=g)
    got = chunked_matmul(a, b, E6M9, chunk=chunk, mode="exact")
    want = _ref_matmul_exact(a, b, 6, 9, chunk, ref)
    assert _bits_equal(got, want)


def test_chunked_matmul_fast_matches_its_definition(ref):
    # E5M2 inputs in [1/4, 4]: products and 64-term float32 chunk sums are exact, so the
    # reference is: exact chunk sums, rounded once, then accumulated with rounding.
    g = torch.Generator().manual_seed(3)
    a = quantize(torch.rand(5, 150, generator=g) * 3.75 + 0.25, E5M2)
    b = quantize(-torch.rand(150, 6, generator=g) * 3.75 - 0.25, E5M2)
    got = chunked_matmul(a, b, E6M9, chunk=64, mode="fast")
    want = torch.zeros(5, 6)
    for i in range(5):
        for j in range(6):
            parts = [ref.round(sum(a[i, t].item() * b[t, j].item()
                                   for t in range(s, min(s + 64, 150))), 6, 9)
                     for s in range(0, 150, 64)]
            want[i, j] = ref.chunked_sum(parts, 6, 9, 1)
    assert _bits_equal(got, want)


def test_chunked_matmul_modes_close_to_fp32():
    g = torch.Generator().manual_seed(4)
    a = quantize(torch.randn(16, 512, generator=g), E5M2)
    b = quantize(torch.randn(512, 8, generator=g), E5M2)
    exact = a.double() @ b.double()
    scale = (a.double().abs() @ b.double().abs())
    bound = (64 - 1 + 512 / 64) * 2.0**-10 * scale
    for mode in ("exact", "fast"):
        y = chunked_matmul(a, b, E6M9, chunk=64, mode=mode).double()
        assert bool(((y - exact).abs() <= bound).all())
        assert torch.equal(quantize(y.float(), E6M9), y.float())  # representable


def test_chunked_matmul_bad_input():
    a, b = torch.ones(2, 3), torch.ones(3, 4)
    with pytest.raises(ValueError, match="chunk"):
        chunked_matmul(a, b, E6M9, chunk=0)
    with pytest.raises(TypeError, match="chunk"):
        chunked_matmul(a, b, E6M9, chunk=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid b: .*3 rows"):
        chunked_matmul(a, torch.ones(4, 3), E6M9)
    with pytest.raises(ValueError, match="Invalid a: .*at least 2 dimensions"):
        chunked_matmul(a[0], b, E6M9)
    with pytest.raises(ValueError, match="batch dimensions"):
        chunked_matmul(torch.ones(2, 2, 3), torch.ones(3, 3, 4), E6M9)
    with pytest.raises(ValueError, match="mode"):
        chunked_matmul(a, b, E6M9, mode="slow")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating"):
        chunked_matmul(a.long(), b, E6M9)
    with pytest.raises(TypeError, match="acc_fmt"):
        chunked_sum(a, "E6M9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk"):
        chunked_sum(a, E6M9, chunk=-1)
    with pytest.raises(ValueError, match="dim"):
        chunked_sum(a, E6M9, dim=2)
    assert chunked_matmul(torch.ones(2, 0), torch.ones(0, 3), E6M9).shape == (2, 3)
    y = chunked_matmul(torch.tensor([[float("nan"), 1.0]]), torch.ones(2, 1), E6M9)
    assert torch.isnan(y).all()


def test_exact_mode_product_shortcut_gives_the_same_bits():
    """E5M2 x E5M2 products are exact in E6M9; the shortcut must not change any result."""
    from neurips18.lowprec.accumulate import _products_exact

    g = torch.Generator().manual_seed(9)
    a = quantize(torch.randn(4, 100, generator=g) * 100, E5M2)
    b = quantize(torch.randn(100, 3, generator=g) * 1e-3, E5M2)
    a[0, :5] = E5M2.min_subnormal  # extreme exponents
    b[:5, 0] = E5M2.max_value
    assert _products_exact(a, b, E6M9)
    assert not _products_exact(torch.randn(3, 3), torch.randn(3, 3), E6M9)
    assert not _products_exact(a, b, E5M2)
    got = chunked_matmul(a, b, E6M9, chunk=16, mode="exact")
    prods = quantize(a[:, :, None] * b[None, :, :], E6M9)
    assert torch.equal(prods, a[:, :, None] * b[None, :, :])  # really exact
    want = torch.stack([chunked_sum(prods[:, :, j], E6M9, chunk=16) for j in range(3)], 1)
    assert _bits_equal(got, want)


def test_fast_mode_large_outputs_per_chunk_path_matches_definition():
    """Outputs >= 2**16 elements take the per-chunk GEMM path; same definition, same bits."""
    g = torch.Generator().manual_seed(10)
    a = quantize(torch.rand(260, 150, generator=g) * 3.75 + 0.25, E5M2)
    b = quantize(-torch.rand(150, 260, generator=g) * 3.75 - 0.25, E5M2)
    got = chunked_matmul(a, b, E6M9, chunk=64, mode="fast")
    parts = torch.stack([(a[:, s:s + 64].double() @ b[s:s + 64, :].double()).float()
                         for s in range(0, 150, 64)])  # exact chunk sums (see above)
    want = chunked_sum(quantize(parts, E6M9), E6M9, chunk=1, dim=0)
    assert _bits_equal(got, want)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_chunked_sum_rounds_float64_terms_once(mode):
    # 1 + 2**-10 + 2**-40 lies just above the E6M9 tie 1 + 2**-10: it rounds up to
    # 1 + 2**-9. A cast to float32 first lands on the tie itself, which rounds to even (1).
    x = torch.tensor([1 + 2**-10 + 2**-40, 0.0, 0.0, -(1 + 2**-10 + 2**-40)],
                     dtype=torch.float64)
    terms = quantize(x, E6M9)
    assert terms[0].item() == 1 + 2**-9
    got = chunked_sum(x[:3], E6M9, chunk=2, mode=mode)
    assert got.item() == 1 + 2**-9
    assert chunked_sum(x, E6M9, chunk=2, mode=mode).item() == 0.0
    rows = torch.stack([x, x.flip(0)])
    assert torch.equal(chunked_sum(rows, E6M9, chunk=3, dim=1, mode=mode),
                       chunked_sum(quantize(rows, E6M9).float(), E6M9, chunk=3, dim=1,
                                   mode=mode))
