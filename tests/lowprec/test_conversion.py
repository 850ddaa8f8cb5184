"""convert_to_fp8 on every layer type it covers: attention and transformers, Conv1d, grouped
and depthwise convolutions, padding modes, embeddings; the report of what it leaves alone;
hooks, reconversion and subclasses."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from neurips18.lowprec import (
    E4M3,
    E5M2,
    E6M9,
    FP32,
    Fp8Conv1d,
    Fp8Conv2d,
    Fp8ConversionWarning,
    Fp8Embedding,
    Fp8GRU,
    Fp8Linear,
    Fp8LSTM,
    Fp8MultiheadAttention,
    Fp8Recipe,
    Fp8RNN,
    Fp8TransformerEncoderLayer,
    chunked_matmul,
    convert_to_fp8,
    fp8_report,
    is_representable,
    quantize,
)

NO_ROUNDING = Fp8Recipe(data_format=FP32, acc_format=FP32, high_format=FP32)
ALL_FP8 = Fp8Recipe(keep_first_last=False)


def _sqnr_db(ref: torch.Tensor, got: torch.Tensor) -> float:
    err = (ref - got).double().pow(2).sum().item()
    return math.inf if err == 0 else 10 * math.log10(ref.double().pow(2).sum().item() / err)


def _converted(module: nn.Module, recipe: Fp8Recipe) -> nn.Module:
    emu = copy.deepcopy(module)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Fp8ConversionWarning)  # nothing may be left out
        convert_to_fp8(emu, recipe)
    return emu


def _same_forward_backward(ref: nn.Module, emu: nn.Module, *inputs: torch.Tensor,
                           atol: float = 1e-5, **kw) -> None:
    a = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    b = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    ya, yb = ref(*a, **kw), emu(*b, **kw)
    if isinstance(ya, tuple):
        for u, v in zip(ya, yb, strict=True):
            assert (u is None) == (v is None)
            if u is not None:
                torch.testing.assert_close(v, u, atol=atol, rtol=1e-5)
        ya, yb = ya[0], yb[0]
    else:
        torch.testing.assert_close(yb, ya, atol=atol, rtol=1e-5)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    for u, v in zip(a, b, strict=True):
        if u.is_floating_point():
            torch.testing.assert_close(v.grad, u.grad, atol=10 * atol, rtol=1e-4)
    for (name, p), q in zip(ref.named_parameters(), emu.parameters(), strict=True):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, atol=10 * atol, rtol=1e-4, msg=name)


# ----------------------------------------------------------------------------- attention
ATTENTION_CASES = [dict(), dict(batch_first=True), dict(add_bias_kv=True),
                   dict(add_zero_attn=True), dict(kdim=6, vdim=5), dict(bias=False),
                   dict(dropout=0.0, batch_first=True, add_bias_kv=True, add_zero_attn=True)]


@pytest.mark.parametrize("opts", ATTENTION_CASES)
@pytest.mark.parametrize("call", ["plain", "key_padding", "bool_mask", "float_masks",
                                  "no_weights", "per_head"])
def test_attention_plumbing_matches_torch_without_rounding(opts, call):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, 2, **opts)
    emu = _converted(ref, NO_ROUNDING)
    assert isinstance(emu, Fp8MultiheadAttention)
    n, lq, ls = 3, 5, 7
    kd, vd = opts.get("kdim", 8), opts.get("vdim", 8)
    shape = (lambda s, d: (n, s, d)) if opts.get("batch_first") else (lambda s, d: (s, n, d))
    q, k, v = torch.randn(shape(lq, 8)), torch.randn(shape(ls, kd)), torch.randn(shape(ls, vd))
    kpm = torch.rand(n, ls) < 0.3
    kpm[:, 0] = False
    am = torch.rand(lq, ls) < 0.2
    am[:, 0] = False
    kw = {"plain": {}, "key_padding": dict(key_padding_mask=kpm),
          "bool_mask": dict(attn_mask=am),
          "float_masks": dict(attn_mask=am.float() * -1e4, key_padding_mask=kpm.float() * -1e4),
          "no_weights": dict(need_weights=False, attn_mask=am, key_padding_mask=kpm),
          "per_head": dict(average_attn_weights=False)}[call]
    _same_forward_backward(ref, emu, q, k, v, **kw)


def test_attention_unbatched_and_causal_match_torch():
    torch.manual_seed(1)
    ref = nn.MultiheadAttention(8, 4)
    emu = _converted(ref, NO_ROUNDING)
    x = torch.randn(6, 8)
    _same_forward_backward(ref, emu, x, x, x)
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    xb = torch.randn(6, 2, 8)
    _same_forward_backward(ref, emu, xb, xb, xb, attn_mask=causal, is_causal=True,
                           need_weights=False)


def test_attention_runs_in_fp8_in_training_and_in_eval_without_grad():
    torch.manual_seed(2)
    ref = nn.MultiheadAttention(32, 4, batch_first=True)
    emu = convert_to_fp8(copy.deepcopy(ref), ALL_FP8)
    x = torch.randn(4, 10, 32)
    train_db = _sqnr_db(ref(x, x, x)[0], emu(x, x, x)[0])
    ref.eval()
    emu.eval()
    with torch.no_grad():  # where nn.MultiheadAttention takes its fused fast path
        eval_db = _sqnr_db(ref(x, x, x)[0], emu(x, x, x)[0])
    assert 5.0 < train_db < 30.0  # E5M2 inputs of five GEMMs: a visible deviation
    assert eval_db == pytest.approx(train_db)


def test_attention_gemms_follow_the_recipe_exactly():
    """Self-attention output = the composition of the documented roundings and products."""
    torch.manual_seed(3)
    rec = Fp8Recipe(keep_first_last=False, chunk=4, mode="exact")
    e, h, n, seq = 8, 2, 2, 5
    mha = convert_to_fp8(nn.MultiheadAttention(e, h), rec)
    x = torch.randn(seq, n, e)
    y, _ = mha(x, x, x, need_weights=False)

    def lin(t, w, b):
        out = chunked_matmul(quantize(t.reshape(-1, t.shape[-1]), E5M2),
                             quantize(w, E5M2).t(), E6M9, 4, "exact")
        return quantize(out + b, E6M9).reshape(*t.shape[:-1], w.shape[0])

    w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
    q, k, v = (lin(x, w[i * e:(i + 1) * e], b[i * e:(i + 1) * e]) for i in range(3))
    heads = [t.reshape(seq, n * h, e // h).transpose(0, 1) for t in (q, k, v)]
    scores = chunked_matmul(quantize(heads[0], E5M2), quantize(heads[1], E5M2).transpose(1, 2),
                            E6M9, 4, "exact") / math.sqrt(e // h)
    probs = torch.softmax(scores, -1)
    att = chunked_matmul(quantize(probs, E5M2), quantize(heads[2], E5M2), E6M9, 4, "exact")
    att = att.transpose(0, 1).reshape(seq, n, e)
    want = lin(att, mha.out_proj.weight.detach(), mha.out_proj.bias.detach())
    assert torch.equal(y.detach(), want)


def test_encoder_layer_never_takes_the_fused_path_and_slots_go_to_real_layers():
    torch.manual_seed(4)
    ref = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    emu = convert_to_fp8(copy.deepcopy(ref))
    assert isinstance(emu, Fp8TransformerEncoderLayer)
    assert isinstance(emu.self_attn, Fp8MultiheadAttention)
    assert not isinstance(emu.self_attn.out_proj, Fp8Linear)  # computed by the attention
    # first and last converted layers: the attention and linear2, not the dummy out_proj
    assert [emu.self_attn.cfg.data, emu.linear1.cfg.data, emu.linear2.cfg.data] == \
        [E6M9, E5M2, E6M9]
    x = torch.randn(2, 6, 16)
    y_train = emu(x).detach()
    ref.eval()
    emu.eval()
    with torch.no_grad():
        y_fast = emu(x)
        y_ref = ref(x)
    assert torch.equal(y_fast, y_train)  # the same computation in every mode
    assert _sqnr_db(y_ref, y_fast) < 60.0  # and it is not the float32 one


class _ScaledEncoderLayer(nn.TransformerEncoderLayer):
    """A user's layer with its own forward that calls torch's."""

    def forward(self, src: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return 2.0 * super().forward(src, *args, **kwargs)


@pytest.mark.parametrize("case", ["linear layers only", "subclass with its own forward"])
def test_encoder_layer_fused_kernel_never_bypasses_converted_layers(case):
    # torch's fused encoder-layer kernel (eval mode, no gradients) reads the weights
    # itself: it computed the converted linear layers (or a subclass's whole layer) in
    # float32 while the report listed them as FP8
    torch.manual_seed(6)
    cls = nn.TransformerEncoderLayer if case == "linear layers only" else _ScaledEncoderLayer
    ref = cls(16, 4, 32, dropout=0.0, batch_first=True)
    keep = (lambda m, name: name != "self_attn") if case == "linear layers only" else None
    emu = convert_to_fp8(copy.deepcopy(ref), ALL_FP8, module_filter=keep)
    enc = convert_to_fp8(nn.TransformerEncoder(copy.deepcopy(ref), 2), ALL_FP8,
                         module_filter=None if keep is None else
                         (lambda m, name: not name.endswith("self_attn")))
    assert not enc.use_nested_tensor
    x = torch.randn(2, 6, 16)
    y_train = emu(x).detach()
    for m in (ref, emu, enc):
        m.eval()
    with torch.no_grad():
        y_fast, y_ref = emu(x), ref(x)
        z_fast = enc(x)
    # (an unconverted attention may take its own fused path: float32 rounding apart)
    torch.testing.assert_close(y_fast, y_train, rtol=0, atol=1e-5)
    assert _sqnr_db(y_ref, y_fast) < 60.0
    torch.testing.assert_close(z_fast, enc(x).detach(), rtol=0, atol=1e-5)


def test_encoder_with_padding_mask_in_eval_keeps_dense_tensors():
    torch.manual_seed(5)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    enc = convert_to_fp8(nn.TransformerEncoder(layer, 2, enable_nested_tensor=True))
    enc.eval()
    x = torch.randn(3, 7, 16)
    kpm = torch.zeros(3, 7, dtype=torch.bool)
    kpm[0, 5:] = True
    with torch.no_grad():
        a = enc(x, src_key_padding_mask=kpm)
    b = enc(x, src_key_padding_mask=kpm)
    assert torch.equal(a, b.detach())


def test_an_encoder_built_from_a_converted_layer_keeps_dense_tensors():
    # converting the layer first, then stacking it: the encoder packed its input into a
    # nested tensor in eval mode without gradients, and the FP8 attention raised on it
    torch.manual_seed(5)
    layer = convert_to_fp8(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0,
                                                      batch_first=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: nested tensors not used
        enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True).eval()
    assert not enc.use_nested_tensor
    x = torch.randn(3, 7, 16)
    kpm = torch.zeros(3, 7, dtype=torch.bool)
    kpm[0, 5:] = True
    with torch.no_grad():
        a = enc(x, src_key_padding_mask=kpm)
    assert torch.equal(a, enc(x, src_key_padding_mask=kpm).detach())


def test_full_transformer_converts_every_attention_and_trains():
    torch.manual_seed(6)
    ref = nn.Transformer(16, 2, 1, 1, 32, dropout=0.0, batch_first=True)
    emu = _converted(ref, ALL_FP8)
    rep = fp8_report(emu)
    assert not rep.left_in_float32
    kinds = sorted(e.type for e in rep.converted)
    assert kinds.count("Fp8MultiheadAttention") == 3 and kinds.count("Fp8Linear") == 4
    src, tgt = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    y = emu(src, tgt, tgt_mask=mask, tgt_is_causal=True)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in emu.parameters())
    assert _sqnr_db(ref(src, tgt, tgt_mask=mask, tgt_is_causal=True), y) < 40.0


# ----------------------------------------------------------------------------- convolutions
CONV_CASES = [
    (nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 11)),
    (nn.Conv1d(3, 4, 4, padding="same", dilation=2), (2, 3, 11)),
    (nn.Conv1d(4, 6, 3, groups=2, padding=1, padding_mode="reflect"), (2, 4, 11)),
    (nn.Conv1d(3, 4, 3), (3, 9)),  # unbatched
    (nn.Conv2d(4, 6, 3, groups=2, stride=2, padding=1), (2, 4, 9, 8)),
    (nn.Conv2d(4, 8, 3, groups=4, padding=1, bias=False), (2, 4, 9, 8)),  # depthwise
    (nn.Conv2d(3, 4, (4, 2), padding="same"), (2, 3, 9, 8)),  # even kernel: asymmetric
    (nn.Conv2d(3, 4, 3, padding="same", dilation=(2, 1)), (2, 3, 9, 8)),
    (nn.Conv2d(3, 4, 3, padding="valid"), (2, 3, 9, 8)),
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (2, 3, 9, 8)),
    (nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="replicate"), (2, 3, 9, 8)),
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), (2, 3, 9, 8)),
    (nn.Conv2d(3, 4, 3), (3, 9, 8)),  # unbatched
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("conv, shape", CONV_CASES, ids=lambda c: repr(c)[:60])
def test_conv_plumbing_matches_torch_without_rounding(conv, shape):
    torch.manual_seed(7)
    emu = _converted(conv, NO_ROUNDING)
    assert isinstance(emu, Fp8Conv1d if isinstance(conv, nn.Conv1d) else Fp8Conv2d)
    _same_forward_backward(conv, emu, torch.randn(shape), atol=1e-4)


@pytest.mark.parametrize("groups, cout", [(2, 6), (4, 4)])
def test_grouped_conv_is_one_recipe_gemm_per_group(groups, cout):
    """Exact mode: a grouped convolution equals its groups computed as separate FP8
    convolutions, forward and backward, bit for bit."""
    torch.manual_seed(8)
    rec = Fp8Recipe(keep_first_last=False, chunk=8, mode="exact")
    conv = nn.Conv2d(4, cout, 3, groups=groups, padding=1)
    emu = convert_to_fp8(copy.deepcopy(conv), rec)
    cin_g, cout_g = 4 // groups, cout // groups
    parts = []
    for g in range(groups):
        p = nn.Conv2d(cin_g, cout_g, 3, padding=1)
        with torch.no_grad():
            p.weight.copy_(conv.weight[g * cout_g:(g + 1) * cout_g])
            p.bias.copy_(conv.bias[g * cout_g:(g + 1) * cout_g])
        parts.append(convert_to_fp8(p, rec))
    x = torch.randn(2, 4, 6, 5)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y = emu(x1)
    y_parts = torch.cat([parts[g](x2[:, g * cin_g:(g + 1) * cin_g]) for g in range(groups)],
                        dim=1)
    assert torch.equal(y, y_parts)
    gy = torch.randn_like(y)
    y.backward(gy)
    y_parts.backward(gy)
    assert torch.equal(x1.grad, x2.grad)
    assert torch.equal(emu.weight.grad, torch.cat([p.weight.grad for p in parts]))
    assert torch.equal(emu.bias.grad, torch.cat([p.bias.grad for p in parts]))


# ----------------------------------------------------------------------------- embedding
@pytest.mark.parametrize("padding_idx", [None, 3])
def test_embedding_plumbing_matches_torch_without_rounding(padding_idx):
    torch.manual_seed(9)
    ref = nn.Embedding(20, 6, padding_idx=padding_idx)
    emu = _converted(ref, NO_ROUNDING)
    assert isinstance(emu, Fp8Embedding)
    _same_forward_backward(ref, emu, torch.randint(0, 20, (4, 50)))
    if padding_idx is not None:
        assert not emu.weight.grad[padding_idx].any()


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_embedding_is_the_one_hot_gemm_of_the_recipe(mode):
    """Forward: rows of the table rounded to E5M2; weight gradient: the chunked product of
    the one-hot matrix with the rounded errors (errors chosen so float32 chunk sums are
    exact, which makes the fast mode a pure function of the chunking too)."""
    torch.manual_seed(10)
    rec = Fp8Recipe(keep_first_last=False, chunk=8, mode=mode)
    emb = convert_to_fp8(nn.Embedding(7, 5), rec)
    idx = torch.randint(0, 7, (3, 30))
    y = emb(idx)
    assert torch.equal(y.detach(), quantize(emb.weight.detach(), E5M2)[idx])
    gy = quantize(torch.rand(3, 30, 5) * 3.75 + 0.25, E5M2) * torch.randint(
        0, 2, (3, 30, 5)).mul(2).sub(1)
    y.backward(gy)
    onehot = nn.functional.one_hot(idx.reshape(-1), 7).float()
    want = chunked_matmul(onehot.t(), gy.reshape(-1, 5), E6M9, 8, mode)
    assert torch.equal(emb.weight.grad, want)


def test_embedding_gradient_of_int32_indices_with_a_large_vocabulary():
    # token * number of chunks passes 2**31 here (about 10**6 tokens, 4099 chunks of one):
    # int32 indices must give the gradient of the same int64 indices
    torch.manual_seed(12)
    vocab = 1_000_003
    emb = convert_to_fp8(nn.Embedding(vocab, 2), Fp8Recipe(keep_first_last=False, chunk=1))
    idx = torch.randint(vocab - 1000, vocab, (4099,))
    gy = torch.randn(4099, 2)
    grads = []
    for dtype in (torch.int64, torch.int32):
        emb.weight.grad = None
        emb(idx.to(dtype)).backward(gy)
        grads.append(emb.weight.grad.clone())
    assert torch.equal(grads[0], grads[1])
    assert torch.equal(grads[0].abs().sum(1) > 0, torch.bincount(idx, minlength=vocab) > 0)


@pytest.mark.parametrize("idx", [torch.tensor([[1, -1]]), torch.tensor([[1, 7]]),
                                 torch.tensor([True, False, True, False, True, False, True]),
                                 torch.tensor([1.0, 2.0])], ids=["negative", "too large",
                                                                 "bool", "float"])
def test_embedding_refuses_indices_that_torch_refuses(idx):
    """nn.Embedding raises for an index outside [0, num_embeddings) and for non-integer
    indices; the converted layer used to wrap -1 to the last row (and read a bool tensor
    as a mask) without a word."""
    emb = convert_to_fp8(nn.Embedding(7, 3))
    with pytest.raises((IndexError, RuntimeError)):
        nn.Embedding(7, 3)(idx)
    with pytest.raises((IndexError, TypeError)):
        emb(idx)


@pytest.mark.parametrize("layer, shape", [(nn.Linear(3, 2), (1, 3)),
                                          (nn.Conv2d(1, 2, 1), (1, 1, 2, 2)),
                                          (nn.Conv1d(1, 2, 1), (1, 1, 3))],
                         ids=["linear", "conv2d", "conv1d"])
def test_integer_input_is_refused_not_truncated(layer, shape):
    """torch's layers refuse integer inputs; the converted ones computed in float32 and cast
    the result back to the input's integer dtype (outputs in (-1, 1) became 0)."""
    x = torch.ones(shape, dtype=torch.int64)
    with pytest.raises(RuntimeError):
        layer(x)
    with pytest.raises(TypeError, match="floating-point"):
        convert_to_fp8(copy.deepcopy(layer))(x)


