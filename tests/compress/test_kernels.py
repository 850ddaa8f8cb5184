"""Unit, statistical and property tests of the sparsification kernels."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from neurips18.compress import (
    ErrorFeedback,
    Simulator,
    SparseGradient,
    TopKState,
    UnbiasedSparsifyState,
    optimal_probabilities,
    optimal_scale,
    sparsification_variance,
    sparsify_unbiased,
    topk,
    topk_sparsify,
)


def _heavy(d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d, generator=g) ** 3  # heavy tails: some coordinates saturate


def _reference_probabilities(g: np.ndarray, density: float) -> np.ndarray:
    """Independent reference: bisection on lambda for sum(min(lambda|g|, 1)) = density*d."""
    a = np.abs(g.astype(np.float64))
    target = density * a.size
    lo, hi = 0.0, 1.0
    while np.minimum(hi * a, 1).sum() < target:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.minimum(mid * a, 1).sum() < target:
            lo = mid
        else:
            hi = mid
    return np.minimum(hi * a, 1)


# ---- optimal probabilities --------------------------------------------------------------


@pytest.mark.parametrize("d", [50, 1000, 200_000])
@pytest.mark.parametrize("density", [0.001, 0.01, 0.1, 0.5])
def test_exact_probabilities_match_bisection(d: int, density: float) -> None:
    g = _heavy(d)
    p = optimal_probabilities(g, density, method="exact")
    ref = _reference_probabilities(g.numpy(), density)
    assert p.shape == g.shape and p.dtype == g.dtype
    np.testing.assert_allclose(p.double().numpy(), ref, rtol=1e-4, atol=1e-6)
    assert float(p.sum()) == pytest.approx(density * d, rel=1e-4, abs=1e-3)
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0


@pytest.mark.parametrize("density", [0.005, 0.05, 0.3])
def test_greedy_converges_to_exact(density: float) -> None:
    g = _heavy(100_000, seed=1)
    pe = optimal_probabilities(g, density, method="exact")
    pg = optimal_probabilities(g, density, method="greedy", max_iter=100)
    torch.testing.assert_close(pg, pe, rtol=1e-4, atol=1e-6)


def test_greedy_few_passes_is_feasible_and_close() -> None:
    g = _heavy(100_000, seed=2)
    pe = optimal_probabilities(g, 0.01, method="exact")
    for it in (0, 1, 2):
        pg = optimal_probabilities(g, 0.01, method="greedy", max_iter=it)
        # greedy approaches from below: never exceeds the budget
        assert float(pg.sum()) <= 0.01 * g.numel() * (1 + 1e-5)
    v_e = sparsification_variance(g, pe)
    v_g = sparsification_variance(g, optimal_probabilities(g, 0.01, method="greedy"))
    assert v_e <= v_g * (1 + 1e-6)
    assert v_g <= 1.5 * v_e  # two passes already close to optimal


def test_greedy_uses_absolute_values() -> None:
    # a gradient of mostly negative entries: forgetting |.| in the l1 sum breaks the budget
    g = -_heavy(10_000, seed=3).abs()
    g[:10] = 5.0
    p = optimal_probabilities(g, 0.05, method="greedy", max_iter=50)
    assert float(p.sum()) == pytest.approx(0.05 * g.numel(), rel=1e-4)


def test_optimal_beats_uniform_variance() -> None:
    g = _heavy(10_000, seed=4)
    p = optimal_probabilities(g, 0.05)
    uni = torch.full_like(g, 0.05)
    assert sparsification_variance(g, p) < sparsification_variance(g, uni)


def test_fewer_nonzeros_than_budget() -> None:
    g = torch.zeros(100)
    g[[3, 7]] = torch.tensor([1.0, -2.0])
    for m in ("exact", "greedy"):
        p = optimal_probabilities(g, 0.5, method=m)
        assert float(p.sum()) == 2.0 and float(p[3]) == 1.0 and float(p[0]) == 0.0
    s = sparsify_unbiased(g, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.to_dense(), g)


def test_all_zero_gradient() -> None:
    g = torch.zeros(10)
    assert math.isinf(optimal_scale(g, 0.1))
    assert float(optimal_probabilities(g, 0.1).sum()) == 0.0
    assert sparsify_unbiased(g, 0.1).nnz == 0


# ---- unbiased sparsification (statistical, fixed seeds) ---------------------------------


@pytest.mark.parametrize("sampling", ["optimal", "uniform"])
def test_unbiased_and_variance_formula(sampling: str) -> None:
    d, n, density = 200, 4000, 0.1
    g = _heavy(d, seed=5)
    gen = torch.Generator().manual_seed(6)
    draws = torch.stack(
        [sparsify_unbiased(g, density, gen, sampling=sampling).to_dense() for _ in range(n)]
    ).double()
    p = optimal_probabilities(g, density) if sampling == "optimal" else torch.full_like(g, 0.1)
    gd, pd = g.double(), p.double()
    var_i = gd**2 * (1 / pd - 1)  # per-coordinate variance of Z g / p
    # unbiased: every coordinate's mean within 5 standard errors (Bonferroni over d=200)
    se = torch.sqrt(var_i / n)
    z = (draws.mean(0) - gd).abs() / se.clamp_min(1e-12)
    assert float(z[var_i > 0].max()) < 5.0
    assert torch.equal(draws.mean(0)[var_i == 0], gd[var_i == 0])
    # second moment E||Q||^2 = sum g^2/p (closed form), within 3%
    m2 = float((draws**2).sum(1).mean())
    assert m2 == pytest.approx(sparsification_variance(g, p), rel=0.03)
    # expected density sum p = density * d, within 3 standard errors of the count
    counts = (draws != 0).sum(1).double()
    sd = math.sqrt(float((pd * (1 - pd)).sum()) / n)
    assert abs(float(counts.mean()) - float(pd.sum())) < 3 * sd + 1e-9
    assert float(pd.sum()) == pytest.approx(density * d, rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sampling", ["optimal", "uniform"])
def test_half_precision_gradients_are_sparsified_without_bias(dtype: torch.dtype,
                                                              sampling: str) -> None:
    """Half and bfloat16 gradients (DDP buckets of a half-precision model): the keep
    decisions used to compare uniforms drawn in the gradient's dtype, on a grid of 2**-11
    (float16) or 2**-8 (bfloat16), so a coordinate with p = 0.001 was kept with probability
    1/256 in bfloat16: the message held 2x the expected coordinates and E[Q] was 1.6-2x g."""
    d, n, density = 2000, 3000, 0.005
    g = _heavy(d, seed=21).to(dtype)
    gen = torch.Generator().manual_seed(22)
    draws = torch.stack(
        [sparsify_unbiased(g, density, gen, sampling=sampling).to_dense() for _ in range(n)]
    ).double()
    gd = g.double()
    if sampling == "optimal":
        p = optimal_probabilities(g.float(), density).double()
    else:
        p = torch.full_like(gd, density)
    counts = (draws != 0).sum(1).double()
    sd = math.sqrt(float((p * (1 - p)).sum()) / n)
    assert abs(float(counts.mean()) - float(p.sum())) < 4 * sd
    # the estimate of sum |g| (signs removed) within 5 standard errors
    est = (draws * gd.sign()).sum(1)
    kept = p > 0  # coordinates that are zero in the dtype have p = 0
    se = math.sqrt(float((gd[kept] ** 2 * (1 / p[kept] - 1)).sum()) / n)
    # uniform: values g/density are rounded to the dtype (at most half an ulp each)
    slack = 0.0 if sampling == "optimal" else float(gd.abs().sum()) * 2.0 ** -8
    assert abs(float(est.mean()) - float(gd.abs().sum())) < 5 * se + slack


@pytest.mark.parametrize("method", ["exact", "greedy"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scale_matches_its_float32_copy(dtype: torch.dtype,
                                                       method: str) -> None:
    """Above 65536 coordinates the l1 norm of a half-precision gradient was summed into a
    result of its own dtype: rounded to 8 bits in bfloat16, so optimal_scale and
    optimal_probabilities of a 200000-entry bfloat16 gradient missed the budget by 0.08 %
    (sum p = 1998.4 for density * d = 2000), and disagreed with the float32 copy of the
    same values."""
    g = (torch.randn(200_000, generator=torch.Generator().manual_seed(31)) * 1e-2).to(dtype)
    density = 0.01
    lam = optimal_scale(g, density, method=method, max_iter=10)
    ref = optimal_scale(g.float(), density, method=method, max_iter=10)
    assert lam == pytest.approx(ref, rel=1e-6)
    if method == "exact":
        budget = float(torch.clamp(lam * g.double().abs(), max=1.0).sum())
        assert budget == pytest.approx(density * g.numel(), rel=1e-5)


def test_subnormal_shared_magnitude_stays_unbiased() -> None:
    """A float32 gradient of 1000 entries of magnitude 2**-149 (the smallest subnormal) at
    density 0.4 has 1/lambda = 2.5 * 2**-149, which float32 cannot hold: it was sent as
    2 * 2**-149 while coordinates were kept with p = 0.4, so E[Q(g)] = 0.8 g. The magnitude
    is rounded first now and p derived from it (p = 0.5), as for half precision."""
    ulp = 2.0 ** -149
    g = torch.full((1000,), ulp)
    g[::2] = -ulp
    gen = torch.Generator().manual_seed(41)
    n = 2000
    signed = torch.zeros(n, dtype=torch.float64)
    for t in range(n):
        msg = sparsify_unbiased(g, 0.4, gen)
        assert msg.scale is not None
        assert bool((msg.values.double().abs() == msg.scale).all())  # sent exactly
        signed[t] = (msg.to_dense().double() * g.double().sign()).sum()
    total = float(g.double().abs().sum())
    # each of the 1000 coordinates: value 2 ulp with probability 1/2, so the per-draw
    # sum has standard deviation sqrt(1000) ulp; allow 5 standard errors of the mean
    se = math.sqrt(1000.0) * ulp / math.sqrt(n)
    assert abs(float(signed.mean()) - total) < 5 * se


def test_huge_float32_gradient_probabilities_are_accurate() -> None:
    """Magnitudes near float32's maximum give a lambda below float32's smallest normal
    number; multiplying the float32 |g| by it rounded lambda to a subnormal with a few
    significant bits: p was off by 8e-4 relative and sum p = 1.0008 for a budget of 1."""
    g = torch.rand(10_000, generator=torch.Generator().manual_seed(0)) * 2e38 + 1e38
    for density in (1e-3, 1e-4):
        p32 = optimal_probabilities(g, density).double()
        p64 = optimal_probabilities(g.double(), density)
        assert float(((p32 - p64).abs() / p64).max()) < 1e-6
        assert float(p32.sum()) == pytest.approx(density * g.numel(), rel=1e-6)


def test_sparsify_repeatable_with_generator() -> None:
    g = _heavy(5000, seed=7)
    a = sparsify_unbiased(g, 0.02, torch.Generator().manual_seed(1))
    b = sparsify_unbiased(g, 0.02, torch.Generator().manual_seed(1))
    assert torch.equal(a.indices, b.indices) and torch.equal(a.values, b.values)


def test_hybrid_values_are_sign_times_scale() -> None:
    g = _heavy(5000, seed=8)
    s = sparsify_unbiased(g, 0.05, torch.Generator().manual_seed(2))
    assert s.saturated is not None and s.scale is not None
    uns = ~s.saturated
    assert bool(uns.any()) and bool(s.saturated.any())
    torch.testing.assert_close(s.values[uns].abs(), torch.full((int(uns.sum()),), s.scale))
    torch.testing.assert_close(s.values[s.saturated], g[s.indices[s.saturated]])


def test_bits_coding_models() -> None:
    d = 1 << 20
    idx = torch.arange(0, 100, dtype=torch.int64)
    sat = torch.zeros(100, dtype=torch.bool)
    sat[:10] = True
    sg = SparseGradient(idx, torch.ones(100), (d,), saturated=sat, scale=1.0)
    assert sg.bits("plain") == 100 * (20 + 32)
    assert sg.bits("hybrid") == 100 * 20 + 10 * 32 + 90 * 1 + 32
    dense_like = SparseGradient(torch.arange(d // 2), torch.ones(d // 2), (d,))
    assert dense_like.bits("hybrid") == d + (d // 2) * 32  # bitmap is shorter
    with pytest.raises(ValueError, match="coding"):
        sg.bits("huffman")


# ---- top-k ---------------------------------------------------------------------------------


@pytest.mark.parametrize("d,k", [(100, 7), (300_000, 3000), (300_000, 30), (1_000_000, 10_000)])
def test_topk_exact_matches_torch(d: int, k: int) -> None:
    g = torch.randn(d, generator=torch.Generator().manual_seed(d + k))
    vals, idx = topk(g, k)
    ref_v, ref_i = torch.topk(g.abs(), k)
    assert set(idx.tolist()) == set(ref_i.tolist())
    torch.testing.assert_close(vals.abs(), ref_v)  # sorted decreasing, like torch.topk
    torch.testing.assert_close(vals, g[idx])


def test_topk_structured_input_falls_back_correctly() -> None:
    # magnitudes concentrated where the strided sample never looks
    g = torch.zeros(400_000)
    n = g[1::4096].numel()
    g[1::4096] = torch.arange(1, n + 1, dtype=torch.float32)
    k = 50
    _, idx = topk(g, k)
    _, ref = torch.topk(g.abs(), k)
    assert set(idx.tolist()) == set(ref.tolist())


def _dist(name: str, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if name == "gaussian":
        return torch.randn(d, generator=gen)
    if name == "cauchy":  # heavier than any Student-t with > 1 dof
        return torch.tan(math.pi * (torch.rand(d, generator=gen) - 0.5))
    sign = torch.where(torch.rand(d, generator=gen) < 0.5, -1.0, 1.0)
    return sign * torch.exp(2.0 * torch.randn(d, generator=gen))  # log-normal


@pytest.mark.parametrize("name", ["gaussian", "cauchy", "lognormal"])
@pytest.mark.parametrize("frac", [0.01, 0.001])
def test_topk_approximate_recall_and_count(name: str, frac: float) -> None:
    # approximate mode: recall >= 0.99 and count error <= 1 % hold by construction
    d = 1_000_000
    k = int(frac * d)
    for seed in range(3):
        g = _dist(name, d, seed)
        _, idx = topk(g, k, exact=False, sorted=False)
        ref = torch.zeros(d, dtype=torch.bool)
        ref[torch.topk(g.abs(), k).indices] = True
        assert 0.99 * k <= idx.numel() <= k
        assert float(ref[idx].sum()) / k >= 0.99
        assert idx.unique().numel() == idx.numel()
        rest = g.abs().clone()
        rest[idx] = -1.0
        assert float(g.abs()[idx].min()) >= float(rest.max())  # the largest ones only
        _, idx_exact = topk(g, k, exact=True, sorted=False)
        assert bool(ref[idx_exact].all())


def _greedy_reference(g: np.ndarray, density: float, max_iter: int) -> np.ndarray:
    """The paper's greedy loop written plainly on the full vector in float64 (O(d) per pass)."""
    a = np.abs(g.astype(np.float64))
    target = density * a.size
    p = np.minimum(target * a / a.sum(), 1.0)
    for _ in range(max_iter):
        unsat = p < 1.0
        c = (target - (a.size - unsat.sum())) / p[unsat].sum()
        if c <= 1.0:
            break
        p = np.minimum(c * p, 1.0)
    return p


