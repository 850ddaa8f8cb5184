"""Reproduction: what SGLD, SGLDFP, LMC and SGD really sample (Brosse et al. 2018).

Four experiments, each a cached step:

1. ``closed-vs-sim``: on Bayesian linear regression (d = 2, N = 1000, p = 10,
   gamma = 0.5 / N) the closed-form invariant covariances of the four methods against long
   simulated chains (relative Frobenius error <= 1 %), and C_SGLD = C_SGLDFP + C_SGD.
2. ``linear-vs-N``: the error of the invariant covariance (Frobenius distance to the posterior
   covariance) against N in 1e2..1e6, gamma = 1/(2N), p = 50, exactly from the closed forms;
   log-log slopes (issue target: about -1 for LMC and SGLDFP, about 0 for SGLD and SGD).
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
   from N = 1e3 on with the issue's nominal asymptotic targets: at N = 1e2 with p = 50, SGD's
   spread (about 1/(4p)) is far below the posterior's, so its error is not yet in the
   asymptotic regime and its whole-grid slope is about -0.2 by the closed forms themselves.
4. ``logistic-1e5``: N = 1e5, d = 20: SGLDFP's per-coordinate variances and mean (control
   variate estimates, with 95 % intervals) against the reference, and SGLD's variance
   inflation against the prediction of the closed forms applied to the model linearised at
   the mode.

The paper's figures (arXiv:1811.10072, Figs. 1-3: errors vs N on covertype) are log-log plots
whose values the search tools cannot read, so the rows compare with the issue's targets and
with closed forms; the paper's qualitative claims are what those targets encode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from neurips18.repro.core import Comparison, Outcome, Reproduction, RunContext, compare

METHODS = ("lmc", "sgld", "sgldfp", "sgd")
COLORS = {"lmc": "tab:blue", "sgld": "tab:red", "sgldfp": "tab:green", "sgd": "tab:orange"}


def _slope(ns: Sequence[float], errs: Sequence[float]) -> float:
    import numpy as np

    x, y = np.log10(np.asarray(ns, float)), np.log10(np.asarray(errs, float))
    return float(np.polyfit(x, y, 1)[0])


def _linear_data(n: int, d: int, seed: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    theta = rng.standard_normal(d)
    return X, X @ theta + rng.standard_normal(n)


def _logistic_data(n: int, d: int, seed: int) -> tuple[Any, Any]:
    """Standardised Gaussian features, theta_true ~ N(0, I_d), Bernoulli labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    theta = rng.standard_normal(d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-X @ theta))).astype(float)
    return X, y


# --------------------------------------------------------------------------- experiment 1


