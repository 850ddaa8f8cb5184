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

Every claim is judged over seeds (the minibatch order, the sparsifiers' draws and the
gradient of the variance study vary; the data sets are those of the base seed) on the mean
with its 95 % interval: a row passes only if the whole interval satisfies the check. Final
suboptimalities are averaged over the records of the last 20 % of iterations (constant step
size: the iterate fluctuates around its noise floor).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from neurips18.repro.core import (
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
    "Wangni, Wang, Liu, Zhang. Gradient Sparsification for Communication-Efficient "
    "Distributed Optimization. NeurIPS 2018. arXiv:1710.09854"
)


@dataclass(frozen=True)
class Config(Profile):
    seeds: int
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
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")


PROFILES = {
    "smoke": Config(seeds=2, mnist_n=400, synthetic_n=300, synthetic_d=200, workers=4, batch=8,
                    steps=60, eval_every=20, density=0.05, densities=(0.01, 0.05, 0.2),
                    mc_draws=200, losses=("logistic",), solver_maxiter=100),
    "quick": Config(seeds=5, mnist_n=3000, synthetic_n=2000, synthetic_d=1000, workers=4, batch=8,
                    steps=600, eval_every=50, density=0.05,
                    densities=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5), mc_draws=2000,
                    losses=("logistic", "svm"), solver_maxiter=500),
    "full": Config(seeds=3, mnist_n=60000, synthetic_n=10000, synthetic_d=5000, workers=4, batch=16,
                   steps=6000, eval_every=100, density=0.02,
                   densities=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5), mc_draws=10000,
                   losses=("logistic", "svm"), solver_maxiter=3000),
}
LR = {("mnist", "logistic"): 0.05, ("mnist", "svm"): 0.01,
      ("synthetic", "logistic"): 0.2, ("synthetic", "svm"): 0.05}