@pytest.mark.parametrize("name", ["cauchy", "lognormal", "gaussian"])
@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_greedy_matches_plain_full_vector_loop(name: str, max_iter: int) -> None:
    # the candidate-compacted greedy equals the plain loop over all d coordinates
    g = _dist(name, 400_000, 5)
    for density in (0.01, 0.001):
        p = optimal_probabilities(g, density, method="greedy", max_iter=max_iter)
        ref = _greedy_reference(g.numpy(), density, max_iter)
        np.testing.assert_allclose(p.double().numpy(), ref, rtol=2e-5, atol=1e-9)
        assert int((p >= 1).sum()) == int((ref >= 1).sum())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=300),
    st.floats(0.01, 1.0),
)
@example([262144.0, 0.015625], 1.0)  # float32 total loses the small entry
@example([2.0, 2.220446049250313e-16], 1.0)  # even float64 total - prefix cancels
@example([1.0, 1.401298464324817e-45], 0.875)  # 1/lambda not representable in float32
def test_probabilities_properties(xs: list[float], density: float) -> None:
    g = torch.tensor(xs, dtype=torch.float32)
    nnz = int((g != 0).sum())
    for m in ("exact", "greedy"):
        p = optimal_probabilities(g, density, method=m, max_iter=200)
        assert bool(((p >= 0) & (p <= 1)).all())
        assert bool((p[g == 0] == 0).all())
        target = min(density * g.numel(), nnz)
        assert float(p.sum()) == pytest.approx(target, rel=1e-3, abs=1e-3)
        # monotone in |g|: larger magnitude never gets a smaller probability
        order = torch.argsort(g.abs())
        assert bool((p[order].diff() >= -1e-6).all())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=200),
    st.integers(1, 200),
)
def test_topk_properties(xs: list[float], k: int) -> None:
    g = torch.tensor(xs, dtype=torch.float32)
    k = min(k, g.numel())
    vals, idx = topk(g, k)
    assert idx.numel() == k == len(set(idx.tolist()))
    kth = float(torch.topk(g.abs(), k).values[-1])
    assert float(vals.abs().min()) >= kth
    sg = topk_sparsify(g, k)
    rest = g.clone()
    rest[sg.indices] = 0
    assert float(rest.abs().max()) <= kth


