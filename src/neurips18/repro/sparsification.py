"""Reproduction: Wangni et al., optimal unbiased gradient sparsification (NeurIPS 2018).

What is reproduced (capability :mod:`neurips18.compress`):

* convex experiments: l2-regularised logistic regression and l2-SVM (squared hinge, so the
  optimum is exact) trained by data-parallel SGD with P virtual workers
  (:class:`~neurips18.compress.Simulator`), comparing dense averaging, the optimal unbiased
  sparsifier and uniform random sampling **at the same expected density**; suboptimality
  against iterations and against bits communicated (hybrid coding model);
* the variance ``E||Q(g)||^2 / ||g||^2`` against density for optimal and uniform sampling, on
  real stochastic gradients, with a Monte-Carlo check of the closed form ``sum g_i^2/p_i``.

Departures from the paper: data sets are binary MNIST (0-4 vs 5-9) and a synthetic data set
with power-law feature scales (the paper's own data sets and hyper-parameters: not
recovered); the SVM uses the squared hinge; the CNN experiments are not repeated here (the
MNIST network runs in ``topk_convergence`` and the DDP benchmark). The paper's reported
numbers were not recovered, so rows against the paper carry no reference; the other rows
compare with closed forms or state the claim tested.
"""

from __future__ import annotations

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
)

CITATION = (
    "Wangni, Wang, Liu, Zhang. Gradient Sparsification for Communication-Efficient "
    "Distributed Optimization. NeurIPS 2018. arXiv:1710.09854"
)


@dataclass(frozen=True)
class Config(Profile):
    mnist_n: int
    synthetic_n: int
    synthetic_d: int
    workers: int
    batch: int
    steps: int
    eval_every: int
    density: float
    densities: tuple[float, ...]
    mc_draws: int
    losses: tuple[str, ...]
    solver_maxiter: int

    def check(self) -> None:
        if self.density not in self.densities:
            raise ValueError(f"density {self.density} must be one of densities "
                             f"{self.densities}")
        if not set(self.losses) <= {"logistic", "svm"}:
            raise ValueError(f"losses must be among 'logistic', 'svm', got {self.losses}")


PROFILES = {
    "smoke": Config(mnist_n=400, synthetic_n=300, synthetic_d=200, workers=4, batch=8,
                    steps=60, eval_every=20, density=0.05, densities=(0.01, 0.05, 0.2),
                    mc_draws=200, losses=("logistic",), solver_maxiter=100),
    "quick": Config(mnist_n=3000, synthetic_n=2000, synthetic_d=1000, workers=4, batch=8,
                    steps=600, eval_every=50, density=0.05,
                    densities=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), mc_draws=2000,
                    losses=("logistic", "svm"), solver_maxiter=500),
    "full": Config(mnist_n=60000, synthetic_n=10000, synthetic_d=5000, workers=4, batch=16,
                   steps=6000, eval_every=100, density=0.02,
                   densities=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5), mc_draws=10000,
                   losses=("logistic", "svm"), solver_maxiter=3000),
}
LR = {("mnist", "logistic"): 0.05, ("mnist", "svm"): 0.01,
      ("synthetic", "logistic"): 0.2, ("synthetic", "svm"): 0.05}

_NOT_RECOVERED = "Wangni et al. (coding-length savings): not recovered"
REFERENCES = References(
    Reference("mc_variance", "E||Q(g)||^2/||g||^2 at density {density} (Monte Carlo, "
              "{draws} draws)", MEASURED, source="closed form sum g_i^2/p_i / ||g||^2",
              tol=0.05, mode="rel"),
    Reference("variance_ratio", "variance ratio optimal/uniform at density {density}", 1.0,
              source="claim tested: optimal < uniform at equal density", mode="max"),
    Reference("final_ratio_uniform", "{key}: final suboptimality, optimal / uniform sampling "
              "(density {density})", 1.0,
              source="claim tested: optimal converges faster at equal density", mode="max"),
    Reference("equal_bits", "{key}: suboptimality at equal bits communicated ({bits:.3g}), "
              "optimal sparsified / dense", 1.0,
              source="claim tested (Wangni et al.): sparsified SGD converges faster against "
                     "bits communicated than dense SGD", mode="max"),
    Reference("equal_iterations", "{key}: final suboptimality at equal iterations, optimal "
              "sparsified / dense", None,
              source="informative: no iteration-parity claim recovered from the paper"),
    Reference("bits_saving", "{key}: bits to reach 1.5x the dense final gap, dense / optimal "
              "(x fewer)", None, source=_NOT_RECOVERED),
)