# ----------------------------------------------------------------------------- recurrent
RECURRENT_CASES = [nn.RNN(4, 5), nn.RNN(4, 5, nonlinearity="relu", num_layers=2),
                   nn.LSTM(4, 5, 2, bidirectional=True),
                   nn.LSTM(4, 6, proj_size=3, batch_first=True),
                   nn.GRU(4, 5, 2, bidirectional=True, batch_first=True),
                   nn.GRU(4, 5, bias=False)]


@pytest.mark.parametrize("ref", RECURRENT_CASES, ids=lambda m: repr(m))
def test_recurrent_plumbing_matches_torch_without_rounding(ref):
    torch.manual_seed(14)
    emu = _converted(ref, NO_ROUNDING)
    assert isinstance(emu, {nn.RNN: Fp8RNN, nn.LSTM: Fp8LSTM, nn.GRU: Fp8GRU}[type(ref)])
    x = torch.randn(3, 7, 4) if ref.batch_first else torch.randn(7, 3, 4)

    class Flat(nn.Module):  # outputs and final states as one tensor
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            out, state = self.m(x)
            states = state if isinstance(state, tuple) else (state,)
            return torch.cat([out.reshape(-1)] + [s.reshape(-1) for s in states])

    _same_forward_backward(Flat(ref), Flat(emu), x, atol=1e-5)