# ---- error feedback -------------------------------------------------------------------------


def test_error_feedback_conserves_mass() -> None:
    ef = ErrorFeedback()
    gen = torch.Generator().manual_seed(10)
    total_g = torch.zeros(1000)
    total_sent = torch.zeros(1000)
    for _ in range(20):
        g = torch.randn(1000, generator=gen)
        msg = ef.step("w", g, lambda acc: topk_sparsify(acc, 10), scale=0.5)
        total_g += 0.5 * g
        total_sent += msg.to_dense()
    # everything not sent yet is in the residual
    torch.testing.assert_close(total_sent + ef.memory["w"], total_g, rtol=1e-5, atol=1e-5)
    sd = ef.state_dict()
    ef2 = ErrorFeedback()
    ef2.load_state_dict(sd)
    assert torch.equal(ef2.memory["w"], ef.memory["w"])
    with pytest.raises(ValueError, match="reset"):
        ef.accumulate("w", torch.zeros(5))


# ---- simulator and states ----------------------------------------------------------------


def test_simulator_topk_equals_manual_computation() -> None:
    gen = torch.Generator().manual_seed(11)
    sim = Simulator(3, "topk", density=0.01, warmup_steps=0)
    efs = [ErrorFeedback() for _ in range(3)]
    for _ in range(4):
        grads = [torch.randn(5000, generator=gen) for _ in range(3)]
        out = sim.step(grads)
        ref = torch.zeros(5000)
        for ef, g in zip(efs, grads, strict=True):
            ref += ef.step(0, g, lambda a: topk_sparsify(a, 50)).to_dense()
        torch.testing.assert_close(out, ref / 3)
    b = sim.bits()
    assert b["bytes_sent"] < b["dense_bytes"] / 20


