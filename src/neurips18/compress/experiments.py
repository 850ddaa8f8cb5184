"""Small convex problems and a simulated data-parallel SGD loop for sparsification studies.

Used by the reproductions (``neurips18 reproduce sparsification`` / ``topk_convergence``) and
usable on their own: :class:`LinearProblem` (l2-regularised logistic regression or l2-SVM with
the squared hinge loss), :func:`solve` (its optimum, by L-BFGS), and :func:`run_sgd`, which
runs P virtual workers through the :class:`~neurips18.compress.Simulator` (or dense averaging)
and records the suboptimality against iterations and against bits communicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .simulator import Simulator

__all__ = [
    "LinearProblem",
    "accuracy",
    "binary_mnist",
    "mlp",
    "mnist_tensors",
    "run_sgd",
    "skewed_synthetic",
    "solve",
    "train_mlp_simulated",
]


@dataclass(frozen=True, eq=False)
class LinearProblem:
    """``f(w) = mean_i loss(y_i x_i.w) + reg/2 ||w||^2`` with labels ``y`` in {-1, +1}.

    ``loss="logistic"``: ``log(1 + exp(-m))``; ``loss="svm"``: ``max(0, 1 - m)^2`` (the smooth
    l2-SVM, so that the optimum is found exactly by L-BFGS).
    """

    X: torch.Tensor
    y: torch.Tensor
    loss: str = "logistic"
    reg: float = 1e-4

    def __post_init__(self) -> None:
        if self.loss not in ("logistic", "svm"):
            raise ValueError(f"loss must be 'logistic' or 'svm', got {self.loss!r}")
        if self.X.dim() != 2 or self.y.shape != (self.X.shape[0],):
            raise ValueError(f"X must be [n, d] and y [n], got {tuple(self.X.shape)}, "
                             f"{tuple(self.y.shape)}")
        if not self.reg >= 0:
            raise ValueError(f"reg must be >= 0, got {self.reg!r}")

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    def value(self, w: torch.Tensor) -> float:
        X, y = self.X.double(), self.y.double()
        m = y * (X @ w.double())
        if self.loss == "logistic":
            data = torch.nn.functional.softplus(-m).mean()
        else:
            data = torch.clamp(1 - m, min=0).pow(2).mean()
        return float(data + 0.5 * self.reg * w.double().pow(2).sum())

    def grad(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        X = self.X if idx is None else self.X[idx]
        y = self.y if idx is None else self.y[idx]
        m = y * (X @ w)
        if self.loss == "logistic":
            r = -y * torch.sigmoid(-m)
        else:
            r = -2.0 * y * torch.clamp(1 - m, min=0)
        return X.T @ r / X.shape[0] + self.reg * w


def solve(problem: LinearProblem, maxiter: int = 2000) -> tuple[torch.Tensor, float]:
    """The minimiser and minimum of ``problem`` (float64 L-BFGS, gradient tolerance 1e-9)."""
    from scipy.optimize import minimize

    P64 = LinearProblem(problem.X.double(), problem.y.double(), problem.loss, problem.reg)

    def fg(w: np.ndarray) -> tuple[float, np.ndarray]:
        wt = torch.from_numpy(w)
        return P64.value(wt), P64.grad(wt).numpy()

    res = minimize(fg, np.zeros(problem.dim), jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "gtol": 1e-9, "ftol": 1e-14})
    w = torch.from_numpy(res.x)
    return w, P64.value(w)


def binary_mnist(n: int | None = None, seed: int = 0, data_dir: Any = None) -> tuple[
    torch.Tensor, torch.Tensor
]:
    """MNIST digits 0-4 (y=-1) vs 5-9 (y=+1), pixels in [0, 1] plus a bias feature."""
    from neurips18.datasets import load_mnist

    images, labels = load_mnist("train", data_dir=data_dir)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))[: n or len(labels)]
    X = torch.from_numpy(images[order].reshape(len(order), -1).astype(np.float32) / 255.0)
    X = torch.cat([X, torch.ones(len(order), 1)], dim=1)
    y = torch.from_numpy(np.where(labels[order] >= 5, 1.0, -1.0).astype(np.float32))
    return X, y


def skewed_synthetic(
    n: int, d: int, seed: int = 0, density: float = 0.1, decay: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse features whose column scales decay as ``j^-decay``: skewed gradient magnitudes.

    Labels come from a random linear model with 10 % label noise.
    """
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, d, generator=g) < density
    scales = torch.arange(1, d + 1, dtype=torch.float32).pow(-decay)
    X = torch.randn(n, d, generator=g) * mask * scales * (d**decay) ** 0.5 / d**0.25
    w_true = torch.randn(d, generator=g)
    y = torch.sign(X @ w_true + 1e-12)
    flip = torch.rand(n, generator=g) < 0.1
    y[flip] = -y[flip]
    return X, y