def test_recurrent_unbatched_input_and_initial_state_match_torch():
    torch.manual_seed(15)
    ref = nn.LSTM(4, 5)
    emu = _converted(ref, NO_ROUNDING)
    x, h0 = torch.randn(6, 4), (torch.randn(1, 5), torch.randn(1, 5))
    (a, (ha, ca)), (b, (hb, cb)) = ref(x, h0), emu(x, h0)
    for u, v in ((a, b), (ha, hb), (ca, cb)):
        torch.testing.assert_close(v, u, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="packed"):
        emu(nn.utils.rnn.pack_sequence([torch.randn(3, 4), torch.randn(2, 4)]))


@pytest.mark.parametrize("ref, x, hx", [
    (nn.GRU(3, 4), torch.randn(5, 2, 3), torch.randn(1, 1, 4)),  # batch 1 broadcast
    (nn.LSTM(3, 4), torch.randn(5, 2, 3), (torch.randn(1, 2, 4), torch.randn(1, 1, 4))),
    (nn.LSTM(3, 4, num_layers=2), torch.randn(5, 2, 3),
     (torch.randn(3, 2, 4), torch.randn(3, 2, 4))),  # an extra layer
    (nn.LSTM(3, 4, bidirectional=True), torch.randn(5, 2, 3),
     (torch.randn(4, 2, 4), torch.randn(4, 2, 4))),  # a state of two layers
    (nn.RNN(3, 4, batch_first=True), torch.randn(2, 5, 3), torch.randn(1, 5, 4)),
    (nn.RNN(3, 4), torch.randn(5, 3), torch.randn(1, 1, 4)),  # unbatched input
])
def test_recurrent_initial_state_of_the_wrong_shape_is_refused_as_torch_does(ref, x, hx):
    # indexing the state by layer and broadcasting it over the batch took these silently
    with pytest.raises(RuntimeError):
        ref(x, hx)
    emu = convert_to_fp8(copy.deepcopy(ref), NO_ROUNDING)
    with pytest.raises(ValueError, match="h_0|c_0"):
        emu(x, hx)


