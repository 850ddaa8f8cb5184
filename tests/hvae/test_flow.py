"""The Hamiltonian flow: reversibility, the closed-form Jacobian, gradient caching, the
schedules, large step sizes and the fused MLP gradient."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neurips18._validation import ValidationError
from neurips18.hvae import HVAE, HamiltonianFlow, MLPDecoder, MLPEncoder

TEMPERINGS = ["none", "fixed", "free"]


def _mlp_likelihood(l=3, seed=0):
    dec = MLPDecoder(l, output_dim=12, hidden=(8,), generator=seed).double()
    x = torch.bernoulli(torch.full((4, 12), 0.4, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(seed))
    return dec, x


def _draws(n, l, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, l, generator=g, dtype=torch.float64),
            torch.randn(n, l, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("tempering", TEMPERINGS)
@pytest.mark.parametrize("per_step", [False, True])
def test_flow_is_reversible(tempering, per_step):
    dec, x = _mlp_likelihood()
    flow = HamiltonianFlow(3, 6, tempering=tempering, step_size_init=0.3,
                           per_step_step_sizes=per_step).double()
    z0, gamma = _draws(4, 3)
    ll = lambda z: dec.log_prob(x, z)  # noqa: E731
    with torch.no_grad():
        out = flow(z0, gamma, ll)
        back_z, back_gamma = flow.inverse(out.z, out.rho, ll)
    assert not torch.allclose(out.z, z0)
    torch.testing.assert_close(back_z, z0, atol=1e-10, rtol=0)
    torch.testing.assert_close(back_gamma, gamma, atol=1e-10, rtol=0)


def test_untempered_leapfrog_is_reversible_by_momentum_flip():
    dec, x = _mlp_likelihood()
    flow = HamiltonianFlow(3, 5, tempering="none", step_size_init=0.3).double()
    z0, rho0 = _draws(4, 3)
    ll = lambda z: dec.log_prob(x, z)  # noqa: E731
    with torch.no_grad():
        out = flow(z0, rho0, ll)
        back = flow(out.z, -out.rho, ll)
    torch.testing.assert_close(back.z, z0, atol=1e-10, rtol=0)
    torch.testing.assert_close(-back.rho, rho0, atol=1e-10, rtol=0)


@pytest.mark.parametrize("tempering", TEMPERINGS)
def test_log_jacobian_matches_closed_form(tempering):
    l = 3
    dec, x = _mlp_likelihood(l)
    x = x[:1]
    flow = HamiltonianFlow(l, 4, tempering=tempering, step_size_init=0.35,
                           beta0_init=None if tempering == "none" else 0.3).double()
    ll = lambda z: dec.log_prob(x, z)  # noqa: E731
    sqrt_beta0 = float(flow.beta0.detach().sqrt())

    def from_rho0(v):
        out = flow(v[:l][None], (v[l:] * sqrt_beta0)[None], ll)
        return torch.cat([out.z[0], out.rho[0]])

    def from_gamma(v):
        out = flow(v[:l][None], v[l:][None], ll)
        return torch.cat([out.z[0], out.rho[0]])

    v = torch.cat(_draws(1, l, seed=3), dim=1)[0]
    J = torch.autograd.functional.jacobian(from_rho0, v)
    _, logdet = torch.linalg.slogdet(J)
    expected = float(flow.log_jacobian().detach())
    assert float(logdet) == pytest.approx(expected, abs=1e-8)
    assert expected == pytest.approx(0.5 * l * math.log(float(flow.beta0.detach())), abs=1e-9)
    if tempering != "none":
        assert abs(expected) > 0.5  # the test would notice a missing tempering factor
    # from (z0, gamma) the Jacobian is exactly 1: the normaliser cancels
    _, logdet_g = torch.linalg.slogdet(torch.autograd.functional.jacobian(from_gamma, v))
    assert float(logdet_g) == pytest.approx(0.0, abs=1e-8)


def test_schedules():
    K = 5
    fixed = HamiltonianFlow(2, K, tempering="fixed", beta0_init=0.04)
    free = HamiltonianFlow(2, K, tempering="free", beta0_init=0.2)
    none = HamiltonianFlow(2, K, tempering="none")
    assert float(fixed.beta0) == pytest.approx(0.04, rel=1e-5)
    assert float(free.beta0) == pytest.approx(0.2, rel=1e-5)
    assert float(none.beta0) == 1.0
    # fixed: 1/sqrt(beta_k) = 1 + (1/sqrt(beta_0) - 1)(1 - k^2/K^2)
    s = [1 + 4 * (1 - k ** 2 / K ** 2) for k in range(K + 1)]
    want = torch.tensor([math.log(s[k + 1] / s[k]) for k in range(K)])
    torch.testing.assert_close(fixed.log_alphas(), want)
    assert (fixed.log_alphas() < 0).all() and (free.log_alphas() < 0).all()
    # default initialisations: the paper's MNIST settings
    assert float(HamiltonianFlow(2, K).beta0) == pytest.approx(2 / 3, rel=1e-5)
    assert float(HamiltonianFlow(2, K, tempering="free").log_alphas().exp()[0]) == (
        pytest.approx(0.9, rel=1e-5))
    e = HamiltonianFlow(2, K, step_size_init=0.1, max_step_size=0.5).step_sizes
    assert e.shape == (K, 2) and torch.allclose(e, torch.full((K, 2), 0.1))
    ps = HamiltonianFlow(2, K, per_step_step_sizes=True,
                         step_size_init=torch.linspace(0.1, 0.3, 2))
    assert ps.step_logit.shape == (K, 2)
    torch.testing.assert_close(ps.step_sizes[3], torch.tensor([0.1, 0.3]))


class _Counting(nn.Module):
    """A user decoder (autograd path) that counts its evaluations."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def log_prob(self, x, z):
        self.calls += 1
        return self.inner.log_prob(x, z)