def _closed_vs_sim(ctx: RunContext) -> dict[str, Any]:
    import numpy as np

    from neurips18.sgmcmc import BayesianLinearRegression, invariant_moments, sample

    cfg = ctx.config["closed_vs_sim"]
    n, d, p, eta = cfg["n"], cfg["d"], cfg["batch_size"], cfg["eta"]
    X, y = _linear_data(n, d, ctx.seed)
    m = BayesianLinearRegression(X, y, 1.0)
    gamma = eta / n
    out: dict[str, Any] = {"n": n, "d": d, "batch_size": p, "step_size": gamma, "runs": []}
    cases = [(meth, True) for meth in METHODS]
    if cfg.get("without_replacement", False):
        cases += [(meth, False) for meth in ("sgld", "sgldfp", "sgd")]
    for k, (meth, repl) in enumerate(ctx.progress(cases, desc="closed form vs simulation")):
        mean, C = invariant_moments(m, meth, gamma, p, repl)
        res = sample(m, meth, gamma, p, cfg["n_steps"], replacement=repl,
                     generator=np.random.default_rng(ctx.seed + 100 + k))
        Ce = res.cov()
        out["runs"].append({
            "method": meth, "replacement": repl,
            "rel_fro_cov": float(np.linalg.norm(Ce - C) / np.linalg.norm(C)),
            "mean_err_in_sd": float(np.max(np.abs(res.mean() - mean) / np.sqrt(np.diag(C)))),
            "steps_per_s": res.diagnostics["steps_per_s"],
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


def _linear_vs_n(ctx: RunContext) -> dict[str, Any]:
    import numpy as np

    from neurips18.sgmcmc import (
        BayesianLinearRegression,
        invariant_moments,
        posterior_moments,
        wasserstein2_gaussian,
    )

    cfg = ctx.config["linear_vs_n"]
    ns, d, p = [int(v) for v in cfg["ns"]], cfg["d"], cfg["batch_size"]
    X, y = _linear_data(max(ns), d, ctx.seed + 1)
    out: dict[str, Any] = {"ns": ns, "d": d, "batch_size": p,
                           "cov_err": {m: [] for m in METHODS},
                           "mean_err": {m: [] for m in METHODS},
                           "w2": {m: [] for m in METHODS}}
    for n in ctx.progress(ns, desc="linear regression vs N (closed forms)"):
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


def _logistic_vs_n(ctx: RunContext, data: tuple[Any, Any] | None = None,
                   prefix: str = "logistic") -> dict[str, Any]:
    import numpy as np

    from neurips18.sgmcmc import BayesianLogisticRegression, find_mode, sample

    cfg = ctx.config["logistic_vs_n"]
    ns, d, p = [int(v) for v in cfg["ns"]], cfg["d"], cfg["batch_size"]
    if data is None:
        X, y = _logistic_data(max(ns), d, ctx.seed + 2)
    else:  # a real data set: shuffle once, then the first N rows for each N
        X, y = data
        perm = np.random.default_rng(ctx.seed + 2).permutation(len(y))
        X, y = X[perm], y[perm]
        ns = [n for n in ns if n < len(y)] + [len(y)]
        d = X.shape[1]
    methods = tuple(cfg["methods"])
    keys = ("cov_err", "mean_err", "cov_err_plain", "mean_err_plain", "mean_se")
    out: dict[str, Any] = {"ns": ns, "d": d, "batch_size": p, "n_steps": {}, "n_cv": {},
                           "methods": list(methods), "ref_ess": [], "ref_mean_se": [],
                           "ref_cov_se": [], "ref_mean_source": [], "ref_is_vs_expansion": [],
                           **{k: {m: [] for m in methods} for k in keys}}
    for i, n in enumerate(ns):
        def one(n: int = n, i: int = i) -> dict[str, Any]:
            from neurips18.sgmcmc import posterior_mean_expansion

            model = BayesianLogisticRegression(X[:n], y[:n], 1.0)
            ts = find_mode(model, rtol=1e-12)
            ref = _reference(model, ctx.seed + 10 + i, cfg["ref_budget"], 200,
                             cfg.get("ref_max", 50_000), cfg.get("expansion_from", 1e4))
            exp_mean = posterior_mean_expansion(model)
            row: dict[str, Any] = {
                "ref_ess": ref["ess"], "ref_n": ref["n_samples"],
                "ref_mean_se": float(np.linalg.norm(ref["mean_se"])),
                "ref_cov_se": float(np.linalg.norm(ref["cov_se"])),
                "ref_mean_source": ref["mean_source"],
                "ref_is_vs_expansion": float(np.linalg.norm(ref["mean_is"] - exp_mean)),
            }
            gamma = 1.0 / (2 * n)
            for j, meth in enumerate(methods):
                steps = int(max(cfg["n_steps"],
                                min(cfg["steps_per_n"] * n, cfg.get("max_steps", 0))))
                if meth == "lmc":  # a full gradient per step: cap the data passes
                    steps = int(min(steps, cfg["lmc_budget"] / n))
                res = sample(model, meth, gamma, p, steps, theta_star=ts,
                             generator=np.random.default_rng(ctx.seed + 1000 * i + j))
                n_cv = int(min(cfg.get("cv_max", 20_000), cfg.get("cv_budget", 1e8) / n))
                cv = _cv_estimates(model, meth, res, ts, gamma, p, n_cv)
                row[meth] = {
                    "cov_err": float(np.linalg.norm(cv["cov"] - ref["cov"])),
                    "mean_err": float(np.linalg.norm(cv["mean"] - ref["mean"])),
                    "cov_err_plain": float(np.linalg.norm(res.cov() - ref["cov"])),
                    "mean_err_plain": float(np.linalg.norm(res.mean() - ref["mean"])),
                    "mean_se": float(np.linalg.norm(cv["mean_se"])),
                    "steps": steps, "n_cv": cv["n_cv"],
                    "steps_per_s": res.diagnostics["steps_per_s"],
                }
            return row

        row = ctx.cached(f"{prefix}-cv-N{n}", one)
        for k in ("ref_ess", "ref_mean_se", "ref_cov_se", "ref_mean_source",
                  "ref_is_vs_expansion"):
            out[k].append(row[k])
        for meth in methods:
            for k in keys:
                out[k][meth].append(row[meth][k])
            out["n_steps"].setdefault(meth, []).append(row[meth]["steps"])
            out["n_cv"].setdefault(meth, []).append(row[meth]["n_cv"])
    out["cov_slopes"] = {m: _slope(ns, out["cov_err"][m]) for m in methods}
    out["mean_slopes"] = {m: _slope(ns, out["mean_err"][m]) for m in methods}
    sub = [k for k, n in enumerate(ns) if n >= 1000]
    if 2 <= len(sub) < len(ns):
        out["slopes_from_1e3"] = {
            key: {m: _slope([ns[k] for k in sub], [out[err][m][k] for k in sub])
                  for m in methods}
            for key, err in (("cov", "cov_err"), ("mean", "mean_err"))}
    out["cov_slopes_plain"] = {m: _slope(ns, out["cov_err_plain"][m]) for m in methods}
    out["mean_slopes_plain"] = {m: _slope(ns, out["mean_err_plain"][m]) for m in methods}
    theory = ctx.cached(f"{prefix}-theory", lambda: _theory_vs_n(X, y, ns, p, methods))
    out["theory"] = theory
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


def _logistic_big(ctx: RunContext) -> dict[str, Any]:
    import numpy as np

    from neurips18.sgmcmc import (
        BayesianLogisticRegression,
        batch_means_se,
        find_mode,
        invariant_moments,
        posterior_moments,
        sample,
    )

    cfg = ctx.config["logistic_big"]
    n, d, p = cfg["n"], cfg["d"], cfg["batch_size"]
    X, y = _logistic_data(n, d, ctx.seed + 3)
    model = BayesianLogisticRegression(X, y, 1.0)
    ts = find_mode(model, rtol=1e-12)
    gamma = 1.0 / (2 * n)
    ref = _reference(model, ctx.seed + 20, cfg["ref_samples"] * n, cfg["ref_samples"],
                     cfg["ref_samples"])
    var_ref = np.diag(ref["cov"])
    _, C_lap = posterior_moments(model, linearize=True)
    out: dict[str, Any] = {"n": n, "d": d, "batch_size": p, "step_size": gamma,
                           "ref_ess": ref["ess"], "ref_n": ref["n_samples"],
                           "var_ref": var_ref.tolist(),
                           "var_laplace": np.diag(C_lap).tolist()}
    out["var_ref_se"] = np.diag(ref["cov_se"]).tolist()
    for k, meth in enumerate(("sgldfp", "sgld")):
        steps = cfg["n_steps"] if meth == "sgldfp" else cfg.get("n_steps_sgld", cfg["n_steps"])
        res = sample(model, meth, gamma, p, steps, theta_star=ts,
                     generator=np.random.default_rng(ctx.seed + 30 + k))
        _, C_lin = invariant_moments(model, meth, gamma, p, linearize=True)
        dr = res.draws.astype(np.float64)
        # batch-means standard error of the plain variance estimate (per coordinate)
        var_se = batch_means_se((dr - dr.mean(0)) ** 2, 20)
        cv = _cv_estimates(model, meth, res, ts, gamma, p, cfg.get("n_cv", 5000))
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
            "steps_per_s": res.diagnostics["steps_per_s"],
        }
    return out


# --------------------------------------------------------------------------- run and plot


def _slope_rows(exp: dict[str, Any], label: str, targets: dict[str, float]) -> list[Comparison]:
    """Slope rows of a logistic experiment: on the whole grid against the closed forms'
    prediction on that grid, and from N = 1e3 on against the issue's nominal targets."""
    rows: list[Comparison] = []
    th = exp["theory"]
    for key, lab in (("cov", "||C - C_post||_F"), ("mean", "mean error")):
        for meth in exp["methods"]:
            rows.append(compare(
                f"{label}: log-log slope of {lab} vs N, {meth}",
                exp[f"{key}_slopes"][meth], th[f"{key}_slopes"][meth],
                source="closed forms on the same N grid (model linearised at the mode, mean "
                       f"to second order); issue's nominal target {targets[meth]:g}",
                tol=0.15))
        if "slopes_from_1e3" in exp:
            for meth in exp["methods"]:
                rows.append(compare(
                    f"{label}, N >= 1e3: log-log slope of {lab} vs N, {meth}",
                    exp["slopes_from_1e3"][key][meth], targets[meth],
                    source="issue target (paper: Figs. 1-3, covertype N from 1e3)", tol=0.15))
    return rows


def run(ctx: RunContext) -> Outcome:
    import numpy as np

    exp1 = ctx.cached("closed-vs-sim", lambda: _closed_vs_sim(ctx))
    exp2 = ctx.cached("linear-vs-N", lambda: _linear_vs_n(ctx))
    exp3 = _logistic_vs_n(ctx)
    exp4 = ctx.cached("logistic-1e5-cv", lambda: _logistic_big(ctx))
    cov = None
    try:
        from neurips18.datasets import DataError
        from neurips18.sgmcmc.data import load_covertype

        ds = load_covertype(download=False)
        cov = _logistic_vs_n(ctx, (ds.X, ds.y), prefix="covertype")
    except DataError:
        pass

    rows: list[Comparison] = []
    cf = "closed form (neurips18.sgmcmc.invariant_moments) vs simulation; issue target"
    for r in exp1["runs"]:
        tag = "with" if r["replacement"] else "without"
        rows.append(compare(
            f"rel. Frobenius error, simulated vs closed-form covariance, {r['method']} "
            f"({tag} replacement)", r["rel_fro_cov"], 0.0, source=cf, tol=0.01, mode="max"))
    rows.append(compare("max |C_SGLD - C_SGLDFP - C_SGD| / max |C_SGLD|",
                        exp1["identity_rel_err"], 0.0, source="issue target", tol=1e-10,
                        mode="max"))
    targets = {"lmc": -1.0, "sgldfp": -1.0, "sgld": 0.0, "sgd": 0.0}
    for meth in METHODS:
        rows.append(compare(
            f"linear regression: log-log slope of ||C - C_post||_F vs N, {meth}",
            exp2["slopes"][meth], targets[meth], source="issue target (paper: Sec. 3, Fig. 5)",
            tol=0.15))
    rows.append(compare("linear regression: max ||mean - posterior mean|| over N and methods",
                        max(max(v) for v in exp2["mean_err"].values()), 0.0,
                        source="closed form: the invariant mean is theta* for all four",
                        tol=1e-8, mode="max"))
    rows += _slope_rows(exp3, "logistic regression", targets)
    if cov is not None:
        rows += _slope_rows(cov, "covertype (top-5 eigenvectors)", targets)
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
    rows.append(compare("logistic N=1e5 d=20: max_k |var_SGLDFP,k / var_ref,k - 1| "
                        "(control-variate estimate of the chain's variances)",
                        float(np.max(np.abs(ratio_fp - 1))), 0.0,
                        source="issue target; reference: Laplace-proposal importance sampling",
                        tol=0.05, mode="max",
                        note=f"95% CI +-{ci:.4f} (coordinate {kmax})"))
    rows.append(compare("logistic N=1e5 d=20: ||mean_SGLDFP - mean_ref|| / ||mean_ref|| "
                        "(control-variate estimate)",
                        fp["mean_rel_err_cv"], 0.0, source="issue target", tol=0.005,
                        mode="max"))
    pred_fp = np.asarray(fp["var_linearised"]) / var_ref
    infl = float(np.mean(np.asarray(exp4["sgld"]["var"]) / var_ref))
    infl_lin = float(np.mean(np.asarray(exp4["sgld"]["var_linearised"]) / var_ref))
    rows.append(compare("logistic N=1e5 d=20: SGLD variance inflation (mean over coords)",
                        infl, infl_lin,
                        source="closed form on the model linearised at the mode; issue target",
                        tol=0.10, mode="rel"))
    fp_lin = float(np.mean(np.asarray(fp["var_linearised"]) / var_ref))
    rows.append(compare("logistic N=1e5 d=20: SGLDFP variance ratio (mean over coords)",
                        float(np.mean(ratio_fp)), fp_lin,
                        source="closed form on the model linearised at the mode", tol=0.05,
                        mode="rel"))
    notes = [
        "The paper's figures are log-log plots of covertype errors whose values could not be "
        "read with the available tools; comparisons use the issue's targets and closed forms.",
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
        f"{ {m: round(v, 2) for m, v in exp3['mean_slopes_plain'].items()} }, covariance "
        f"{ {m: round(v, 2) for m, v in exp3['cov_slopes_plain'].items()} }.",
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
        "issue's nominal targets (-1 for LMC and SGLDFP, 0 for SGLD and SGD) are the "
        "asymptotic rates. The closed forms on this very grid predict covariance slopes "
        f"{ {m: round(v, 3) for m, v in th['cov_slopes'].items()} } and mean slopes "
        f"{ {m: round(v, 3) for m, v in th['mean_slopes'].items()} }: for SGD at N = 1e2 "
        "(p/N = 1/2) the chain's own spread, about gamma N / (2 p) = 1/(4p), is far below the "
        "posterior's, so its error there is that of a point mass and falls until the two "
        "spreads cross near N ~ 1e3; no correct sampler can give a whole-grid SGD slope within "
        "0.15 of 0 here. The nominal targets are checked from N = 1e3 on (the paper's covertype "
        "range), where the asymptotic regime holds.")
    data = {"closed_vs_sim": exp1, "linear_vs_n": exp2, "logistic_vs_n": exp3,
            "logistic_big": exp4, "covertype_vs_n": cov}
    if cov is None:
        notes.append("covertype not found (neurips18.sgmcmc.data.load_covertype, "
                     "download=False): the covertype protocol was skipped; synthetic data used.")
    if not all(math.isfinite(r.ours) for r in rows if r.ours is not None):
        notes.append("some measured values are not finite")
    return Outcome(comparisons=rows, data=data, notes=notes)


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
            if key + "_plain" in lg:
                ax.loglog(lg["ns"], lg[key + "_plain"][m], ":", color=COLORS[m], alpha=0.5,
                          label="plain averages" if m == lg["methods"][0] else None)
            if "theory" in lg:
                ax.loglog(lg["theory"]["ns"], lg["theory"][key][m], "--", color="k", lw=0.8,
                          zorder=3, label="closed forms" if m == lg["methods"][0] else None)
        ax.set(title=f"Logistic regression, d={lg['d']}: error of the {what}",
               xlabel="N", ylabel=lab)
        ax.legend(fontsize=6, ncol=2, loc="lower left")
    ax = axes[1, 1]
    v = np.asarray(big["var_ref"])
    k = np.arange(len(v))
    for m, mk in (("sgldfp", "o"), ("sgld", "s")):
        key = "var_cv" if "var_cv" in big[m] else "var"
        ax.semilogy(k, np.asarray(big[m][key]) / v, mk, color=COLORS[m], label=f"{m} (sim.)")
        ax.semilogy(k, np.asarray(big[m]["var_linearised"]) / v, "_", color="k", ms=10)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set(title=f"Logistic N={big['n']}, d={big['d']}: var / posterior var",
           xlabel="coordinate", ylabel="ratio (bars: linearised)")
    ax.legend(fontsize=7)
    fig.tight_layout()


REPRODUCTION = Reproduction(
    name="sgld",
    title="The promises and pitfalls of Stochastic Gradient Langevin Dynamics",
    citation="Brosse, Durmus, Moulines. NeurIPS 2018. arXiv:1811.10072",
    capability="sgmcmc",
    run=run,
    plot=plot,
    profiles={
        "quick": {
            "closed_vs_sim": {"n": 1000, "d": 2, "batch_size": 10, "eta": 0.5,
                              "n_steps": 300_000, "without_replacement": False},
            "linear_vs_n": {"ns": [1e2, 1e3, 1e4, 1e5, 1e6], "d": 5, "batch_size": 50},
            "logistic_vs_n": {"ns": [1e2, 1e3, 1e4, 1e5, 1e6], "d": 5, "batch_size": 50,
                              "methods": ["sgld", "sgldfp", "sgd"], "n_steps": 50_000,
                              "steps_per_n": 0, "lmc_budget": 0, "ref_budget": 1e8,
                              "ref_max": 50_000, "cv_budget": 1e8, "cv_max": 2000,
                              "expansion_from": 1e4},
            "logistic_big": {"n": 100_000, "d": 20, "batch_size": 50, "n_steps": 100_000,
                             "n_steps_sgld": 50_000, "ref_samples": 1000, "n_cv": 1000},
        },
        "full": {
            "closed_vs_sim": {"n": 1000, "d": 2, "batch_size": 10, "eta": 0.5,
                              "n_steps": 2_000_000, "without_replacement": True},
            "linear_vs_n": {"ns": [1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6], "d": 5,
                            "batch_size": 50},
            "logistic_vs_n": {"ns": [1e2, 1e3, 1e4, 1e5, 1e6], "d": 5, "batch_size": 50,
                              "methods": ["lmc", "sgld", "sgldfp", "sgd"], "n_steps": 1_000_000,
                              "steps_per_n": 100, "max_steps": 5_000_000, "lmc_budget": 1e10,
                              "ref_budget": 2e9, "ref_max": 400_000, "cv_budget": 2e9,
                              "cv_max": 20_000, "expansion_from": 1e4},
            "logistic_big": {"n": 100_000, "d": 20, "batch_size": 50, "n_steps": 1_000_000,
                             "ref_samples": 10_000, "n_cv": 5000},
        },
    },
)
