"""VAE and HVAE estimators on a linear-Gaussian model, where the evidence and the flow's
ELBO are known in closed form (computed here independently, with NumPy matrices), and the
encoder/decoder contract with user modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from neurips18._validation import ValidationError
from neurips18.hvae import HVAE, VAE, HamiltonianFlow, MLPDecoder, MLPEncoder, mean_logit


def _affine_flow(problem, flow):
    """The flow on a quadratic potential is affine in (z_0, rho_0): its matrices, built
    step by step in NumPy. Returns (M, m) with y_K = M y_0 + m, y = (z, rho)."""
    l, W, s = problem.l, problem.W, problem.s
    A = np.eye(l) + W.T @ W / s ** 2                     # grad U(z) = A z - c
    c = W.T @ (problem.x - problem.b) / s ** 2
    eps = flow.step_sizes.detach().double().numpy()
    alpha = np.exp(flow.log_alphas().detach().double().numpy())
    M, m = np.eye(2 * l), np.zeros(2 * l)
    I, Z = np.eye(l), np.zeros((l, l))
    for k in range(flow.n_leapfrog):
        E = np.diag(eps[k])
        half = (np.block([[I, Z], [-0.5 * E @ A, I]]), np.concatenate([np.zeros(l), 0.5 * E @ c]))
        drift = (np.block([[I, E], [Z, I]]), np.zeros(2 * l))
        temper = (np.block([[I, Z], [Z, alpha[k] * I]]), np.zeros(2 * l))
        for Ms, ms in (half, drift, half, temper):
            M, m = Ms @ M, Ms @ m + ms
    return M, m


def _exact_flow_elbo(problem, flow, mu, sigma):
    """E[log p(x, z_K) + log N(rho_K)] + H[q(z_0)] + H[N(gamma)] with (z_K, rho_K) Gaussian."""
    l = problem.l
    M, m = _affine_flow(problem, flow)
    beta0 = float(flow.beta0)
    S0 = np.block([[np.diag(sigma), np.zeros((l, l))],
                   [np.zeros((l, l)), np.eye(l) / math.sqrt(beta0)]])
    T = M @ S0
    t = M @ np.concatenate([mu, np.zeros(l)]) + m
    cov = T @ T.T
    tz, tr = t[:l], t[l:]
    Czz, Crr = cov[:l, :l], cov[l:, l:]
    W, b, s, x, D = problem.W, problem.b, problem.s, problem.x, problem.D
    resid = x - W @ tz - b
    e_ll = -0.5 * (resid @ resid + np.trace(W @ Czz @ W.T)) / s ** 2 - D * math.log(s) \
        - 0.5 * D * math.log(2 * math.pi)
    e_prior = -0.5 * (tz @ tz + np.trace(Czz)) - 0.5 * l * math.log(2 * math.pi)
    e_mom = -0.5 * (tr @ tr + np.trace(Crr)) - 0.5 * l * math.log(2 * math.pi)
    entropy = np.log(sigma).sum() + l * (1 + math.log(2 * math.pi))  # q(z_0) and N(gamma)
    return e_ll + e_prior + e_mom + entropy, (M, m, S0)


def _independent_mc_elbo(problem, flow, mu, sigma, n, seed):
    """The same ELBO by Monte Carlo through the NumPy affine map, with the exact base
    densities (no analytic replacement of any term)."""
    l = problem.l
    _, (M, m, S0) = _exact_flow_elbo(problem, flow, mu, sigma)
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 2 * l))
    y = (base @ S0.T + np.concatenate([mu, np.zeros(l)])) @ M.T + m
    zK, rK = y[:, :l], y[:, l:]
    W, b, s, x, D = problem.W, problem.b, problem.s, problem.x, problem.D
    r = x - zK @ W.T - b
    log_joint = (-0.5 * (r * r).sum(1) / s ** 2 - D * math.log(s) - 0.5 * D * math.log(2 * math.pi)
                 - 0.5 * (zK * zK).sum(1) - 0.5 * (rK * rK).sum(1) - l * math.log(2 * math.pi))
    log_q = (-0.5 * (base * base).sum(1) - np.log(sigma).sum() - l * math.log(2 * math.pi))
    w = log_joint - log_q
    return w.mean(), w.std() / math.sqrt(n)


@pytest.mark.parametrize("tempering", ["none", "fixed", "free"])
def test_hvae_elbo_matches_closed_form_and_stays_below_the_evidence(lg_problem, tempering):
    p = lg_problem
    mu = p.post_mean + 0.3
    sigma = np.sqrt(np.diag(p.post_cov)) * 1.5
    flow = HamiltonianFlow(p.l, 4, tempering=tempering, step_size_init=0.15,
                           beta0_init=None if tempering == "none" else 0.5).double()
    model = HVAE(p.encoder(mu, sigma), p.decoder(), flow)
    n = 40_000
    with torch.no_grad():
        est = model.elbo(p.x_batch(n), generator=0).numpy()
    exact, _ = _exact_flow_elbo(p, flow, mu, sigma)
    mc, mc_se = _independent_mc_elbo(p, flow, mu, sigma, 200_000, seed=1)
    log_px = p.log_evidence()
    se = est.std() / math.sqrt(n)
    assert abs(est.mean() - exact) < 4 * se, (est.mean(), exact, se)
    assert abs(est.mean() - mc) < 4 * math.hypot(se, mc_se)
    assert exact < log_px                                   # a lower bound
    assert est.mean() + 4 * se < log_px
    assert abs(exact - log_px) > 10 * se                   # the test can tell them apart


def test_vae_elbo_matches_closed_form(lg_problem):
    p = lg_problem
    mu, sigma = p.post_mean - 0.2, np.sqrt(np.diag(p.post_cov)) * 0.7
    model = VAE(p.encoder(mu, sigma), p.decoder()).double()
    with torch.no_grad():
        est = model.elbo(p.x_batch(40_000), generator=0).numpy()
    W, b, s, x, D, l = p.W, p.b, p.s, p.x, p.D, p.l
    r = x - W @ mu - b
    e_ll = (-0.5 * (r @ r + np.trace(W @ np.diag(sigma ** 2) @ W.T)) / s ** 2 - D * math.log(s)
            - 0.5 * D * math.log(2 * math.pi))
    kl = 0.5 * (mu @ mu + (sigma ** 2).sum() - l - 2 * np.log(sigma).sum())
    assert abs(est.mean() - (e_ll - kl)) < 4 * est.std() / math.sqrt(len(est))
    assert e_ll - kl < p.log_evidence()


@pytest.mark.parametrize("kind", ["vae", "hvae"])
def test_nll_converges_to_the_exact_evidence(lg_problem, kind):
    p = lg_problem
    mu, sigma = p.post_mean + 0.4, np.sqrt(np.diag(p.post_cov)) * 1.3
    enc, dec = p.encoder(mu, sigma), p.decoder()
    if kind == "vae":
        model = VAE(enc, dec)
    else:
        model = HVAE(enc, dec, HamiltonianFlow(p.l, 3, tempering="fixed", step_size_init=0.1,
                                               beta0_init=0.7).double())
    exact = -p.log_evidence()
    x = p.x_batch(64)  # 64 independent estimates per sample size
    errors = []
    for s in (1, 10, 100, 2000):
        est = model.nll(x, n_samples=s, batch_size=50_000, generator=s).numpy()
        errors.append(abs(est.mean() - exact))
    # importance sampling: the bias falls with the number of samples
    assert errors[0] > errors[1] > errors[3]
    assert errors[3] < 0.01
    assert errors[0] > 0.05


def test_nll_batching_and_generator(lg_problem):
    p = lg_problem
    model = VAE(p.encoder(p.post_mean, np.sqrt(np.diag(p.post_cov))), p.decoder())
    x = p.x_batch(5)
    a = model.nll(x, n_samples=100, batch_size=30, generator=3)
    b = model.nll(x, n_samples=100, batch_size=30, generator=3)
    assert torch.equal(a, b) and a.shape == (5,)
    # samples split in chunks (running log-sum-exp): the same estimator, other draws
    x = p.x_batch(400)
    a = model.nll(x, n_samples=100, batch_size=30_000, generator=3)
    c = model.nll(x, n_samples=100, batch_size=7, generator=4)
    se = math.sqrt(float(a.var() + c.var()) / 400)
    assert abs(float(a.mean() - c.mean())) < 4 * se


def test_a_user_encoder_and_decoder_work_with_mlp_flows():
    """Any module with the documented contract: here plain nn.Modules, no base class."""

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(10, 4)

        def forward(self, x):
            h = self.net(x)
            return h[:, :2], nn.functional.softplus(h[:, 2:]) + 1e-3

    class Dec(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 10))

        def log_prob(self, x, z):
            return -nn.functional.binary_cross_entropy_with_logits(
                self.net(z), x, reduction="none").sum(-1)

    torch.manual_seed(0)
    model = HVAE(Enc(), Dec(), HamiltonianFlow(2, 3, tempering="free"))
    x = torch.bernoulli(torch.full((32, 10), 0.3), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = -model.elbo(x, generator=2).mean()
        loss.backward()
        opt.step()
        first = float(loss) if first is None else first
    assert float(loss) < first - 1.0
    assert torch.isfinite(model.nll(x, n_samples=20, generator=0)).all()


def test_global_rng_is_untouched_with_generators():
    state = torch.random.get_rng_state()
    enc = MLPEncoder(3, input_dim=8, hidden=(5,), generator=0)
    dec = MLPDecoder(3, output_dim=8, hidden=(5,), generator=1)
    model = HVAE(enc, dec, HamiltonianFlow(3, 2))
    x = torch.bernoulli(torch.full((4, 8), 0.5), generator=torch.Generator().manual_seed(0))
    e1 = model.elbo(x, generator=4)
    model.nll(x, n_samples=5, generator=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(e1, model.elbo(x, generator=4))
    enc2 = MLPEncoder(3, input_dim=8, hidden=(5,), generator=0)
    assert all(torch.equal(a, b) for a, b in zip(enc.parameters(), enc2.parameters(),
                                                  strict=True))


def _mlp(l=4, d=12):
    return (MLPEncoder(l, input_dim=d, hidden=(6,), generator=0),
            MLPDecoder(l, output_dim=d, hidden=(6,), generator=1))


def test_bad_inputs_get_clear_errors():
    enc, dec = _mlp()
    model = HVAE(enc, dec, HamiltonianFlow(4, 2))
    vae = VAE(enc, dec)
    x = torch.bernoulli(torch.full((3, 12), 0.5), generator=torch.Generator().manual_seed(0))
    for m in (model, vae):
        with pytest.raises(ValidationError, match=r"Invalid x: .*\[0, 1\]"):
            m.elbo(x * 3)
        with pytest.raises(ValidationError, match="Invalid x: .*NaN"):
            m.elbo(torch.full((3, 12), float("nan")))
        for bad in (float("nan"), float("inf"), -float("inf")):  # one bad value among many
            xb = x.clone()
            xb[1, 5] = bad
            with pytest.raises(ValidationError, match="Invalid x: .*found 1 NaN or inf"):
                m.elbo(xb)
        with pytest.raises(ValidationError, match="Invalid x"):
            m.elbo(torch.zeros(0, 12))
        with pytest.raises(ValidationError, match="Invalid x"):
            m.elbo(x.numpy())
        with pytest.raises(ValidationError, match="Invalid n_samples"):
            m.nll(x, n_samples=0)
        with pytest.raises(ValidationError, match="Invalid generator"):
            m.elbo(x, generator=-1)
    before = x.clone()
    model.elbo(x, generator=0)
    assert torch.equal(x, before)  # nothing the user passes is modified
    with pytest.raises(ValidationError, match="mismatched latent sizes"):
        HVAE(enc, dec, HamiltonianFlow(5, 2))
    with pytest.raises(ValidationError, match="mismatched latent sizes"):
        VAE(MLPEncoder(3, input_dim=12), dec)
    with pytest.raises(ValidationError, match="log_prob"):
        VAE(enc, nn.Linear(4, 12))


def test_user_modules_breaking_the_contract_are_caught(lg_problem):
    p = lg_problem

    class LogVarEncoder(nn.Module):  # returns a log-variance where sigma is expected
        def forward(self, x):
            n = x.shape[0]
            return torch.zeros(n, p.l, dtype=x.dtype), torch.full((n, p.l), -1.0, dtype=x.dtype)

    class PerPixelDecoder(nn.Module):  # forgets to sum over the data dimensions
        def log_prob(self, x, z):
            return -(x - z.sum(1, keepdim=True)) ** 2

    class WrongLatentEncoder(nn.Module):
        def forward(self, x):
            n = x.shape[0]
            return torch.zeros(n, p.l + 1, dtype=x.dtype), torch.ones(n, p.l + 1, dtype=x.dtype)

    class SixLatentDecoder(nn.Module):  # no latent_dim attribute: found out at the call
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(p.l + 3, p.D).double()

        def log_prob(self, x, z):
            return -((x - self.net(z)) ** 2).sum(1)

    x = p.x_batch(4)
    flow = HamiltonianFlow(p.l, 2).double()
    enc = p.encoder(p.post_mean, [1.0] * p.l)
    for model in (HVAE(enc, SixLatentDecoder(), flow), VAE(enc, SixLatentDecoder())):
        with pytest.raises(ValidationError, match="mismatched latent sizes"):
            model.elbo(x)
    with pytest.raises(ValidationError, match="Invalid encoder sigma"):
        HVAE(LogVarEncoder(), p.decoder(), flow).elbo(x)

    class NaNMeanEncoder(nn.Module):  # a diverged mean, a valid sigma
        def forward(self, x):
            n = x.shape[0]
            return (torch.full((n, p.l), float("nan"), dtype=x.dtype),
                    torch.ones(n, p.l, dtype=x.dtype))

    for model in (HVAE(NaNMeanEncoder(), p.decoder(), flow), VAE(NaNMeanEncoder(), p.decoder())):
        # it was reported as "Invalid encoder sigma", naming the valid output
        with pytest.raises(ValidationError, match=r"Invalid encoder mu: .*found 12 NaN"):
            model.elbo(x)
    with pytest.raises(ValidationError, match="one log-likelihood per example"):
        HVAE(p.encoder(p.post_mean, [1.0] * p.l), PerPixelDecoder(), flow).elbo(x)
    with pytest.raises(ValidationError, match="one log-likelihood per example"):
        VAE(p.encoder(p.post_mean, [1.0] * p.l), PerPixelDecoder()).elbo(x)
    with pytest.raises(ValidationError, match="mismatched latent sizes"):
        HVAE(WrongLatentEncoder(), p.decoder(), flow).elbo(x)


def test_nll_and_encoder_errors_name_the_users_input():
    enc, dec = _mlp()
    x = torch.full((3, 12), 0.5)
    for m in (HVAE(enc, dec, HamiltonianFlow(4, 2)), VAE(enc, dec)):
        # the error shows the batch as passed, not its repetitions over the samples
        shown = r"Invalid x: Tensor of shape \(3, 12\).*\[0, 1\]"
        with pytest.raises(ValidationError, match=shown):
            m.nll(x * 3, n_samples=10)
        with pytest.raises(ValidationError, match="Invalid x: .*12 values per example"):
            m.elbo(torch.full((3, 10), 0.5))
        with pytest.raises(ValidationError, match="Invalid x: .*12 values per example"):
            m.nll(torch.full((3, 10), 0.5), n_samples=4)


def test_nll_refuses_a_decoder_without_one_value_per_example(lg_problem):
    """VAE.nll checks the decoder's output as elbo does: a log_prob summed over the batch
    too (a scalar) broadcast against the prior terms and gave a wrong NLL, silently."""
    p = lg_problem
    inner = p.decoder()

    class BatchSummed(nn.Module):
        def log_prob(self, x, z):
            return inner.log_prob(x, z).sum()

    class PerDimension(nn.Module):
        def log_prob(self, x, z):
            return -(x - z @ inner.W.T) ** 2

    class KeepDim(nn.Module):
        def log_prob(self, x, z):
            return inner.log_prob(x, z)[:, None]

    enc = p.encoder(p.post_mean, [1.0] * p.l)
    for dec in (BatchSummed(), PerDimension(), KeepDim()):
        for model in (VAE(enc, dec), HVAE(enc, dec, HamiltonianFlow(p.l, 2).double())):
            with pytest.raises(ValidationError, match="one log-likelihood per example"):
                model.nll(p.x_batch(4), n_samples=10, batch_size=7)
            with pytest.raises(ValidationError, match="one log-likelihood per example"):
                model.elbo(p.x_batch(4))


def test_vae_checks_the_encoders_output_against_its_declared_latent_dim():
    class Enc(nn.Module):  # declares 3, returns 4
        latent_dim = 3

        def forward(self, x):
            n = x.shape[0]
            return torch.zeros(n, 4), torch.ones(n, 4)

    class AnyLatentDecoder(nn.Module):  # no latent_dim; accepts any width
        def log_prob(self, x, z):
            return -((x - z.sum(1, keepdim=True)) ** 2).sum(1)

    with pytest.raises(ValidationError, match="mismatched latent sizes"):
        VAE(Enc(), AnyLatentDecoder()).elbo(torch.zeros(2, 5))


def test_nll_gives_every_submodule_its_own_mode_back():
    """A user model in training mode with a frozen (eval-mode) batch-norm encoder: nll
    runs everything in eval mode and then restores each submodule's own mode."""

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn, self.drop, self.net = nn.BatchNorm1d(12), nn.Dropout(0.5), nn.Linear(12, 8)

        def forward(self, x):
            h = self.net(self.drop(self.bn(x)))
            return h[:, :4], nn.functional.softplus(h[:, 4:]) + 1e-3

    x = torch.full((3, 12), 0.5)
    dec = MLPDecoder(4, output_dim=12, hidden=(6,), generator=1)
    for model in (VAE(Enc(), dec), HVAE(Enc(), dec, HamiltonianFlow(4, 2))):
        model.train()
        model.encoder.bn.eval()
        seen: list[list[bool]] = []
        model.encoder.register_forward_pre_hook(
            lambda m, args, seen=seen: seen.append([s.training for s in m.modules()]))
        model.nll(x, n_samples=3)
        assert seen and not any(any(t) for t in seen)  # all in eval mode during nll
        assert model.training and model.encoder.training and model.encoder.drop.training
        assert not model.encoder.bn.training  # still frozen
        model.eval()
        model.nll(x, n_samples=3)
        assert not any(m.training for m in model.modules())