class _SharperMLPDecoder(MLPDecoder):  # a user subclass changing the logits
    def logits(self, z):
        return 2.0 * super().logits(z)


class _AnnealedMLPDecoder(MLPDecoder):  # a user subclass changing log_prob
    def log_prob(self, x, z):
        return 0.5 * super().log_prob(x, z)


@pytest.mark.parametrize("which", ["logits", "log_prob", "instance"])
def test_a_subclass_overriding_the_likelihood_is_not_given_the_fused_gradient(which):
    """The fused value and gradient are the base MLP's likelihood: a subclass (or instance)
    that overrides ``logits`` or ``log_prob`` must get its own, through autograd."""
    enc = MLPEncoder(3, input_dim=12, hidden=(6,), generator=0).double()
    if which == "logits":
        dec = _SharperMLPDecoder(3, output_dim=12, hidden=(6,), generator=1).double()
    elif which == "log_prob":
        dec = _AnnealedMLPDecoder(3, output_dim=12, hidden=(6,), generator=1).double()
    else:
        dec = MLPDecoder(3, output_dim=12, hidden=(6,), generator=1).double()
        base = dec.log_prob
        dec.log_prob = lambda x, z: 0.5 * base(x, z)
    x = torch.bernoulli(torch.full((5, 12), 0.4, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(0))
    flow = HamiltonianFlow(3, 2, tempering="free").double()
    counted = _Counting(dec)
    got = HVAE(enc, dec, flow).elbo(x, generator=3)
    want = HVAE(enc, counted, flow).elbo(x, generator=3)  # log_prob only: autograd
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_the_library_mlp_decoder_still_takes_the_fused_path(monkeypatch):
    calls = {"fused": 0}
    real = MLPDecoder.log_prob_and_grad

    def counting(self, *a, **k):
        calls["fused"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(MLPDecoder, "log_prob_and_grad", counting)
    enc = MLPEncoder(3, input_dim=12, hidden=(6,), generator=0)
    dec = MLPDecoder(3, output_dim=12, hidden=(6,), generator=1)
    x = torch.full((2, 12), 0.5)
    HVAE(enc, dec, HamiltonianFlow(3, 2)).elbo(x, generator=0)
    assert calls["fused"] == 3  # K + 1


@pytest.mark.parametrize("K", [1, 4])
def test_gradient_caching_evaluates_k_plus_one_times_and_agrees(K):
    torch.manual_seed(0)
    dec, x = _mlp_likelihood()
    z0, gamma = _draws(4, 3)
    outs = {}
    for cache in (True, False):
        counting = _Counting(dec)
        flow = HamiltonianFlow(3, K, cache_gradients=cache, step_size_init=0.3,
                               tempering="free").double()
        outs[cache] = flow(z0, gamma, lambda z, c=counting: c.log_prob(x, z))
        assert counting.calls == (K + 1 if cache else 2 * K)
    for a, b in zip(outs[True], outs[False], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_fused_mlp_gradient_equals_autograd():
    dec = MLPDecoder(4, output_dim=20, hidden=(7, 6), generator=0).double()
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((5, 20), 0.3, dtype=torch.float64), generator=g)
    z = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    value, grad = dec.log_prob_and_grad(x, z)
    ll = dec.log_prob(x, z)
    (auto,) = torch.autograd.grad(ll.sum(), z, create_graph=True)
    torch.testing.assert_close(value, ll)
    torch.testing.assert_close(grad, auto)
    # its derivative (what the ELBO back-propagates through) equals autograd's second order
    params = list(dec.parameters()) + [z]
    a = torch.autograd.grad((grad ** 2).sum(), params)
    b = torch.autograd.grad((auto ** 2).sum(), params)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)
    assert dec.log_prob_and_grad(x, z, with_value=False)[0] is None


def test_hvae_gives_the_same_elbo_and_gradients_with_and_without_the_fused_path():
    enc = MLPEncoder(4, input_dim=20, hidden=(9,), generator=0).double()
    dec = MLPDecoder(4, output_dim=20, hidden=(9,), generator=1).double()
    x = torch.bernoulli(torch.full((6, 20), 0.5, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(2))
    flow = HamiltonianFlow(4, 3, tempering="free").double()
    fused = HVAE(enc, dec, flow)
    plain = HVAE(enc, _Counting(dec), flow)  # only log_prob: the autograd path
    results = []
    for model in (fused, plain):
        model.zero_grad()
        e = model.elbo(x, generator=5)
        e.sum().backward()
        results.append((e.detach(), [p.grad.clone() for p in flow.parameters()],
                        [p.grad.clone() for p in dec.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for ga, gb in zip(results[0][1] + results[0][2], results[1][1] + results[1][2],
                      strict=True):
        torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("which", ["mlp", "linear-gaussian"])
def test_no_nan_or_inf_under_large_step_sizes(which, lg_problem):
    if which == "mlp":
        enc = MLPEncoder(8, input_dim=30, hidden=(16,), generator=0)
        dec = MLPDecoder(8, output_dim=30, hidden=(16,), generator=1)
        x = torch.bernoulli(torch.full((16, 30), 0.5), generator=torch.Generator().manual_seed(0))
        l = 8
    else:
        p = lg_problem
        enc = p.encoder(p.post_mean, [0.5] * p.l)
        dec = p.decoder(s=0.01)  # a very sharp likelihood: leapfrog at these steps diverges
        x = p.x_batch(16)
        l = p.l
    flow = HamiltonianFlow(l, 20, max_step_size=50.0, step_size_init=40.0, tempering="free")
    if which != "mlp":
        flow = flow.double()
    model = HVAE(enc, dec, flow)
    elbo = model.elbo(x, generator=0)
    assert torch.isfinite(elbo).all()
    elbo.mean().backward()
    for p_ in model.parameters():
        if p_.grad is not None:
            assert torch.isfinite(p_.grad).all()
    assert torch.isfinite(model.nll(x[:2], n_samples=8, generator=1)).all()
    # the clamp is what keeps it finite: without it the trajectory overflows
    if which != "mlp":
        unclamped = HVAE(enc, dec, HamiltonianFlow(l, 20, max_step_size=50.0,
                                                   step_size_init=40.0, tempering="free",
                                                   grad_clip=None).double())
        with torch.no_grad():
            assert not torch.isfinite(unclamped.elbo(x, generator=0)).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"latent_dim": 0, "n_leapfrog": 3}, "latent_dim"),
        ({"latent_dim": 2.5, "n_leapfrog": 3}, "latent_dim"),
        ({"latent_dim": 2, "n_leapfrog": 0}, "n_leapfrog"),
        ({"latent_dim": 2, "n_leapfrog": 3, "step_size_init": 0.0}, "step_size_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "step_size_init": -0.1}, "step_size_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "step_size_init": 0.6}, "step_size_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "step_size_init": float("nan")}, "step_size_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "step_size_init": torch.tensor([0.1, -1.0])},
         "step_size_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "step_size_init": torch.ones(3) * 0.1},
         "step_size_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "max_step_size": 0}, "max_step_size"),
        ({"latent_dim": 2, "n_leapfrog": 3, "tempering": "cosine"}, "tempering"),
        ({"latent_dim": 2, "n_leapfrog": 3, "beta0_init": 1.0}, "beta0_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "tempering": "none", "beta0_init": 3.0},
         "beta0_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "tempering": "none", "beta0_init": 0.5},
         "beta0_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "beta0_init": 0.0}, "beta0_init"),
        # in (0, 1) but its fixed schedule overflowed float32 into NaN alphas
        ({"latent_dim": 2, "n_leapfrog": 3, "beta0_init": 1e-80}, "beta0_init"),
        ({"latent_dim": 2, "n_leapfrog": 3, "grad_clip": -1.0}, "grad_clip"),
    ],
)
def test_bad_flow_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValidationError, match=f"Invalid {name}"):
        HamiltonianFlow(**kwargs)