def test_recurrent_weight_gradient_is_one_chunked_gemm_over_all_steps():
    """The recurrent weight is used at every step; its gradient is rounded once to E6M9
    (one chunked product over time x batch), not summed step by step in float32."""
    torch.manual_seed(16)
    for layer in (nn.LSTM(8, 8), nn.GRU(8, 8), nn.RNN(8, 8)):
        emu = convert_to_fp8(layer, ALL_FP8)
        emu(torch.randn(20, 4, 8))[0].square().sum().backward()
        for name, p in emu.named_parameters():
            assert bool(is_representable(p.grad, E6M9).all()), name
        ref = copy.deepcopy(layer)
        ref.__class__ = type(layer).__mro__[3]  # the torch class: float32 reference
        x = torch.randn(20, 4, 8)
        assert _sqnr_db(ref(x)[0], emu(x)[0]) < 60.0


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_recurrent_weight_gradient_ignores_an_earlier_input_only_backward(cls):
    """A backward pass that asks only for the input gradient (``autograd.grad`` with
    ``retain_graph``, as for an input-gradient penalty) runs every step's backward but not
    the shared weight's; the following ``backward()`` must still give the recurrent weight
    the gradient of that one pass (it used to add the earlier pass's rows: up to 4.1 off)."""
    torch.manual_seed(17)
    ref = cls(4, 5)
    emu = _converted(ref, NO_ROUNDING)
    x = torch.randn(6, 2, 4)
    for m in (ref, emu):
        xx = x.clone().requires_grad_()
        loss = m(xx)[0].square().sum()
        torch.autograd.grad(loss, xx, retain_graph=True)
        loss.backward()
    for (name, p), q in zip(ref.named_parameters(), emu.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-4, msg=name)