def _dataset(name: str, cfg: dict[str, Any], seed: int) -> tuple[Any, Any]:
    from neurips18.datasets.synthetic import make_skewed_sparse_classification
    from neurips18.repro._common import binary_mnist

    if name == "mnist":
        return binary_mnist(cfg.mnist_n, seed=seed)
    return make_skewed_sparse_classification(cfg.synthetic_n, cfg.synthetic_d, generator=seed)


def _convex_run(name: str, loss: str, cfg: Config, seed: int) -> dict[str, Any]:
    from neurips18.repro._common.sgd import LinearProblem, run_sgd, solve

    X, y = _dataset(name, cfg, seed)
    prob = LinearProblem(X, y, loss, 1e-4)
    _, f_star = solve(prob, maxiter=cfg.solver_maxiter)
    common = dict(f_star=f_star, workers=cfg.workers, batch=cfg.batch,
                  lr=LR[(name, loss)], steps=cfg.steps, seed=seed,
                  eval_every=cfg.eval_every)
    rho = cfg.density
    out = {"f_star": f_star, "density": rho, "d": prob.dim}
    out["dense"] = run_sgd(prob, **common)
    out["optimal"] = run_sgd(prob, compressor="unbiased", density=rho, method="greedy",
                             max_iter=2, sampling="optimal", **common)
    out["uniform"] = run_sgd(prob, compressor="unbiased", density=rho, sampling="uniform",
                             **common)
    return out


def _variance_curve(cfg: Config, seed: int) -> dict[str, Any]:
    import torch

    from neurips18.compress import optimal_probabilities, sparsification_variance
    from neurips18.compress import sparsify_unbiased as sparsify
    from neurips18.repro._common import binary_mnist
    from neurips18.repro._common.sgd import LinearProblem

    X, y = binary_mnist(cfg.mnist_n, seed=seed)
    prob = LinearProblem(X, y, "logistic", 1e-4)
    gen = torch.Generator().manual_seed(seed)
    # a stochastic gradient (batch 8) at a point half-way to the optimum
    w = torch.zeros(prob.dim)
    for _ in range(50):
        w = w - 0.05 * prob.grad(w, torch.randint(0, X.shape[0], (32,), generator=gen))
    g = prob.grad(w, torch.randint(0, X.shape[0], (cfg.batch,), generator=gen))
    g2 = float(g.double().pow(2).sum())
    rows = []
    for rho in cfg.densities:
        p = optimal_probabilities(g, rho, method="exact")
        rows.append({
            "density": rho,
            "optimal": sparsification_variance(g, p) / g2,
            "uniform": sparsification_variance(g, torch.full_like(g, rho)) / g2,
            "nnz_g": int((g != 0).sum()),
        })
    # Monte-Carlo check of the closed form at density 0.1
    rho = 0.1
    mc = 0.0
    for _ in range(cfg.mc_draws):
        q = sparsify(g, rho, gen, method="exact").values.double()
        mc += float(q.pow(2).sum())
    mc /= cfg.mc_draws * g2
    closed = sparsification_variance(g, optimal_probabilities(g, rho)) / g2
    return {"rows": rows, "mc_density": rho, "mc": mc, "closed": closed, "d": prob.dim}


def _gap_at_bits(hist: dict[str, list[float]], bits: float) -> float | None:
    """Suboptimality at the first record that has communicated at least ``bits``."""
    for gap, b in zip(hist["gap"], hist["bits"], strict=True):
        if b >= bits:
            return gap
    return None


def _bits_to_reach(hist: dict[str, list[float]], target: float) -> float | None:
    for gap, bits in zip(hist["gap"], hist["bits"], strict=True):
        if gap <= target:
            return bits
    return None


def run(ctx: RunContext) -> dict[str, Any]:
    cfg: Config = ctx.config
    var = ctx.cached("variance", lambda: _variance_curve(cfg, ctx.seed)) if ctx.has(
        "mnist") else None
    runs: dict[str, Any] = {}
    for name in ("mnist", "synthetic") if ctx.has("mnist") else ("synthetic",):
        for loss in cfg.losses:
            key = f"{name}-{loss}"
            runs[key] = ctx.cached(f"convex-{key}", partial(_convex_run, name, loss, cfg,
                                                            ctx.seed))
    return {"variance": var, "runs": runs, "density": cfg.density}