@pytest.mark.parametrize("compressor", ["topk", "unbiased"])
def test_half_precision_messages_average_without_overflow(compressor: str) -> None:
    # the sparse average summed the ranks' float16 values before dividing by their number:
    # two finite 40000 became inf (float16's largest is 65504), where the dense average,
    # which divides first, is 40000; and no rank's flag reported anything
    g = torch.zeros(1000, dtype=torch.float16)
    g[3] = 40000.0
    sim = Simulator(2, compressor, density=0.01, warmup_steps=0)
    out = sim.step([g, g.clone()])
    assert out.dtype == torch.float16
    assert float(out[3]) == 40000.0
    g3 = torch.zeros(1000, dtype=torch.float16)
    g3[7] = -30000.0
    out3 = Simulator(3, compressor, density=0.01, warmup_steps=0).step([g3] * 3)
    assert float(out3[7]) == -30000.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_optimal_sampling_overflow_names_the_shared_magnitude(dtype: torch.dtype) -> None:
    # optimal sampling sends sign * (1/lambda); when 1/lambda does not fit the dtype the
    # error described the uniform message g / density and told the user to pass
    # sampling='optimal' (already passed) or, for a float32 gradient, a float32 gradient
    big = 54000.0 if dtype == torch.float16 else 2.7e38
    g = torch.zeros(1000, dtype=dtype)
    g[:20] = big
    g[1:20:2] = -big  # 20 equal magnitudes, 10 expected: 1/lambda = 2 * big
    with pytest.raises(ValueError, match="overflows") as info:
        sparsify_unbiased(g, 0.01, 0)
    text = str(info.value)
    assert "1/lambda" in text and "g / density" not in text
    assert "sampling='optimal'" not in text
    assert "float64" in text
    with pytest.raises(FloatingPointError, match="1/lambda"):
        Simulator(2, "unbiased", density=0.01, warmup_steps=0).step([g, g.clone()])


