"""Reproduction: what SGLD, SGLDFP, LMC and SGD really sample (Brosse et al. 2018).

What is reproduced (capability :mod:`neurips18.sgmcmc`), four experiments, each a cached step:

1. ``closed-vs-sim``: on Bayesian linear regression (d = 2, N = 1000, p = 10,
   gamma = 0.5 / N) the closed-form invariant covariances of the four methods against long
   simulated chains (relative Frobenius error <= 1 %), and C_SGLD = C_SGLDFP + C_SGD.
2. ``linear-vs-N``: the error of the invariant covariance (Frobenius distance to the posterior
   covariance) against N in 1e2..1e6, gamma = 1/(2N), p = 50, exactly from the closed forms;
   log-log slopes (targets: about -1 for LMC and SGLDFP, about 0 for SGLD and SGD).
3. ``logistic-vs-N``: the same on synthetic Bayesian logistic regression (d = 5, standardised
   features as in the paper's covertype protocol) by simulation, with the error of the mean
   too. The chains' invariant moments are estimated with control variates
   (:func:`neurips18.sgmcmc.control_variate_mean`, :func:`~neurips18.sgmcmc.control_variate_cov`)
   so that the O(1/N) biases are not buried under O(N^-1/2) Monte Carlo error. Reference:
   the posterior covariance by importance sampling with the Laplace fit as proposal (exact up
   to Monte Carlo error, independent of any Langevin discretisation); the posterior mean the
   same for small N and, from N = 1e4 on, the second-order Laplace expansion
   (:func:`~neurips18.sgmcmc.posterior_mean_expansion`, error O(N^-2)), whose agreement with
   importance sampling is recorded. The log-log slopes over the whole grid are compared with
   the slopes the closed forms predict on that grid (``logistic-theory``: invariant
   covariances of the model linearised at the mode, means to second order), and the slopes
   from N = 1e3 on with the nominal asymptotic targets: at N = 1e2 with p = 50, SGD's
   spread (about 1/(4p)) is far below the posterior's, so its error is not yet in the
   asymptotic regime and its whole-grid slope is about -0.2 by the closed forms themselves.
   With covertype present (``needs``), the same protocol runs on it (top-5 eigenvectors).
4. ``logistic-1e5``: N = 1e5, d = 20: SGLDFP's per-coordinate variances and mean (control
   variate estimates, with 95 % intervals) against the reference, and SGLD's variance
   inflation against the prediction of the closed forms applied to the model linearised at
   the mode.

The paper's figures (arXiv:1811.10072, Figs. 1-3: errors vs N on covertype) are log-log plots
whose values were not recovered, so the rows compare with stated targets and with closed
forms; the paper's qualitative claims are what those targets encode.

Uncertainty: every experiment runs on ``seeds`` seeds (new data and new chains each), and
each row is judged on the mean over seeds with its 95 % t interval (paired by seed with the
closed forms computed on the same data); the exact identities report their worst seed.
Decided before running the quick profile: it uses 4 seeds, the logistic grid up to N = 1e5
and d = 10 for the N = 1e5 experiment (its cost grows like N d^4 through the fourth-moment
tensor of the closed forms), and leaves "max_k |var_SGLDFP,k / var_ref,k - 1| <= 5 %" to the
full profile: the linearised closed form puts the discretisation bias alone near 4 %, so an
interval inside 5 % needs the full profile's long chains. Decided after the first quick run
with that grid: SGD's slopes from N = 1e3 against its nominal rate 0 are left to the full
profile too (on a grid ending at 1e5 the closed forms themselves give 0.2-0.4 for them, seed
by seed, because SGD's spread crosses the posterior's near N = 1e3); the comparison of those
slopes with the closed forms' stays in the quick profile.

Repeatable digits: the chains' C kernel is single-threaded with a fixed order of sums (eight
partial sums per dot product); NumPy's BLAS products (full gradients, importance sampling,
the estimators) split their sums across threads, so the last digits depend on the thread
count. The profiles fix it (``threads=1``) and the harness sets it, so the same command with
the same seed gives the same digits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from neurips18.repro.core import (
    Comparison,
    Judgement,
    Profile,
    Reference,
    References,
    Reproduction,
    RunContext,
    estimate,
)

CITATION = "Brosse, Durmus, Moulines. NeurIPS 2018. arXiv:1811.10072"
METHODS = ("lmc", "sgld", "sgldfp", "sgd")
COLORS = {"lmc": "tab:blue", "sgld": "tab:red", "sgldfp": "tab:green", "sgd": "tab:orange"}
# the asymptotic log-log slopes of the covariance error vs N (Brosse et al., Sec. 3-4)
TARGETS = {"lmc": -1.0, "sgldfp": -1.0, "sgld": 0.0, "sgd": 0.0}


# --------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class ClosedVsSim:
    n: int
    d: int
    batch_size: int
    eta: float
    n_steps: int
    lmc_steps: int  # LMC takes a full-data gradient per step
    without_replacement: bool


@dataclass(frozen=True)
class LinearVsN:
    ns: tuple[int, ...]
    d: int
    batch_size: int


@dataclass(frozen=True)
class LogisticVsN:
    ns: tuple[int, ...]
    d: int
    batch_size: int
    methods: tuple[str, ...]
    n_steps: int
    steps_per_n: int
    max_steps: int
    lmc_budget: float
    ref_budget: float
    ref_max: int
    cv_budget: float
    cv_max: int
    expansion_from: float
    # methods whose slope from N = 1e3 on is judged against the nominal asymptotic rate; SGD's
    # spread crosses the posterior's near N = 1e3, so its rate needs the grid to reach 1e6
    nominal_rate_methods: tuple[str, ...]


@dataclass(frozen=True)
class LogisticBig:
    n: int
    d: int
    batch_size: int
    n_steps: int
    n_steps_sgld: int
    ref_samples: int
    n_cv: int
    # judge "max_k |var_SGLDFP,k / var_ref,k - 1| <= 0.05": the discretisation bias alone is
    # about 0.04 at gamma = 1/(2N) (the linearised closed form), so the claim needs the
    # interval of long chains (full profile); quick runs report the value in a note
    judge_max_deviation: bool


@dataclass(frozen=True)
class Config(Profile):
    seeds: int  # every experiment runs on seeds base, base + SEED_STRIDE, ... (data and chains)
    closed_vs_sim: ClosedVsSim
    linear_vs_n: LinearVsN
    logistic_vs_n: LogisticVsN
    logistic_big: LogisticBig

    def check(self) -> None:
        if self.seeds < 2:
            raise ValueError(f"seeds must be >= 2 (rows are means over seeds with their 95 % "
                             f"interval), got {self.seeds}")
        bad = set(self.logistic_vs_n.methods) - set(METHODS)
        bad |= set(self.logistic_vs_n.nominal_rate_methods) - set(self.logistic_vs_n.methods)
        if bad:
            raise ValueError(f"logistic_vs_n.methods must be among {METHODS}, got {sorted(bad)}")
        for name, ns in (("linear_vs_n", self.linear_vs_n.ns),
                         ("logistic_vs_n", self.logistic_vs_n.ns)):
            if len(ns) < 2 or list(ns) != sorted(set(ns)):
                raise ValueError(f"{name}.ns must be at least two increasing sizes, got {ns}")


PROFILES = {
    "smoke": Config(
        seeds=2,
        closed_vs_sim=ClosedVsSim(n=200, d=2, batch_size=10, eta=0.5, n_steps=20_000,
                                  lmc_steps=5000, without_replacement=True),
        linear_vs_n=LinearVsN(ns=(1000, 10_000, 100_000), d=2, batch_size=10),
        logistic_vs_n=LogisticVsN(ns=(300, 3000), d=2, batch_size=10, methods=METHODS,
                                  n_steps=3000, steps_per_n=0, max_steps=0, lmc_budget=1e7,
                                  ref_budget=1e6, ref_max=50_000, cv_budget=1e8, cv_max=20_000,
                                  expansion_from=1e4, nominal_rate_methods=METHODS),
        logistic_big=LogisticBig(n=2000, d=3, batch_size=20, n_steps=3000, n_steps_sgld=3000,
                                 ref_samples=500, n_cv=5000, judge_max_deviation=True),
    ),
    "quick": Config(
        seeds=4,
        closed_vs_sim=ClosedVsSim(n=1000, d=2, batch_size=10, eta=0.5, n_steps=1_000_000,
                                  lmc_steps=100_000, without_replacement=False),
        linear_vs_n=LinearVsN(ns=(100, 1000, 10_000, 100_000, 1_000_000), d=5, batch_size=50),
        logistic_vs_n=LogisticVsN(ns=(100, 1000, 10_000, 100_000), d=5,
                                  batch_size=50, methods=("sgld", "sgldfp", "sgd"),
                                  n_steps=50_000, steps_per_n=0, max_steps=0, lmc_budget=0,
                                  ref_budget=5e7, ref_max=50_000, cv_budget=3e7, cv_max=1000,
                                  expansion_from=1e4, nominal_rate_methods=("sgld", "sgldfp")),
        logistic_big=LogisticBig(n=100_000, d=10, batch_size=50, n_steps=100_000,
                                 n_steps_sgld=50_000, ref_samples=500, n_cv=300,
                                 judge_max_deviation=False),
    ),
    "full": Config(
        seeds=5,
        closed_vs_sim=ClosedVsSim(n=1000, d=2, batch_size=10, eta=0.5, n_steps=2_000_000,
                                  lmc_steps=500_000, without_replacement=True),
        linear_vs_n=LinearVsN(ns=(100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000,
                                  1_000_000), d=5, batch_size=50),
        logistic_vs_n=LogisticVsN(ns=(100, 1000, 10_000, 100_000, 1_000_000), d=5,
                                  batch_size=50, methods=METHODS, n_steps=1_000_000,
                                  steps_per_n=0, max_steps=0, lmc_budget=1e9,
                                  ref_budget=5e8, ref_max=400_000, cv_budget=5e8,
                                  cv_max=10_000, expansion_from=1e4,
                                  nominal_rate_methods=METHODS),
        logistic_big=LogisticBig(n=100_000, d=20, batch_size=50, n_steps=1_000_000,
                                 n_steps_sgld=500_000, ref_samples=5000, n_cv=5000,
                                 judge_max_deviation=True),
    ),
}
SEED_STRIDE = 10_000  # seed s of a run uses base seed ctx.seed + s * SEED_STRIDE

# --------------------------------------------------------------------------- references
# Every row is computed on each of the profile's seeds (new data and new chains per seed)
# and judged on the mean over seeds with its 95 % t interval (neurips18.repro.estimate): it
# passes only if the whole interval satisfies the check. Rows against a closed form computed
# on the same data are paired by seed (the difference is estimated). The two exact identities
# of the closed forms report their worst seed instead.
_CF = "closed form (neurips18.sgmcmc.invariant_moments) vs simulation; target 1 %"
REFERENCES = References(
    Reference("closed_vs_sim", "rel. Frobenius error, simulated vs closed-form covariance, "
              "{method} ({tag} replacement)", 0.0, source=_CF, tol=0.01, mode="max"),
    Reference("identity", "max |C_SGLD - C_SGLDFP - C_SGD| / max |C_SGLD| (worst seed)", 0.0,
              source="closed forms: C_SGLD = C_SGLDFP + C_SGD exactly", tol=1e-10,
              mode="max"),
    *(Reference(f"linear_slope_{m}",
                f"linear regression: log-log slope of ||C - C_post||_F vs N, {m}", TARGETS[m],
                source="asymptotic rate (paper: Sec. 3, Fig. 5)", tol=0.15)
      for m in METHODS),
    Reference("linear_mean", "linear regression: max ||mean - posterior mean|| over N, methods "
              "and seeds", 0.0, source="closed form: the invariant mean is theta* for all four",
              tol=1e-8, mode="max"),
    Reference("logistic_slope_gap", "{label}: log-log slope of {what} vs N, {method}, minus "
              "the closed forms' slope", 0.0,
              source="closed forms on the same N grid and data (model linearised at the mode, "
                     "mean to second order), paired by seed; nominal rate {target:g}",
              tol=0.15),
    *(Reference(f"logistic_slope_1e3_{m}",
                "{label}, N >= 1e3: log-log slope of {what} vs N, " + m, TARGETS[m],
                source="asymptotic rate (paper: Figs. 1-3, covertype N from 1e3)", tol=0.15)
      for m in METHODS),
    Reference("big_var", "logistic N={n:g} d={d}: max_k |var_SGLDFP,k / var_ref,k - 1| "
              "(control-variate estimate of the chain's variances)", 0.0,
              source="target 5 % (SGLDFP concentrates like the posterior); reference: "
                     "Laplace-proposal importance sampling", tol=0.05, mode="max"),
    Reference("big_mean", "logistic N={n:g} d={d}: ||mean_SGLDFP - mean_ref|| / ||mean_ref|| "
              "(control-variate estimate)", 0.0, source="target 0.5 %", tol=0.005,
              mode="max"),
    Reference("big_sgld_inflation", "logistic N={n:g} d={d}: SGLD variance inflation (mean "
              "over coords) / its closed-form prediction - 1", 0.0,
              source="closed form on the model linearised at the mode, paired by seed",
              tol=0.10),
    Reference("big_sgldfp_ratio", "logistic N={n:g} d={d}: SGLDFP variance ratio (mean over "
              "coords) / its closed-form prediction - 1", 0.0,
              source="closed form on the model linearised at the mode, paired by seed",
              tol=0.05),
)


def _slope(ns: Sequence[float], errs: Sequence[float]) -> float:
    import numpy as np

    x, y = np.log10(np.asarray(ns, float)), np.log10(np.asarray(errs, float))
    return float(np.polyfit(x, y, 1)[0])


# --------------------------------------------------------------------------- experiment 1


def _closed_vs_sim(cfg: ClosedVsSim, seed: int) -> dict[str, Any]:
    import numpy as np

    from neurips18.datasets.synthetic import make_bayesian_linear_regression
    from neurips18.sgmcmc import BayesianLinearRegression, invariant_moments, sample

    n, d, p = cfg.n, cfg.d, cfg.batch_size
    X, y = make_bayesian_linear_regression(n, d, generator=seed)
    m = BayesianLinearRegression(X, y, 1.0)
    gamma = cfg.eta / n
    out: dict[str, Any] = {"n": n, "d": d, "batch_size": p, "step_size": gamma, "runs": []}
    cases = [(meth, True) for meth in METHODS]
    if cfg.without_replacement:
        cases += [(meth, False) for meth in ("sgld", "sgldfp", "sgd")]
    for k, (meth, repl) in enumerate(cases):
        mean, C = invariant_moments(m, meth, gamma, p, repl)
        steps = cfg.lmc_steps if meth == "lmc" else cfg.n_steps
        res = sample(m, meth, gamma, p, steps, replacement=repl,
                     generator=np.random.default_rng(seed + 100 + k))
        Ce = res.cov()
        out["runs"].append({
            "method": meth, "replacement": repl, "steps": steps,
            "rel_fro_cov": float(np.linalg.norm(Ce - C) / np.linalg.norm(C)),
            "mean_err_in_sd": float(np.max(np.abs(res.mean() - mean) / np.sqrt(np.diag(C)))),
            "chain_seconds": res.diagnostics["wall_time_s"],
        })
    ident = []
    for repl in (True, False):
        _, c1 = invariant_moments(m, "sgld", gamma, p, repl)
        _, c2 = invariant_moments(m, "sgldfp", gamma, p, repl)
        _, c3 = invariant_moments(m, "sgd", gamma, p, repl)
        ident.append(float(np.abs(c1 - c2 - c3).max() / np.abs(c1).max()))
    out["identity_rel_err"] = max(ident)
    return out


# --------------------------------------------------------------------------- experiment 2


def _linear_vs_n(cfg: LinearVsN, seed: int) -> dict[str, Any]:
    import numpy as np

    from neurips18.datasets.synthetic import make_bayesian_linear_regression
    from neurips18.sgmcmc import (
        BayesianLinearRegression,
        invariant_moments,
        posterior_moments,
        wasserstein2_gaussian,
    )

    ns, d, p = list(cfg.ns), cfg.d, cfg.batch_size
    X, y = make_bayesian_linear_regression(max(ns), d, generator=seed)
    out: dict[str, Any] = {"ns": ns, "d": d, "batch_size": p,
                           "cov_err": {m: [] for m in METHODS},
                           "mean_err": {m: [] for m in METHODS},
                           "w2": {m: [] for m in METHODS}}
    for n in ns:
        model = BayesianLinearRegression(X[:n], y[:n], 1.0)
        mu, Cp = posterior_moments(model)
        for meth in METHODS:
            mean, C = invariant_moments(model, meth, 1.0 / (2 * n), p)
            out["cov_err"][meth].append(float(np.linalg.norm(C - Cp)))
            out["mean_err"][meth].append(float(np.linalg.norm(mean - mu)))
            out["w2"][meth].append(wasserstein2_gaussian(mean, C, mu, Cp))
    out["slopes"] = {m: _slope(ns, out["cov_err"][m]) for m in METHODS}
    return out


# --------------------------------------------------------------------------- experiment 3


def _reference(model: Any, seed: int, budget: float, lo: int, hi: int,
               expansion_from: float = float("inf")) -> dict[str, Any]:
    """Exact posterior moments: importance sampling (IS) from the Laplace fit, and for the
    mean at N >= ``expansion_from`` the second-order Laplace expansion (error O(N^-2), far
    below IS's Monte Carlo error there; both are recorded)."""
    import numpy as np

    from neurips18.sgmcmc import importance_moments, posterior_mean_expansion

    m_samples = int(min(hi, max(lo, budget / model.n_data)))
    ref = importance_moments(model, m_samples, np.random.default_rng(seed))
    out = {"mean": ref["mean"], "cov": ref["cov"], "ess": ref["ess"], "n_samples": m_samples,
           "mean_is": ref["mean"], "mean_se": ref.get("mean_se"), "cov_se": ref.get("cov_se"),
           "mean_source": "importance sampling"}
    if model.n_data >= expansion_from:
        out["mean"] = posterior_mean_expansion(model)
        out["mean_source"] = "second-order Laplace expansion"
    return out


def _cv_estimates(model: Any, meth: str, res: Any, ts: Any, gamma: float, p: int,
                  n_cv: int, n_batches: int = 10) -> dict[str, Any]:
    """Control-variate mean and covariance of a chain's invariant law from ``n_cv`` thinned
    draws (neurips18.sgmcmc.control_variate_mean / _cov); standard errors from the spread
    of the same estimators on ``n_batches`` contiguous batches of those draws."""
    import numpy as np

    from neurips18.sgmcmc import (
        control_variate_cov,
        control_variate_mean,
        covariance_operator,
        gradient_moments,
        third_derivative_at,
    )

    draws = res.draws
    k = max(1, len(draws) // max(1, n_cv))
    D = draws[k - 1 :: k].astype(np.float64)
    b = len(D) // n_batches
    if b >= 2:
        D = D[: b * n_batches]
    off = model.grad_potential(np.asarray(ts, model.dtype)) if meth == "sgldfp" else None
    A = np.linalg.inv(model.hessian_potential(ts))
    L = covariance_operator(model, meth, gamma, p, linearize=True)

    T3 = third_derivative_at(model, ts)

    def est(Db: Any, Gb: Any, Vb: Any) -> tuple[Any, Any]:
        # first order for the mean, the covariance and its zero-mean residual, then the
        # second-order mean (module docstring of neurips18.sgmcmc.estimators)
        mean = control_variate_mean(Db, Gb, A, grad_offset=off)
        kw = {"langevin": meth != "sgd", "grad_noise_cov": Vb, "centre": ts, "grad_offset": off}
        _, R = control_variate_cov(Db, Gb, gamma, L, mean=mean, return_residual=True, **kw)
        mean = control_variate_mean(Db, Gb, A, grad_offset=off, third_derivative=T3,
                                    second_moment_residual=R)
        cov = control_variate_cov(Db, Gb, gamma, L, mean=mean, **kw)
        return mean, cov

    pp = None if meth == "lmc" else p
    if b >= 2:
        parts = [gradient_moments(model, D[j * b : (j + 1) * b], meth, pp, theta_star=ts)
                 for j in range(n_batches)]
        G = np.concatenate([q[0] for q in parts])
        V = np.mean([q[1] for q in parts], axis=0)
        ests = [est(D[j * b : (j + 1) * b], parts[j][0], parts[j][1]) for j in range(n_batches)]
        mean_se = np.std([e[0] for e in ests], axis=0, ddof=1) / np.sqrt(n_batches)
        cov_se = np.std([e[1] for e in ests], axis=0, ddof=1) / np.sqrt(n_batches)
    else:
        G, V = gradient_moments(model, D, meth, pp, theta_star=ts)
        mean_se = np.full(model.dim, np.nan)
        cov_se = np.full((model.dim, model.dim), np.nan)
    mean, cov = est(D, G, V)
    return {"mean": mean, "cov": cov, "mean_se": mean_se, "cov_se": cov_se, "n_cv": len(D),
            "thin": k}


def _logistic_row(X: Any, y: Any, n: int, i: int, cfg: LogisticVsN, seed: int
                  ) -> dict[str, Any]:
    """Reference and the chains' control-variate errors at one N (the first n rows)."""
    import numpy as np

    from neurips18.sgmcmc import (
        BayesianLogisticRegression,
        find_mode,
        posterior_mean_expansion,
        sample,
    )

    p = cfg.batch_size
    model = BayesianLogisticRegression(X[:n], y[:n], 1.0)
    ts = find_mode(model, rtol=1e-12)
    ref = _reference(model, seed + 10 + i, cfg.ref_budget, 200, cfg.ref_max,
                     cfg.expansion_from)
    exp_mean = posterior_mean_expansion(model)
    row: dict[str, Any] = {
        "ref_ess": ref["ess"], "ref_n": ref["n_samples"],
        "ref_mean_se": float(np.linalg.norm(ref["mean_se"])),
        "ref_cov_se": float(np.linalg.norm(ref["cov_se"])),
        "ref_mean_source": ref["mean_source"],
        "ref_is_vs_expansion": float(np.linalg.norm(ref["mean_is"] - exp_mean)),
    }
    gamma = 1.0 / (2 * n)
    for j, meth in enumerate(cfg.methods):
        steps = int(max(cfg.n_steps, min(cfg.steps_per_n * n, cfg.max_steps)))
        if meth == "lmc":  # a full gradient per step: cap the data passes
            steps = int(min(steps, cfg.lmc_budget / n))
        res = sample(model, meth, gamma, p, steps, theta_star=ts,
                     generator=np.random.default_rng(seed + 1000 * i + j))
        n_cv = int(min(cfg.cv_max, cfg.cv_budget / n))
        cv = _cv_estimates(model, meth, res, ts, gamma, p, n_cv)
        row[meth] = {
            "cov_err": float(np.linalg.norm(cv["cov"] - ref["cov"])),
            "mean_err": float(np.linalg.norm(cv["mean"] - ref["mean"])),
            "cov_err_plain": float(np.linalg.norm(res.cov() - ref["cov"])),
            "mean_err_plain": float(np.linalg.norm(res.mean() - ref["mean"])),
            "mean_se": float(np.linalg.norm(cv["mean_se"])),
            "steps": steps, "n_cv": cv["n_cv"],
            "chain_seconds": res.diagnostics["wall_time_s"],
        }
    return row


def _logistic_vs_n(ctx: RunContext, cfg: LogisticVsN, X: Any, y: Any, ns: Sequence[int],
                   seed: int, prefix: str) -> dict[str, Any]:
    from functools import partial

    methods = tuple(cfg.methods)
    keys = ("cov_err", "mean_err", "cov_err_plain", "mean_err_plain", "mean_se")
    out: dict[str, Any] = {"ns": list(ns), "d": int(X.shape[1]), "batch_size": cfg.batch_size,
                           "n_steps": {}, "n_cv": {}, "methods": list(methods), "ref_ess": [],
                           "ref_mean_se": [], "ref_cov_se": [], "ref_mean_source": [],
                           "ref_is_vs_expansion": [], **{k: {m: [] for m in methods}
                                                         for k in keys}}
    for i, n in enumerate(ctx.progress(ns, desc=f"{prefix} vs N")):
        row = ctx.cached(f"{prefix}-cv-N{n}", partial(_logistic_row, X, y, n, i, cfg, seed))
        for k in ("ref_ess", "ref_mean_se", "ref_cov_se", "ref_mean_source",
                  "ref_is_vs_expansion"):
            out[k].append(row[k])
        for meth in methods:
            for k in keys:
                out[k][meth].append(row[meth][k])
            out["n_steps"].setdefault(meth, []).append(row[meth]["steps"])
            out["n_cv"].setdefault(meth, []).append(row[meth]["n_cv"])
    out["theory"] = ctx.cached(f"{prefix}-theory",
                               partial(_theory_vs_n, X, y, ns, cfg.batch_size, methods))
    return out


def _slopes(exp: dict[str, Any]) -> dict[str, Any]:
    """Log-log slopes of a logistic experiment: whole grid (control-variate and plain
    estimates) and, when the grid starts below 1e3, from N = 1e3 on."""
    ns, methods = exp["ns"], exp["methods"]
    out: dict[str, Any] = {}
    for key in ("cov_err", "mean_err", "cov_err_plain", "mean_err_plain"):
        out[key] = {m: _slope(ns, exp[key][m]) for m in methods}
    sub = [k for k, n in enumerate(ns) if n >= 1000]
    if 2 <= len(sub) < len(ns):
        out["from_1e3"] = {
            key: {m: _slope([ns[k] for k in sub], [exp[err][m][k] for k in sub])
                  for m in methods}
            for key, err in (("cov", "cov_err"), ("mean", "mean_err"))}
    return out


def _theory_vs_n(X: Any, y: Any, ns: Sequence[int], p: int,
                 methods: Sequence[str]) -> dict[str, Any]:
    """The errors that the paper's closed forms predict on the same N grid, without simulation.

    Covariances: :func:`~neurips18.sgmcmc.invariant_moments` on the model linearised at the
    mode (Brosse et al.'s closed forms for a Gaussian target), against the Laplace covariance
    H^-1. Means, to second order: stationarity gives E[grad U(theta)] = 0 for every chain
    (the gradient estimate is unbiased), and expanding grad U about the mode gives
    mean - theta* = -H^-1 T[C] / 2 + O(N^-2) with T the third derivative of U at theta* and C
    the chain's covariance; with C = H^-1 this is the posterior mean's expansion.
    """
    import numpy as np

    from neurips18.sgmcmc import (
        BayesianLogisticRegression,
        find_mode,
        invariant_moments,
        third_derivative_at,
    )

    out: dict[str, Any] = {"ns": list(ns), "cov_err": {m: [] for m in methods},
                           "mean_err": {m: [] for m in methods}}
    for n in ns:
        model = BayesianLogisticRegression(X[:n], y[:n], 1.0)
        ts = find_mode(model, rtol=1e-12)
        Hi = np.linalg.inv(model.hessian_potential(ts))
        T = third_derivative_at(model, ts)
        for meth in methods:
            _, C = invariant_moments(model, meth, 1.0 / (2 * n), p, linearize=True)
            out["cov_err"][meth].append(float(np.linalg.norm(C - Hi)))
            out["mean_err"][meth].append(float(np.linalg.norm(-0.5 * Hi @ T(C - Hi))))
    out["cov_slopes"] = {m: _slope(ns, out["cov_err"][m]) for m in methods}
    out["mean_slopes"] = {m: _slope(ns, out["mean_err"][m]) for m in methods}
    return out


# --------------------------------------------------------------------------- experiment 4


def _logistic_big(cfg: LogisticBig, seed: int) -> dict[str, Any]:
    import numpy as np

    from neurips18.datasets.synthetic import make_bayesian_logistic_regression
    from neurips18.sgmcmc import (
        BayesianLogisticRegression,
        batch_means_se,
        find_mode,
        invariant_moments,
        posterior_moments,
        sample,
    )

    n, d, p = cfg.n, cfg.d, cfg.batch_size
    X, y = make_bayesian_logistic_regression(n, d, generator=seed + 3)
    model = BayesianLogisticRegression(X, y, 1.0)
    ts = find_mode(model, rtol=1e-12)
    gamma = 1.0 / (2 * n)
    ref = _reference(model, seed + 20, cfg.ref_samples * n, cfg.ref_samples, cfg.ref_samples)
    var_ref = np.diag(ref["cov"])
    _, C_lap = posterior_moments(model, linearize=True)
    out: dict[str, Any] = {"n": n, "d": d, "batch_size": p, "step_size": gamma,
                           "ref_ess": ref["ess"], "ref_n": ref["n_samples"],
                           "var_ref": var_ref.tolist(),
                           "var_laplace": np.diag(C_lap).tolist()}
    out["var_ref_se"] = np.diag(ref["cov_se"]).tolist()
    for k, meth in enumerate(("sgldfp", "sgld")):
        steps = cfg.n_steps if meth == "sgldfp" else cfg.n_steps_sgld
        res = sample(model, meth, gamma, p, steps, theta_star=ts,
                     generator=np.random.default_rng(seed + 30 + k))
        _, C_lin = invariant_moments(model, meth, gamma, p, linearize=True)
        dr = res.draws.astype(np.float64)
        # batch-means standard error of the plain variance estimate (per coordinate)
        var_se = batch_means_se((dr - dr.mean(0)) ** 2, 20)
        cv = _cv_estimates(model, meth, res, ts, gamma, p, cfg.n_cv)
        out[meth] = {
            "var": res.var().tolist(),
            "var_se": var_se.tolist(),
            "var_cv": np.diag(cv["cov"]).tolist(),
            "var_cv_se": np.diag(cv["cov_se"]).tolist(),
            "n_cv": cv["n_cv"],
            "var_linearised": np.diag(C_lin).tolist(),
            "mean_rel_err": float(np.linalg.norm(res.mean() - ref["mean"])
                                  / np.linalg.norm(ref["mean"])),
            "mean_rel_err_cv": float(np.linalg.norm(cv["mean"] - ref["mean"])
                                     / np.linalg.norm(ref["mean"])),
            "steps": steps,
            "chain_seconds": res.diagnostics["wall_time_s"],
        }
    return out


# --------------------------------------------------------------------------- run and judge


def _one_seed(ctx: RunContext, cfg: Config, s: int) -> dict[str, Any]:
    """Every experiment on seed ``s`` of the run (base seed ``ctx.seed + s * SEED_STRIDE``;
    seed 0 of base 0 is the single-seed run of earlier versions of this module)."""
    from functools import partial

    from neurips18.datasets.synthetic import make_bayesian_logistic_regression

    seed = ctx.seed + s * SEED_STRIDE
    tag = f"s{s}"
    exp1 = ctx.cached(f"closed-vs-sim-{tag}", partial(_closed_vs_sim, cfg.closed_vs_sim, seed))
    exp2 = ctx.cached(f"linear-vs-N-{tag}", partial(_linear_vs_n, cfg.linear_vs_n, seed + 1))
    lg = cfg.logistic_vs_n
    X, y = make_bayesian_logistic_regression(max(lg.ns), lg.d, generator=seed + 2)
    exp3 = _logistic_vs_n(ctx, lg, X, y, lg.ns, seed, f"logistic-{tag}")
    exp4 = ctx.cached(f"logistic-big-{tag}", partial(_logistic_big, cfg.logistic_big, seed))
    cov = None
    if ctx.has("covertype"):
        import numpy as np

        from neurips18.datasets import load_covertype

        ds = load_covertype(download=False)
        # shuffle once per seed, then the first N rows for each N (and all of them last)
        perm = np.random.default_rng(seed + 2).permutation(len(ds.y))
        Xc, yc = ds.X[perm], ds.y[perm]
        ns = [n for n in lg.ns if n < len(yc)] + [len(yc)]
        cov = _logistic_vs_n(ctx, lg, Xc, yc, ns, seed, f"covertype-{tag}")
    for exp in (exp3, cov):
        if exp is not None:
            exp["slopes"] = _slopes(exp)
    return {"seed": seed, "closed_vs_sim": exp1, "linear_vs_n": exp2, "logistic_vs_n": exp3,
            "logistic_big": exp4, "covertype_vs_n": cov}


def run(ctx: RunContext) -> dict[str, Any]:
    cfg: Config = ctx.config
    runs = [_one_seed(ctx, cfg, s) for s in range(cfg.seeds)]
    return {"seeds": [r["seed"] for r in runs], "runs": runs}


def _big_summary(exp4: dict[str, Any]) -> dict[str, Any]:
    """Per-seed numbers of the N = 1e5 experiment: ratios to the reference variances."""
    import numpy as np

    var_ref = np.asarray(exp4["var_ref"])
    fp, sg = exp4["sgldfp"], exp4["sgld"]
    ratio_fp = np.asarray(fp["var_cv"]) / var_ref
    # 95 % interval of each ratio: chain (batches of the CV estimator) and reference (IS groups)
    rel_se = np.hypot(np.asarray(fp["var_cv_se"]) / np.asarray(fp["var_cv"]),
                      np.asarray(exp4["var_ref_se"]) / var_ref)
    kmax = int(np.argmax(np.abs(ratio_fp - 1)))
    ratio_plain = np.asarray(fp["var"]) / var_ref
    pred_fp = np.asarray(fp["var_linearised"]) / var_ref
    infl = float(np.mean(np.asarray(sg["var"]) / var_ref))
    infl_lin = float(np.mean(np.asarray(sg["var_linearised"]) / var_ref))
    return {
        "max_dev": float(np.max(np.abs(ratio_fp - 1))), "kmax": kmax,
        "ci_kmax": float(1.96 * ratio_fp[kmax] * rel_se[kmax]),
        "ratio_min": float(ratio_fp.min()), "ratio_max": float(ratio_fp.max()),
        "ratio_mean": float(np.mean(ratio_fp)), "pred_mean": float(np.mean(pred_fp)),
        "pred_max_dev": float(np.max(np.abs(pred_fp - 1))),
        "cv_vs_pred": float(np.max(np.abs(ratio_fp - pred_fp))),
        "plain_max_dev": float(np.max(np.abs(ratio_plain - 1))),
        "infl": infl, "infl_lin": infl_lin,
        "infl_cv": float(np.mean(np.asarray(sg["var_cv"]) / var_ref)),
    }


def _fmt(est: Any, digits: int = 3) -> str:
    return f"{est.mean:.{digits}g} [{est.low:.{digits}g}, {est.high:.{digits}g}]"


def _slope_rows(exps: list[dict[str, Any]], label: str,
                nominal: tuple[str, ...]) -> list[Comparison]:
    """Slope rows of a logistic experiment over seeds: on the whole grid against the closed
    forms' prediction on that grid (paired by seed), and from N = 1e3 on against the nominal
    asymptotic rates."""
    rows: list[Comparison] = []
    first = exps[0]
    for key, what in (("cov", "||C - C_post||_F"), ("mean", "mean error")):
        for meth in first["methods"]:
            ours = [e["slopes"][f"{key}_err"][meth] for e in exps]
            theory = [e["theory"][f"{key}_slopes"][meth] for e in exps]
            rows.append(REFERENCES.row("logistic_slope_gap", estimate(ours, paired_with=theory),
                                       label=label, what=what, method=meth,
                                       target=TARGETS[meth]))
        if "from_1e3" in first["slopes"]:
            for meth in (m for m in first["methods"] if m in nominal):
                vals = [e["slopes"]["from_1e3"][key][meth] for e in exps]
                rows.append(REFERENCES.row(f"logistic_slope_1e3_{meth}", estimate(vals),
                                           label=label, what=what))
    return rows


def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    runs = data["runs"]
    k = len(runs)
    rows: list[Comparison] = []
    exp1s = [r["closed_vs_sim"] for r in runs]
    for i, r0 in enumerate(exp1s[0]["runs"]):
        tag = "with" if r0["replacement"] else "without"
        rows.append(REFERENCES.row("closed_vs_sim",
                                   estimate([e["runs"][i]["rel_fro_cov"] for e in exp1s]),
                                   method=r0["method"], tag=tag))
    rows.append(REFERENCES.row("identity", max(e["identity_rel_err"] for e in exp1s)))
    exp2s = [r["linear_vs_n"] for r in runs]
    for meth in METHODS:
        rows.append(REFERENCES.row(f"linear_slope_{meth}",
                                   estimate([e["slopes"][meth] for e in exp2s])))
    rows.append(REFERENCES.row("linear_mean", max(max(max(v) for v in e["mean_err"].values())
                                                  for e in exp2s)))
    exp3s = [r["logistic_vs_n"] for r in runs]
    nominal = cfg.logistic_vs_n.nominal_rate_methods
    rows += _slope_rows(exp3s, "logistic regression", nominal)
    covs = [r["covertype_vs_n"] for r in runs]
    if all(c is not None for c in covs):
        rows += _slope_rows(covs, "covertype (top-5 eigenvectors)", nominal)
    big = [_big_summary(r["logistic_big"]) for r in runs]
    b0 = runs[0]["logistic_big"]
    size = {"n": b0["n"], "d": b0["d"]}
    max_dev = estimate([b["max_dev"] for b in big])
    if cfg.logistic_big.judge_max_deviation:
        rows.append(REFERENCES.row("big_var", max_dev, **size))
    rows.append(REFERENCES.row("big_mean", estimate([r["logistic_big"]["sgldfp"][
        "mean_rel_err_cv"] for r in runs]), **size))
    rows.append(REFERENCES.row("big_sgld_inflation",
                               estimate([b["infl"] / b["infl_lin"] - 1 for b in big]), **size))
    rows.append(REFERENCES.row("big_sgldfp_ratio",
                               estimate([b["ratio_mean"] / b["pred_mean"] - 1 for b in big]),
                               **size))

    e3 = exp3s[0]
    notes = [
        "The paper's figures are log-log plots of covertype errors; their values were not "
        "recovered, so the rows compare with the asymptotic rates the paper states and with "
        "closed forms.",
        f"Seeds: every row is the mean over {k} seeds (base seeds {data['seeds']}: new data and "
        "new chains for each) with its 95 % t interval, which must satisfy the check as a "
        "whole; rows against the closed forms on the same data are paired by seed. The two "
        "exact identities report their worst seed. Threads: the C kernel of the chains is "
        "single-threaded with a fixed order of sums; NumPy's BLAS products (full gradients, "
        "importance sampling, the estimators) split their sums by thread, so the digits "
        "depend on the thread count, which the profile fixes.",
        f"Logistic vs N: N in {e3['ns']}, p = {e3['batch_size']}, gamma = 1/(2N), "
        f"steps per chain {e3['n_steps']} (started at the mode; LMC, a full gradient per "
        "step, only in the full profile).",
        "Logistic vs N, estimators: the chains' invariant mean and covariance are estimated "
        "with control variates (neurips18.sgmcmc.control_variate_mean / control_variate_cov: "
        "E_{pi_gamma}[grad U] = 0 and the second-moment identity hold exactly for all four "
        "chains; the mean with the second-order term from the third derivative of U at the "
        "mode, so corrected draws scatter by O(N^-3/2)), with the full gradient on "
        f"{e3['n_cv']} thinned draws; this removes the O(N^-1/2) Monte Carlo spread that hid "
        "the O(1/N) biases. Plain chain averages give slopes (mean over seeds): mean "
        f"{_mean_slopes(exp3s, 'mean_err_plain')}, covariance "
        f"{_mean_slopes(exp3s, 'cov_err_plain')}.",
        "Logistic vs N, reference (seed 0): covariance by importance sampling from the "
        f"Laplace fit (ESS {[round(v) for v in e3['ref_ess']]}, standard error ||.||_F "
        f"{[float(f'{v:.2g}') for v in e3['ref_cov_se']]}); mean by "
        f"{e3['ref_mean_source']} (importance sampling SE "
        f"{[float(f'{v:.2g}') for v in e3['ref_mean_se']]}; |IS - expansion| "
        f"{[float(f'{v:.2g}') for v in e3['ref_is_vs_expansion']]}); smallest mean errors "
        f"plotted: { {m: float(f'{min(v):.2g}') for m, v in e3['mean_err'].items()} }, "
        "their standard errors "
        f"{ {m: float(f'{max(v):.2g}') for m, v in e3['mean_se'].items()} } (max over N).",
        _big_note(big, runs, cfg, max_dev),
        "Logistic vs N, why the whole-grid slopes are compared with the closed forms: the "
        "nominal rates (-1 for LMC and SGLDFP, 0 for SGLD and SGD) are asymptotic. The "
        "closed forms on this very grid predict covariance slopes "
        f"{_mean_slopes(exp3s, 'cov_slopes', 'theory')} and mean slopes "
        f"{_mean_slopes(exp3s, 'mean_slopes', 'theory')} (means over seeds): for SGD at "
        "N = 1e2 (p/N = 1/2) the chain's own spread, about gamma N / (2 p) = 1/(4p), is far "
        "below the posterior's, so its error there is that of a point mass and falls until "
        "the two spreads cross near N ~ 1e3; no correct sampler can give a whole-grid SGD "
        "slope within 0.15 of 0 here. The nominal rates are checked from N = 1e3 on (the "
        "paper's covertype range), where the asymptotic regime holds.",
    ]
    unjudged = [m for m in e3["methods"] if m not in nominal]
    if unjudged and "from_1e3" in e3["slopes"]:
        ns = e3["ns"]
        sub = [i for i, n in enumerate(ns) if n >= 1000]
        parts = []
        for m in unjudged:
            for key, what in (("cov", "covariance"), ("mean", "mean")):
                sim = estimate([e["slopes"]["from_1e3"][key][m] for e in exp3s])
                th = estimate([_slope([ns[i] for i in sub],
                                      [e["theory"][f"{key}_err"][m][i] for i in sub])
                               for e in exp3s])
                parts.append(f"{m} {what} {_fmt(sim)} (closed forms {_fmt(th)})")
        notes.append(
            f"Not judged in this profile: the slopes from N = 1e3 on against the nominal rate "
            f"for {', '.join(unjudged)}, on a grid ending at N = {max(ns):g}: "
            + "; ".join(parts) + ". The closed forms on the same data give the same values, "
            "far from the asymptotic 0: SGD's spread crosses the posterior's near N = 1e3, and "
            "the rate needs the grid to reach 1e6 (full profile).")
    if not all(math.isfinite(r.ours) for r in rows if r.ours is not None):
        notes.append("some measured values are not finite")
    return Judgement(rows, notes)


def _mean_slopes(exps: list[dict[str, Any]], key: str, where: str = "slopes") -> dict:
    methods = exps[0]["methods"]
    return {m: round(sum(e[where][key][m] for e in exps) / len(exps), 3) for m in methods}


def _big_note(big: list[dict[str, Any]], runs: list[dict[str, Any]], cfg: Config,
              max_dev: Any) -> str:
    b0, fp0 = runs[0]["logistic_big"], runs[0]["logistic_big"]["sgldfp"]
    est = {key: estimate([b[key] for b in big]) for key in
           ("ratio_mean", "pred_mean", "pred_max_dev", "cv_vs_pred", "plain_max_dev", "infl",
            "infl_lin", "infl_cv")}
    judged = ("judged above" if cfg.logistic_big.judge_max_deviation else
              "not judged in this profile: the linearised closed form puts the discretisation "
              "bias alone near 0.04 of the 0.05 tolerance, a claim for the long chains of the "
              "full profile")
    return (
        f"N={b0['n']:g} d={b0['d']}: SGLDFP var / reference, mean over coordinates "
        f"{_fmt(est['ratio_mean'], 4)} by the control-variate estimator ({fp0['n_cv']} thinned "
        f"draws of {fp0['steps']} steps per seed); the linearised closed form predicts "
        f"{_fmt(est['pred_mean'], 4)} and a largest deviation {_fmt(est['pred_max_dev'], 3)} "
        "(the O(gamma) discretisation bias, shared with LMC); largest |CV - linearised| "
        f"{_fmt(est['cv_vs_pred'], 3)}. Largest deviation max_k |var_k / var_ref,k - 1|: "
        f"{_fmt(max_dev, 3)} ({judged}; seed 0: coordinate {big[0]['kmax']}, "
        f"{big[0]['max_dev']:.4f} +- {big[0]['ci_kmax']:.4f} within the seed); from the plain "
        f"chain variances {_fmt(est['plain_max_dev'], 3)}, the excess over the CV estimate "
        "being Monte Carlo error. SGLD's variances are "
        f"{_fmt(est['infl'], 3)} x the posterior's (linearised prediction "
        f"{_fmt(est['infl_lin'], 3)}; control-variate estimate {_fmt(est['infl_cv'], 3)}).")


def plot(data: dict[str, Any], fig: Any) -> None:
    import numpy as np

    runs = data["runs"]
    axes = fig.subplots(2, 3)
    ax = axes[0, 0]
    for i, r in enumerate(runs):
        lin = r["linear_vs_n"]
        for m in METHODS:
            ax.loglog(lin["ns"], lin["cov_err"][m], "o-", color=COLORS[m], ms=3, lw=0.8,
                      alpha=0.6, label=m.upper() if i == 0 else None)
    ax.set(title=f"Linear regression (closed forms), {len(runs)} seeds", xlabel="N",
           ylabel="||C - C_post||_F")
    ax.legend(fontsize=7)
    for ax, key, lab, what in ((axes[0, 1], "mean_err", "||mean - mean_post||", "mean"),
                               (axes[0, 2], "cov_err", "||C - C_post||_F", "covariance")):
        for i, r in enumerate(runs):
            lg = r["logistic_vs_n"]
            for m in lg["methods"]:
                ax.loglog(lg["ns"], lg[key][m], "o", color=COLORS[m], ms=3, alpha=0.6,
                          label=m.upper() if i == 0 else None)
        lg0 = runs[0]["logistic_vs_n"]
        for m in lg0["methods"]:  # the mean over seeds of the log errors, and the theory
            mean = np.mean([np.log10(r["logistic_vs_n"][key][m]) for r in runs], axis=0)
            ax.loglog(lg0["ns"], 10 ** mean, "-", color=COLORS[m], lw=1)
            th = np.mean([np.log10(r["logistic_vs_n"]["theory"][key][m]) for r in runs], axis=0)
            ax.loglog(lg0["ns"], 10 ** th, "--", color="k", lw=0.8, zorder=3,
                      label="closed forms" if m == lg0["methods"][0] else None)
        ax.set(title=f"Logistic, d={lg0['d']}: error of the {what} (points: seeds)",
               xlabel="N", ylabel=lab)
        ax.legend(fontsize=6, ncol=2, loc="lower left")
    ax = axes[1, 0]
    cases = runs[0]["closed_vs_sim"]["runs"]
    for j, c in enumerate(cases):
        vals = [r["closed_vs_sim"]["runs"][j]["rel_fro_cov"] for r in runs]
        ax.plot([j] * len(vals), vals, "o", color=COLORS[c["method"]], ms=4, alpha=0.7)
        est = estimate(vals)
        ax.errorbar([j + 0.25], [est.mean], yerr=[[est.mean - est.low], [est.high - est.mean]],
                    fmt="s", color="k", ms=3, capsize=2)
    ax.axhline(0.01, color="r", lw=0.8, ls="--")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([c["method"] + ("" if c["replacement"] else "\n(w/o)") for c in cases],
                       fontsize=7)
    ax.set(title="Simulated vs closed-form cov. (seeds; mean, 95 %)",
           ylabel="rel. Frobenius error")
    ax = axes[1, 1]
    for i, r in enumerate(runs):
        big = r["logistic_big"]
        v = np.asarray(big["var_ref"])
        kk = np.arange(len(v)) + (i - (len(runs) - 1) / 2) * 0.08
        for m, mk in (("sgldfp", "o"), ("sgld", "s")):
            ax.semilogy(kk, np.asarray(big[m]["var_cv"]) / v, mk, color=COLORS[m], ms=2.5,
                        alpha=0.7, label=f"{m} (seeds)" if i == 0 else None)
            ax.semilogy(kk, np.asarray(big[m]["var_linearised"]) / v, "_", color="k", ms=5)
    ax.axhline(1.0, color="gray", lw=0.8)
    b0 = runs[0]["logistic_big"]
    ax.set(title=f"Logistic N={b0['n']:g}, d={b0['d']}: var / posterior var",
           xlabel="coordinate", ylabel="ratio (bars: linearised)")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    lg0 = runs[0]["logistic_vs_n"]
    labels = []
    for j, (key, m) in enumerate((k, m) for k in ("cov", "mean") for m in lg0["methods"]):
        gaps = [r["logistic_vs_n"]["slopes"][f"{key}_err"][m]
                - r["logistic_vs_n"]["theory"][f"{key}_slopes"][m] for r in runs]
        ax.plot([j] * len(gaps), gaps, "o", color=COLORS[m], ms=4, alpha=0.7)
        est = estimate(gaps)
        ax.errorbar([j + 0.25], [est.mean], yerr=[[est.mean - est.low], [est.high - est.mean]],
                    fmt="s", color="k", ms=3, capsize=2)
        labels.append(f"{key}\n{m}")
    for y0 in (-0.15, 0.15):
        ax.axhline(y0, color="r", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=6)
    ax.set(title="Logistic slope - closed-form slope (seeds; mean, 95 %)", ylabel="gap")
    fig.set_size_inches(15, 8.5)
    fig.tight_layout()


def _needs_covertype() -> None:
    from neurips18.datasets import load_covertype

    load_covertype(download=False)


REPRODUCTION = Reproduction(
    name="sgld",
    title="The promises and pitfalls of Stochastic Gradient Langevin Dynamics",
    citation=CITATION,
    capability="sgmcmc",
    profiles=PROFILES,
    references=REFERENCES,
    run=run,
    judge=judge,
    plot=plot,
    needs={"covertype": _needs_covertype},
    description="Closed-form invariant laws of LMC, SGLD, SGLDFP and SGD vs simulation; "
                "errors vs N on linear and logistic regression.",
)