# ----------------------------------------------------------------------------- the report
class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


class _OwnForwardLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 2


class _PlainSubclassLinear(nn.Linear):
    def describe(self) -> str:
        return "mine"


def test_every_module_left_in_float32_is_named_in_a_warning_and_the_report():
    model = nn.Sequential(nn.Linear(3, 3), nn.Conv3d(1, 1, 1), nn.LSTMCell(3, 3), nn.LayerNorm(3),
                          _Custom(), nn.Embedding(3, 3, max_norm=1.0), nn.Bilinear(3, 3, 3),
                          nn.ConvTranspose2d(1, 1, 2), _OwnForwardLinear(3, 3),
                          nn.Linear(3, 3))
    with pytest.warns(Fp8ConversionWarning) as record:
        convert_to_fp8(model, module_filter=lambda m, name: name != "9")
    text = str(record[0].message)
    for path, typ in [("1", "Conv3d"), ("2", "LSTMCell"), ("4", "_Custom"), ("5", "Embedding"),
                      ("6", "Bilinear"), ("7", "ConvTranspose2d"), ("8", "_OwnForwardLinear")]:
        assert f"{path} ({typ}" in text
    assert "LayerNorm" not in text and "9 (" not in text  # float32 by design; the user's filter
    rep = fp8_report(model, module_filter=lambda m, name: name != "9")
    assert [e.path for e in rep.converted] == ["0"]
    assert {e.path for e in rep.unsupported} == {"1", "2", "5", "6", "7", "8"}
    assert [e.path for e in rep.unknown] == ["4"]
    assert [e.path for e in rep.excluded] == ["9"]
    assert [e.path for e in rep.float32] == ["3"]
    assert "max_norm" in str(rep) and "Fp8Linear" in str(rep)