def test_uniform_sampling_that_overflows_float16_is_never_sent_as_inf() -> None:
    # random-k sends g / density: 1000 / 0.01 does not fit float16, and the message held inf
    # for a finite gradient; the exchange averaged it into the model under either policy
    # and no rank reported anything
    g = torch.full((1000,), 1000.0, dtype=torch.float16)
    with pytest.raises(ValueError, match="overflows"):
        sparsify_unbiased(g, 0.01, 0, sampling="uniform")
    sim = Simulator(2, "unbiased", density=0.01, warmup_steps=0, sampling="uniform")
    with pytest.raises(FloatingPointError, match=r"rank\(s\) \[0, 1\].*overflowed"):
        sim.step([g, g.clone()])
    sim = Simulator(2, "unbiased", density=0.01, warmup_steps=0, sampling="uniform",
                    nonfinite="skip")
    out = sim.step([g, g.clone()])
    assert bool(torch.isfinite(out).all()) and not bool(out.any())
    # what fits is sent as before
    small = torch.full((1000,), 100.0, dtype=torch.float16)
    msg = sparsify_unbiased(small, 0.5, 0, sampling="uniform")
    assert bool((msg.values == 200.0).all())


def test_simulator_topk_large_buckets_reuse_buffers_correctly() -> None:
    # above the small-vector threshold: sampled selection, double-buffered residuals
    gen = torch.Generator().manual_seed(13)
    d, k = 200_000, 2000
    sim = Simulator(2, "topk", density=0.01, warmup_steps=0)
    efs = [ErrorFeedback() for _ in range(2)]
    for _ in range(6):
        grads = [torch.randn(d, generator=gen) ** 3 for _ in range(2)]
        copies = [g.clone() for g in grads]
        out = sim.step(grads)
        for g, c in zip(grads, copies, strict=True):
            assert torch.equal(g, c)  # the caller's gradients are never written
        ref = torch.zeros(d)
        for ef, g in zip(efs, grads, strict=True):
            ref += ef.step(0, g, lambda a: topk_sparsify(a, k)).to_dense()
        torch.testing.assert_close(out, ref / 2, rtol=0, atol=0)
        for st_, ef in zip(sim.states, efs, strict=True):
            assert torch.equal(st_.memory[0], ef.memory[0])
    assert all(len(st_._spare) == 1 for st_ in sim.states)  # one spare buffer per bucket