def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    var, runs = data["variance"], data["runs"]
    rows = []
    notes = [
        "The paper's numbers (Wangni et al., figures and tables) were not recovered; the "
        "tested claims are stated in the metric names and compared with closed forms or "
        "with each other.",
        "Optimal sampling uses the paper's greedy probabilities (2 passes); bits use the hybrid "
        "coding model (saturated: index + 32-bit value; sampled: index + sign bit; one shared "
        "float), uniform sampling pays index + 32-bit value per kept coordinate.",
        "The paper's claim is about communication, so optimal sparsification is compared with "
        "dense SGD at equal bits communicated. At equal iterations and equal constant step "
        "size a sparsified run ends on a higher noise floor: its gradient second moment is "
        "E||Q(g)||^2 = sum g_i^2/p_i, a multiple of ||g||^2 at low density (value below), so "
        "the iteration ratio is an informative row. The paper's own densities, step sizes "
        "and variance budgets were not recovered.",
    ]
    if var is not None:
        rows.append(REFERENCES.row("mc_variance", var["mc"], ref=var["closed"],
                                   density=var["mc_density"], draws=cfg.mc_draws))
    for row in var["rows"] if var is not None else []:
        if row["density"] == cfg.density:
            notes.append(
                f"At density {row['density']} the optimal sparsifier's second moment on the "
                f"MNIST gradient is E||Q(g)||^2 = {row['optimal']:.3g} ||g||^2 (uniform: "
                f"{row['uniform']:.3g} ||g||^2): the noise floor of constant-step SGD rises "
                "accordingly at equal iterations.")
            rows.append(REFERENCES.row("variance_ratio", row["optimal"] / row["uniform"],
                                       density=row["density"]))
    for key, r in runs.items():
        gd, go, gu = (r[m]["gap"][-1] for m in ("dense", "optimal", "uniform"))
        for m in ("dense", "optimal", "uniform"):
            if "diverged_at" in r[m]:
                notes.append(f"{key}: {m} sampling diverged (non-finite gradients) at "
                             f"iteration {int(r[m]['diverged_at'][0])}; its gap is inf.")
        rows.append(REFERENCES.row("final_ratio_uniform", go / gu, key=key,
                                   density=r["density"]))
        # equal bits: dense is read at its first record with at least as many bits
        # (conservative for us)
        b_final = r["optimal"]["bits"][-1]
        g_dense_b = _gap_at_bits(r["dense"], b_final)
        rows.append(REFERENCES.row("equal_bits", None if g_dense_b is None else go / g_dense_b,
                                   key=key, bits=b_final))
        rows.append(REFERENCES.row("equal_iterations", go / gd, key=key))
        target = 1.5 * gd
        b_opt = _bits_to_reach(r["optimal"], target)
        b_dense = _bits_to_reach(r["dense"], target)
        rows.append(REFERENCES.row(
            "bits_saving",
            None if (b_opt is None or b_dense is None) else b_dense / max(b_opt, 1.0), key=key))
    return Judgement(rows, notes)


def plot(data: dict[str, Any], fig: Any) -> None:
    runs = data["runs"]
    if data["variance"] is None:
        fig.text(0.5, 0.5, "MNIST absent: see the table", ha="center")
        return
    key = "mnist-logistic" if "mnist-logistic" in runs else next(iter(runs))
    r = runs[key]
    ax1, ax2, ax3 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    for m, style in (("dense", "k-"), ("optimal", "b-"), ("uniform", "r--")):
        h = r[m]
        ax1.semilogy(h["iter"], h["gap"], style, label=m)
        ax2.loglog(h["bits"][1:], h["gap"][1:], style, label=m)
    ax1.set(xlabel="iteration", ylabel="f(w) - f*", title=f"{key}, density {r['density']}")
    ax2.set(xlabel="bits communicated (all workers)", ylabel="f(w) - f*")
    ax1.legend()
    rows = data["variance"]["rows"]
    ax3.loglog([x["density"] for x in rows], [x["optimal"] for x in rows], "b-o", label="optimal")
    ax3.loglog([x["density"] for x in rows], [x["uniform"] for x in rows], "r--s", label="uniform")
    ax3.set(xlabel="density", ylabel="E||Q(g)||^2 / ||g||^2", title="variance vs density")
    ax3.legend()
    fig.tight_layout()


def _needs_mnist() -> None:
    from neurips18.datasets import load_mnist

    load_mnist("train", download=False)


REPRODUCTION = Reproduction(
    name="sparsification",
    title="Gradient Sparsification for Communication-Efficient Distributed Optimization",
    citation=CITATION,
    capability="compress",
    profiles=PROFILES,
    references=REFERENCES,
    run=run,
    judge=judge,
    plot=plot,
    needs={"mnist": _needs_mnist},
    description="Optimal unbiased sparsifier vs uniform sampling: convex convergence vs "
                "iterations and bits, variance vs density.",
)
