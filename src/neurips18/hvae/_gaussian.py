"""The paper's Gaussian model: one latent z ~ N(0, I_d) shared by N observations
x_i ~ N(z + Delta, diag(sigma^2)); Delta and sigma are learned by maximising an ELBO over z.

* :func:`make_gaussian_model` draws a data set as the paper does (Delta_j = r_j / 5 and
  sigma_j = 0.1 + 0.9 (2 r_j / (d - 1))^2 for r = -(d-1)/2, ..., (d-1)/2; sigma = 1 when
  d = 1);
* :func:`gaussian_mle` gives the exact maximum-likelihood (Delta, sigma) of the marginal
  likelihood (closed form);
* :func:`fit_gaussian_model` fits (Delta, sigma) with the HVAE flow, a planar normalizing
  flow or mean-field VB, with the settings of the paper's code by default (RMSProp with
  step 1e-3, 10 Monte Carlo samples per ELBO estimate, initial Delta = 0, log sigma = 3).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from neurips18._validation import (
    Interval,
    Options,
    as_numpy_generator,
    as_torch_generator,
    check,
    check_array,
)
from neurips18.hvae._flow import TEMPERINGS, HamiltonianFlow

METHODS = ("hvae", "planar", "vb")
_LOG2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class GaussianModelData:
    """A data set of the Gaussian model: ``x`` (n, d), the latent ``z`` drawn once, and the
    true ``delta`` and ``sigma``."""

    x: np.ndarray
    z: np.ndarray
    delta: np.ndarray
    sigma: np.ndarray


def make_gaussian_model(dim: int, n_samples: int = 10_000, *, generator: Any
                        ) -> GaussianModelData:
    """Draw z ~ N(0, I_d) once, then ``n_samples`` points x_i ~ N(z + Delta, diag sigma^2)
    with the paper's Delta and sigma."""
    d = check("dim", dim, Interval(int, 1, None))
    n = check("n_samples", n_samples, Interval(int, 2, None))
    rng = as_numpy_generator(generator)
    r = np.arange(d, dtype=np.float64) - (d - 1) / 2
    delta = r / 5
    sigma = np.ones(1) if d == 1 else 0.1 + 0.9 * (2 * r / (d - 1)) ** 2
    z = rng.standard_normal(d)
    x = z + delta + sigma * rng.standard_normal((n, d))
    return GaussianModelData(x=x, z=z, delta=delta, sigma=sigma)