def run_sgd(
    problem: LinearProblem,
    *,
    f_star: float,
    workers: int,
    batch: int,
    lr: float,
    steps: int,
    compressor: str | None = None,
    seed: int = 0,
    eval_every: int = 10,
    **compressor_kwargs: Any,
) -> dict[str, list[float]]:
    """Data-parallel SGD with P virtual workers; returns the suboptimality curve.

    Each step every worker draws ``batch`` examples (with its own generator), computes its
    stochastic gradient, and the workers' gradients are combined by a :class:`Simulator`
    (``compressor`` "topk" or "unbiased" with ``compressor_kwargs``) or averaged densely
    (``compressor=None``). Bits are summed over workers: ``bits`` uses the hybrid coding
    model, ``bytes`` the payload actually packed (dense: 32 bits per coordinate).

    The curve is recorded at iteration 0, every ``eval_every`` iterations, the last one, and
    at the powers of two below ``eval_every``.

    Returns ``{"iter": [...], "gap": [...], "bits": [...], "bytes": [...]}`` (plus
    ``"diverged_at"`` if the gradients became non-finite; the last gap is then ``inf``).
    """
    d = problem.dim
    sim = None
    if compressor is not None:
        compressor_kwargs.setdefault("warmup_steps", 0)
        sim = Simulator(workers, compressor, **compressor_kwargs)
    gens = [torch.Generator().manual_seed(seed * 7919 + r) for r in range(workers)]
    n = problem.X.shape[0]
    w = torch.zeros(d)
    hist: dict[str, list[float]] = {"iter": [], "gap": [], "bits": [], "bytes": []}
    bits = 0.0
    nbytes = 0.0

    def record(t: int) -> None:
        gap = problem.value(w) - f_star
        hist["iter"].append(t)
        hist["gap"].append(gap if np.isfinite(gap) else float("inf"))
        hist["bits"].append(bits)
        hist["bytes"].append(nbytes)

    record(0)
    for t in range(1, steps + 1):
        grads = [problem.grad(w, torch.randint(0, n, (batch,), generator=gr)) for gr in gens]
        if sim is None:
            upd = torch.stack(grads).mean(0)
            bits += workers * d * 32
            nbytes += workers * d * 4
        else:
            before = sim.bits()
            try:
                upd = sim.step(grads)
            except FloatingPointError:  # the iterate diverged: gradients overflowed
                hist["diverged_at"] = [float(t)]
                record(t)
                hist["gap"][-1] = float("inf")
                break
            after = sim.bits()
            bits += after["bits_coded"] - before["bits_coded"]
            nbytes += after["bytes_sent"] - before["bytes_sent"]
        w = w - lr * upd
        if not bool(torch.isfinite(w).all()):
            hist["diverged_at"] = [float(t)]
            record(t)
            hist["gap"][-1] = float("inf")
            break
        if t % eval_every == 0 or t == steps or (t < eval_every and t & (t - 1) == 0):
            record(t)  # also at t = 1, 2, 4, ... so early, cheap-in-bits points are resolved
    return hist


def mnist_tensors(data_dir: Any = None) -> dict[str, torch.Tensor]:
    """MNIST as float tensors in [0, 1], flattened: train/test images and labels."""
    from neurips18.datasets import load_mnist

    out = {}
    for split in ("train", "test"):
        images, labels = load_mnist(split, data_dir=data_dir)
        out[f"x_{split}"] = torch.from_numpy(images.reshape(len(labels), -1)).float() / 255.0
        out[f"y_{split}"] = torch.from_numpy(labels)
    return out


