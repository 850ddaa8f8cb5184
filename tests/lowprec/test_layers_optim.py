"""Emulated FP8 layers, convert_to_fp8, Fp8Recipe and StochasticRoundingSGD."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from neurips18.lowprec import (
    BF16,
    E5M2,
    E6M9,
    FP16,
    FP32,
    Fp8Conv2d,
    Fp8Linear,
    Fp8Recipe,
    StochasticRoundingSGD,
    chunked_matmul,
    chunked_sum,
    convert_to_fp8,
    is_representable,
    quantize,
    sr_sgd,
)
from neurips18.repro._common.models import cifar_resnet, mnist_cnn, mnist_mlp

NO_ROUNDING = Fp8Recipe(data_format=FP32, acc_format=FP32, high_format=FP32)


def _sqnr_db(ref: torch.Tensor, got: torch.Tensor) -> float:
    return 10 * math.log10(ref.pow(2).sum().item() / (ref - got).pow(2).sum().item())


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_linear_plumbing_matches_nn_linear_without_rounding(mode):
    torch.manual_seed(0)
    lin = nn.Linear(20, 7)
    emu = convert_to_fp8(nn.Linear(20, 7), Fp8Recipe(data_format=FP32, acc_format=FP32,
                                                   high_format=FP32, mode=mode))
    emu.load_state_dict(lin.state_dict())
    x = torch.randn(2, 5, 20, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = lin(x), emu(x2)
    assert torch.allclose(y, y2, atol=1e-5)
    gy = torch.randn_like(y)
    y.backward(gy)
    y2.backward(gy)
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)
    assert torch.allclose(lin.weight.grad, emu.weight.grad, atol=1e-4)
    assert torch.allclose(lin.bias.grad, emu.bias.grad, atol=1e-4)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding=2, dilation=2),
                                dict(stride=(2, 1), padding=(1, 0), bias=False)])
def test_conv_plumbing_matches_nn_conv2d_without_rounding(kw):
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, **kw)
    emu = nn.Sequential(nn.Conv2d(3, 4, 3, **kw))
    emu.load_state_dict({"0." + k: v for k, v in conv.state_dict().items()})
    convert_to_fp8(emu, NO_ROUNDING)
    assert isinstance(emu[0], Fp8Conv2d)
    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = conv(x), emu(x2)
    assert y.shape == y2.shape and torch.allclose(y, y2, atol=1e-5)
    gy = torch.randn_like(y)
    y.backward(gy)
    y2.backward(gy)
    assert torch.allclose(x.grad, x2.grad, atol=1e-4)
    assert torch.allclose(conv.weight.grad, emu[0].weight.grad, atol=1e-4)
    if conv.bias is not None:
        assert torch.allclose(conv.bias.grad, emu[0].bias.grad, atol=1e-4)


def test_linear_gemms_follow_the_recipe_exactly():
    """Forward, backward-data and weight-gradient GEMMs equal the documented compositions."""
    torch.manual_seed(2)
    rec = Fp8Recipe(keep_first_last=False, chunk=16, loss_scale=8.0)
    emu = convert_to_fp8(nn.Linear(40, 6), rec)
    x = torch.randn(33, 40, requires_grad=True)
    y = emu(x)
    gy = torch.randn_like(y) * 1e-3
    y.backward(gy)
    xq, wq = quantize(x.detach(), E5M2), quantize(emu.weight.detach(), E5M2)
    y_ref = quantize(chunked_matmul(xq, wq.t(), E6M9, 16, "fast") + emu.bias.detach(), E6M9)
    assert torch.equal(y.detach(), y_ref)
    gq = quantize(gy * 8.0, E5M2)
    assert torch.equal(x.grad, chunked_matmul(gq, wq, E6M9, 16, "fast") / 8.0)
    assert torch.equal(emu.weight.grad, chunked_matmul(gq.t(), xq, E6M9, 16, "fast") / 8.0)
    assert torch.equal(emu.bias.grad, chunked_sum(gq, E6M9, 16, dim=0, mode="fast") / 8.0)
    for t in (y.detach(), x.grad, emu.weight.grad):
        assert bool(is_representable(t, E6M9).all())


def test_fp8_recipe_keeps_sqnr_of_a_cnn():
    torch.manual_seed(3)
    ref = mnist_cnn()
    emu = mnist_cnn()
    emu.load_state_dict(ref.state_dict())
    convert_to_fp8(emu, Fp8Recipe())
    x = torch.rand(8, 1, 28, 28)
    assert _sqnr_db(ref(x), emu(x)) > 15.0  # E5M2 inputs: ~ 20 dB per rounding


def test_convert_to_fp8_first_last_filter_and_shared_parameters():
    model = mnist_mlp(32)
    params = list(model.parameters())
    convert_to_fp8(model, Fp8Recipe())
    lins = [m for m in model if isinstance(m, Fp8Linear)]
    assert len(lins) == 3
    assert [m.cfg.data for m in lins] == [E6M9, E5M2, E6M9]
    assert list(model.parameters()) == params  # same objects: optimizers keep working
    m2 = convert_to_fp8(mnist_mlp(32), Fp8Recipe(keep_first_last=False, high_format=FP16))
    assert all(m.cfg.data == E5M2 for m in m2 if isinstance(m, Fp8Linear))
    m3 = convert_to_fp8(mnist_mlp(32), module_filter=lambda mod, name: name != "3")
    assert isinstance(m3[3], nn.Linear) and not isinstance(m3[3], Fp8Linear)
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, padding="same"))
    convert_to_fp8(grouped)
    assert all(isinstance(m, Fp8Conv2d) for m in grouped)
    lin = nn.Linear(3, 2)
    assert convert_to_fp8(lin) is lin and isinstance(lin, Fp8Linear)  # in place
    with pytest.raises(TypeError, match="recipe"):
        convert_to_fp8(model, "fp8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="module"):
        convert_to_fp8("model")  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, word", [(dict(chunk=0), "chunk"), (dict(mode="slow"), "mode"),
                                          (dict(loss_scale=0.0), "loss_scale"),
                                          (dict(loss_scale=float("inf")), "loss_scale"),
                                          (dict(data_format="E5M2"), "data_format")])
def test_recipe_validation(kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        Fp8Recipe(**kwargs)


def test_recipe_is_frozen():
    with pytest.raises(AttributeError):
        Fp8Recipe().chunk = 32  # type: ignore[misc]


def test_cifar_resnet_fp8_step_on_synthetic_batch():
    torch.manual_seed(4)
    model = convert_to_fp8(cifar_resnet(8), Fp8Recipe(loss_scale=128.0))
    opt = StochasticRoundingSGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                                generator=torch.Generator().manual_seed(0))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    for p in model.parameters():
        assert bool(is_representable(p.detach(), E6M9).all())


# ---------------------------------------------------------------- optimizer
def test_optimizer_validation_messages():
    p = [nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        StochasticRoundingSGD(p, lr=-1)
    with pytest.raises(ValueError, match="Invalid momentum value: -0.5"):
        StochasticRoundingSGD(p, lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="Invalid weight_decay value: -1"):
        StochasticRoundingSGD(p, lr=0.1, weight_decay=-1)
    with pytest.raises(ValueError, match="Invalid rounding"):
        StochasticRoundingSGD(p, lr=0.1, rounding="up")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fmt"):
        StochasticRoundingSGD(p, lr=0.1, fmt="E6M9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        StochasticRoundingSGD(p, lr=float("nan"))


@pytest.mark.parametrize("key, value", [("nesterov", True), ("dampening", 0.5),
                                        ("maximize", True), ("differentiable", True)])
def test_sgd_options_it_does_not_implement_are_refused_not_ignored(key, value):
    # parameter groups written for torch.optim.SGD: the option would have been dropped
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match=f"Invalid param_group\\['{key}'\\]"):
        StochasticRoundingSGD([{"params": [a]}, {"params": [b], key: value}], lr=0.1,
                              momentum=0.9)
    opt = StochasticRoundingSGD([{"params": [a], "name": "head"}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=key):
        opt.add_param_group({"params": [b], key: value})
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["name"] == "head"
    off = {"nesterov": False, "dampening": 0.0, "maximize": False, "differentiable": False}
    opt.add_param_group({"params": [b], key: off[key]})  # the "off" value is what it runs
    assert len(opt.param_groups) == 2


def test_small_updates_stall_with_nearest_and_survive_with_sr():
    """Adding 1e-4 to w = 1 ten thousand times (the brief's experiment), FP16 weights."""
    out = {}
    for rounding in ("nearest", "stochastic"):
        w = nn.Parameter(torch.ones(2000))
        opt = StochasticRoundingSGD([w], lr=1e-4, fmt=FP16, rounding=rounding,
                                    generator=torch.Generator().manual_seed(0))
        for _ in range(10_000):
            w.grad = -torch.ones(2000)
            opt.step()
        out[rounding] = w.detach()
    assert torch.equal(out["nearest"], torch.ones(2000))  # 1e-4 < half ulp (4.9e-4) of 1
    # SR: each step moves by an unbiased amount; the mean over 2000 weights is ~ 2.0
    assert abs(out["stochastic"].double().mean().item() - 2.0) < 0.01


def test_optimizer_state_functional_core_and_repeatability():
    torch.manual_seed(5)
    w0 = torch.randn(50)
    grads = [torch.randn(50) * 1e-2 for _ in range(5)]

    def run(seed):
        w = nn.Parameter(w0.clone())
        opt = StochasticRoundingSGD([w], lr=0.1, momentum=0.9, weight_decay=1e-3,
                                    generator=torch.Generator().manual_seed(seed))
        for g in grads:
            w.grad = g.clone()
            opt.step()
        return w.detach().clone(), opt

    a, opt = run(0)
    b, _ = run(0)
    c, _ = run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    (p,) = opt.param_groups[0]["params"]
    buf = opt.state[p]["momentum_buffer"]
    assert bool(is_representable(buf, E6M9).all()) and bool(is_representable(a, E6M9).all())
    # functional core reproduces the class
    w = quantize(w0.clone(), E6M9)
    bufs: list[torch.Tensor | None] = [None]
    gen = torch.Generator().manual_seed(0)
    for g in grads:
        sr_sgd([w], [g.clone()], bufs, lr=0.1, momentum=0.9, weight_decay=1e-3, fmt=E6M9,
               rounding="stochastic", generator=gen)
    assert torch.equal(w, a)


def test_nearest_rounding_update_against_scalar_reference(ref):
    torch.manual_seed(6)
    w = nn.Parameter(torch.randn(30))
    g = torch.randn(30)
    opt = StochasticRoundingSGD([w], lr=0.05, fmt=E6M9, rounding="nearest")
    w_start = w.detach().clone()
    w.grad = g
    opt.step()
    want = [ref.round(float(wi) - 0.05 * float(gi), 6, 9)
            for wi, gi in zip(w_start.tolist(), g.tolist(), strict=True)]
    # float32 computes w - lr*g first, then rounds: compare against the same composition
    want32 = quantize(w_start - 0.05 * g, E6M9)
    assert torch.equal(w.detach(), want32)
    assert max(abs(a - b) for a, b in zip(w.detach().tolist(), want, strict=True)) <= 2.0**-9


@pytest.mark.parametrize("kw, word", [(dict(lr=float("inf")), "learning rate"),
                                      (dict(lr=0.1, momentum=float("inf")), "momentum"),
                                      (dict(lr=0.1, weight_decay=float("nan")), "weight_decay")])
def test_optimizer_rejects_non_finite_hyperparameters(kw, word):
    with pytest.raises(ValueError, match=f"Invalid {word}"):
        StochasticRoundingSGD([nn.Parameter(torch.ones(2))], **kw)


def test_every_param_group_is_checked_and_rounded_to_its_format():
    w = nn.Parameter(torch.ones(4))
    opt = StochasticRoundingSGD([w], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate: inf"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2))], "lr": float("inf")})
    with pytest.raises(ValueError, match="Invalid learning rate"):
        StochasticRoundingSGD([{"params": [nn.Parameter(torch.ones(2))], "lr": -1.0}], lr=0.1)
    extra = nn.Parameter(torch.full((3,), 1.0 + 2.0**-12))  # between two E6M9 values
    opt.add_param_group({"params": [extra]})
    assert torch.equal(extra.detach(), torch.ones(3))  # rounded to the master format
    head = nn.Parameter(torch.full((3,), 1.3))
    opt.add_param_group({"params": [head], "fmt": E5M2})
    assert torch.equal(head.detach(), torch.full((3,), 1.25))


def test_optimizer_checkpoint_loads_safely_and_resumes_the_same_run(tmp_path):
    """torch.load with its default (weights_only) reads the state dict, FloatFormats and the
    rounding stream included; a resumed run continues bit for bit."""
    torch.manual_seed(13)
    model0 = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 2))
    convert_to_fp8(model0, Fp8Recipe())
    x, y = torch.randn(16, 6), torch.randint(0, 2, (16,))

    def steps(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    def fresh():
        m = copy.deepcopy(model0)
        return m, StochasticRoundingSGD(m.parameters(), lr=0.05, momentum=0.9, fmt=E6M9,
                                        generator=3)

    full_m, full_o = fresh()
    steps(full_m, full_o, 6)
    m, o = fresh()
    steps(m, o, 3)
    torch.save({"model": m.state_dict(), "opt": o.state_dict()}, tmp_path / "ckpt.pt")
    ck = torch.load(tmp_path / "ckpt.pt")  # default safe loading
    m2, o2 = fresh()
    m2.load_state_dict(ck["model"])
    o2.load_state_dict(ck["opt"])
    assert o2.param_groups[0]["fmt"] == E6M9
    steps(m2, o2, 3)
    for p, q in zip(full_m.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("dtype, fmt", [(torch.float16, FP16),
                                        (torch.bfloat16, BF16)])
def test_resume_with_half_precision_parameters_continues_bit_for_bit(dtype, fmt):
    """Optimizer.load_state_dict casts the momentum buffer to the parameter's dtype; the
    momentum AXPY must still be computed in float32 (in float16 it was rounded twice and
    the resumed run drifted from the uninterrupted one)."""
    def grad(s):
        return (0.37 * torch.sin(torch.arange(64.0) * (s + 1))).to(dtype)

    def run(resume_at=None):
        w = nn.Parameter(torch.randn(64, generator=torch.Generator().manual_seed(2)).to(dtype))
        opt = StochasticRoundingSGD([w], lr=0.1, momentum=0.9, weight_decay=0.01, fmt=fmt,
                                    generator=1)
        for s in range(6):
            if s == resume_at:
                sd = copy.deepcopy(opt.state_dict())
                w = nn.Parameter(w.detach().clone())
                opt = StochasticRoundingSGD([w], lr=0.1, momentum=0.9, weight_decay=0.01,
                                            fmt=fmt, generator=7)
                opt.load_state_dict(sd)
            w.grad = grad(s)
            opt.step()
        return w.detach()

    assert torch.equal(run(), run(resume_at=3))


def test_a_saved_rounding_stream_is_not_dropped_on_resume():
    """A state saved with the optimizer's own generator, loaded into one built without:
    the resumed run would draw from torch's default generator, another stream. Refused;
    an optimizer given any generator takes the saved stream and repeats the run."""
    torch.manual_seed(0)
    w0 = torch.randn(30)
    g = torch.randn(30)

    def run(opt_gen, state=None, n=3):
        w = nn.Parameter(w0.clone())
        opt = StochasticRoundingSGD([w], lr=0.01, fmt=E6M9, generator=opt_gen)
        if state is not None:
            opt.load_state_dict(state)
        for _ in range(n):
            w.grad = g.clone()
            opt.step()
        return w.detach().clone(), opt

    _, saved = run(7, n=2)
    state = saved.state_dict()
    with pytest.raises(ValueError, match="state_dict"):
        run(None, state)
    a, _ = run(torch.Generator().manual_seed(123), state, n=1)
    b, _ = run(torch.Generator().manual_seed(456), state, n=1)
    assert torch.equal(a, b)  # the saved stream, whatever the new generator's seed


def test_an_int_seed_is_a_generator():
    w0 = torch.randn(40)
    outs = []
    for gen in (5, torch.Generator().manual_seed(5)):
        w = nn.Parameter(w0.clone())
        opt = StochasticRoundingSGD([w], lr=1e-3, generator=gen)
        w.grad = torch.randn(40, generator=torch.Generator().manual_seed(0))
        opt.step()
        outs.append(w.detach().clone())
    assert torch.equal(outs[0], outs[1])
    with pytest.raises(TypeError, match="generator"):
        StochasticRoundingSGD([nn.Parameter(w0.clone())], lr=0.1, generator="five")


def test_sr_sgd_refuses_parameters_that_cannot_hold_its_format():
    """bfloat16 weights under E6M9: the stochastically rounded update was rounded again
    to bfloat16 (to nearest), so steps below half a bfloat16 ulp never moved a weight."""
    for dtype in (torch.bfloat16, torch.float16):
        w = nn.Parameter(torch.ones(8, dtype=dtype))
        with pytest.raises(ValueError, match=rf"Invalid params.*{dtype}.*float32 master"):
            StochasticRoundingSGD([w], lr=1e-3, generator=0)
        opt = StochasticRoundingSGD([w], lr=1e-3, fmt=E5M2, generator=0)  # E5M2 fits both
        assert opt.param_groups[0]["params"][0] is w
    opt = StochasticRoundingSGD([nn.Parameter(torch.ones(8))], lr=1e-3, generator=0)
    with pytest.raises(ValueError, match="Invalid params"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2, dtype=torch.bfloat16))]})
    w = nn.Parameter(torch.ones(1000))  # float32: the small steps are kept on average
    opt = StochasticRoundingSGD([w], lr=1e-3, generator=0)
    for _ in range(100):
        w.grad = torch.ones_like(w)
        opt.step()
    assert abs(float(w.mean()) - 0.9) < 0.01