def gaussian_mle(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """The exact MLE of (Delta, sigma) from the marginal likelihood
    p(x_1..N) = int prod_i N(x_i; z + Delta, diag sigma^2) N(z; 0, I) dz.

    Per coordinate the data vector is N(Delta 1, sigma^2 I + 1 1^T); its MLE is Delta = mean
    and sigma^2 the positive root of N s^2 + (N(N-1) - S) s - S N = 0, S the sum of squared
    deviations from the mean."""
    X = check_array("x", x, ndim=2, min_rows=2, min_cols=1)
    n = X.shape[0]
    mean = X.mean(0)
    S = ((X - mean) ** 2).sum(0)
    B = n * (n - 1) - S
    # sqrt(B^2 + 4 n^2 S) without squaring B (which overflows for a spread-out column)
    root = np.hypot(B, 2 * n * np.sqrt(S))
    # each branch of the quadratic formula adds two numbers of the same sign: the usual
    # -B + root cancels when B > 0, the rationalised 2 S n / (B + root) when B < 0 (a
    # column with variance above about n lost digits there, and was inf from 1e10 up)
    pos = B >= 0
    s2 = np.empty_like(S)
    s2[pos] = 2 * S[pos] * n / (B[pos] + root[pos])
    s2[~pos] = (root[~pos] - B[~pos]) / (2 * n)
    return mean, np.sqrt(s2)


class _Likelihood:
    """log p(x_1..N | z) of the Gaussian model from its sufficient statistics, with its
    closed-form gradient (the flow uses it in place of autograd)."""

    def __init__(self, n: int, mean: torch.Tensor, ss: torch.Tensor, delta: torch.Tensor,
                 log_sigma: torch.Tensor) -> None:
        self.n, self.ss = n, ss
        self.centre = mean - delta  # the posterior's centre under the model: xbar - Delta
        self.prec = torch.exp(-2 * log_sigma)
        self.n_prec = n * self.prec
        self.const = (-n * log_sigma.sum() - 0.5 * n * mean.numel() * _LOG2PI
                      - 0.5 * (ss * self.prec).sum())

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        r = self.centre - z
        return self.const - 0.5 * (r * r * self.n_prec).sum(-1)

    def value_and_grad(self, z: torch.Tensor, *, with_value: bool):
        r = self.centre - z
        g = r * self.n_prec
        value = self.const - 0.5 * (r * g).sum(-1) if with_value else None
        return value, g


class _Planar(nn.Module):
    """Planar flow layers z <- z + u_hat tanh(w^T z + b) (Rezende and Mohamed, 2015), with
    u_hat = u + (m(w^T u) - w^T u) w / |w|^2, m(a) = -1 + softplus(a), so each layer is
    invertible; the log-determinant is log |1 + u_hat^T psi|, psi = tanh'(.) w."""

    def __init__(self, d: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        u, w = torch.empty(k, d, dtype=torch.float64), torch.empty(k, d, dtype=torch.float64)
        nn.init.trunc_normal_(u, std=0.1, a=-0.2, b=0.2, generator=generator)
        nn.init.trunc_normal_(w, std=0.1, a=-0.2, b=0.2, generator=generator)
        self.u, self.w = nn.Parameter(u), nn.Parameter(w)
        self.b = nn.Parameter(torch.full((k,), 0.1, dtype=torch.float64))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, w = self.u, self.w
        wu = (w * u).sum(1, keepdim=True)
        u_hat = u + (nn.functional.softplus(wu) - 1 - wu) * w / (w * w).sum(1, keepdim=True)
        w_u_hat = (w * u_hat).sum(1)
        ts = []
        for wk, bk, uk in zip(w.unbind(0), self.b.unbind(0), u_hat.unbind(0), strict=True):
            t = torch.tanh(torch.addmv(bk, z, wk))
            z = torch.addr(z, t, uk)
            ts.append(t)
        t = torch.stack(ts)  # (K, n)
        logdet = torch.log(torch.abs(1 + (1 - t * t) * w_u_hat[:, None])).sum(0)
        return z, logdet


@dataclass
class GaussianFit:
    """The fitted ``delta`` and ``sigma`` and how they were obtained. ``elbo`` holds the
    ELBO estimate every ``record_every`` iterations (starting at iteration 0); ``flow`` the
    HVAE's final step sizes (mean) and beta_0."""

    method: str
    delta: np.ndarray
    sigma: np.ndarray
    elbo: list[float]
    seconds: float
    flow: dict[str, float] = field(default_factory=dict)


def fit_gaussian_model(
    x: Any,
    method: str = "hvae",
    *,
    n_leapfrog: int = 10,
    tempering: str = "fixed",
    n_flow: int = 30,
    n_iter: int = 30_000,
    n_mc: int = 10,
    lr: float = 1e-3,
    record_every: int = 100,
    generator: Any = 0,
    progress: bool = False,
) -> GaussianFit:
    """Fit (Delta, sigma) of the Gaussian model to ``x`` (n, d) by maximising an ELBO.

    ``method``: ``"hvae"`` (the Hamiltonian flow from z_0 ~ N(0, I) with ``n_leapfrog``
    steps and ``tempering`` "none"/"fixed"/"free"; initial step size 0.005, at most 0.5,
    initial 1/sqrt(beta_0) = 5, as in the paper's code), ``"planar"`` (``n_flow`` planar
    layers on z_0 ~ N(0, I)) or ``"vb"`` (mean-field q(z) = N(mu, diag s^2), its ELBO in
    closed form). ``n_mc`` Monte Carlo samples per ELBO estimate; RMSProp with step ``lr``
    and decay 0.9 for ``n_iter`` iterations. Computations in float64.
    """
    X = check_array("x", x, ndim=2, min_rows=2, min_cols=1)
    method = check("method", method, Options(set(METHODS)))
    n_iter = check("n_iter", n_iter, Interval(int, 1, None))
    n_mc = check("n_mc", n_mc, Interval(int, 1, None))
    lr = check("lr", lr, Interval(float, 0, None, closed="neither"))
    n_flow = check("n_flow", n_flow, Interval(int, 1, None))
    # checked whatever the method (a typo would otherwise pass unnoticed with "vb"/"planar")
    n_leapfrog = check("n_leapfrog", n_leapfrog, Interval(int, 1, None))
    tempering = check("tempering", tempering, Options(set(TEMPERINGS)))
    progress = check("progress", progress, Options({True, False}))
    record_every = check("record_every", record_every, Interval(int, 1, None))
    gen = as_torch_generator(generator)
    n, d = X.shape
    mean = torch.from_numpy(X.mean(0))
    ss = torch.from_numpy(((X - X.mean(0)) ** 2).sum(0))
    delta = nn.Parameter(torch.zeros(d, dtype=torch.float64))
    log_sigma = nn.Parameter(torch.full((d,), 3.0, dtype=torch.float64))
    params: list[nn.Parameter] = [delta, log_sigma]
    flow: HamiltonianFlow | None = None
    planar: _Planar | None = None
    if method == "hvae":
        flow = HamiltonianFlow(d, n_leapfrog, tempering=tempering, step_size_init=0.005,
                               max_step_size=0.5,
                               beta0_init=None if tempering == "none" else 1 / 25,
                               grad_clip=None).double()
        params += list(flow.parameters())
    elif method == "planar":
        planar = _Planar(d, n_flow, gen)
        params += list(planar.parameters())
    else:
        mu_z = nn.Parameter(torch.zeros(d, dtype=torch.float64))
        log_s = nn.Parameter(torch.ones(d, dtype=torch.float64))
        params += [mu_z, log_s]
    opt = torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10)

    def elbo() -> torch.Tensor:
        like = _Likelihood(n, mean, ss, delta, log_sigma)
        if method == "vb":
            r = mean - delta - mu_z
            s2 = torch.exp(2 * log_s)
            e_ll = like.const - 0.5 * ((r * r + s2) * like.n_prec).sum()
            kl = 0.5 * (mu_z * mu_z + s2 - 1 - 2 * log_s).sum()
            return e_ll - kl
        z0 = torch.randn(n_mc, d, generator=gen, dtype=torch.float64)
        if method == "hvae":
            assert flow is not None
            gamma = torch.randn(n_mc, d, generator=gen, dtype=torch.float64)
            out = flow(z0, gamma, like)
            # log p(x, z_K) + log N(rho_K) - log N(z_0) - log N(gamma), base terms by their
            # expectation d (as in the paper's estimator)
            return (out.log_likelihood - 0.5 * (out.z ** 2).sum(1)
                    - 0.5 * (out.rho ** 2).sum(1) + d).mean()
        assert planar is not None
        zk, logdet = planar(z0)
        return (like(zk) - 0.5 * (zk ** 2).sum(1) + 0.5 * (z0 ** 2).sum(1) + logdet).mean()

    from tqdm.auto import tqdm

    trace: list[float] = []
    t0 = time.perf_counter()
    for it in tqdm(range(n_iter), desc=f"gaussian {method} d={d}", leave=False,
                   disable=not progress):
        opt.zero_grad(set_to_none=True)
        value = elbo()
        if it % record_every == 0:
            trace.append(float(value.detach()))
        if not bool(torch.isfinite(value)):
            raise FloatingPointError(f"non-finite ELBO at iteration {it} ({method}, d = {d})")
        (-value).backward()
        opt.step()
    with torch.no_grad():
        trace.append(float(elbo()))
    info: dict[str, float] = {}
    if flow is not None:
        with torch.no_grad():
            info = {"step_size_mean": float(flow.step_sizes.mean()),
                    "beta0": float(flow.beta0)}
    return GaussianFit(method=method, delta=delta.detach().numpy().copy(),
                       sigma=torch.exp(log_sigma).detach().numpy().copy(), elbo=trace,
                       seconds=time.perf_counter() - t0, flow=info)

