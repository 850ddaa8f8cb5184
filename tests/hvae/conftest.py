"""User-style models for the hvae tests: a linear-Gaussian decoder and a fixed encoder,
written only against the documented contract (not subclasses of the library's models)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn


class LinearGaussianDecoder(nn.Module):
    """p(x | z) = N(x; W z + b, s^2 I): ``log_prob(x, z)`` summed over the data dims."""

    def __init__(self, W: np.ndarray, b: np.ndarray, s: float) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.as_tensor(W, dtype=torch.float64))
        self.b = nn.Parameter(torch.as_tensor(b, dtype=torch.float64))
        self.s = s

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r = x - z @ self.W.T - self.b
        D = x.shape[1]
        return -0.5 * (r * r).sum(1) / self.s ** 2 - D * math.log(self.s) - 0.5 * D * math.log(
            2 * math.pi)


class FixedEncoder(nn.Module):
    """q(z | x) = N(mu, diag sigma^2) whatever x is."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.as_tensor(mu, dtype=torch.float64))
        self.log_sigma = nn.Parameter(torch.as_tensor(np.log(sigma), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        return self.mu.expand(n, -1), torch.exp(self.log_sigma).expand(n, -1)


class LinearGaussianProblem:
    """A small linear-Gaussian model with one observation x and its exact evidence."""

    def __init__(self, l: int = 3, D: int = 5, s: float = 0.7, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.l, self.D, self.s = l, D, s
        self.W = rng.standard_normal((D, l)) * 0.8
        self.b = rng.standard_normal(D) * 0.3
        z = rng.standard_normal(l)
        self.x = self.W @ z + self.b + s * rng.standard_normal(D)
        # exact posterior N(m, P^-1), P = I + W^T W / s^2
        P = np.eye(l) + self.W.T @ self.W / s ** 2
        self.post_cov = np.linalg.inv(P)
        self.post_mean = self.post_cov @ self.W.T @ (self.x - self.b) / s ** 2

    def log_evidence(self) -> float:
        C = self.W @ self.W.T + self.s ** 2 * np.eye(self.D)
        r = self.x - self.b
        _, logdet = np.linalg.slogdet(C)
        return float(-0.5 * (r @ np.linalg.solve(C, r) + logdet + self.D * math.log(2 * math.pi)))

    def decoder(self, s: float | None = None) -> LinearGaussianDecoder:
        return LinearGaussianDecoder(self.W, self.b, self.s if s is None else s)

    @staticmethod
    def encoder(mu, sigma) -> FixedEncoder:
        return FixedEncoder(np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float))

    def x_batch(self, n: int) -> torch.Tensor:
        return torch.as_tensor(self.x, dtype=torch.float64).expand(n, -1).contiguous()


@pytest.fixture
def lg_problem() -> LinearGaussianProblem:
    return LinearGaussianProblem()