def mlp(hidden: tuple[int, ...], seed: int = 0) -> torch.nn.Module:
    """A ReLU MLP 784 -> hidden... -> 10 with a fixed initialisation seed."""
    torch.manual_seed(seed)  # nn.Linear initialises from the global generator
    layers: list[torch.nn.Module] = []
    width = 784
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean()) * 100.0


def train_mlp_simulated(
    data: dict[str, torch.Tensor],
    *,
    hidden: tuple[int, ...],
    workers: int,
    batch: int,
    lr: float,
    steps: int,
    compressor: str | None = None,
    seed: int = 0,
    eval_every: int = 50,
    xi_every: int = 0,
    **compressor_kwargs: Any,
) -> dict[str, Any]:
    """Data-parallel SGD of an MNIST MLP with P virtual workers (one bucket = all params).

    With ``xi_every > 0`` and ``compressor="topk"``, every ``xi_every`` steps it measures
    Alistarh et al.'s quantity ``||TopK(mean_p acc_p) - mean_p TopK(acc_p)|| / ||mean_p g_p||``
    (``acc_p`` = residual + gradient of worker p, the same K as each worker uses).
    Returns the training-loss curve, final test accuracy, bits (coding model) and bytes.
    """
    from ._checks import k_for_density
    from .topk import topk_sparsify

    model = mlp(hidden, seed)
    params = [p for p in model.parameters()]
    d = sum(p.numel() for p in params)
    sim = None
    if compressor is not None:
        compressor_kwargs.setdefault("warmup_steps", 0)
        sim = Simulator(workers, compressor, **compressor_kwargs)
    gens = [torch.Generator().manual_seed(seed * 7919 + r) for r in range(workers)]
    x_tr, y_tr = data["x_train"], data["y_train"]
    n = x_tr.shape[0]
    hist: dict[str, Any] = {"iter": [], "loss": [], "xi": [], "xi_iter": []}
    bits = 0.0
    nbytes = 0.0
    for t in range(1, steps + 1):
        grads, losses = [], []
        for gr in gens:
            idx = torch.randint(0, n, (batch,), generator=gr)
            model.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            grads.append(torch.cat([p.grad.reshape(-1) for p in params]))  # type: ignore[union-attr]
            losses.append(float(loss.detach()))
        if sim is None:
            upd = torch.stack(grads).mean(0)
            bits += workers * d * 32
            nbytes += workers * d * 4
        else:
            if xi_every and compressor == "topk" and t % xi_every == 0:
                k = k_for_density(sim.states[0].density, d)
                accs = [g + st.memory[0] if 0 in st.memory else g.clone()
                        for g, st in zip(grads, sim.states, strict=True)]
                mean_acc = torch.stack(accs).mean(0)
                lhs = topk_sparsify(mean_acc, k).to_dense()
                rhs = torch.stack([topk_sparsify(a, k).to_dense() for a in accs]).mean(0)
                gnorm = float(torch.stack(grads).mean(0).norm())
                hist["xi"].append(float((lhs - rhs).norm()) / max(gnorm, 1e-30))
                hist["xi_iter"].append(t)
            before = sim.bits()
            upd = sim.step(grads)
            after = sim.bits()
            bits += after["bits_coded"] - before["bits_coded"]
            nbytes += after["bytes_sent"] - before["bytes_sent"]
        with torch.no_grad():
            off = 0
            for p in params:
                p.sub_(lr * upd[off : off + p.numel()].view_as(p))
                off += p.numel()
        if t % eval_every == 0 or t == steps:
            hist["iter"].append(t)
            hist["loss"].append(sum(losses) / len(losses))
    hist["test_acc"] = accuracy(model, data["x_test"], data["y_test"])
    hist["bits"] = bits
    hist["bytes"] = nbytes
    hist["dense_bits"] = steps * workers * d * 32.0
    hist["d"] = d
    return hist