def test_a_clean_model_converts_without_a_warning():
    from neurips18.repro._common.models import cifar_resnet, mnist_cnn

    with warnings.catch_warnings():
        warnings.simplefilter("error", Fp8ConversionWarning)
        convert_to_fp8(mnist_cnn())
        rep = fp8_report(convert_to_fp8(cifar_resnet(8)))
    assert not rep.left_in_float32 and rep.float32  # batch norms stay in float32


class _Sym(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + w.t()


def test_parametrized_layers_are_reported_by_their_layer_not_their_originals():
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import spectral_norm, weight_norm

    custom = _Custom()
    parametrize.register_parametrization(custom, "w", _Sym())
    model = nn.Sequential(weight_norm(nn.Linear(4, 8)), nn.ReLU(),
                          spectral_norm(nn.Conv1d(8, 8, 3)), custom)
    # the converted layers compute with their parametrized weights: nothing of theirs is
    # left in float32 (their ParametrizationLists are not modules of their own); a module
    # the conversion does not know is still named, with the tensor it parametrizes
    with pytest.warns(Fp8ConversionWarning) as record:
        convert_to_fp8(model)
    text = str(record[0].message)
    assert "ParametrizationList" not in text and "left 1 module(s)" in text
    rep = fp8_report(model)
    assert [e.path for e in rep.converted] == ["0", "2"]
    assert [(e.path, e.detail) for e in rep.unknown] == [
        ("3", "owns parameters (w) that it uses as written")]


def test_a_parametrization_of_a_converted_layer_can_be_removed():
    # a layer parametrized before conversion: remove_parametrizations (e.g. to fold the
    # weight norm in for export) raised AttributeError, the class holding the weight's
    # property lying under the FP8 class; now it leaves the FP8 layer with its weights
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(3)
    model = nn.Sequential(weight_norm(nn.Linear(4, 8)), nn.ReLU(),
                          weight_norm(_PlainSubclassLinear(8, 3)))
    convert_to_fp8(model, ALL_FP8)
    x = torch.randn(5, 4)
    y = model(x)
    for i in (0, 2):
        parametrize.remove_parametrizations(model[i], "weight")
        assert not parametrize.is_parametrized(model[i])
        assert isinstance(model[i], Fp8Linear) and "weight" in model[i]._parameters
    assert type(model[0]) is Fp8Linear and model[2].describe() == "mine"
    assert torch.equal(model(x), y)
    assert [e.path for e in fp8_report(model).converted] == ["0", "2"]


def test_an_attention_module_converted_on_its_own_is_one_layer():
    mha = convert_to_fp8(nn.MultiheadAttention(8, 2))
    # its output projection is computed by the attention module: not a layer of its own
    assert type(mha.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert [e.path for e in fp8_report(mha).converted] == [""]


def test_conversion_keeps_hooks_identity_and_training_mode():
    torch.manual_seed(11)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    first = model[0]
    seen = []
    first.register_forward_pre_hook(lambda m, args: seen.append("pre"))
    first.register_forward_hook(lambda m, args, out: seen.append(out.detach().clone()))
    convert_to_fp8(model, ALL_FP8)
    assert model[0] is first and isinstance(first, Fp8Linear) and not first.training
    x = torch.randn(5, 8)
    model(x)
    assert seen[0] == "pre"
    assert torch.equal(seen[1], first(x).detach())  # the hook sees the FP8 output


def test_a_second_conversion_applies_the_new_recipe():
    torch.manual_seed(12)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 4))
    convert_to_fp8(model)
    assert [m.cfg.data for m in model] == [E6M9, E5M2, E6M9]
    x = torch.randn(3, 8)
    y1 = model(x)
    convert_to_fp8(model, Fp8Recipe(data_format=E4M3, keep_first_last=False, chunk=16))
    assert [m.cfg.data for m in model] == [E4M3] * 3 and model[0].cfg.chunk == 16
    fresh = convert_to_fp8(copy.deepcopy(model), Fp8Recipe(data_format=E4M3,
                                                           keep_first_last=False, chunk=16))
    assert torch.equal(model(x), fresh(x)) and not torch.equal(model(x), y1)


