"""SGLD and SGLDFP: neurips18.sgmcmc (NumPy) vs BlackJAX (JAX, lax.scan), side by side.

The brief's setup: synthetic Bayesian logistic regression, N = 1e5, d = 20, p = 100,
gamma = 0.5 / N, float32, chains started at the mode, minibatches with replacement.
One thread per library; the samplers run interleaved (``--rounds`` times) and the median
rate is reported. BlackJAX's compile time is reported separately from its run time.

Besides steps per second, the script reports the *distributional* error at equal compute:
each sampler runs for the same wall-clock budget and its per-coordinate variances and mean
are compared with an exact reference (importance sampling from the Laplace fit, float64),
because SGLD's speed buys a law ~10x too wide (Brosse, Durmus, Moulines, NeurIPS 2018).

Usage: python benchmarks/bench_sgmcmc.py [--n 100000] [--d 20] [--steps 10000] [--rounds 3]
       [--budget 1.0] [--json results/bench/sgmcmc.json]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neurips18.sgmcmc import (  # noqa: E402
    BayesianLogisticRegression,
    find_mode,
    importance_moments,
    sample,
)


def make_data(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    theta = rng.standard_normal(d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-X @ theta))).astype(np.float64)
    return X, y


class Ours:
    def __init__(self, X, y, p, gamma, ts):
        self.model = BayesianLogisticRegression(X, y, 1.0, dtype=np.float32)
        self.p, self.gamma, self.ts = p, gamma, ts

    def run(self, method: str, n_steps: int, seed: int) -> tuple[np.ndarray, float, float]:
        res = sample(self.model, method, self.gamma, self.p, n_steps, theta_star=self.ts,
                     generator=np.random.default_rng(seed))
        return res.draws, res.diagnostics["wall_time_s"], res.diagnostics["cpu_time_s"]


class BlackJAX:
    def __init__(self, X, y, p, gamma, ts):
        import blackjax
        import jax
        import jax.numpy as jnp
        from blackjax.sgmcmc.gradients import control_variates, grad_estimator

        self.jax, self.jnp = jax, jnp
        self.X, self.y = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
        n = X.shape[0]

        def logprior(theta):
            return -0.5 * jnp.sum(theta * theta)

        def loglik(theta, xy):
            x, t = xy
            z = x @ theta
            return t * z - jnp.logaddexp(0.0, z)

        grad_fn = grad_estimator(logprior, loglik, n)
        centre = jnp.asarray(ts, jnp.float32)
        cv_fn = control_variates(grad_fn, centre, (self.X, self.y))
        self.algos = {"sgld": blackjax.sgld(grad_fn), "sgldfp": blackjax.sgld(cv_fn)}
        self.centre, self.p, self.gamma, self.n = centre, p, gamma, n
        self.compiled: dict[tuple[str, int], object] = {}
        self.compile_time: dict[str, float] = {}

    def _build(self, method: str, n_steps: int):
        jax = self.jax
        algo, p, n, gamma = self.algos[method], self.p, self.n, self.gamma
        X, y = self.X, self.y

        def run(key, theta0):
            def body(theta, k):
                k1, k2 = jax.random.split(k)
                idx = jax.random.randint(k1, (p,), 0, n)
                theta = algo.step(k2, theta, (X[idx], y[idx]), gamma)
                return theta, theta

            return jax.lax.scan(body, theta0, jax.random.split(key, n_steps))[1]

        t0 = time.perf_counter()
        c = jax.jit(run).lower(jax.random.key(0), self.centre).compile()
        self.compile_time[method] = time.perf_counter() - t0
        return c

    def run(self, method: str, n_steps: int, seed: int) -> tuple[np.ndarray, float, float]:
        key = (method, n_steps)
        if key not in self.compiled:
            self.compiled[key] = self._build(method, n_steps)
        f = self.compiled[key]
        t0, c0 = time.perf_counter(), time.process_time()
        out = f(self.jax.random.key(seed), self.centre)  # type: ignore[operator]
        out.block_until_ready()
        return np.asarray(out), time.perf_counter() - t0, time.process_time() - c0


def errors(draws: np.ndarray, ref: dict) -> dict[str, float]:
    d = draws.astype(np.float64)
    ratio = d.var(axis=0) / np.diag(ref["cov"])
    return {
        "max_var_rel_err": float(np.max(np.abs(ratio - 1))),
        "mean_var_ratio": float(np.mean(ratio)),
        "mean_rel_err": float(np.linalg.norm(d.mean(0) - ref["mean"])
                              / np.linalg.norm(ref["mean"])),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per sampler, equal compute")
    ap.add_argument("--json", default="results/bench/sgmcmc.json")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    X, y = make_data(a.n, a.d, a.seed)
    gamma = 0.5 / a.n
    t0 = time.perf_counter()
    ts = find_mode(BayesianLogisticRegression(X, y, 1.0))
    mode_time = time.perf_counter() - t0
    ref = importance_moments(BayesianLogisticRegression(X, y, 1.0), 2000,
                             np.random.default_rng(a.seed + 1))
    impls: dict[str, object] = {"ours": Ours(X, y, a.batch_size, gamma, ts)}
    try:
        import blackjax

        impls["blackjax"] = BlackJAX(X, y, a.batch_size, gamma, ts)
        bj_version = blackjax.__version__
    except ImportError:
        print("blackjax not installed: reporting neurips18 only (pip install jax blackjax)")
        bj_version = None

    rates: dict[str, dict[str, list[float]]] = {k: {"sgld": [], "sgldfp": []} for k in impls}
    cpu_rates: dict[str, dict[str, list[float]]] = {k: {"sgld": [], "sgldfp": []}
                                                    for k in impls}
    for r in range(a.rounds):
        for method in ("sgld", "sgldfp"):
            for name, impl in impls.items():
                _, wall, cpu = impl.run(method, a.steps,  # type: ignore[attr-defined]
                                        a.seed + 10 * r)
                rates[name][method].append(a.steps / wall)
                cpu_rates[name][method].append(a.steps / cpu)
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in rates.items()}
    cmed = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in cpu_rates.items()}

    # equal compute: each sampler gets the same wall-clock budget
    eq: dict[str, dict[str, dict[str, float]]] = {}
    for name, impl in impls.items():
        eq[name] = {}
        for method in ("sgld", "sgldfp"):
            n_steps = max(100, int(med[name][method] * a.budget))
            draws, wall, _ = impl.run(method, n_steps, a.seed + 99)  # type: ignore[attr-defined]
            eq[name][method] = {"n_steps": n_steps, "wall_s": wall, **errors(draws, ref)}

    print(f"logistic regression N={a.n} d={a.d} p={a.batch_size} gamma=0.5/N float32, "
          f"{a.steps} steps, median of {a.rounds} interleaved rounds, 1 thread")
    print(f"mode (Newton, float64): {mode_time:.3f} s; reference ESS {ref['ess']:.0f}")
    print(f"{'sampler':<10}{'impl':<10}{'steps/s':>10}{'ratio':>7}{'steps/cpu-s':>13}"
          f"{'ratio':>7}"
          f"{'  equal-compute (' + str(a.budget) + ' s): steps, max|var/ref-1|, mean err'}")
    for method in ("sgld", "sgldfp"):
        base = med.get("blackjax", med["ours"])[method]
        cbase = cmed.get("blackjax", cmed["ours"])[method]
        for name in impls:
            e = eq[name][method]
            label = method if name == "ours" or method == "sgld" else "sgld-cv"
            print(f"{label:<10}{name:<10}{med[name][method]:>10.0f}"
                  f"{med[name][method] / base:>7.2f}{cmed[name][method]:>13.0f}"
                  f"{cmed[name][method] / cbase:>7.2f}   {e['n_steps']:>9d}  "
                  f"{e['max_var_rel_err']:>8.3f}  {e['mean_rel_err']:>9.2e}")
    if "blackjax" in impls:
        ct = impls["blackjax"].compile_time  # type: ignore[attr-defined]
        print(f"BlackJAX compile time (last compile): sgld {ct['sgld']:.2f} s, "
              f"sgld-cv {ct['sgldfp']:.2f} s (not included in steps/s)")
    out = {
        "setup": {"n": a.n, "d": a.d, "batch_size": a.batch_size, "step_size": gamma,
                  "dtype": "float32", "steps": a.steps, "rounds": a.rounds, "threads": 1,
                  "blackjax": bj_version, "numpy": np.__version__},
        "steps_per_s": med, "steps_per_s_all": rates, "mode_time_s": mode_time,
        "steps_per_cpu_s": cmed, "steps_per_cpu_s_all": cpu_rates,
        "equal_compute": eq, "budget_s": a.budget,
        "compile_time_s": getattr(impls.get("blackjax"), "compile_time", None),
        "ratio_vs_blackjax": ({m: med["ours"][m] / med["blackjax"][m] for m in med["ours"]}
                              if "blackjax" in med else None),
        "cpu_ratio_vs_blackjax": ({m: cmed["ours"][m] / cmed["blackjax"][m] for m in cmed["ours"]}
                                  if "blackjax" in cmed else None),
    }
    if a.json:
        p = Path(a.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