class _BatchNormDecoder(nn.Module):
    """The linear-Gaussian decoder applied to batch-normalised latents."""

    def __init__(self, problem, track_running_stats: bool = True) -> None:
        super().__init__()
        self.inner = problem.decoder()
        self.bn = nn.BatchNorm1d(problem.l, affine=False,
                                 track_running_stats=track_running_stats).double()

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.inner.log_prob(x, self.bn(z))


def test_a_decoder_normalising_with_batch_statistics_is_refused_where_rows_must_not_mix(
        lg_problem):
    # with batch statistics, row 0's HVAE ELBO moved from -8.26 to -33.28 when the other
    # rows changed, and the VAE's NLL was 7.21 / 7.30 (by batch_size) for an evidence of 5.70
    p = lg_problem
    enc = p.encoder(p.post_mean + 0.3, np.sqrt(np.diag(p.post_cov)) * 1.5)
    x = p.x_batch(8)
    dec = _BatchNormDecoder(p)
    hvae = HVAE(enc, dec, HamiltonianFlow(p.l, 3).double())
    hvae.train()
    with pytest.raises(ValidationError, match=r"Invalid decoder\.bn: .*batch statistics"):
        hvae.elbo(x, generator=0)
    assert int(dec.bn.num_batches_tracked) == 0  # refused before any decoder call
    lazy = _BatchNormDecoder(p)
    lazy.bn = nn.LazyBatchNorm1d(affine=False)  # not a subclass of BatchNorm1d
    with pytest.raises(ValidationError, match=r"Invalid decoder\.bn: .*batch statistics"):
        HVAE(enc, lazy, HamiltonianFlow(p.l, 3).double()).elbo(x, generator=0)
    # in eval mode (running statistics) the rows are independent again
    hvae.eval()
    assert torch.isfinite(hvae.elbo(x, generator=0)).all()
    # nll runs in eval mode: running statistics are fine, none at all are not
    hvae.train()
    assert torch.isfinite(hvae.nll(x, n_samples=5, generator=0)).all()
    assert dec.bn.training  # its mode given back
    no_stats = _BatchNormDecoder(p, track_running_stats=False)
    for model in (VAE(enc, no_stats), HVAE(enc, no_stats, HamiltonianFlow(p.l, 3).double())):
        with pytest.raises(ValidationError, match="Invalid decoder.bn"):
            model.nll(x, n_samples=5, generator=0)
    # the VAE's ELBO calls the decoder once: ordinary batch-norm training is allowed
    vae = VAE(enc, dec)
    vae.train()
    assert vae.elbo(x, generator=0).shape == (8,)