@pytest.mark.parametrize("overflow", ["inf", "saturate"])
def test_a_loss_scale_that_overflows_the_errors_raises(overflow):
    """A loss scale too large for the errors used to give inf/NaN (or, saturating, clipped)
    weight gradients without a word; it now raises naming loss_scale. The same errors
    under a loss scale that fits go through, and a scale just below the overflow point is
    still accepted."""
    fmt = E5M2 if overflow == "inf" else type(E5M2)(
        exp_bits=E5M2.exp_bits, man_bits=E5M2.man_bits, overflow="saturate")
    torch.manual_seed(4)
    x = torch.randn(8, 5)
    gy = torch.full((8, 3), 2.0)
    for scale, ok in ((2.0**16, False), (2.0**14, True)):
        layer = convert_to_fp8(nn.Linear(5, 3), Fp8Recipe(keep_first_last=False,
                                                          data_format=fmt, loss_scale=scale))
        y = layer(x)
        if ok:  # 2 * 2^14 = 32768 < 57344
            y.backward(gy)
            assert bool(torch.isfinite(layer.weight.grad).all())
        else:  # 2 * 2^16 = 131072 > 57344 (E5M2's largest finite value)
            with pytest.raises(FloatingPointError, match="loss_scale=65536"):
                y.backward(gy)
    # largest error at the last value that rounds to max_value: accepted
    edge = (E5M2.max_value + 2.0 ** (E5M2.emax - E5M2.man_bits - 1)) * (1 - 2**-20)
    layer = convert_to_fp8(nn.Linear(5, 3), Fp8Recipe(keep_first_last=False, loss_scale=2.0))
    layer(x).backward(torch.full((8, 3), edge / 2.0))
    assert bool(torch.isfinite(layer.weight.grad).all())