def test_simulator_unbiased_is_unbiased() -> None:
    g = _heavy(300, seed=12)
    sim = Simulator(2, "unbiased", density=0.1, warmup_steps=0, method="exact", seed=1)
    mean = torch.stack([sim.step([g, g]) for _ in range(3000)]).double().mean(0)
    p = optimal_probabilities(g, 0.1).double()
    se = torch.sqrt(g.double() ** 2 * (1 / p - 1) / 6000)
    m = se > 0
    assert float(((mean - g.double()).abs()[m] / se[m]).max()) < 5.0


def test_states_pickle_without_process_group() -> None:
    st_ = TopKState(process_group=object(), density=0.02)
    st_.memory[0] = torch.ones(3)
    st2 = pickle.loads(pickle.dumps(st_))
    assert st2.process_group is None and st2.density == 0.02
    assert torch.equal(st2.memory[0], torch.ones(3))
    us = UnbiasedSparsifyState(density=0.1, seed=4)
    us._bind(0, 2)
    assert us.generator is not None
    us.generator.manual_seed(99)
    torch.rand(3, generator=us.generator)
    us2 = pickle.loads(pickle.dumps(us))
    assert us2.generator is not None
    r1, r2 = torch.rand(5, generator=us.generator), torch.rand(5, generator=us2.generator)
    assert torch.equal(r1, r2)
    with pytest.raises(ValueError, match="world_size"):
        us2._bind(0, 4)