def test_hvae_evaluates_under_inference_mode_as_under_no_grad(lg_problem):
    # the flow needs autograd for grad U; under torch.inference_mode it used to fail with
    # an error blaming the user's decoder ("a value that depends on z through
    # differentiable operations")
    p = lg_problem
    enc = p.encoder(p.post_mean + 0.3, np.sqrt(np.diag(p.post_cov)) * 1.5)
    model = HVAE(enc, p.decoder(), HamiltonianFlow(p.l, 3).double())  # autograd path
    x = p.x_batch(4)
    with torch.no_grad():
        nll, elbo = model.nll(x, 50, generator=0), model.elbo(x, generator=0)
    with torch.inference_mode():
        x_inf = x.clone()  # an inference tensor
        for data in (x, x_inf):
            assert torch.equal(model.nll(data, 50, generator=0), nll)
            out = model.elbo(data, generator=0)
            assert torch.equal(out, elbo) and not out.requires_grad


def test_mean_logit_is_the_logit_of_each_images_mean_and_refuses_what_is_not_images():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(5, 784, generator=g) < torch.linspace(0.05, 0.5, 5)[:, None]).float()
    m = x.double().mean(1)
    expected = float(torch.log(m / (1 - m)).mean())
    assert mean_logit(x) == pytest.approx(expected, rel=1e-5)
    assert mean_logit(x.view(5, 1, 28, 28)) == pytest.approx(expected, rel=1e-5)
    # one image as (784,) was read as 784 one-pixel images: the mean of the clamped pixel
    # logits (-8.2 here) instead of its own value (-2.9)
    with pytest.raises(ValidationError, match=r"Invalid x: .*\(784,\).*x\[None\]"):
        mean_logit(x[0])
    assert mean_logit(x[:1]) == pytest.approx(float(torch.logit(m[0])), rel=1e-5)
    for bad in (torch.empty(0, 784), torch.full((2, 784), float("nan")), x * 3):
        with pytest.raises(ValidationError, match="Invalid x"):  # NaN / the clamp's bound
            mean_logit(bad)
