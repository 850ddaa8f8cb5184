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
with power-law feature scales (the paper's own data sets and hyper-parameters could not be
recovered with the search tools); the SVM uses the squared hinge; the CNN experiments are not
repeated here (the MNIST network runs in ``topk_convergence`` and the DDP benchmark).
The paper's reported numbers could not be recovered, so rows against the paper carry
``paper=None``; the other rows compare with closed forms or state the claim tested.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from neurips18.repro.core import Outcome, Reproduction, RunContext, compare

CITATION = (
    "Wangni, Wang, Liu, Zhang. Gradient Sparsification for Communication-Efficient "
    "Distributed Optimization. NeurIPS 2018. arXiv:1710.09854"
)

QUICK = {
    "mnist_n": 3000,
    "synthetic_n": 2000,
    "synthetic_d": 1000,
    "workers": 4,
    "batch": 8,
    "steps": 600,
    "eval_every": 50,
    "density": 0.05,
    "densities": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
    "mc_draws": 2000,
    "losses": ["logistic", "svm"],
    "solver_maxiter": 500,
}
FULL = {
    "mnist_n": 60000,
    "synthetic_n": 10000,
    "synthetic_d": 5000,
    "workers": 4,
    "batch": 16,
    "steps": 6000,
    "eval_every": 100,
    "density": 0.02,
    "densities": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
    "mc_draws": 10000,
    "losses": ["logistic", "svm"],
    "solver_maxiter": 3000,
}
LR = {("mnist", "logistic"): 0.05, ("mnist", "svm"): 0.01,
      ("synthetic", "logistic"): 0.2, ("synthetic", "svm"): 0.05}


def _dataset(name: str, cfg: dict[str, Any], seed: int) -> tuple[Any, Any]:
    from neurips18.compress.experiments import binary_mnist, skewed_synthetic

    if name == "mnist":
        return binary_mnist(cfg["mnist_n"], seed=seed)
    return skewed_synthetic(cfg["synthetic_n"], cfg["synthetic_d"], seed=seed)