_NOT_RECOVERED = "Wangni et al. (coding-length savings): not recovered"
_TAIL = "last 20% of iterations"
REFERENCES = References(
    Reference("mc_variance", "E||Q(g)||^2 by Monte Carlo ({draws} draws) / closed form "
              "sum g_i^2/p_i, density {density} (mean over {n} seeds)", 1.0,
              source="closed form E||Q(g)||^2 = sum g_i^2/p_i", tol=0.05, mode="rel"),
    Reference("variance_ratio", "variance ratio optimal/uniform at density {density} (mean "
              "over {n} seeds)", 1.0,
              source="claim tested: optimal < uniform at equal density", mode="max"),
    Reference("final_ratio_uniform", "{key}: suboptimality over the " + _TAIL + ", optimal / "
              "uniform sampling (density {density})", 1.0,
              source="claim tested: optimal converges faster at equal density", mode="max"),
    Reference("equal_bits", "{key}: suboptimality at equal bits communicated ({bits:.3g}), "
              "optimal sparsified / dense", 1.0,
              source="claim tested (Wangni et al.): sparsified SGD converges faster against "
                     "bits communicated than dense SGD", mode="max"),
    Reference("equal_bits_uniform", "{key}: suboptimality at equal bits communicated, uniform "
              "sampling / dense", None,
              source="informative: the random-k baseline (anchor) at the optimal run's bits"),
    Reference("equal_iterations", "{key}: suboptimality over the " + _TAIL + ", optimal "
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


def _convex_problem(name: str, loss: str, cfg: Config, seed: int) -> dict[str, Any]:
    from neurips18.repro._common.sgd import LinearProblem, solve

    X, y = _dataset(name, cfg, seed)
    prob = LinearProblem(X, y, loss, 1e-4)
    _, f_star = solve(prob, maxiter=cfg.solver_maxiter)
    return {"f_star": f_star, "d": prob.dim}


def _convex_runs(name: str, loss: str, cfg: Config, data_seed: int, seed: int,
                 f_star: float) -> dict[str, Any]:
    from neurips18.repro._common.sgd import LinearProblem, run_sgd

    X, y = _dataset(name, cfg, data_seed)
    prob = LinearProblem(X, y, loss, 1e-4)
    common = dict(f_star=f_star, workers=cfg.workers, batch=cfg.batch,
                  lr=LR[(name, loss)], steps=cfg.steps, seed=seed,
                  eval_every=cfg.eval_every)
    rho = cfg.density
    out: dict[str, Any] = {"density": rho}
    out["dense"] = run_sgd(prob, **common)
    out["optimal"] = run_sgd(prob, compressor="unbiased", density=rho, method="greedy",
                             max_iter=2, sampling="optimal", **common)
    out["uniform"] = run_sgd(prob, compressor="unbiased", density=rho, sampling="uniform",
                             **common)
    return out


def _variance_curve(cfg: Config, data_seed: int, seed: int) -> dict[str, Any]:
    import torch

    from neurips18.compress import optimal_probabilities, sparsification_variance
    from neurips18.compress import sparsify_unbiased as sparsify
    from neurips18.repro._common import binary_mnist
    from neurips18.repro._common.sgd import LinearProblem

    X, y = binary_mnist(cfg.mnist_n, seed=data_seed)
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
    seeds = [ctx.seed + i for i in range(cfg.seeds)]
    data_seed = ctx.seed
    var = None
    if ctx.has("mnist"):
        var = {str(s): ctx.cached(f"variance-seed{s}",
                                  lambda s=s: _variance_curve(cfg, data_seed, s))
               for s in seeds}
    runs: dict[str, Any] = {}
    for name in ("mnist", "synthetic") if ctx.has("mnist") else ("synthetic",):
        for loss in cfg.losses:
            key = f"{name}-{loss}"
            prob = ctx.cached(f"problem-{key}",
                              partial(_convex_problem, name, loss, cfg, data_seed))
            runs[key] = {"f_star": prob["f_star"], "d": prob["d"], "density": cfg.density,
                         "seeds": {}}
            for s in seeds:
                runs[key]["seeds"][str(s)] = ctx.cached(
                    f"convex-{key}-seed{s}",
                    partial(_convex_runs, name, loss, cfg, data_seed, s, prob["f_star"]))
    return {"seeds": seeds, "variance": var, "runs": runs, "density": cfg.density}


def _tail_gap(hist: dict[str, Any], steps: int) -> float:
    """Mean suboptimality over the records of the last 20 % of iterations (inf if the run
    diverged)."""
    if "diverged_at" in hist:
        return float("inf")
    gaps = [g for t, g in zip(hist["iter"], hist["gap"], strict=True) if t >= 0.8 * steps]
    return sum(gaps) / len(gaps)


def _est(values: list[float | None]) -> Any:
    """The estimate over seeds, or None when a seed has no value."""
    if any(v is None or v != v for v in values):
        return None
    return estimate([float(v) for v in values])  # type: ignore[arg-type]


def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    var, runs = data["variance"], data["runs"]
    seeds = [str(s) for s in data["seeds"]]
    n = len(seeds)
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
        f"Every row is the mean over {n} seeds with its 95 % interval (the minibatch order, "
        "the sparsifiers' draws and the studied gradient vary; the data sets are the base "
        "seed's); suboptimalities 'over the last 20% of iterations' average the records "
        "there.",
    ]
    if var is not None:
        v0 = var[seeds[0]]
        rows.append(REFERENCES.row("mc_variance", estimate(
            [var[s]["mc"] / var[s]["closed"] for s in seeds]), density=v0["mc_density"],
            draws=cfg.mc_draws, n=n))
        at = [next(r for r in var[s]["rows"] if r["density"] == cfg.density) for s in seeds]
        rows.append(REFERENCES.row("variance_ratio", estimate(
            [r["optimal"] / r["uniform"] for r in at]), density=cfg.density, n=n))
        opt, uni = estimate([r["optimal"] for r in at]), estimate([r["uniform"] for r in at])
        notes.append(
            f"At density {cfg.density} the optimal sparsifier's second moment on the MNIST "
            f"gradient is E||Q(g)||^2 = {opt.mean:.3g} ||g||^2 (uniform: {uni.mean:.3g} "
            "||g||^2; means over seeds): the noise floor of constant-step SGD rises "
            "accordingly at equal iterations.")
    for key, r in runs.items():
        per = [r["seeds"][s] for s in seeds]
        for s, p in zip(seeds, per, strict=True):
            for m in ("dense", "optimal", "uniform"):
                if "diverged_at" in p[m]:
                    notes.append(f"{key}, seed {s}: {m} diverged (non-finite gradients) at "
                                 f"iteration {int(p[m]['diverged_at'][0])}; its gap is inf.")
        tail = {m: [_tail_gap(p[m], cfg.steps) for p in per]
                for m in ("dense", "optimal", "uniform")}
        rows.append(REFERENCES.row("final_ratio_uniform", _est(
            [o / u for o, u in zip(tail["optimal"], tail["uniform"], strict=True)]),
            key=key, density=r["density"]))
        # equal bits: dense is read at its first record with at least as many bits as the
        # optimal run's last one (conservative for us)
        eb, ebu, bits = [], [], []
        for p in per:
            b_final = p["optimal"]["bits"][-1]
            g_dense = _gap_at_bits(p["dense"], b_final)
            g_uni = _gap_at_bits(p["uniform"], b_final)
            bits.append(b_final)
            eb.append(None if g_dense is None else p["optimal"]["gap"][-1] / g_dense)
            ebu.append(None if g_dense is None or g_uni is None else g_uni / g_dense)
        rows.append(REFERENCES.row("equal_bits", _est(eb), key=key, bits=sum(bits) / n))
        rows.append(REFERENCES.row("equal_bits_uniform", _est(ebu), key=key))
        rows.append(REFERENCES.row("equal_iterations", _est(
            [o / d for o, d in zip(tail["optimal"], tail["dense"], strict=True)]), key=key))
        saving = []
        for p in per:
            target = 1.5 * p["dense"]["gap"][-1]
            b_opt = _bits_to_reach(p["optimal"], target)
            b_dense = _bits_to_reach(p["dense"], target)
            saving.append(None if b_opt is None or b_dense is None
                          else b_dense / max(b_opt, 1.0))
        rows.append(REFERENCES.row("bits_saving", _est(saving), key=key))
    return Judgement(rows, notes)


def plot(data: dict[str, Any], fig: Any) -> None:
    import numpy as np

    runs = data["runs"]
    if data["variance"] is None:
        fig.text(0.5, 0.5, "MNIST absent: see the table", ha="center")
        return
    seeds = [str(s) for s in data["seeds"]]
    key = "mnist-logistic" if "mnist-logistic" in runs else next(iter(runs))
    r = runs[key]
    ax1, ax2, ax3, ax4 = (fig.add_subplot(1, 4, i) for i in (1, 2, 3, 4))
    for m, color, style in (("dense", "k", "-"), ("optimal", "b", "-"),
                            ("uniform", "r", "--")):
        hs = [r["seeds"][s][m] for s in seeds]
        it = hs[0]["iter"]
        gaps = np.array([h["gap"] for h in hs])
        ax1.semilogy(it, np.median(gaps, 0), color=color, ls=style, label=m)
        ax1.fill_between(it, gaps.min(0), gaps.max(0), color=color, alpha=0.15)
        for i, h in enumerate(hs):
            ax2.loglog(h["bits"][1:], h["gap"][1:], color=color, ls=style, lw=0.8,
                       alpha=0.7, label=m if i == 0 else None)
    ax1.set(xlabel="iteration", ylabel="f(w) - f*",
            title=f"{key}, density {r['density']} (band: seeds)")
    ax1.legend(fontsize=7)
    ax2.set(xlabel="bits communicated (all workers)", ylabel="f(w) - f*",
            title="one line per seed")
    ax2.legend(fontsize=7)
    var = data["variance"]
    dens = [x["density"] for x in var[seeds[0]]["rows"]]
    for m, style in (("optimal", "b-o"), ("uniform", "r--s")):
        vals = np.array([[x[m] for x in var[s]["rows"]] for s in seeds])
        ax3.loglog(dens, vals.mean(0), style, ms=3, label=m)
        ax3.fill_between(dens, vals.min(0), vals.max(0), color=style[0], alpha=0.2)
    ax3.set(xlabel="density", ylabel="E||Q(g)||^2 / ||g||^2", title="variance vs density")
    ax3.legend(fontsize=7)
    labels = []
    for x, (k, rr) in enumerate(runs.items()):
        vals = [_tail_gap(rr["seeds"][s]["optimal"], _steps_of(rr))
                / _tail_gap(rr["seeds"][s]["uniform"], _steps_of(rr)) for s in seeds]
        ax4.semilogy([x] * len(vals), vals, "o", ms=4, alpha=0.6, color="C0")
        if len(vals) > 1 and all(np.isfinite(vals)):
            e = estimate(vals)
            lo = max(e.low, min(vals) / 10)
            ax4.errorbar([x + 0.15], [e.mean], yerr=[[e.mean - lo], [e.high - e.mean]],
                         fmt="s", color="k", ms=4, capsize=3)
        labels.append(k)
    ax4.axhline(1.0, color="r", ls=":", lw=0.8)
    ax4.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax4.set(ylabel="optimal / uniform, late suboptimality", title="per seed; mean, 95% interval")
    fig.tight_layout()


def _steps_of(run: dict[str, Any]) -> int:
    """The number of iterations of a convex run (its last record)."""
    first = next(iter(run["seeds"].values()))
    return int(first["dense"]["iter"][-1])



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
    needs={"mnist": needs_mnist},
    description="Optimal unbiased sparsifier vs uniform sampling: convex convergence vs "
                "iterations and bits, variance vs density.",
)