def test_simulator_nonfinite_policy() -> None:
    sim = Simulator(2, "topk", density=0.1, warmup_steps=0)
    bad = torch.randn(10)
    bad[0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"rank\(s\) \[1\]"):
        sim.step([torch.randn(10), bad])
    skip = Simulator(2, "topk", density=0.1, warmup_steps=0, nonfinite="skip")
    out = skip.step([torch.randn(10), bad])
    assert torch.equal(out, torch.zeros(10))
    assert bool(torch.isfinite(skip.states[1].memory.get(0, torch.zeros(1))).all())


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([10, 70_000, 20_000_000, 40_000_000]),
    st.integers(0, 50),
    st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
    st.integers(0, 1),
)
def test_pack_roundtrip(numel: int, n: int, dtype: torch.dtype, flag: int) -> None:
    from neurips18.compress._exchange import pack, unpack

    gen = torch.Generator().manual_seed(n)
    n = min(n, numel)
    idx = torch.randperm(numel, generator=gen)[:n] if numel < 10**6 else torch.randint(
        0, numel, (n,), generator=gen).unique()
    vals = torch.randn(idx.numel(), generator=gen).to(dtype)
    msg = SparseGradient(idx, vals, (numel,))
    buf = pack(msg, idx.numel() + 3, dtype, flag, numel)
    f, i2, v2 = unpack(buf, idx.numel() + 3, dtype, numel)
    assert f == flag and torch.equal(i2, idx) and torch.equal(v2, vals)


def test_residuals_follow_parameters_across_layouts() -> None:
    """A change of DDP's bucket layout moves each parameter's residual with it."""
    params = [torch.zeros(n) for n in (3, 5, 2, 4)]
    st = TopKState(density=0.5)
    st._bind(0, 1)
    # first iteration: one bucket, module order
    assert st._parts(0, params) == [(0, None)]
    st._new_iteration = True
    st.memory[0] = torch.arange(14, dtype=torch.float32)  # residual of p0 | p1 | p2 | p3
    own = {0: torch.arange(0, 3.0), 1: torch.arange(3, 8.0), 2: torch.arange(8, 10.0),
           3: torch.arange(10, 14.0)}
    # DDP rebuilds: bucket 0 = (p3, p2), bucket 1 = (p1, p0)
    assert st._parts(0, [params[3], params[2]]) == [(0, None)]
    assert st._parts(1, [params[1], params[0]]) == [(1, None)]
    assert torch.equal(st.memory[0], torch.cat([own[3], own[2]]))
    assert torch.equal(st.memory[1], torch.cat([own[1], own[0]]))
    st._new_iteration = True
    # a restored state meets a fresh DDP (one bucket, module order): exchanged as the
    # checkpoint's two buckets, each gathered from its parameters' positions
    st2 = pickle.loads(pickle.dumps(st))
    fresh = [torch.zeros(n) for n in (3, 5, 2, 4)]
    parts = st2._parts(0, fresh)
    assert [b for b, _ in parts] == [0, 1]
    flat = torch.arange(14, dtype=torch.float32)
    assert torch.equal(flat[parts[0][1]], torch.cat([own[3], own[2]]))
    assert torch.equal(flat[parts[1][1]], torch.cat([own[1], own[0]]))
    # a state of another model is refused, not silently misapplied
    st3 = pickle.loads(pickle.dumps(st))
    with pytest.raises(ValueError, match="another model"):
        st3._parts(0, [torch.zeros(n) for n in (3, 6, 2, 4)])