class _StandardisedConv(nn.Conv2d):
    """Weight standardisation through torch's convolution hook, not through forward."""

    def _conv_forward(self, x: torch.Tensor, w: torch.Tensor,
                      b: torch.Tensor | None) -> torch.Tensor:
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return super()._conv_forward(x, w, b)


def test_a_conv_subclass_with_its_own_conv_forward_is_reported_not_converted():
    # the FP8 forward never calls _conv_forward: converted, the layer silently dropped the
    # standardisation (outputs off by 17 under the no-rounding recipe)
    torch.manual_seed(8)
    ref = _StandardisedConv(3, 4, 3)
    emu = copy.deepcopy(ref)
    with pytest.warns(Fp8ConversionWarning, match="own _conv_forward"):
        convert_to_fp8(emu, NO_ROUNDING)
    assert not isinstance(emu, Fp8Conv2d)
    assert [e.path for e in fp8_report(emu).unsupported] == [""]
    x = torch.randn(1, 3, 6, 6)
    assert torch.equal(emu(x), ref(x))


def test_a_subclass_keeping_the_torch_forward_is_converted_and_keeps_its_methods():
    lin = _PlainSubclassLinear(4, 4)
    convert_to_fp8(lin)
    assert isinstance(lin, Fp8Linear) and isinstance(lin, _PlainSubclassLinear)
    assert lin.describe() == "mine"
    assert lin(torch.randn(2, 4)).shape == (2, 4)



def test_a_layer_is_never_reported_both_converted_and_excluded():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    convert_to_fp8(model)
    rep = fp8_report(model, module_filter=lambda m, name: name != "0")
    # layer 0 runs in FP8 (converted before); the filter now rejects it
    assert [e.path for e in rep.converted] == ["0", "1", "2"]
    assert rep.excluded == ()
    fresh = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    rep = fp8_report(fresh, module_filter=lambda m, name: name != "0")
    assert [(e.path, e.detail) for e in rep.excluded] == [
        ("0", "excluded by module_filter"), ("1", "not converted")]


class _PlainSubclassEncoderLayer(nn.TransformerEncoderLayer):
    pass


