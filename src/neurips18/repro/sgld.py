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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from neurips18.repro.core import (
    MEASURED,
    Comparison,
    Judgement,
    Profile,
    Reference,
    References,
    Reproduction,
    RunContext,
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


@dataclass(frozen=True)
class LogisticBig:
    n: int
    d: int
    batch_size: int
    n_steps: int
    n_steps_sgld: int
    ref_samples: int
    n_cv: int


@dataclass(frozen=True)
class Config(Profile):
    closed_vs_sim: ClosedVsSim
    linear_vs_n: LinearVsN
    logistic_vs_n: LogisticVsN
    logistic_big: LogisticBig

    def check(self) -> None:
        bad = set(self.logistic_vs_n.methods) - set(METHODS)
        if bad:
            raise ValueError(f"logistic_vs_n.methods must be among {METHODS}, got {sorted(bad)}")
        for name, ns in (("linear_vs_n", self.linear_vs_n.ns),
                         ("logistic_vs_n", self.logistic_vs_n.ns)):
            if len(ns) < 2 or list(ns) != sorted(set(ns)):
                raise ValueError(f"{name}.ns must be at least two increasing sizes, got {ns}")


PROFILES = {
    "smoke": Config(
        closed_vs_sim=ClosedVsSim(n=200, d=2, batch_size=10, eta=0.5, n_steps=20_000,
                                  without_replacement=True),
        linear_vs_n=LinearVsN(ns=(1000, 10_000, 100_000), d=2, batch_size=10),
        logistic_vs_n=LogisticVsN(ns=(300, 3000), d=2, batch_size=10, methods=METHODS,
                                  n_steps=3000, steps_per_n=0, max_steps=0, lmc_budget=1e7,
                                  ref_budget=1e6, ref_max=50_000, cv_budget=1e8, cv_max=20_000,
                                  expansion_from=1e4),
        logistic_big=LogisticBig(n=2000, d=3, batch_size=20, n_steps=3000, n_steps_sgld=3000,
                                 ref_samples=500, n_cv=5000),
    ),
    "quick": Config(
        closed_vs_sim=ClosedVsSim(n=1000, d=2, batch_size=10, eta=0.5, n_steps=300_000,
                                  without_replacement=False),
        linear_vs_n=LinearVsN(ns=(100, 1000, 10_000, 100_000, 1_000_000), d=5, batch_size=50),
        logistic_vs_n=LogisticVsN(ns=(100, 1000, 10_000, 100_000, 1_000_000), d=5,
                                  batch_size=50, methods=("sgld", "sgldfp", "sgd"),
                                  n_steps=50_000, steps_per_n=0, max_steps=0, lmc_budget=0,
                                  ref_budget=1e8, ref_max=50_000, cv_budget=1e8, cv_max=2000,
                                  expansion_from=1e4),
        logistic_big=LogisticBig(n=100_000, d=20, batch_size=50, n_steps=100_000,
                                 n_steps_sgld=50_000, ref_samples=1000, n_cv=1000),
    ),
    "full": Config(
        closed_vs_sim=ClosedVsSim(n=1000, d=2, batch_size=10, eta=0.5, n_steps=2_000_000,
                                  without_replacement=True),
        linear_vs_n=LinearVsN(ns=(100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000,
                                  1_000_000), d=5, batch_size=50),
        logistic_vs_n=LogisticVsN(ns=(100, 1000, 10_000, 100_000, 1_000_000), d=5,
                                  batch_size=50, methods=METHODS, n_steps=1_000_000,
                                  steps_per_n=100, max_steps=5_000_000, lmc_budget=1e10,
                                  ref_budget=2e9, ref_max=400_000, cv_budget=2e9,
                                  cv_max=20_000, expansion_from=1e4),
        logistic_big=LogisticBig(n=100_000, d=20, batch_size=50, n_steps=1_000_000,
                                 n_steps_sgld=1_000_000, ref_samples=10_000, n_cv=5000),
    ),
}

# --------------------------------------------------------------------------- references
_CF = "closed form (neurips18.sgmcmc.invariant_moments) vs simulation; issue target"
_THEORY = ("closed forms on the same N grid (model linearised at the mode, mean to second "
           "order); nominal target {target:g}")
REFERENCES = References(
    Reference("closed_vs_sim", "rel. Frobenius error, simulated vs closed-form covariance, "
              "{method} ({tag} replacement)", 0.0, source=_CF, tol=0.01, mode="max"),
    Reference("identity", "max |C_SGLD - C_SGLDFP - C_SGD| / max |C_SGLD|", 0.0,
              source="closed forms: C_SGLD = C_SGLDFP + C_SGD exactly", tol=1e-10,
              mode="max"),
    *(Reference(f"linear_slope_{m}",
                f"linear regression: log-log slope of ||C - C_post||_F vs N, {m}", TARGETS[m],
                source="asymptotic rate (paper: Sec. 3, Fig. 5)", tol=0.15)
      for m in METHODS),
    Reference("linear_mean", "linear regression: max ||mean - posterior mean|| over N and "
              "methods", 0.0, source="closed form: the invariant mean is theta* for all four",
              tol=1e-8, mode="max"),
    Reference("logistic_slope", "{label}: log-log slope of {what} vs N, {method}", MEASURED,
              source=_THEORY, tol=0.15),
    *(Reference(f"logistic_slope_1e3_{m}",
                "{label}, N >= 1e3: log-log slope of {what} vs N, " + m, TARGETS[m],
                source="asymptotic rate (paper: Figs. 1-3, covertype N from 1e3)", tol=0.15)
      for m in METHODS),
    Reference("big_var", "logistic N=1e5 d=20: max_k |var_SGLDFP,k / var_ref,k - 1| "
              "(control-variate estimate of the chain's variances)", 0.0,
              source="issue target; reference: Laplace-proposal importance sampling",
              tol=0.05, mode="max"),
    Reference("big_mean", "logistic N=1e5 d=20: ||mean_SGLDFP - mean_ref|| / ||mean_ref|| "
              "(control-variate estimate)", 0.0, source="issue target", tol=0.005, mode="max"),
    Reference("big_sgld_inflation", "logistic N=1e5 d=20: SGLD variance inflation (mean over "
              "coords)", MEASURED, source="closed form on the model linearised at the mode",
              tol=0.10, mode="rel"),
    Reference("big_sgldfp_ratio", "logistic N=1e5 d=20: SGLDFP variance ratio (mean over "
              "coords)", MEASURED, source="closed form on the model linearised at the mode",
              tol=0.05, mode="rel"),
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
        res = sample(m, meth, gamma, p, cfg.n_steps, replacement=repl,
                     generator=np.random.default_rng(seed + 100 + k))
        Ce = res.cov()
        out["runs"].append({
            "method": meth, "replacement": repl,
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


def run(ctx: RunContext) -> dict[str, Any]:
    from functools import partial

    from neurips18.datasets.synthetic import make_bayesian_logistic_regression

    cfg: Config = ctx.config
    seed = ctx.seed
    exp1 = ctx.cached("closed-vs-sim", partial(_closed_vs_sim, cfg.closed_vs_sim, seed))
    exp2 = ctx.cached("linear-vs-N", partial(_linear_vs_n, cfg.linear_vs_n, seed + 1))
    lg = cfg.logistic_vs_n
    X, y = make_bayesian_logistic_regression(max(lg.ns), lg.d, generator=seed + 2)
    exp3 = _logistic_vs_n(ctx, lg, X, y, lg.ns, seed, "logistic")
    exp4 = ctx.cached("logistic-1e5-cv", partial(_logistic_big, cfg.logistic_big, seed))
    cov = None
    if ctx.has("covertype"):
        import numpy as np

        from neurips18.datasets import load_covertype

        ds = load_covertype(download=False)
        # shuffle once, then the first N rows for each N (and all of them last)
        perm = np.random.default_rng(seed + 2).permutation(len(ds.y))
        Xc, yc = ds.X[perm], ds.y[perm]
        ns = [n for n in lg.ns if n < len(yc)] + [len(yc)]
        cov = _logistic_vs_n(ctx, lg, Xc, yc, ns, seed, "covertype")
    for exp in (exp3, cov):
        if exp is not None:
            exp["slopes"] = _slopes(exp)
    return {"closed_vs_sim": exp1, "linear_vs_n": exp2, "logistic_vs_n": exp3,
            "logistic_big": exp4, "covertype_vs_n": cov}


def _slope_rows(exp: dict[str, Any], label: str) -> list[Comparison]:
    """Slope rows of a logistic experiment: on the whole grid against the closed forms'
    prediction on that grid, and from N = 1e3 on against the nominal targets."""
    rows: list[Comparison] = []
    th, sl = exp["theory"], exp["slopes"]
    for key, what in (("cov", "||C - C_post||_F"), ("mean", "mean error")):
        for meth in exp["methods"]:
            rows.append(REFERENCES.row("logistic_slope", sl[f"{key}_err"][meth],
                                       ref=th[f"{key}_slopes"][meth], label=label, what=what,
                                       method=meth, target=TARGETS[meth]))
        if "from_1e3" in sl:
            for meth in exp["methods"]:
                rows.append(REFERENCES.row(f"logistic_slope_1e3_{meth}",
                                           sl["from_1e3"][key][meth], label=label, what=what))
    return rows


def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    import numpy as np

    exp1, exp2, exp3 = data["closed_vs_sim"], data["linear_vs_n"], data["logistic_vs_n"]
    exp4, cov = data["logistic_big"], data["covertype_vs_n"]
    rows: list[Comparison] = []
    for r in exp1["runs"]:
        tag = "with" if r["replacement"] else "without"
        rows.append(REFERENCES.row("closed_vs_sim", r["rel_fro_cov"], method=r["method"],
                                   tag=tag))
    rows.append(REFERENCES.row("identity", exp1["identity_rel_err"]))
    for meth in METHODS:
        rows.append(REFERENCES.row(f"linear_slope_{meth}", exp2["slopes"][meth]))
    rows.append(REFERENCES.row("linear_mean",
                               max(max(v) for v in exp2["mean_err"].values())))
    rows += _slope_rows(exp3, "logistic regression")
    if cov is not None:
        rows += _slope_rows(cov, "covertype (top-5 eigenvectors)")
    var_ref = np.asarray(exp4["var_ref"])
    fp = exp4["sgldfp"]
    ratio_fp = np.asarray(fp["var_cv"]) / var_ref
    # 95 % interval of each ratio: chain (batches of the CV estimator) and reference (IS groups)
    rel_se = np.hypot(np.asarray(fp["var_cv_se"]) / np.asarray(fp["var_cv"]),
                      np.asarray(exp4["var_ref_se"]) / var_ref)
    kmax = int(np.argmax(np.abs(ratio_fp - 1)))
    ci = 1.96 * ratio_fp[kmax] * rel_se[kmax]
    ratio_plain = np.asarray(fp["var"]) / var_ref
    rel_se_plain = np.hypot(np.asarray(fp["var_se"]) / np.asarray(fp["var"]),
                            np.asarray(exp4["var_ref_se"]) / var_ref)
    kp = int(np.argmax(np.abs(ratio_plain - 1)))
    ci_plain = 1.96 * ratio_plain[kp] * rel_se_plain[kp]
    rows.append(REFERENCES.row("big_var", float(np.max(np.abs(ratio_fp - 1))),
                               note=f"95% CI +-{ci:.4f} (coordinate {kmax})"))
    rows.append(REFERENCES.row("big_mean", fp["mean_rel_err_cv"]))
    pred_fp = np.asarray(fp["var_linearised"]) / var_ref
    infl = float(np.mean(np.asarray(exp4["sgld"]["var"]) / var_ref))
    infl_lin = float(np.mean(np.asarray(exp4["sgld"]["var_linearised"]) / var_ref))
    rows.append(REFERENCES.row("big_sgld_inflation", infl, ref=infl_lin))
    fp_lin = float(np.mean(np.asarray(fp["var_linearised"]) / var_ref))
    rows.append(REFERENCES.row("big_sgldfp_ratio", float(np.mean(ratio_fp)), ref=fp_lin))
    sl = exp3["slopes"]
    notes = [
        "The paper's figures are log-log plots of covertype errors; their values were not "
        "recovered, so the rows compare with the asymptotic rates the paper states and with "
        "closed forms.",
        f"Logistic vs N: N in {exp3['ns']}, p = {exp3['batch_size']}, gamma = 1/(2N), "
        f"steps per chain {exp3['n_steps']} (started at the mode; LMC, a full gradient per "
        "step, only in the full profile).",
        "Logistic vs N, estimators: the chains' invariant mean and covariance are estimated "
        "with control variates (neurips18.sgmcmc.control_variate_mean / control_variate_cov: "
        "E_{pi_gamma}[grad U] = 0 and the second-moment identity hold exactly for all four "
        "chains; the mean with the second-order term from the third derivative of U at the "
        "mode, so corrected draws scatter by O(N^-3/2)), with the full gradient on "
        f"{exp3['n_cv']} thinned draws; this removes the O(N^-1/2) Monte Carlo spread that hid "
        "the O(1/N) biases. Plain chain averages give slopes: mean "
        f"{ {m: round(v, 2) for m, v in sl['mean_err_plain'].items()} }, covariance "
        f"{ {m: round(v, 2) for m, v in sl['cov_err_plain'].items()} }.",
        "Logistic vs N, reference: covariance by importance sampling from the Laplace fit "
        f"(ESS {[round(e) for e in exp3['ref_ess']]}, standard error ||.||_F "
        f"{[float(f'{v:.2g}') for v in exp3['ref_cov_se']]}); mean by "
        f"{exp3['ref_mean_source']} (importance sampling SE "
        f"{[float(f'{v:.2g}') for v in exp3['ref_mean_se']]}; |IS - expansion| "
        f"{[float(f'{v:.2g}') for v in exp3['ref_is_vs_expansion']]}); smallest mean errors "
        f"plotted: { {m: float(f'{min(v):.2g}') for m, v in exp3['mean_err'].items()} }, "
        "their standard errors "
        f"{ {m: float(f'{max(v):.2g}') for m, v in exp3['mean_se'].items()} } (max over N).",
        f"N=1e5 d=20: SGLDFP var / reference per coordinate in [{ratio_fp.min():.4f}, "
        f"{ratio_fp.max():.4f}] by the control-variate estimator ({fp['n_cv']} thinned draws "
        f"of {fp['steps']} steps; max deviation {abs(ratio_fp[kmax] - 1):.4f} +- {ci:.4f} "
        "(95 %)); the linearised closed form predicts "
        f"{fp_lin:.4f} on average and a deviation up to {np.max(np.abs(pred_fp - 1)):.4f} "
        "(the O(gamma) discretisation bias, shared with LMC); largest |CV - linearised| "
        f"{np.max(np.abs(ratio_fp - pred_fp)):.4f}. The plain chain variances give max "
        f"deviation {abs(ratio_plain[kp] - 1):.4f} +- {ci_plain:.4f} (95 %, batch means): "
        "its excess over the CV estimate is Monte Carlo error. Plain mean "
        f"error {fp['mean_rel_err']:.2e}. SGLD's variances are "
        f"{infl:.1f}x the posterior's (linearised prediction {infl_lin:.1f}x; control-variate "
        f"estimate {np.mean(np.asarray(exp4['sgld']['var_cv']) / var_ref):.1f}x).",
    ]
    th = exp3["theory"]
    notes.append(
        "Logistic vs N, why the whole-grid slopes are compared with the closed forms: the "
        "nominal targets (-1 for LMC and SGLDFP, 0 for SGLD and SGD) are the "
        "asymptotic rates. The closed forms on this very grid predict covariance slopes "
        f"{ {m: round(v, 3) for m, v in th['cov_slopes'].items()} } and mean slopes "
        f"{ {m: round(v, 3) for m, v in th['mean_slopes'].items()} }: for SGD at N = 1e2 "
        "(p/N = 1/2) the chain's own spread, about gamma N / (2 p) = 1/(4p), is far below the "
        "posterior's, so its error there is that of a point mass and falls until the two "
        "spreads cross near N ~ 1e3; no correct sampler can give a whole-grid SGD slope within "
        "0.15 of 0 here. The nominal targets are checked from N = 1e3 on (the paper's covertype "
        "range), where the asymptotic regime holds.")
    if not all(math.isfinite(r.ours) for r in rows if r.ours is not None):
        notes.append("some measured values are not finite")
    return Judgement(rows, notes)


def plot(data: dict[str, Any], fig: Any) -> None:
    import numpy as np

    axes = fig.subplots(2, 2)
    lin, lg, big = data["linear_vs_n"], data["logistic_vs_n"], data["logistic_big"]
    ax = axes[0, 0]
    for m in METHODS:
        ax.loglog(lin["ns"], lin["cov_err"][m], "o-", color=COLORS[m], label=m.upper())
    ax.set(title="Linear regression (closed forms)", xlabel="N", ylabel="||C - C_post||_F")
    ax.legend(fontsize=7)
    for ax, key, lab, what in ((axes[0, 1], "mean_err", "||mean - mean_post||", "mean"),
                               (axes[1, 0], "cov_err", "||C - C_post||_F", "covariance")):
        for m in lg["methods"]:
            ax.loglog(lg["ns"], lg[key][m], "o-", color=COLORS[m], label=m.upper())
            ax.loglog(lg["ns"], lg[key + "_plain"][m], ":", color=COLORS[m], alpha=0.5,
                      label="plain averages" if m == lg["methods"][0] else None)
            ax.loglog(lg["theory"]["ns"], lg["theory"][key][m], "--", color="k", lw=0.8,
                      zorder=3, label="closed forms" if m == lg["methods"][0] else None)
        ax.set(title=f"Logistic regression, d={lg['d']}: error of the {what}",
               xlabel="N", ylabel=lab)
        ax.legend(fontsize=6, ncol=2, loc="lower left")
    ax = axes[1, 1]
    v = np.asarray(big["var_ref"])
    k = np.arange(len(v))
    for m, mk in (("sgldfp", "o"), ("sgld", "s")):
        ax.semilogy(k, np.asarray(big[m]["var_cv"]) / v, mk, color=COLORS[m],
                    label=f"{m} (sim.)")
        ax.semilogy(k, np.asarray(big[m]["var_linearised"]) / v, "_", color="k", ms=10)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set(title=f"Logistic N={big['n']}, d={big['d']}: var / posterior var",
           xlabel="coordinate", ylabel="ratio (bars: linearised)")
    ax.legend(fontsize=7)
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