@pytest.mark.parametrize("density", [0.25, 1.0])
def test_residual_of_a_parameter_with_zero_gradient_is_held(density: float) -> None:
    """A parameter whose gradient is all zero (DDP's picture of an unused parameter, whose
    gradient it leaves untouched when no rank used it) keeps its residual: it is neither
    sent (sparse, or the dense fallback at density 1) nor cleared from the memory."""
    params = [torch.zeros(4), torch.zeros(4)]
    st = TopKState(density=density, warmup_steps=0)
    st._bind(0, 1)
    assert st._parts(0, params) == [(0, None)]
    st.memory[0] = torch.tensor([0.5, 0, 0, 0, 5.0, -2.0, 0, 0])
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 0, 0, 0, 0])  # the second parameter unused
    out = st.start(0, g, True)
    assert out.mode == ("dense" if density == 1.0 else "sparse")
    received = [st.pack(out)] if out.mode == "sparse" else out.payload.clone()
    res, err = st.complete(out, received)
    assert err is None
    assert not bool(res[4:].any())  # nothing sent for the unused parameter
    torch.testing.assert_close(st.memory[0][4:], torch.tensor([5.0, -2.0, 0, 0]))
    # error feedback conserves the mass: sent + residual = gradient + old residual
    torch.testing.assert_close(res + st.memory[0],
                               g + torch.tensor([0.5, 0, 0, 0, 5.0, -2.0, 0, 0]))


def test_simulator_dense_fallback_at_high_density() -> None:
    gen = torch.Generator().manual_seed(5)
    for compressor in ("topk", "unbiased"):
        sim = Simulator(2, compressor, density=1.0, warmup_steps=0, error_feedback=True)
        for _ in range(3):
            a, b = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
            out = sim.step([a, b])
            torch.testing.assert_close(out, a / 2 + b / 2, rtol=0, atol=0)
        st = sim.states[0].stats()
        assert st["dense_fallbacks"] == 3
        assert st["bytes_sent"] == 3 * (50 + 2) * 4 and st["dense_bytes"] == 3 * 50 * 4
        assert 0 not in sim.states[0].memory  # everything sent: no residual left
    # at low density the sparse path is kept
    sim = Simulator(2, "topk", density=0.1, warmup_steps=0)
    sim.step([torch.randn(50, generator=gen), torch.randn(50, generator=gen)])
    assert sim.states[0].stats()["dense_fallbacks"] == 0


def test_checkpoint_loads_with_torch_load_defaults(tmp_path) -> None:
    """The documented checkpoint {"model": ..., "hook": state} loads with torch.load's safe
    default (weights_only=True), for every state kind and the simulator."""
    model = torch.nn.Linear(4, 3)
    sim = Simulator(2, "unbiased", density=0.3, warmup_steps=0, error_feedback=True, seed=2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        sim.step([torch.randn(12, generator=gen), torch.randn(12, generator=gen)])
    states = {"topk": TopKState(density=0.2, exact=False),
              "unbiased": sim.states[1], "uniform": UnbiasedSparsifyState(sampling="uniform")}
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "hook": states, "sim": sim}, path)
    ckpt = torch.load(path)  # weights_only=True by default
    for name, st_ in states.items():
        got = ckpt["hook"][name]
        assert type(got) is type(st_) and got.config == st_.config and got.stats() == st_.stats()
        assert got.memory.keys() == st_.memory.keys()
        assert all(torch.equal(got.memory[k], st_.memory[k]) for k in st_.memory)
    # the restored simulator continues exactly as the original
    sim2 = ckpt["sim"]
    a, b = torch.randn(12, generator=gen), torch.randn(12, generator=gen)
    assert torch.equal(sim.step([a, b]), sim2.step([a, b]))


@pytest.mark.parametrize("compressor", ["topk", "unbiased"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_feedback_conserves_gradient_mass(compressor: str,
                                                              dtype: torch.dtype) -> None:
    # the residual was kept in the bucket's dtype: in bfloat16 a waiting residual of 300
    # swallowed every later gradient of 0.9 (below half its ulp), so 99 steps of gradient
    # vanished (applied + residual = 300 instead of 389)
    sim = Simulator(1, compressor, density=0.01, warmup_steps=0, error_feedback=True)
    total = torch.zeros(1000, dtype=torch.float64)
    applied = torch.zeros(1000, dtype=torch.float64)
    for t in range(100):
        g = torch.full((1000,), 0.01)
        g[:10] = 1000.0
        g[10] = 300.0 if t == 0 else 0.9
        g = g.to(dtype)
        total += g.double()
        applied += sim.step([g]).double()
        assert sim.states[0].memory[0].dtype == torch.float32
    got = applied + sim.states[0].memory[0].double()
    # (float32 rounding of the residual: about 1e-4; the lost mass was up to 89)
    torch.testing.assert_close(got, total, rtol=0, atol=0.05)