def test_extreme_but_finite_schedules_are_kept():
    free = HamiltonianFlow(2, 3, tempering="free", beta0_init=1e-80)
    assert bool(torch.isfinite(free.log_alphas()).all())
    fixed = HamiltonianFlow(2, 3, beta0_init=1e-60)
    assert bool(torch.isfinite(fixed.log_alphas()).all())
    with pytest.raises(ValidationError, match="smallest normal number"):
        HamiltonianFlow(2, 3, step_size_init=1e-50)  # rounds to 0 in float32


@pytest.mark.parametrize("tempering", ["fixed", "free"])
@pytest.mark.parametrize("beta0", [1 - 2 ** -53, 1 - 1e-12])
def test_a_beta0_init_just_below_one_is_accepted(tempering, beta0):
    """beta0_init is allowed in (0, 1), but 'free' computed logit(beta_0^(1/2K)) through
    1 - alpha, which is 0 in float64 there: math.log1p(-1) raised 'math domain error'."""
    flow = HamiltonianFlow(2, 4, tempering=tempering, beta0_init=beta0)
    assert bool(torch.isfinite(flow.tempering_param).all())
    assert abs(float(flow.beta0) - beta0) < 1e-6  # float32 holds 1 - 2^-53 as 1
    # ordinary values give the parameters they gave before
    assert float(HamiltonianFlow(2, 4, tempering=tempering, beta0_init=0.5).beta0) == \
        pytest.approx(0.5, rel=1e-6)


