"""Side-by-side benchmarks of neurips18.compress against its anchors (one run, one thread).

1. Selection on a large float32 vector (default 25M) at 1 % and 0.1 %: ``torch.topk(|x|, k)``
   vs ``neurips18.compress.topk`` (exact, and the approximate threshold mode): time ratio,
   recall of the true top-k, count error. Gaussian and heavy-tailed vectors.
2. Optimal probabilities (greedy, 2 passes; and exact) vs one pass of ``torch.abs``.
3. DDP step time, 2 ranks, gloo on loopback, MLP 784-1024-1024-10, batch 64 per rank:
   no hook vs fp16 hook vs PowerSGD (rank 4) vs our top-k (1 %) and unbiased (2 %) hooks, and
   a desynchronisation count over many short training runs.

Run: ``python benchmarks/bench_compress.py [--size N] [--ddp-steps S] [--runs R] [--skip-ddp]``
(``neurips18 bench compress`` does the same). Results go to ``results/bench/compress.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_selection(size: int, repeat: int) -> list[dict[str, Any]]:
    from neurips18.compress import topk

    rows = []
    gen = torch.Generator().manual_seed(0)
    vectors = {
        "gaussian": torch.randn(size, generator=gen),
        "heavy-tailed (t, 2 dof)": torch.distributions.StudentT(2.0).sample((size,)),
    }
    for vname, x in vectors.items():
        for frac in (0.01, 0.001):
            k = int(frac * size)
            t_ref, (_, ref_idx) = _best(lambda x=x, k=k: torch.topk(x.abs(), k), repeat)
            ref = torch.zeros(size, dtype=torch.bool)
            ref[ref_idx] = True
            for exact in (True, False):
                t, (_, idx) = _best(lambda x=x, k=k, e=exact: topk(x, k, exact=e), repeat)
                recall = float(ref[idx].sum()) / k
                rows.append({
                    "vector": vname, "density": frac, "k": k,
                    "mode": "exact" if exact else "approximate",
                    "torch_topk_ms": 1000 * t_ref, "ours_ms": 1000 * t,
                    "speedup": t_ref / t, "recall": recall,
                    "count_error": abs(idx.numel() - k) / k,
                })
    return rows


def bench_probabilities(size: int, repeat: int) -> list[dict[str, Any]]:
    from neurips18.compress import optimal_probabilities

    rows = []
    gen = torch.Generator().manual_seed(1)
    vectors = {
        "gaussian": torch.randn(size, generator=gen),
        "heavy-tailed (t, 2 dof)": torch.distributions.StudentT(2.0).sample((size,)),
    }
    for vname, x in vectors.items():
        t_abs, _ = _best(lambda x=x: torch.abs(x), repeat)
        for frac in (0.01, 0.001):
            for method in ("greedy", "exact"):
                t, p = _best(lambda x=x, f=frac, m=method: optimal_probabilities(x, f, m),
                             repeat)
                rows.append({
                    "vector": vname, "density": frac, "method": method,
                    "abs_ms": 1000 * t_abs, "ours_ms": 1000 * t, "ratio_to_abs": t / t_abs,
                    "sum_p_over_target": float(p.sum()) / (frac * size),
                    "saturated": int((p >= 1).sum()),
                })
    return rows


def _spawn_safely(cfg: dict[str, Any]) -> dict[str, Any] | str:
    from neurips18.compress._ddp_check import spawn_variants

    try:
        return spawn_variants(cfg)
    except Exception as exc:  # a crashing anchor must not hide the other measurements
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"


def bench_ddp(steps: int, runs: int, run_steps: int) -> dict[str, Any]:
    ours_and_builtin = [
        ("no hook", "none", {}),
        ("fp16 hook", "fp16", {}),
        ("top-k 1% (ours)", "topk", {"density": 0.01}),
        ("top-k 1% approx (ours)", "topk", {"density": 0.01, "exact": False}),
        ("unbiased 2% (ours)", "unbiased", {"density": 0.02}),
    ]
    base_cfg = {"hidden": [1024, 1024], "batch": 64, "steps": steps, "lr": 0.05,
                "data": "random", "check_every": 1}
    out: dict[str, Any] = {"timing": {}}
    groups = [ours_and_builtin,
              [("PowerSGD rank 4", "powersgd", {"matrix_approximation_rank": 4,
                                                "start_powerSGD_iter": 2})]]
    results: dict[str, Any] = {}
    for variants in groups:
        r = _spawn_safely({**base_cfg, "variants": variants})
        if isinstance(r, str):
            for name, _, _ in variants:
                results[name] = {"times": [], "desync_steps": None, "error": r}
        else:
            results.update(r)
    ts0 = results["no hook"]["times"]
    base = statistics.median(ts0[5:] or ts0) if ts0 else float("nan")
    for name, r in results.items():
        ts = r["times"][5:] or r["times"]
        med = statistics.median(ts) if ts else float("nan")
        out["timing"][name] = {"median_ms": 1000 * med, "ratio_to_no_hook": med / base,
                               "desync_steps": r["desync_steps"], "error": r["error"]}
    if runs:
        reps = []
        for i in range(runs):
            reps.append((f"run{i} topk", "topk", {"density": 0.01}))
            reps.append((f"run{i} unbiased", "unbiased", {"density": 0.02, "seed": i}))
        rep = _spawn_safely({"hidden": [256], "batch": 64, "steps": run_steps, "lr": 0.05,
                             "data": "random", "check_every": 1, "variants": reps})
        if isinstance(rep, str):
            out["repeated_runs"] = {"error": rep}
        else:
            out["repeated_runs"] = {
                "runs_per_hook": runs, "steps_per_run": run_steps,
                "runs_with_desync": sum(int(r["desync_steps"] > 0) for r in rep.values()),
                "runs_with_error": sum(int(r["error"] is not None) for r in rep.values()),
            }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=25_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ddp-steps", type=int, default=60)
    ap.add_argument("--runs", type=int, default=50, help="repeated short DDP runs per hook")
    ap.add_argument("--run-steps", type=int, default=10)
    ap.add_argument("--skip-ddp", action="store_true")
    ap.add_argument("--out", default="results/bench/compress.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    res: dict[str, Any] = {"size": args.size, "threads": 1, "torch": torch.__version__}
    res["selection"] = bench_selection(args.size, args.repeat)
    print(f"\n== top-k selection, {args.size:,} float32, 1 thread ==")
    print("| vector | density | mode | torch.topk ms | ours ms | speed-up | recall | count err |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in res["selection"]:
        print(f"| {r['vector']} | {r['density']:g} | {r['mode']} | {r['torch_topk_ms']:.0f} | "
              f"{r['ours_ms']:.0f} | {r['speedup']:.2f}x | {r['recall']:.4f} | "
              f"{r['count_error']:.4f} |")
    res["probabilities"] = bench_probabilities(args.size, args.repeat)
    print(f"\n== optimal probabilities vs one torch.abs pass, {args.size:,} float32 ==")
    print("| vector | density | method | abs ms | ours ms | ratio to abs | sum p / target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in res["probabilities"]:
        print(f"| {r['vector']} | {r['density']:g} | {r['method']} | {r['abs_ms']:.0f} | "
              f"{r['ours_ms']:.0f} | {r['ratio_to_abs']:.2f} | {r['sum_p_over_target']:.4f} |")
    if not args.skip_ddp:
        res["ddp"] = bench_ddp(args.ddp_steps, args.runs, args.run_steps)
        print("\n== DDP step, 2 ranks gloo loopback, MLP 784-1024-1024-10, batch 64/rank ==")
        print("| hook | median step ms | ratio to no hook | desync steps | error |")
        print("| --- | --- | --- | --- | --- |")
        for name, r in res["ddp"]["timing"].items():
            print(f"| {name} | {r['median_ms']:.1f} | {r['ratio_to_no_hook']:.2f} | "
                  f"{r['desync_steps']} | {(r['error'] or '')[:80]} |")
        if "repeated_runs" in res["ddp"]:
            print("repeated runs:", res["ddp"]["repeated_runs"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
