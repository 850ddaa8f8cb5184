"""Reproduction: Caterini, Doucet, Sejdinovic, Hamiltonian Variational Auto-Encoder
(NeurIPS 2018). Capability :mod:`neurips18.hvae`.

Two experiments, as in the paper:

* **Gaussian model** (the paper's data generation and the settings of its code: N = 10,000,
  RMSProp with step 1e-3, 10 Monte Carlo samples per ELBO estimate, 30,000 iterations,
  initial Delta = 0, log sigma = 3, step size 0.005, 1/sqrt(beta_0) = 5). Tempered HVAE
  K = 10 must recover sigma (||sigma_hat - sigma||^2 < 2e-3) and the MLE of Delta
  (||Delta_hat - Delta_MLE||^2 < 1e-2: Delta itself is identified only up to the single draw
  of z, so the distance to the true Delta is dominated by ||z||^2 for every method; the
  paper's metric is reported beside it); untempered HVAE K = 10 fails to learn sigma; and
  the ranking: tempered HVAE closer to the exact MLE than a planar normalizing flow (K = 30)
  and mean-field VB. Departures: one data set per dimension instead of 10 and d in {1, 5,
  25, 101, 301} (the paper: 10 dimensions up to 301); the planar flow has its own
  (u, w, b) per layer and the correct ELBO (the paper's code shares one (u, w, b) across
  layers and counts the term sum_i (x_i - Delta)^T Sigma^-1 (x_i - Delta) of its ELBO
  twice, which biases its sigma upward), so NF errors here are not those of the paper's
  figure.
* **MNIST**, a declared scaled-down protocol that fits two shared CPU cores: the MLP
  encoder/decoder 784-200-200-64 (softplus; the paper: its convolutional networks), Adamax
  with step 2e-3 (the paper: 5e-4; a larger step so that a few tens of epochs get near
  convergence), eps 1e-7, batch 100, 50k/10k train/validation split, dynamic binarisation,
  early stopping on the validation ELBO with a short horizon (``epochs``, ``patience`` in
  the profile; the paper: up to 2000 epochs, patience 100), test NLL on the 10,000 test
  images with 1000 importance samples. HVAE K = 5 with free tempering must beat the
  identically trained VAE by at least 0.3 nats, the paired difference over the seeds with
  its 95 % t interval. The paper's own protocol is the ``paper`` profile (``--device cuda``
  recommended). pythae's HVAE (0.1.2) is trained on the same protocol in the same run (same
  networks and initial weights, same minibatches and optimizer): its NLL by pythae's
  ``get_nll`` and by our estimator (its encoder as the proposal), and its time per epoch
  beside ours.

The paper's tables and figure values could not be read here: those rows say "not
recovered"; the claims are checked against the issue's targets and the anchor.

Quick profile (under 3 minutes on two cores): d = 5 only, 3000 iterations with step 1e-2
(a tenfold step so sigma travels from e^3 to its value in time), tempered and untempered
HVAE and VB; MNIST on 5000 training images for 2 epochs, NLL on 500 test images with 100
samples. Its rows, fixed in advance: the tempered HVAE recovers sigma (< 2e-3), the
untempered one misses that target (>= 2e-3), and on MNIST the importance-sampled NLL lies
below the negative ELBO for both models. The Delta-MLE target, the ranking and the 0.3-nat claim
need the full run.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any

from neurips18.repro.core import (
    MEASURED,
    Judgement,
    Profile,
    Reference,
    References,
    Reproduction,
    RunContext,
    estimate,
    needs_mnist,
)

CITATION = (
    "Caterini, Doucet, Sejdinovic. Hamiltonian Variational Auto-Encoder. NeurIPS 2018. "
    "arXiv:1805.11328"
)
GAUSS_METHODS = ("hvae_tempered", "hvae_untempered", "planar", "vb")
_LABEL = {"hvae_tempered": "HVAE tempered", "hvae_untempered": "HVAE untempered",
          "planar": "planar NF", "vb": "mean-field VB"}


@dataclass(frozen=True)
class Gaussian:
    dims: tuple[int, ...]
    n: int
    datasets: int
    iters: int
    lr: float
    methods: tuple[str, ...]
    n_leapfrog: int = 10
    planar_layers: int = 30
    n_mc: int = 10
    full_claims: bool = False     # judge the Delta-MLE target and the ranking (long runs)


@dataclass(frozen=True)
class Mnist:
    arch: str                     # "mlp" (the scaled-down protocol) or "conv" (the paper's)
    hidden: tuple[int, ...]
    latent_dim: int
    n_train: int
    n_val: int
    n_test: int
    epochs: int
    patience: int
    seeds: tuple[int, ...]
    n_leapfrog: int
    tempering: str
    nll_samples: int
    nll_batch: int
    pythae: bool
    pythae_nll_images: int        # test images for pythae's own get_nll (it is slow)
    lr: float = 5e-4              # Adamax step (the paper's: 5e-4), eps 1e-7


@dataclass(frozen=True)
class Config(Profile):
    gaussian: Gaussian
    mnist: Mnist

    def check(self) -> None:
        g, m = self.gaussian, self.mnist
        if not set(g.methods) <= set(GAUSS_METHODS):
            raise ValueError(f"gaussian.methods must be among {GAUSS_METHODS}, got {g.methods}")
        if m.arch not in ("mlp", "conv"):
            raise ValueError(f"mnist.arch must be 'mlp' or 'conv', got {m.arch!r}")
        if m.n_train + m.n_val > 60_000 or m.n_test > 10_000:
            raise ValueError("mnist sizes exceed MNIST's 60,000 + 10,000 images")
        if not m.seeds:
            raise ValueError("mnist.seeds must not be empty")


_QUICK_G = Gaussian(dims=(5,), n=10_000, datasets=1, iters=3000, lr=1e-2,
                    methods=("hvae_tempered", "hvae_untempered", "vb"))
PROFILES = {
    "smoke": Config(
        gaussian=Gaussian(dims=(2,), n=200, datasets=1, iters=30, lr=1e-2,
                          methods=("hvae_tempered", "hvae_untempered", "vb", "planar"),
                          n_leapfrog=2, planar_layers=2),
        mnist=Mnist(arch="mlp", hidden=(32,), latent_dim=8, n_train=300, n_val=100, n_test=20,
                    epochs=1, patience=1, seeds=(0,), n_leapfrog=2, tempering="free",
                    nll_samples=10, nll_batch=1000, pythae=False, pythae_nll_images=5)),
    "quick": Config(
        gaussian=_QUICK_G,
        mnist=Mnist(arch="mlp", hidden=(200, 200), latent_dim=64, n_train=5000, n_val=1000,
                    n_test=500, epochs=2, patience=2, seeds=(0,), n_leapfrog=5,
                    tempering="free", nll_samples=100, nll_batch=2000, pythae=True,
                    pythae_nll_images=20, lr=2e-3)),
    "full": Config(
        gaussian=Gaussian(dims=(1, 5, 25, 101, 301), n=10_000, datasets=1, iters=30_000,
                          lr=1e-3, methods=GAUSS_METHODS, full_claims=True),
        mnist=Mnist(arch="mlp", hidden=(200, 200), latent_dim=64, n_train=50_000,
                    n_val=10_000, n_test=10_000, epochs=20, patience=5, seeds=(0, 1),
                    n_leapfrog=5, tempering="free", nll_samples=1000, nll_batch=2000,
                    pythae=True, pythae_nll_images=500, lr=2e-3)),
    # the paper's MNIST protocol (convolutional networks, up to 2000 epochs, patience 100,
    # its three seeds): hours of GPU time; run with --device cuda
    "paper": Config(
        gaussian=Gaussian(dims=(1, 2, 3, 5, 11, 25, 51, 101, 201, 301), n=10_000, datasets=10,
                          iters=30_000, lr=1e-3, methods=GAUSS_METHODS, full_claims=True),
        mnist=Mnist(arch="conv", hidden=(), latent_dim=64, n_train=50_000, n_val=10_000,
                    n_test=10_000, epochs=2000, patience=100, seeds=(85547, 12345, 98765),
                    n_leapfrog=5, tempering="free", nll_samples=1000, nll_batch=2000,
                    pythae=False, pythae_nll_images=0)),
}

_NR = "paper: not recovered"
REFERENCES = References(
    Reference("g_sigma", "Gaussian d={d}: ||sigma_hat - sigma||^2, HVAE K={k} tempered", 2e-3,
              source="issue target (paper's Gaussian figure: not recovered)", mode="max"),
    Reference("g_delta_mle", "Gaussian d={d}: ||Delta_hat - Delta_MLE||^2, HVAE K={k} tempered",
              1e-2, source="issue target (paper's Gaussian figure: not recovered)",
              mode="max"),
    Reference("g_untempered", "Gaussian d={d}: ||sigma_hat - sigma||^2, HVAE K={k} untempered "
              "(fails to learn sigma: misses the tempered target)", 2e-3,
              source="claim tested (paper: without tempering sigma is not learned)",
              mode="min"),
    Reference("g_rank", "Gaussian d={d}: ||theta_hat - theta_MLE||^2, HVAE K={k} tempered / "
              "{other} (< 1: HVAE closer)", 1.0,
              source="issue: the paper's ranking, HVAE most accurate (figure values not "
                     "recovered)", mode="max"),
    Reference("g_paper_metric", "Gaussian d={d}: ||Delta_hat - Delta||^2 + ||sigma_hat - "
              "sigma||^2, {method} (the paper's metric)", None, source=_NR),
    Reference("g_mle_metric", "Gaussian d={d}: ||Delta_hat - Delta||^2 + ||sigma_hat - "
              "sigma||^2 of the exact MLE", None,
              source="informative: the floor of the paper's metric for this draw of z"),
    Reference("g_mle_sigma", "Gaussian d={d}: ||sigma_MLE - sigma||^2 of the exact MLE", None,
              source="informative: the exact MLE's own error on this data set; the HVAE "
                     "fit approaches the MLE, so the 2e-3 target is out of its reach where "
                     "this exceeds it"),
    Reference("m_gap", "MNIST ({protocol}): NLL(VAE) - NLL(HVAE K={k} {tempering}) in nats, "
              "paired over {n} seeds", 0.3, source="issue target", mode="min"),
    Reference("m_nll", "MNIST ({protocol}): test NLL of {model} (nats)", None,
              source="paper's MNIST table: not recovered"),
    Reference("m_bound", "MNIST ({protocol}): -ELBO - NLL of {model} (nats, >= 0: importance "
              "sampling tighter than the ELBO)", 0.0,
              source="closed-form fact: the IS estimate with many samples bounds log p(x) "
                     "more tightly than the ELBO", mode="min"),
    Reference("m_pythae_nll", "MNIST ({protocol}): test NLL, HVAE K={k} ours vs pythae's "
              "HVAE (same networks, data, epochs), both by our estimator", MEASURED,
              source="anchor: pythae {version} measured in this run", mode="max"),
    Reference("m_pythae_own", "MNIST ({protocol}): pythae's HVAE NLL by pythae's get_nll "
              "({images} test images; our estimator, same model and images: {ours_same:.2f})",
              None, source="informative: pythae {version}'s own estimate (its get_nll returns "
                           "the mean log-likelihood; shown negated)"),
    Reference("m_pythae_time", "MNIST ({protocol}): seconds per epoch, HVAE K={k} ours / "
              "pythae's (ours {ours_s:.1f} s, pythae {theirs_s:.1f} s)", None,
              source="informative: wall clock on a shared machine; the benchmark "
                     "bench_hvae.py measures CPU time side by side"),
    Reference("m_anchor_missing", "MNIST: pythae's HVAE", None,
              source="anchor not installed: pip install 'neurips18[hvae-anchors]'"),
)


# ----------------------------------------------------------------------------- Gaussian
def _gauss_fit(d: int, rep: int, method: str, g: Gaussian, seed: int) -> dict[str, Any]:
    import numpy as np

    from neurips18.hvae import fit_gaussian_model, gaussian_mle, make_gaussian_model

    data = make_gaussian_model(d, g.n, generator=seed * 1000 + 17 * d + rep)
    delta_mle, sigma_mle = gaussian_mle(data.x)
    kw: dict[str, Any] = {}
    if method.startswith("hvae"):
        kw = {"n_leapfrog": g.n_leapfrog,
              "tempering": "fixed" if method == "hvae_tempered" else "none"}
    fit = fit_gaussian_model(data.x, "planar" if method == "planar" else (
        "vb" if method == "vb" else "hvae"), n_flow=g.planar_layers, n_iter=g.iters,
        n_mc=g.n_mc, lr=g.lr, generator=seed * 1000 + 7 * d + rep + 1, **kw)

    def sq(a: Any, b: Any) -> float:
        return float(np.sum((np.asarray(a) - np.asarray(b)) ** 2))

    return {
        "d": d, "rep": rep, "method": method,
        "delta_true": sq(fit.delta, data.delta), "sigma_true": sq(fit.sigma, data.sigma),
        "delta_mle": sq(fit.delta, delta_mle), "sigma_mle": sq(fit.sigma, sigma_mle),
        "mle_delta_true": sq(delta_mle, data.delta), "mle_sigma_true": sq(sigma_mle, data.sigma),
        "elbo_final": fit.elbo[-1], "elbo_trace": fit.elbo[:: max(1, len(fit.elbo) // 60)],
        "flow": fit.flow, "fit_seconds": fit.seconds,
    }


# ----------------------------------------------------------------------------- MNIST
def _mnist_split(m: Mnist, seed: int) -> dict[str, Any]:
    """The train/validation split and the binarised test set: drawn from the run's base
    seed only, so every model and every training seed sees the same images."""
    import torch

    from neurips18.repro._common import mnist_tensors

    t = mnist_tensors()
    perm = torch.randperm(60_000, generator=torch.Generator().manual_seed(10_000 + seed))
    x = t["x_train"]
    return {
        "train": x[perm[m.n_val:m.n_val + m.n_train]],
        "val": x[perm[:m.n_val]],
        # the test images binarised once, with a fixed generator (the same for every model)
        "test": torch.bernoulli(t["x_test"][:m.n_test],
                                generator=torch.Generator().manual_seed(20_000 + seed)),
    }


def _networks(m: Mnist, seed: int, output_bias: float) -> tuple[Any, Any]:
    from neurips18.hvae import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

    if m.arch == "conv":
        return (ConvEncoder(m.latent_dim, generator=seed),
                ConvDecoder(m.latent_dim, output_bias=output_bias, generator=seed + 1))
    return (MLPEncoder(m.latent_dim, hidden=m.hidden, generator=seed),
            MLPDecoder(m.latent_dim, hidden=m.hidden, output_bias=output_bias,
                       generator=seed + 1))


def _build(kind: str, m: Mnist, seed: int, output_bias: float) -> Any:
    from neurips18.hvae import HVAE, VAE, HamiltonianFlow

    enc, dec = _networks(m, seed, output_bias)
    if kind == "vae":
        return VAE(enc, dec)
    return HVAE(enc, dec, HamiltonianFlow(m.latent_dim, m.n_leapfrog, tempering=m.tempering))


def _test_metrics(model: Any, x_test: Any, m: Mnist, seed: int, device: str) -> dict[str, Any]:
    import torch

    nll, elbo = [], []
    gen = torch.Generator().manual_seed(30_000 + seed)
    with torch.no_grad():
        for i in range(0, x_test.shape[0], 500):
            xb = x_test[i:i + 500].to(device)
            nll.append(model.nll(xb, n_samples=m.nll_samples, batch_size=m.nll_batch,
                                 generator=gen).double().cpu())
            elbo.append(model.elbo(xb, generator=gen).double().cpu())
    nll_t, elbo_t = torch.cat(nll), torch.cat(elbo)
    return {"nll": float(nll_t.mean()), "elbo": float(elbo_t.mean()),
            "nll_per_image_sd": float(nll_t.std())}


def _train_eval(kind: str, m: Mnist, seed: int, ctx: RunContext) -> dict[str, Any]:
    import torch

    from neurips18.hvae import Trainer, mean_logit
    from neurips18.repro._common import to_device

    split = _mnist_split(m, ctx.seed)
    model: Any = to_device(_build(kind, m, seed, mean_logit(split["train"])), ctx.device)
    trainer = Trainer(model, torch.optim.Adamax(model.parameters(), lr=m.lr, eps=1e-7),
                      batch_size=100, max_epochs=m.epochs, patience=m.patience,
                      checkpoint=ctx.checkpoint_dir / f"mnist-{kind}-s{seed}.pt",
                      progress=ctx.progress_enabled, generator=40_000 + seed)
    res = trainer.fit(split["train"], split["val"])
    t0 = time.perf_counter()
    out = _test_metrics(model, split["test"], m, seed, ctx.device)
    out.update(
        kind=kind, seed=seed, best_epoch=res.best_epoch, epochs_run=res.epochs_run,
        best_val_elbo=res.best_val_elbo, stopped_early=res.stopped_early,
        val_elbo=[h["val_elbo"] for h in res.history],
        train_elbo=[h["train_elbo"] for h in res.history],
        epoch_seconds=res.seconds_per_epoch(), eval_seconds=time.perf_counter() - t0,
    )
    if kind == "hvae":
        with torch.no_grad():
            out["flow"] = {"step_size_mean": float(model.flow.step_sizes.mean()),
                           "beta0": float(model.flow.beta0)}
    return out


def _pythae_available() -> str | None:
    try:
        from importlib.metadata import version

        import pythae  # noqa: F401
    except ImportError:
        return None
    return version("pythae")


def _pythae_model(m: Mnist, seed: int, output_bias: float) -> Any:
    """pythae's HVAE around our networks (same initial weights as ours), exposing the
    ``elbo(x, generator=)`` our Trainer drives: minus pythae's loss, with pythae's global-RNG
    draws made reproducible under a forked, seeded RNG."""
    import torch
    from pythae.models import HVAE as PythaeHVAE
    from pythae.models import HVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn
    from torch.nn import functional as F

    enc, dec = _networks(m, seed, output_bias)

    class Enc(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = enc

        def forward(self, x: Any) -> Any:
            h = x.reshape(x.shape[0], -1)
            for layer in self.net.layers:
                h = F.softplus(layer(h))
            # pythae turns this into sigma with softplus (as our encoder does)
            return ModelOutput(embedding=self.net.mu(h), log_covariance=self.net.sigma(h))

    class Dec(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = dec

        def forward(self, z: Any) -> Any:
            return ModelOutput(reconstruction=self.net.logits(z))

    cfg = HVAEConfig(input_dim=(1, 28, 28), latent_dim=m.latent_dim, n_lf=m.n_leapfrog,
                     eps_lf=0.2, beta_zero=0.81 ** m.n_leapfrog, learn_eps_lf=True,
                     learn_beta_zero=True, reconstruction_loss="bce")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inner = PythaeHVAE(cfg, encoder=Enc(), decoder=Dec())

    class Adapter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def elbo(self, x: Any, *, generator: Any = None) -> Any:
            seed_ = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_)
                with torch.enable_grad():
                    loss = self.inner({"data": x}).loss
            if not torch.is_grad_enabled():
                loss = loss.detach()
            return (-loss).expand(x.shape[0])

        def proposal_nll(self, x: Any, n_samples: int, generator: Any) -> Any:
            """-log p(x) by importance sampling with pythae's q(z | x) = N(mu, softplus(.)),
            the distribution its training samples z_0 from, and its decoder."""
            out = self.inner.encoder(x)
            mu, sigma = out.embedding, F.softplus(out.log_covariance)
            res = []
            for i in range(x.shape[0]):
                eps = torch.randn(n_samples, mu.shape[1], generator=generator)
                z = mu[i] + sigma[i] * eps
                ll = -F.binary_cross_entropy_with_logits(
                    self.inner.decoder(z).reconstruction, x[i].expand(n_samples, -1),
                    reduction="none").sum(1)
                lw = ll - 0.5 * (z * z).sum(1) + torch.log(sigma[i]).sum() + 0.5 * (
                    eps * eps).sum(1)
                res.append(math.log(n_samples) - torch.logsumexp(lw, 0))
            return torch.stack(res)

    return Adapter()


def _pythae_run(m: Mnist, seed: int, ctx: RunContext) -> dict[str, Any]:
    import contextlib
    import io

    import torch

    from neurips18.hvae import Trainer, mean_logit
    from neurips18.repro._common import to_device

    split = _mnist_split(m, ctx.seed)
    model: Any = to_device(_pythae_model(m, seed, mean_logit(split["train"])), ctx.device)
    try:
        res = Trainer(model, torch.optim.Adamax(model.parameters(), lr=m.lr, eps=1e-7),
                      batch_size=100, max_epochs=m.epochs, patience=m.patience,
                      checkpoint=ctx.checkpoint_dir / f"mnist-pythae-s{seed}.pt",
                      progress=ctx.progress_enabled, generator=40_000 + seed).fit(
            split["train"], split["val"])
    except FloatingPointError as exc:
        return {"diverged": str(exc)}
    model.eval()
    gen = torch.Generator().manual_seed(30_000 + seed)
    x_test = split["test"].to(ctx.device)
    nll = []
    with torch.no_grad():
        for i in range(0, x_test.shape[0], 500):
            nll.append(model.proposal_nll(x_test[i:i + 500], m.nll_samples, gen).double())
    nll_t = torch.cat(nll)
    k = m.pythae_nll_images
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(50_000 + seed)
        # pythae's get_nll returns the mean estimated log-likelihood: negate it
        own = -float(model.inner.get_nll(x_test[:k], n_samples=m.nll_samples,
                                         batch_size=min(100, m.nll_samples))) if k else None
    return {"nll": float(nll_t.mean()), "nll_first": float(nll_t[:k].mean()) if k else None,
            "own_nll": own, "images_own": k, "epoch_seconds": res.seconds_per_epoch(),
            "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
            "val_elbo": [h["val_elbo"] for h in res.history],
            "eps_lf": float(model.inner.eps_lf.detach()),
            "beta_zero": float(model.inner.beta_zero_sqrt.detach() ** 2)}


# ----------------------------------------------------------------------------- run
def run(ctx: RunContext) -> dict[str, Any]:
    cfg: Config = ctx.config
    g, m = cfg.gaussian, cfg.mnist
    gauss = []
    steps = [(d, r, meth) for d in g.dims for r in range(g.datasets) for meth in g.methods]
    for d, r, meth in ctx.progress(steps, desc="gaussian model"):
        gauss.append(ctx.cached(f"gauss-d{d}-r{r}-{meth}",
                                partial(_gauss_fit, d, r, meth, g, ctx.seed)))
    data: dict[str, Any] = {"gaussian": gauss, "mnist": None, "pythae": None,
                            "pythae_version": None}
    if not ctx.has("mnist"):
        return data
    runs = []
    for s in m.seeds:
        for kind in ("vae", "hvae"):
            runs.append(ctx.cached(f"mnist-{kind}-s{ctx.seed + s}",
                                   partial(_train_eval, kind, m, ctx.seed + s, ctx)))
    data["mnist"] = runs
    version = _pythae_available() if m.pythae else None
    if version is not None:
        data["pythae_version"] = version
        data["pythae"] = ctx.cached(f"mnist-pythae-s{ctx.seed + m.seeds[0]}",
                                    partial(_pythae_run, m, ctx.seed + m.seeds[0], ctx))
    return data


# ----------------------------------------------------------------------------- judge
def _protocol(m: Mnist) -> str:
    net = "conv" if m.arch == "conv" else "MLP " + "-".join(
        str(v) for v in (784, *m.hidden, m.latent_dim))
    return f"{net}, {m.n_train:,} train, <= {m.epochs} epochs"


def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    g, m = cfg.gaussian, cfg.mnist
    rows = []
    notes = [
        "The paper's Gaussian-model figure and MNIST table were not recovered: those rows "
        "carry no reference; the targets are the issue's, the anchor is pythae measured in "
        "this run.",
        f"Gaussian model: {g.datasets} data set(s) per dimension, N = {g.n}, {g.iters} "
        f"iterations of RMSProp (step {g.lr:g}, decay 0.9), {g.n_mc} Monte Carlo samples; "
        "theta = (Delta, sigma); distances to the exact MLE of the marginal likelihood. The "
        "fixed tempering schedule is the paper's Gaussian-model code's.",
    ]
    by: dict[tuple[int, str], list[dict[str, Any]]] = {
        (r["d"], r["method"]): [] for r in data["gaussian"]}
    for r in data["gaussian"]:
        by[(r["d"], r["method"])].append(r)

    def mean(d: int, meth: str, key: str) -> float:
        rs = by[(d, meth)]
        return float(sum(x[key] for x in rs) / len(rs))

    for d in g.dims:
        if (d, "hvae_tempered") in by:
            rows.append(REFERENCES.row("g_sigma", mean(d, "hvae_tempered", "sigma_true"), d=d,
                                       k=g.n_leapfrog))
            if g.full_claims:
                rows.append(REFERENCES.row("g_delta_mle", mean(d, "hvae_tempered",
                                                               "delta_mle"), d=d,
                                           k=g.n_leapfrog))
        if (d, "hvae_untempered") in by:
            rows.append(REFERENCES.row("g_untempered", mean(d, "hvae_untempered",
                                                            "sigma_true"), d=d,
                                       k=g.n_leapfrog))
        if g.full_claims and (d, "hvae_tempered") in by:
            h = mean(d, "hvae_tempered", "delta_mle") + mean(d, "hvae_tempered", "sigma_mle")
            for other in ("planar", "vb"):
                if (d, other) in by:
                    o = mean(d, other, "delta_mle") + mean(d, other, "sigma_mle")
                    rows.append(REFERENCES.row("g_rank", h / o if o > 0 else math.inf, d=d,
                                               other=_LABEL[other], k=g.n_leapfrog))
        for meth in GAUSS_METHODS:
            if (d, meth) in by:
                rows.append(REFERENCES.row(
                    "g_paper_metric", mean(d, meth, "delta_true") + mean(d, meth,
                                                                         "sigma_true"),
                    d=d, method=_LABEL[meth]))
        first = next((rs[0] for (dd, _), rs in by.items() if dd == d), None)
        if first is not None:
            rows.append(REFERENCES.row("g_mle_metric", first["mle_delta_true"]
                                       + first["mle_sigma_true"], d=d))
            rows.append(REFERENCES.row("g_mle_sigma", first["mle_sigma_true"], d=d))
    if not g.full_claims:
        notes.append("Quick/smoke Gaussian runs are short: the Delta-MLE target and the "
                     "ranking are judged by the full profile only.")

    runs = data.get("mnist")
    if runs is None:
        return Judgement(rows, notes)
    proto = _protocol(m)
    vae = sorted((r for r in runs if r["kind"] == "vae"), key=lambda r: r["seed"])
    hv = sorted((r for r in runs if r["kind"] == "hvae"), key=lambda r: r["seed"])
    label = f"HVAE K={m.n_leapfrog} {m.tempering}"
    for name, rs in (("VAE", vae), (label, hv)):
        rows.append(REFERENCES.row("m_nll", estimate([r["nll"] for r in rs]), protocol=proto,
                                   model=name))
        rows.append(REFERENCES.row("m_bound", estimate([-r["elbo"] - r["nll"] for r in rs]),
                                   protocol=proto, model=name))
    if len(m.seeds) >= 2 and m.n_test >= 10_000:
        rows.append(REFERENCES.row(
            "m_gap", estimate([r["nll"] for r in vae], paired_with=[r["nll"] for r in hv]),
            protocol=proto, k=m.n_leapfrog, tempering=m.tempering, n=len(m.seeds)))
    else:
        notes.append("The 0.3-nat VAE-HVAE claim needs >= 2 seeds and the full test set: "
                     "judged by the full profile.")
    notes.append(
        f"MNIST protocol: {proto}; Adamax lr {m.lr:g} (eps 1e-7), batch 100, early stopping "
        f"with patience {m.patience} on the validation ELBO ({m.n_val} images, binarised "
        f"once); dynamic binarisation of training batches; test NLL on {m.n_test} test "
        f"images (binarised once) with {m.nll_samples} importance samples; seeds "
        f"{list(m.seeds)}. Epochs run: "
        + ", ".join(f"{r['kind']} s{r['seed']}: {r['epochs_run']} (best {r['best_epoch']})"
                    for r in runs) + ".")
    for r in hv:
        if "flow" in r:
            notes.append(f"HVAE seed {r['seed']}: learned mean step size "
                         f"{r['flow']['step_size_mean']:.3f}, beta_0 {r['flow']['beta0']:.3f}.")
    py = data.get("pythae")
    if m.pythae and py is None:
        rows.append(REFERENCES.row("m_anchor_missing", None))
    elif py is not None and "diverged" in py:
        ver = data.get("pythae_version")
        rows.append(REFERENCES.row("m_pythae_nll", hv[0]["nll"], ref=None, protocol=proto,
                                   k=m.n_leapfrog, version=ver))
        notes.append(f"pythae {ver}'s HVAE diverged in training: {py['diverged']}")
    elif py is not None:
        ver = data.get("pythae_version")
        ours = hv[0]
        if m.n_test >= 10_000:
            rows.append(REFERENCES.row("m_pythae_nll", ours["nll"], ref=py["nll"],
                                       protocol=proto, k=m.n_leapfrog, version=ver))
        else:
            notes.append(f"pythae {ver}'s HVAE, NLL by our estimator: {py['nll']:.2f} "
                         f"(ours {ours['nll']:.2f}); compared in the full profile.")
        if py["own_nll"] is not None:
            rows.append(REFERENCES.row("m_pythae_own", py["own_nll"], protocol=proto,
                                       images=py["images_own"], ours_same=py["nll_first"],
                                       version=ver))
        rows.append(REFERENCES.row("m_pythae_time", ours["epoch_seconds"] / py["epoch_seconds"],
                                   protocol=proto, k=m.n_leapfrog, ours_s=ours["epoch_seconds"],
                                   theirs_s=py["epoch_seconds"]))
        notes.append(
            f"pythae {ver}'s HVAE (scalar step size, learned; beta_0 learned) ends at step "
            f"{py['eps_lf']:.3f}, beta_0 {py['beta_zero']:.3f}. Its training forward pass "
            "moves z with the momentum before the half-step kick and discards the tempered "
            "momentum, takes grad U without create_graph (the ELBO's gradient ignores the "
            "flow's dependence on the decoder), and its get_nll evaluates the initial-momentum "
            "density at the final momentum scaled by sqrt(beta_0) and draws z_0 with "
            "exp(log_var / 2) where training used softplus; its own NLL is shown as reported.")
    return Judgement(rows, notes)


# ----------------------------------------------------------------------------- figure
def plot(data: dict[str, Any], fig: Any) -> None:
    ax1 = fig.add_subplot(1, 2, 1)
    gauss = data["gaussian"]
    dims = sorted({r["d"] for r in gauss})
    styles = {"hvae_tempered": "b-o", "hvae_untempered": "c--s", "planar": "r-^", "vb": "k-d"}
    for meth, st in styles.items():
        ys = []
        for d in dims:
            rs = [r for r in gauss if r["d"] == d and r["method"] == meth]
            ys.append(sum(r["delta_mle"] + r["sigma_mle"] for r in rs) / len(rs) if rs
                      else float("nan"))
        if any(y == y for y in ys):
            ax1.semilogy(dims, [max(y, 1e-12) for y in ys], st, label=_LABEL[meth])
    ax1.set(xlabel="dimension d", ylabel="||theta_hat - theta_MLE||^2",
            title="Gaussian model: distance to the MLE")
    if len(dims) > 1:
        ax1.set_xscale("log")
    ax1.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    runs = data.get("mnist") or []
    for r in runs:
        st = "k-" if r["kind"] == "vae" else "b-"
        ax2.plot(range(1, len(r["val_elbo"]) + 1), r["val_elbo"], st, alpha=0.7,
                 label=f"{r['kind']} s{r['seed']} (NLL {r['nll']:.1f})")
    if data.get("pythae"):
        p = data["pythae"]
        ax2.plot(range(1, len(p["val_elbo"]) + 1), p["val_elbo"], "r--",
                 label=f"pythae HVAE (NLL {p['nll']:.1f})")
    ax2.set(xlabel="epoch", ylabel="validation ELBO (nats)", title="MNIST")
    if runs:
        ax2.legend(fontsize=7)
    fig.tight_layout()



REPRODUCTION = Reproduction(
    name="hvae",
    title="Hamiltonian Variational Auto-Encoder",
    citation=CITATION,
    capability="hvae",
    profiles=PROFILES,
    references=REFERENCES,
    run=run,
    judge=judge,
    plot=plot,
    needs={"mnist": needs_mnist},
    uses_device=True,
    description="Gaussian model: tempered HVAE recovers the MLE, untempered fails; MNIST: "
                "HVAE vs VAE test NLL, pythae's HVAE side by side.",
)