def test_flow_rejects_bad_shapes_and_likelihoods():
    flow = HamiltonianFlow(3, 2)
    z = torch.zeros(4, 3)
    with pytest.raises(ValidationError, match="Invalid z0"):
        flow(torch.zeros(4, 2), torch.zeros(4, 2), lambda z: z.sum(1))
    with pytest.raises(ValidationError, match="one log-likelihood per example"):
        flow(z, z, lambda z: (z * z))  # per-dimension values, not summed
    with pytest.raises(ValidationError, match="depends on z"):
        flow(z, z, lambda z: torch.zeros(4))


def test_inverse_refuses_a_momentum_of_another_shape():
    """inverse() did not check its input: one row's momentum (or a 1-D vector) broadcast
    against the n positions and gave an (n, l) answer without a word."""
    flow = HamiltonianFlow(3, 2)
    like = lambda z: -(z ** 2).sum(1)  # noqa: E731
    z, rho = flow(*_draws(4, 3), like)[:2]
    with torch.no_grad():
        for bad_rho in (rho[:1], rho[0]):
            with pytest.raises(ValidationError, match="Invalid z: .*equal to rho's"):
                flow.inverse(z, bad_rho, like)
        with pytest.raises(ValidationError, match="Invalid z"):
            flow.inverse(z[:, :2], rho[:, :2], like)  # another latent size
        with pytest.raises(ValidationError, match="Invalid rho"):
            flow.inverse(z, rho.numpy(), like)
        back = flow.inverse(z, rho, like)  # the right shapes still invert
    assert back[0].shape == (4, 3)


def test_a_flow_in_another_precision_than_the_model_runs_in_the_models():
    """A float64 flow with a float32 model promoted z to float64 after the first step, and
    the float32 decoder then failed with an error blaming the latent size."""
    enc = MLPEncoder(3, input_dim=12, hidden=(6,), generator=0)
    dec = MLPDecoder(3, output_dim=12, hidden=(6,), generator=1)
    x = torch.bernoulli(torch.full((5, 12), 0.4), generator=torch.Generator().manual_seed(0))
    for tempering in TEMPERINGS:
        f32 = HamiltonianFlow(3, 3, tempering=tempering, per_step_step_sizes=True)
        f64 = HamiltonianFlow(3, 3, tempering=tempering, per_step_step_sizes=True).double()
        e64 = HVAE(enc, dec, f64).elbo(x, generator=0)
        e32 = HVAE(enc, dec, f32).elbo(x, generator=0)
        assert e64.dtype == torch.float32
        torch.testing.assert_close(e64, e32)
        e64.sum().backward()
        assert f64.step_logit.grad is not None and f64.step_logit.grad.dtype == torch.float64
        z, rho = f64(*_draws(4, 3), lambda z: -(z ** 2).sum(1))[:2]
        back = f64.inverse(z.float(), rho.float(), lambda z: -(z ** 2).sum(1))
        assert back[0].dtype == torch.float32