def _convex_run(name: str, loss: str, cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    import torch

    from neurips18.compress.experiments import LinearProblem, run_sgd, solve

    torch.set_num_threads(1)
    X, y = _dataset(name, cfg, seed)
    prob = LinearProblem(X, y, loss, 1e-4)
    _, f_star = solve(prob, maxiter=cfg["solver_maxiter"])
    common = dict(f_star=f_star, workers=cfg["workers"], batch=cfg["batch"],
                  lr=LR[(name, loss)], steps=cfg["steps"], seed=seed,
                  eval_every=cfg["eval_every"])
    rho = cfg["density"]
    out = {"f_star": f_star, "density": rho, "d": prob.dim}
    out["dense"] = run_sgd(prob, **common)
    out["optimal"] = run_sgd(prob, compressor="unbiased", density=rho, method="greedy",
                             max_iter=2, sampling="optimal", **common)
    out["uniform"] = run_sgd(prob, compressor="unbiased", density=rho, sampling="uniform",
                             **common)
    return out


def _variance_curve(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    import torch

    from neurips18.compress import optimal_probabilities, sparsification_variance
    from neurips18.compress import sparsify_unbiased as sparsify
    from neurips18.compress.experiments import LinearProblem, binary_mnist

    torch.set_num_threads(1)
    X, y = binary_mnist(cfg["mnist_n"], seed=seed)
    prob = LinearProblem(X, y, "logistic", 1e-4)
    gen = torch.Generator().manual_seed(seed)
    # a stochastic gradient (batch 8) at a point half-way to the optimum
    w = torch.zeros(prob.dim)
    for _ in range(50):
        w = w - 0.05 * prob.grad(w, torch.randint(0, X.shape[0], (32,), generator=gen))
    g = prob.grad(w, torch.randint(0, X.shape[0], (cfg["batch"],), generator=gen))
    g2 = float(g.double().pow(2).sum())
    rows = []
    for rho in cfg["densities"]:
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
    for _ in range(cfg["mc_draws"]):
        q = sparsify(g, rho, gen, method="exact").values.double()
        mc += float(q.pow(2).sum())
    mc /= cfg["mc_draws"] * g2
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


def run(ctx: RunContext) -> Outcome:
    cfg = ctx.config
    comps = []
    notes = [
        "Paper numbers (Wangni et al. Figs. 1-4 and tables) could not be recovered with the "
        "search tools; rows against the paper are 'no-reference' and the tested claims are "
        "stated in the metric names.",
        "Optimal sampling uses the paper's greedy probabilities (2 passes); bits use the hybrid "
        "coding model (saturated: index + 32-bit value; sampled: index + sign bit; one shared "
        "float), uniform sampling pays index + 32-bit value per kept coordinate.",
        "Session 2 replaced the rows 'final suboptimality, optimal sparsified / dense <= 1.5' "
        "(our own target, not a claim of the paper: it failed on MNIST, 1.77x logistic and "
        "5.5x SVM at density 0.02) by the paper's claim, convergence against bits "
        "communicated (optimal vs dense at equal bits). At equal iterations and equal "
        "constant step size a sparsified run must end on a higher noise floor: its gradient "
        "variance is E||Q(g)||^2 = sum g_i^2/p_i, a multiple of ||g||^2 at low density (value "
        "below), so the iteration ratio is kept as an "
        "informative row. The paper's own densities, step sizes and variance budgets could "
        "not be recovered with the search tools.",
    ]
    var = ctx.cached("variance", lambda: _variance_curve(cfg, ctx.seed))
    comps.append(compare(
        f"E||Q(g)||^2/||g||^2 at density {var['mc_density']} (Monte Carlo, "
        f"{cfg['mc_draws']} draws)", var["mc"], var["closed"],
        source="closed form sum g_i^2/p_i / ||g||^2", tol=0.05, mode="rel"))
    for row in var["rows"]:
        if row["density"] == cfg["density"]:
            notes.append(
                f"At density {row['density']} the optimal sparsifier's second moment on the "
                f"MNIST gradient is E||Q(g)||^2 = {row['optimal']:.3g} ||g||^2 (uniform: "
                f"{row['uniform']:.3g} ||g||^2): the noise floor of constant-step SGD rises "
                "accordingly at equal iterations.")
            comps.append(compare(
                f"variance ratio optimal/uniform at density {row['density']}",
                row["optimal"] / row["uniform"], 1.0,
                source="claim tested: optimal < uniform at equal density", tol=0.0, mode="max"))
    runs: dict[str, Any] = {}
    for name in ("mnist", "synthetic"):
        for loss in cfg["losses"]:
            key = f"{name}-{loss}"
            runs[key] = ctx.cached(f"convex-{key}", partial(_convex_run, name, loss, cfg,
                                                            ctx.seed))
            r = runs[key]
            gd, go, gu = (r[m]["gap"][-1] for m in ("dense", "optimal", "uniform"))
            for m in ("dense", "optimal", "uniform"):
                if "diverged_at" in r[m]:
                    notes.append(f"{key}: {m} sampling diverged (non-finite gradients) at "
                                 f"iteration {int(r[m]['diverged_at'][0])}; its gap is inf.")
            comps.append(compare(
                f"{key}: final suboptimality, optimal / uniform sampling (density {r['density']})",
                go / gu, 1.0, source="claim tested: optimal converges faster at equal density",
                tol=0.0, mode="max"))
            # the paper's claim is about communication: convergence against bits (its
            # figures plot both axes); compare at equal bits communicated, dense being
            # read at its first record with at least as many bits (conservative for us)
            b_final = r["optimal"]["bits"][-1]
            g_dense_b = _gap_at_bits(r["dense"], b_final)
            comps.append(compare(
                f"{key}: suboptimality at equal bits communicated ({b_final:.3g}), "
                "optimal sparsified / dense",
                None if g_dense_b is None else go / g_dense_b, 1.0,
                source="claim tested (Wangni et al.): sparsified SGD converges faster "
                       "against bits communicated than dense SGD", tol=0.0, mode="max"))
            comps.append(compare(
                f"{key}: final suboptimality at equal iterations, optimal sparsified / dense",
                go / gd, None,
                source="informative: no iteration-parity claim recovered from the paper",
                tol=0.0))
            target = 1.5 * gd
            b_opt = _bits_to_reach(r["optimal"], target)
            b_dense = _bits_to_reach(r["dense"], target)
            comps.append(compare(
                f"{key}: bits to reach 1.5x the dense final gap, dense / optimal (x fewer)",
                None if (b_opt is None or b_dense is None) else b_dense / max(b_opt, 1.0),
                None, source="Wangni et al. (coding-length savings; value not recovered)",
                tol=0.0))
    data = {"variance": var, "runs": runs, "density": cfg["density"]}
    return Outcome(comparisons=comps, data=data, notes=notes)


def plot(data: dict[str, Any], fig: Any) -> None:
    runs = data["runs"]
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


REPRODUCTION = Reproduction(
    name="sparsification",
    title="Gradient Sparsification for Communication-Efficient Distributed Optimization",
    citation=CITATION,
    capability="compress",
    run=run,
    plot=plot,
    profiles={"quick": QUICK, "full": FULL},
    description="Optimal unbiased sparsifier vs uniform sampling: convex convergence vs "
                "iterations and bits, variance vs density.",
)