def test_a_converted_subclass_survives_torch_save_and_deepcopy():
    import io

    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    model = nn.Sequential(_PlainSubclassLinear(4, 4),
                          _PlainSubclassEncoderLayer(4, 2, 8, dropout=0.0))
    convert_to_fp8(model, ALL_FP8)
    x = torch.randn(3, 2, 4)
    buf = io.BytesIO()
    torch.save(model, buf)  # the FP8 classes of the subclasses are made at conversion
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for m in (loaded, copy.deepcopy(model)):
        assert type(m[0]) is type(model[0]) and type(m[1]) is type(model[1])
        assert m[0].cfg == model[0].cfg and m[0].describe() == "mine"
        assert torch.equal(m(x), model(x))
    parametrize.register_parametrization(model[0], "weight", _Sym())
    twin = copy.deepcopy(model)  # a class derived from the FP8 one copies as before
    assert type(twin[0]) is type(model[0]) and torch.equal(twin(x), model(x))


def _just_above_ties(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """float64 values 2**-40 above an E5M2 tie (they round away from zero); cast to
    float32 they land on the tie itself, which rounds to even (towards zero here)."""
    sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).double()
    scale = torch.exp2(torch.randint(-3, 3, shape, generator=gen).double())
    return sign * scale * (1 + 2**-3 + 2**-40)


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Linear(6, 5), (4, 6)),
    (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 5)),
    (lambda: nn.Conv1d(2, 3, 3), (2, 2, 7)),
    (lambda: nn.MultiheadAttention(4, 2), (3, 2, 4)),
    (lambda: nn.Embedding(7, 4), (3, 5)),
    (lambda: nn.GRU(3, 4), (5, 2, 3)),
])
def test_a_float64_model_rounds_its_gemm_inputs_once(make, shape):
    gen = torch.Generator().manual_seed(0)
    model = make().double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(_just_above_ties(p.shape, gen))
    ref = copy.deepcopy(model)  # the same model with correctly rounded weights (biases
    with torch.no_grad():  # are added in the accumulation format: kept as they are)
        for name, p in ref.named_parameters():
            if "bias" not in name:
                p.copy_(quantize(p, E5M2))
    convert_to_fp8(model, ALL_FP8)
    convert_to_fp8(ref, ALL_FP8)
    emb = isinstance(model, nn.Embedding)
    x = torch.randint(0, 7, shape, generator=gen) if emb else _just_above_ties(shape, gen)
    xr = x if emb else quantize(x, E5M2)
    if not emb:
        x.requires_grad_(True)
        xr.requires_grad_(True)
    run = (lambda m, t: m(t, t, t)[0]) if isinstance(model, nn.MultiheadAttention) else \
        (lambda m, t: m(t)[0]) if isinstance(model, nn.GRU) else (lambda m, t: m(t))
    y, yr = run(model, x), run(ref, xr)
    assert y.dtype == torch.float64 and torch.equal(y, yr)
    if isinstance(model, nn.GRU):  # its output errors reach the GEMMs through the cells
        return
    gy = _just_above_ties(tuple(y.shape), gen)
    y.backward(gy)
    yr.backward(quantize(gy, E5M2))  # the errors entering the GEMMs, rounded once
    if not emb:
        assert torch.equal(x.grad, xr.grad)
    for (name, p), pr in zip(model.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(p.grad, pr.grad), name


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)),
     (5, 4)),
    (lambda: nn.Sequential(nn.LayerNorm(7), nn.Conv1d(2, 3, 3)), (2, 2, 7)),
    (lambda: nn.Sequential(nn.LayerNorm(3), nn.GRU(3, 4)), (5, 2, 3)),
    (lambda: nn.Sequential(nn.LayerNorm(4), nn.MultiheadAttention(4, 2)), (3, 2, 4)),
])
def test_a_gradient_penalty_through_fp8_layers_raises_instead_of_dropping_them(make, shape):
    # a gradient taken with create_graph=True looked differentiable, but everything the
    # FP8 layers computed entered it as a constant: the penalty's gradient had nothing for
    # the FP8 layers and a wrong value for the layer norm (0.347 instead of 0.248)
    torch.manual_seed(0)
    model = convert_to_fp8(make(), NO_ROUNDING)

    def out(x):
        if isinstance(model[1], nn.MultiheadAttention):
            h = model[0](x)
            return model[1](h, h, h)[0]
        y = model(x)
        return y[0] if isinstance(y, tuple) else y

    x = torch.randn(shape, requires_grad=True)
    (plain,) = torch.autograd.grad(out(x).sum(), x)
    (g,) = torch.autograd.grad(out(x).sum(), x, create_graph=True)
    assert torch.equal(g.detach(), plain)  # first-order values unchanged
    penalty = (g.flatten(1).norm(dim=1) - 1).pow(2).mean()
    with pytest.raises(RuntimeError, match="no higher-order gradients"):
        penalty.backward()