def test_a_loss_scale_that_overflows_float32_itself_raises():
    """Errors times the loss scale beyond float32's range became inf before the check,
    which skipped non-finite values: the weight gradients came out inf/NaN without a
    word. An error that is itself inf is still let through (not the scale's doing)."""
    torch.manual_seed(4)
    x = torch.randn(8, 5)
    layer = convert_to_fp8(nn.Linear(5, 3), Fp8Recipe(keep_first_last=False,
                                                      loss_scale=2.0**110))
    with pytest.raises(FloatingPointError, match="loss_scale=1.298"):
        layer(x).backward(torch.full((8, 3), 1e10))
    gy = torch.zeros(8, 3)
    gy[0, 0] = math.inf
    layer.weight.grad = None
    layer(x).backward(gy)
    assert not bool(torch.isfinite(layer.weight.grad).all())


def test_a_loaded_state_is_checked_like_a_new_param_group():
    """load_state_dict replaced the groups with the saved ones unchecked: an E6M9 run
    resumed over bfloat16 parameters (refused at construction) had every update rounded
    back to bfloat16 to nearest, and 100 steps of 1e-4 left the weights at 1.0."""
    from neurips18.lowprec import BF16

    run = StochasticRoundingSGD([nn.Parameter(torch.ones(10))], lr=1e-4, generator=0)
    saved = run.state_dict()
    wb = nn.Parameter(torch.ones(10, dtype=torch.bfloat16))
    opt = StochasticRoundingSGD([wb], lr=1e-4, fmt=BF16, generator=0)
    with pytest.raises(ValueError, match="bfloat16 parameter"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["fmt"] == BF16  # left as it was
    bad = copy.deepcopy(saved)
    bad["param_groups"][0]["nesterov"] = True
    with pytest.raises(ValueError, match="nesterov"):
        run.load_state_dict(bad)
    bad = copy.deepcopy(saved)
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="learning rate"):
        run.load_state_dict(bad)
    run.load_state_dict(saved)  # a state that fits still loads
