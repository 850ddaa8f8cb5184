"""Small convex problems and simulated data-parallel SGD for the sparsification studies.

Shared by the ``sparsification`` and ``topk_convergence`` reproductions:
:class:`LinearProblem` (l2-regularised logistic regression or l2-SVM with the squared hinge
loss), :func:`solve` (its optimum, by L-BFGS), :func:`run_sgd`, which runs P virtual workers
through :class:`neurips18.compress.Simulator` (or dense averaging) and records the
suboptimality against iterations and against bits communicated, and
:func:`train_mlp_simulated`, the same for an MNIST MLP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neurips18.compress import Simulator, topk_sparsify
from neurips18.repro._common import training as _training
from neurips18.repro._common.models import mlp
from neurips18.repro._common.training import evaluate, init_model

__all__ = ["LinearProblem", "run_sgd", "solve", "train_mlp_simulated"]


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
    (``compressor=None``). ``seed`` seeds the workers' minibatch draws and (unless
    ``compressor_kwargs`` sets it) the sparsifier's generators. Bits are summed over
    workers: ``bits`` uses the hybrid coding model, ``bytes`` the payload actually packed
    (dense: 32 bits per coordinate).

    The curve is recorded at iteration 0, every ``eval_every`` iterations, the last one, and
    at the powers of two below ``eval_every``.

    Returns ``{"iter": [...], "gap": [...], "bits": [...], "bytes": [...]}`` (plus
    ``"diverged_at"`` if the gradients became non-finite; the last gap is then ``inf``).
    """
    d = problem.dim
    sim = None
    if compressor is not None:
        compressor_kwargs.setdefault("warmup_steps", 0)
        compressor_kwargs.setdefault("seed", seed)
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
    acc_evals: int = 1,
    device: str = "cpu",
    **compressor_kwargs: Any,
) -> dict[str, Any]:
    """Data-parallel SGD of an MNIST MLP with P virtual workers (one bucket = all params).

    With ``xi_every > 0`` and ``compressor="topk"``, every ``xi_every`` steps it measures
    Alistarh et al.'s quantity ``||TopK(mean_p acc_p) - mean_p TopK(acc_p)|| / ||mean_p g_p||``
    (``acc_p`` = residual + gradient of worker p, the same K as each worker uses).
    The model lives on ``device``; the workers' gradients are exchanged on the CPU.
    ``seed`` gives the initial weights, the minibatch draws and (unless
    ``compressor_kwargs`` sets it) the sparsifier's generators: runs with the same seed
    share initialisation and data order. The model is evaluated every ``eval_every`` steps
    and after the last; ``acc_evals`` may not exceed the number of these evaluations.
    Returns the training-loss curve, the test accuracy at the last ``acc_evals``
    evaluations (``test_accs``; ``test_acc`` is the last, ``test_acc_tail`` their mean),
    bits (coding model) and bytes.
    """
    # more acc_evals than evaluations averaged fewer (0 averaged one), without a word
    last_evals = set(_training.last_evaluation_steps(steps, eval_every, acc_evals))
    model = _training.to_device(init_model(lambda: mlp(tuple(hidden)), seed), device)
    params = [p for p in model.parameters()]
    d = sum(p.numel() for p in params)
    sim = None
    if compressor is not None:
        compressor_kwargs.setdefault("warmup_steps", 0)
        compressor_kwargs.setdefault("seed", seed)
        sim = Simulator(workers, compressor, **compressor_kwargs)
    test_accs: list[float] = []
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
            loss = torch.nn.functional.cross_entropy(model(x_tr[idx].to(device)),
                                                     y_tr[idx].to(device))
            loss.backward()
            grads.append(torch.cat([p.grad.reshape(-1) for p in params]).cpu())  # type: ignore[union-attr]
            losses.append(float(loss.detach()))
        if sim is None:
            upd = torch.stack(grads).mean(0)
            bits += workers * d * 32
            nbytes += workers * d * 4
        else:
            if xi_every and compressor == "topk" and t % xi_every == 0:
                k = max(1, min(d, math.ceil(sim.states[0].density * d)))
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
        upd = upd.to(device)
        with torch.no_grad():
            off = 0
            for p in params:
                p.sub_(lr * upd[off : off + p.numel()].view_as(p))
                off += p.numel()
        if t % eval_every == 0 or t == steps:
            hist["iter"].append(t)
            hist["loss"].append(sum(losses) / len(losses))
        if t in last_evals:
            test_accs.append(evaluate(model, data["x_test"], data["y_test"]))
    hist["test_accs"] = test_accs
    hist["test_acc"] = test_accs[-1]
    hist["test_acc_tail"] = sum(test_accs) / len(test_accs)
    hist["bits"] = bits
    hist["bytes"] = nbytes
    hist["dense_bits"] = steps * workers * d * 32.0
    hist["d"] = d
    return hist
