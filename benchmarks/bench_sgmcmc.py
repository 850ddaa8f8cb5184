"""SGLD and SGLDFP: neurips18.sgmcmc (C kernel, and its NumPy loop) vs BlackJAX, side by side.

The brief's setup: synthetic Bayesian logistic regression, N = 1e5, d = 20, p = 100,
gamma = 0.5 / N, float32, chains started at the mode, minibatches with replacement.
One thread per library: the process is pinned to one CPU core (``--no-pin`` to disable),
because XLA otherwise keeps a second thread busy. After a warm-up, the two libraries run in
interleaved pairs (ours, theirs; then theirs, ours; ``--rounds`` times per sampler) and the
speed ratio is the median over rounds of the per-pair ratios, for wall-clock and for CPU
time, with its interquartile range: a busy phase of a shared machine slows both members of a
pair, so the ratios stay stable where absolute rates do not. BlackJAX's compile time is reported
separately from its run time. ``ours`` is neurips18 as shipped (its C kernel when a compiler
is there; the JSON's ``kernel`` says which ran), ``ours-numpy`` the same sampler with
``kernel="numpy"``, the public step chained in NumPy (``--no-numpy`` drops it), so the table
shows what the kernel buys.

Besides steps per second, the script reports the *distributional* error at equal compute:
each sampler runs for the same CPU-time budget and its per-coordinate variances and mean
are compared with an exact reference (importance sampling from the Laplace fit, float64),
because SGLD's speed buys a law ~10x too wide (Brosse, Durmus, Moulines, NeurIPS 2018).

Usage: python benchmarks/bench_sgmcmc.py [--n 100000] [--d 20] [--steps 10000] [--rounds 11]
       [--budget 2.0] [--json results/bench/sgmcmc.json]
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

from neurips18.datasets.synthetic import make_bayesian_logistic_regression  # noqa: E402
from neurips18.sgmcmc import (  # noqa: E402
    BayesianLogisticRegression,
    find_mode,
    importance_moments,
    sample,
)


class Ours:
    """neurips18.sgmcmc as shipped (its C kernel when available), or with ``native=False``
    the public step chained in NumPy (``kernel="numpy"``: same random numbers)."""

    def __init__(self, X, y, p, gamma, ts, native: bool = True):
        self.model = BayesianLogisticRegression(X, y, 1.0, dtype=np.float32)
        self.p, self.gamma, self.ts, self.native = p, gamma, ts, native
        self.kernel: str | None = None

    def run(self, method: str, n_steps: int, seed: int) -> tuple[np.ndarray, float, float]:
        res = sample(self.model, method, self.gamma, self.p, n_steps, theta_star=self.ts,
                     generator=seed, kernel="auto" if self.native else "numpy")
        self.kernel = res.diagnostics["kernel"]
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
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--budget", type=float, default=2.0,
                    help="CPU seconds per sampler for the equal-compute errors")
    ap.add_argument("--json", default="results/bench/sgmcmc.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the process to one CPU core")
    ap.add_argument("--no-numpy", action="store_true",
                    help="skip the extra column of neurips18 with its C kernel switched off")
    a = ap.parse_args(argv)
    pinned = None
    if not a.no_pin and hasattr(os, "sched_setaffinity"):
        # XLA keeps a second busy thread despite the flags above (its CPU time was ~2x its
        # wall time): pinning the whole process to one core makes the comparison 1 thread
        pinned = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {pinned})

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    X, y = make_bayesian_logistic_regression(a.n, a.d, generator=a.seed)
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
    if not a.no_numpy:  # last, so that ours and BlackJAX stay adjacent in every round
        impls["ours-numpy"] = Ours(X, y, a.batch_size, gamma, ts, native=False)

    methods = ("sgld", "sgldfp")
    names = list(impls)
    for impl in impls.values():  # warm-up (and BlackJAX's compile), not timed
        for method in methods:
            impl.run(method, a.steps, a.seed)  # type: ignore[attr-defined]
    # Interleaved pairs: in round r each method runs ours then theirs (theirs then ours in odd
    # rounds), so slow phases of a shared machine hit both members of a pair; the reported
    # ratio is the median over rounds of the per-pair ratios, for wall and for CPU time.
    wall: dict[str, dict[str, list[float]]] = {k: {m: [] for m in methods} for k in names}
    cpu: dict[str, dict[str, list[float]]] = {k: {m: [] for m in methods} for k in names}
    for r in range(a.rounds):
        for method in methods:
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                _, w, c = impls[name].run(method, a.steps,  # type: ignore[attr-defined]
                                          a.seed + 10 * r)
                wall[name][method].append(w)
                cpu[name][method].append(c)
    rates = {k: {m: [a.steps / w for w in v] for m, v in d.items()} for k, d in wall.items()}
    cpu_rates = {k: {m: [a.steps / c for c in v] for m, v in d.items()} for k, d in cpu.items()}
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in rates.items()}
    cmed = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in cpu_rates.items()}

    def pair_stats(times: dict[str, dict[str, list[float]]], ours: str = "ours",
                   theirs: str = "blackjax") -> dict[str, dict[str, float]]:
        out = {}
        for m in methods:  # ours / theirs speed = their time / our time, pair by pair
            rs = sorted(t / o for o, t in zip(times[ours][m], times[theirs][m], strict=True))
            q = statistics.quantiles(rs, n=4) if len(rs) >= 2 else [rs[0]] * 3
            out[m] = {"median": statistics.median(rs), "q1": q[0], "q3": q[2],
                      "min": rs[0], "max": rs[-1]}
        return out

    pair_wall = pair_stats(wall) if "blackjax" in impls else None
    pair_cpu = pair_stats(cpu) if "blackjax" in impls else None
    has_np = "ours-numpy" in impls
    np_wall = pair_stats(wall, "ours-numpy") if has_np and "blackjax" in impls else None
    kernel_gain = pair_stats(wall, "ours", "ours-numpy") if has_np else None

    # equal compute: each sampler gets the same CPU-time budget (its median steps per CPU
    # second times the budget), run interleaved; errors against the exact reference
    eq: dict[str, dict[str, dict[str, float]]] = {k: {} for k in names}
    for method in methods:
        for name in names:
            n_steps = max(100, int(cmed[name][method] * a.budget))
            draws, w, c = impls[name].run(method, n_steps,  # type: ignore[attr-defined]
                                          a.seed + 99)
            eq[name][method] = {"n_steps": n_steps, "wall_s": w, "cpu_s": c,
                                **errors(draws, ref)}

    print(f"logistic regression N={a.n} d={a.d} p={a.batch_size} gamma=0.5/N float32, "
          f"{a.steps} steps x {a.rounds} interleaved rounds, 1 thread")
    print(f"mode (Newton, float64): {mode_time:.3f} s; reference ESS {ref['ess']:.0f}")
    print(f"{'sampler':<8}{'impl':<12}{'steps/s':>10}{'steps/cpu-s':>13}"
          f"{'  equal compute (' + str(a.budget) + ' cpu-s): steps, max|var/ref-1|, mean err'}")
    for method in methods:
        for name in names:
            e = eq[name][method]
            label = method if name != "blackjax" or method == "sgld" else "sgld-cv"
            print(f"{label:<8}{name:<12}{med[name][method]:>10.0f}{cmed[name][method]:>13.0f}"
                  f"   {e['n_steps']:>9d}  {e['max_var_rel_err']:>8.3f}  "
                  f"{e['mean_rel_err']:>9.2e}")
    if pair_wall is not None and pair_cpu is not None:
        for method in methods:
            pw, pc = pair_wall[method], pair_cpu[method]
            print(f"ours/BlackJAX speed, {method}: median of per-pair ratios wall "
                  f"{pw['median']:.2f}x (IQR {pw['q1']:.2f}-{pw['q3']:.2f}), CPU "
                  f"{pc['median']:.2f}x (IQR {pc['q1']:.2f}-{pc['q3']:.2f})")
        if np_wall is not None:
            for method in methods:
                pn = np_wall[method]
                print(f"ours-numpy/BlackJAX speed, {method}: wall {pn['median']:.2f}x "
                      f"(IQR {pn['q1']:.2f}-{pn['q3']:.2f})")
        ct = impls["blackjax"].compile_time  # type: ignore[attr-defined]
        print(f"BlackJAX compile time (last compile): sgld {ct['sgld']:.2f} s, "
              f"sgld-cv {ct['sgldfp']:.2f} s (not included in steps/s)")
    if kernel_gain is not None:
        for method in methods:
            kg = kernel_gain[method]
            print(f"ours (native) / ours-numpy speed, {method}: wall {kg['median']:.2f}x "
                  f"(IQR {kg['q1']:.2f}-{kg['q3']:.2f})")
    out = {
        "setup": {"n": a.n, "d": a.d, "batch_size": a.batch_size, "step_size": gamma,
                  "dtype": "float32", "steps": a.steps, "rounds": a.rounds, "threads": 1,
                  "blackjax": bj_version, "numpy": np.__version__, "pinned_cpu": pinned,
                  "command": " ".join(["python", "benchmarks/bench_sgmcmc.py", *sys.argv[1:]])},
        "steps_per_s": med, "steps_per_s_all": rates, "mode_time_s": mode_time,
        "steps_per_cpu_s": cmed, "steps_per_cpu_s_all": cpu_rates,
        "equal_compute": eq, "budget_cpu_s": a.budget,
        "compile_time_s": getattr(impls.get("blackjax"), "compile_time", None),
        "pair_ratio_wall_vs_blackjax": pair_wall,
        "pair_ratio_cpu_vs_blackjax": pair_cpu,
        "ratio_vs_blackjax": ({m: v["median"] for m, v in pair_wall.items()}
                              if pair_wall else None),
        "cpu_ratio_vs_blackjax": ({m: v["median"] for m, v in pair_cpu.items()}
                                  if pair_cpu else None),
        "kernel": {k: getattr(v, "kernel", None) for k, v in impls.items() if k != "blackjax"},
        "pair_ratio_wall_numpy_vs_blackjax": np_wall,
        "pair_ratio_wall_native_vs_numpy": kernel_gain,
    }
    if a.json:
        p = Path(a.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
