"""Bad input to every public entry point of neurips18.compress: one error type, naming the
parameter and what is allowed; the input is never modified."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurips18._validation import ValidationError
from neurips18.compress import (
    ErrorFeedback,
    HookConfig,
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

G = torch.randn(10, generator=torch.Generator().manual_seed(0))


def _nan(pos: int = 3, value: float = float("nan")) -> torch.Tensor:
    h = G.clone()
    h[pos] = value
    return h


CASES = [
    ("k", lambda: topk(G, 11)),
    ("k", lambda: topk(G, 0)),
    ("k", lambda: topk(G, 2.5)),
    ("k", lambda: topk(G, True)),
    ("k", lambda: topk_sparsify(G, 11)),
    ("g", lambda: topk(torch.empty(0), 1)),
    ("exact", lambda: topk(G, 2, exact=None)),
    ("exact", lambda: topk_sparsify(G, 2, exact="False")),
    ("sorted", lambda: topk(G, 2, sorted=0)),
    ("g", lambda: topk(torch.arange(5), 1)),
    ("g", lambda: topk(np.ones(5), 1)),
    ("g", lambda: optimal_probabilities(torch.arange(5), 0.5)),
    ("g", lambda: optimal_probabilities(np.ones(5), 0.5)),
    ("g", lambda: optimal_probabilities(torch.empty(0), 0.5)),
    ("g", lambda: optimal_scale(torch.empty(0), 0.5)),
    ("g", lambda: sparsify_unbiased(torch.empty(0), 0.5)),
    ("method", lambda: optimal_probabilities(G, 0.5, method="bisect")),
    ("max_iter", lambda: optimal_probabilities(G, 0.5, method="greedy", max_iter=-1)),
    ("max_iter", lambda: optimal_scale(G, 0.5, max_iter=1.5)),
    ("sampling", lambda: sparsify_unbiased(G, 0.5, sampling="random")),
    ("generator", lambda: sparsify_unbiased(G, 0.5, generator=-1)),
    ("generator", lambda: sparsify_unbiased(G, 0.5, generator="seed")),
    ("generator", lambda: sparsify_unbiased(G, 0.5, generator=2**64)),
    ("p", lambda: sparsification_variance(G, torch.full((9,), 0.5))),
    ("p", lambda: sparsification_variance(G, torch.full((10,), 1.5))),
    ("coding", lambda: topk_sparsify(G, 2).bits("huffman")),
    ("values", lambda: SparseGradient(torch.arange(3), torch.ones(2), (5,))),
    ("shape", lambda: SparseGradient(torch.arange(2), torch.ones(2), (2.7, 3))),
    ("shape", lambda: SparseGradient(torch.arange(2), torch.ones(2), (-2, -3))),
    ("shape", lambda: SparseGradient(torch.arange(2), torch.ones(2), 5)),
    ("saturated", lambda: SparseGradient(torch.arange(3), torch.ones(3), (100,),
                                         saturated=torch.ones(10, dtype=torch.bool),
                                         scale=1.0)),
    ("saturated", lambda: SparseGradient(torch.arange(3), torch.ones(3), (100,),
                                         saturated=torch.tensor([0.0, 1.0, 0.0]), scale=1.0)),
    ("saturated", lambda: SparseGradient(torch.arange(3), torch.ones(3), (100,),
                                         saturated=[True, False, True], scale=1.0)),
    ("nonfinite", lambda: TopKState(nonfinite="ignore")),
    ("warmup_steps", lambda: TopKState(warmup_steps=-1)),
    ("error_feedback", lambda: TopKState(error_feedback=1)),
    ("exact", lambda: TopKState(exact="yes")),
    ("seed", lambda: UnbiasedSparsifyState(seed=-3)),
    ("max_iter", lambda: UnbiasedSparsifyState(max_iter=-1)),
    ("method", lambda: UnbiasedSparsifyState(method="bisect")),
    ("sampling", lambda: UnbiasedSparsifyState(sampling="random")),
    ("compressor", lambda: HookConfig("powersgd")),
    ("world_size", lambda: Simulator(0)),
    ("world_size", lambda: Simulator(2.0)),
    ("compressor", lambda: Simulator(2, "powersgd")),
    ("process_group", lambda: Simulator(2, process_group=object())),
    ("grads", lambda: Simulator(2, density=0.1).step([G])),
    ("grads[1]", lambda: Simulator(2, density=0.1).step([G, torch.randn(11)])),
    ("grads[0]", lambda: Simulator(2, density=0.1).step([torch.empty(0), torch.empty(0)])),
    ("grads[1]", lambda: Simulator(2, density=0.1).step([G, np.ones(10)])),
    ("g", lambda: ErrorFeedback().accumulate("w", np.ones(3))),
    ("scale", lambda: ErrorFeedback().accumulate("w", G, scale=float("nan"))),
    ("scale", lambda: ErrorFeedback().step("w", G, lambda a: topk_sparsify(a, 2),
                                          scale=float("inf"))),
    ("scale", lambda: ErrorFeedback().accumulate("w", G, scale="0.1")),
]


def test_sparse_gradient_shape_kinds() -> None:
    # torch.Size, NumPy integers and lists are shapes; kept as a tuple of Python ints
    for shape in (torch.Size([2, 3]), (np.int64(2), 3), [2, 3]):
        m = SparseGradient(torch.arange(2), torch.ones(2), shape)
        assert m.shape == (2, 3) and all(type(s) is int for s in m.shape)
        assert m.to_dense().shape == (2, 3)


def test_error_feedback_nonfinite_scale_leaves_the_residual() -> None:
    # a NaN step size made every residual entry NaN without a word when the compressor
    # did not check its input (a user's own compressor), so every later message was NaN
    ef = ErrorFeedback()
    ef.step("w", G, lambda a: SparseGradient(torch.arange(2), a[:2], a.shape))
    before = ef.memory["w"].clone()
    with pytest.raises(ValidationError, match="^Invalid scale: nan"):
        ef.step("w", G, lambda a: SparseGradient(torch.arange(2), a[:2], a.shape),
                scale=float("nan"))
    assert torch.equal(ef.memory["w"], before)


@pytest.mark.parametrize("name,call", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_bad_input_names_the_parameter(name, call) -> None:
    pattern = "^Invalid " + name.replace("[", r"\[").replace("]", r"\]") + ": "
    with pytest.raises(ValidationError, match=pattern):
        call()


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, float("nan"), float("inf"), "0.1", None])
def test_bad_density(density) -> None:
    for call in (lambda: optimal_probabilities(G, density),
                 lambda: optimal_scale(G, density),
                 lambda: sparsify_unbiased(G, density),
                 lambda: TopKState(density=density),
                 lambda: UnbiasedSparsifyState(density=density),
                 lambda: Simulator(2, "unbiased", density=density)):
        with pytest.raises(ValidationError, match=r"^Invalid density: .*\(expected a finite "
                                                  r"number in \(0, 1\]\)"):
            call()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradients_are_refused_by_the_kernels(bad: float) -> None:
    h = _nan(3, bad)
    for call in (lambda: topk(h, 2), lambda: topk_sparsify(h, 2),
                 lambda: sparsify_unbiased(h, 0.5), lambda: optimal_probabilities(h, 0.5),
                 lambda: optimal_scale(h, 0.5),
                 lambda: sparsify_unbiased(h, 0.5, sampling="uniform")):
        with pytest.raises(ValidationError, match=r"^Invalid g: .*found 1 NaN or inf"):
            call()


def test_errors_are_value_and_type_errors() -> None:
    with pytest.raises(ValueError):
        topk(G, 11)
    with pytest.raises(TypeError):
        topk(G, 2.5)


def test_inputs_are_not_modified() -> None:
    g = G.clone()
    topk(g, 3)
    topk_sparsify(g, 3)
    optimal_probabilities(g, 0.3)
    optimal_scale(g, 0.3, method="greedy")
    sparsify_unbiased(g, 0.3, generator=0)
    sparsification_variance(g, torch.full_like(g, 0.5))
    sim = Simulator(2, "topk", density=0.2, warmup_steps=0)
    h = -g
    sim.step([g, h])
    sim.step([g, h])
    ef = ErrorFeedback()
    ef.step("w", g, lambda acc: topk_sparsify(acc, 2))
    assert torch.equal(g, G) and torch.equal(h, -G)


def test_int_seed_is_a_generator() -> None:
    a = sparsify_unbiased(G, 0.3, generator=7)
    b = sparsify_unbiased(G, 0.3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.indices, b.indices) and torch.equal(a.values, b.values)


def test_config_is_frozen_and_shared() -> None:
    st = TopKState(density=0.02)
    assert isinstance(st.config, HookConfig) and st.density == 0.02
    with pytest.raises(AttributeError):
        st.config.density = 0.5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        st.density = 0.5  # type: ignore[misc]
    u = UnbiasedSparsifyState(density=0.05, max_iter=3)
    assert type(u.config) is type(st.config) and u.config.max_iter == 3
    sim = Simulator(2, "unbiased", density=0.05)
    assert all(s.config == sim.states[0].config for s in sim.states)


def test_sparse_gradient_refuses_positions_outside_its_shape():
    """Index -1 wrapped round to the last coordinate; an index past the end was accepted
    (and counted by bits()) until to_dense failed."""
    from neurips18.compress import SparseGradient

    for bad in ([-1], [3], [0, 7]):
        with pytest.raises(ValueError, match=r"Invalid indices.*\[0, 3\)"):
            SparseGradient(torch.tensor(bad), torch.ones(len(bad)), (3,))
    ok = SparseGradient(torch.tensor([0, 2]), torch.tensor([1.0, 2.0]), (3,))
    assert ok.to_dense().tolist() == [1.0, 0.0, 2.0]
    assert SparseGradient(torch.zeros(0, dtype=torch.int64), torch.zeros(0), (3,)).nnz == 0


def test_sparse_gradient_refuses_a_repeated_position():
    """to_dense() kept one of a repeated position's values and dropped the other, silently
    (here 1.0 + 5.0 sent at position 3 arrived as one of them)."""
    from neurips18.compress import SparseGradient

    with pytest.raises(ValueError, match=r"Invalid indices.*3 appears more than once"):
        SparseGradient(torch.tensor([3, 1, 3]), torch.tensor([1.0, 2.0, 5.0]), (5,))
    ok = SparseGradient(torch.tensor([3, 1]), torch.tensor([1.0, 2.0]), (5,))
    assert ok.to_dense().tolist() == [0.0, 2.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("seed", [2**70, 2**64 // 1_000_003 + 1])
def test_a_large_seed_is_accepted_where_it_is_validated(seed: int) -> None:
    # HookConfig accepts any non-negative int; a seed whose per-rank generator seed exceeded
    # 64 bits raised "Overflow when unpacking long long" later, from the first backward
    # pass under DDP (top-k, which does not use the seed, included)
    for compressor in ("topk", "unbiased"):
        sim = Simulator(2, compressor, seed=seed, density=0.5, warmup_steps=0)
        out = sim.step([G, -G])
        assert out.shape == G.shape and bool(torch.isfinite(out).all())
    a, b = (s.generator.initial_seed() for s in sim.states)
    assert a != b  # the ranks still draw from different streams
    # an ordinary seed keeps its stream
    assert Simulator(2, "unbiased", seed=5).states[1].generator.initial_seed() == 5 * 1_000_003 + 1


def test_numpy_bools_are_bools() -> None:
    # np.True_ was refused as "Invalid error_feedback: True (expected one of False, True)"
    st = TopKState(error_feedback=np.False_, exact=np.True_, density=0.1)
    assert st.config.error_feedback is False and st.config.exact is True
    with pytest.raises(ValidationError, match=r"^Invalid error_feedback: 1 \(expected a bool\)"):
        TopKState(error_feedback=1)