class _LowRankLinear(nn.Linear):
    """A linear layer with a trainable low-rank update, as in low-rank fine-tuning: its
    ``weight`` alone is not the map it computes."""

    def __init__(self, base: nn.Linear, rank: int = 2) -> None:
        super().__init__(base.in_features, base.out_features, dtype=base.weight.dtype)
        with torch.no_grad():
            self.weight.copy_(base.weight)
            self.bias.copy_(base.bias)
        g = torch.Generator().manual_seed(5)
        self.A = nn.Parameter(0.3 * torch.randn(rank, base.in_features, generator=g,
                                                dtype=base.weight.dtype))
        self.B = nn.Parameter(0.3 * torch.randn(base.out_features, rank, generator=g,
                                                dtype=base.weight.dtype))

    def forward(self, h):
        return super().forward(h) + h @ self.A.T @ self.B.T


@pytest.mark.parametrize("change", ["low_rank_layers", "forward_hook", "weight_norm"])
def test_an_mlp_decoder_with_changed_layers_gets_the_gradient_of_its_own_likelihood(change):
    # the fused gradient back-propagated through each layer's weight as a plain linear map:
    # with low-rank layers, row 0's ELBO was -28.61 instead of -27.50, silently
    enc = MLPEncoder(3, input_dim=12, hidden=(6,), generator=0).double()
    dec = MLPDecoder(3, output_dim=12, hidden=(6,), generator=1).double()
    if change == "low_rank_layers":
        dec.out = _LowRankLinear(dec.out)
        dec.layers[0] = _LowRankLinear(dec.layers[0])
    elif change == "forward_hook":
        dec.out.register_forward_hook(lambda m, i, o: 2.0 * o)
    else:  # a parametrised weight keeps nn.Linear's forward: the fused path stays exact
        dec.out = nn.utils.parametrizations.weight_norm(dec.out)
    x = torch.bernoulli(torch.full((5, 12), 0.4, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(0))
    flow = HamiltonianFlow(3, 4, tempering="free").double()
    got = HVAE(enc, dec, flow).elbo(x, generator=3)
    want = HVAE(enc, _Counting(dec), flow).elbo(x, generator=3)  # log_prob only: autograd
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert dec._fused_is_exact() is (change == "weight_norm")


def test_a_state_dict_loads_only_into_a_flow_with_its_settings():
    sd = HamiltonianFlow(3, 4, max_step_size=0.5).state_dict()
    same = HamiltonianFlow(3, 4, max_step_size=0.5)
    same.load_state_dict(sd)
    torch.testing.assert_close(same.step_sizes, HamiltonianFlow(3, 4, max_step_size=0.5)
                               .step_sizes)
    HamiltonianFlow(3, 4, max_step_size=0.5).double().load_state_dict(sd)  # dtype is no setting
    for kw in ({"max_step_size": 0.25}, {"n_leapfrog": 2}):  # same shapes, other meaning
        args = {"latent_dim": 3, "n_leapfrog": 4, "max_step_size": 0.5, **kw}
        with pytest.raises(RuntimeError, match="saved by a flow with latent_dim=3, "
                                               "n_leapfrog=4, tempering='fixed', "
                                               "max_step_size=0.5"):
            HamiltonianFlow(**args).load_state_dict(sd)
    outer = torch.nn.Sequential(HamiltonianFlow(3, 5))
    with pytest.raises(RuntimeError, match="state dict of '0' was saved .* n_leapfrog=4"):
        outer.load_state_dict({"0." + k: v for k, v in sd.items()})


def test_a_state_dict_of_a_long_flow_loads_only_with_its_exact_step_count():
    # the settings were compared with a relative tolerance of 1e-3 (meant for max_step_size
    # in half precision), so n_leapfrog = 1000 loaded into a flow of 1001 steps, whose
    # tempering schedule is another one, without an error
    sd = HamiltonianFlow(2, 1000).state_dict()
    HamiltonianFlow(2, 1000).load_state_dict(sd)
    with pytest.raises(RuntimeError, match="n_leapfrog=1000"):
        HamiltonianFlow(2, 1001).load_state_dict(sd)
    # a flow cast to bfloat16 holds its counts to bfloat16's precision, and still loads
    low = HamiltonianFlow(301, 2).bfloat16().state_dict()
    HamiltonianFlow(301, 2).load_state_dict(low)
