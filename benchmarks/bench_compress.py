"""Side-by-side benchmarks of neurips18.compress against its anchors (one run, one thread).

1. Selection on a large float32 vector (default 25M) at 1 % and 0.1 %: ``torch.topk(|x|, k)``
   vs ``neurips18.compress.topk`` (exact, and the approximate threshold mode): time ratio,
   recall of the true top-k, count error. Gaussian, Student-t (2 dof) and log-normal vectors;
   recall and count error also over 4 more seeds and a real MNIST MLP gradient.
2. Optimal probabilities (greedy, 2 passes; and exact) vs one pass of ``torch.abs``.
3. DDP step time, 2 ranks, gloo on loopback, MLP 784-1024-1024-10, batch 64 per rank, in
   interleaved rounds: no hook vs fp16 hook vs our top-k (1 %) and unbiased (2 %) hooks with
   DDP's default buckets; no hook vs our top-k vs PyTorch's PowerSGD (rank 1 and 4) with one
   bucket (PowerSGD is not safe with several buckets on gloo, see :func:`bench_ddp`); and a
   desynchronisation count over many short training runs.

Run: ``python benchmarks/bench_compress.py [--size N] [--ddp-steps S] [--runs R] [--skip-ddp]``
(``neurips18 bench compress`` does the same). Results go to ``results/bench/compress.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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


def _vectors(size: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sign = torch.where(torch.rand(size, generator=gen) < 0.5, -1.0, 1.0)
    # Student-t with 2 degrees of freedom: Z / sqrt(V / 2) with V ~ chi2(2) = -2 log U
    t2 = torch.randn(size, generator=gen) / torch.sqrt(
        -torch.log1p(-torch.rand(size, generator=gen)))
    return {
        "gaussian": torch.randn(size, generator=gen),
        "heavy-tailed (t, 2 dof)": t2,
        "log-normal (sigma 2)": sign * torch.exp(2.0 * torch.randn(size, generator=gen)),
    }


def _mlp_gradient() -> torch.Tensor | None:
    """A real stochastic gradient: MNIST MLP 784-1024-1024-10, batch 64, after 20 SGD steps."""
    try:
        from neurips18.repro._common import init_model, mnist_tensors
        from neurips18.repro._common.models import mlp

        data = mnist_tensors()
    except Exception:  # data not available: skip this vector
        return None
    model = init_model(lambda: mlp((1024, 1024)), 0)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(21):
        idx = torch.randint(0, data["x_train"].shape[0], (64,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data["x_train"][idx]),
                                          data["y_train"][idx]).backward()
        if _ < 20:
            opt.step()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])  # type: ignore[union-attr]


def _quality(x: torch.Tensor, k: int, exact: bool) -> tuple[float, float]:
    from neurips18.compress import topk

    _, ref_idx = torch.topk(x.abs(), k, sorted=False)
    ref = torch.zeros(x.numel(), dtype=torch.bool)
    ref[ref_idx] = True
    _, idx = topk(x, k, exact=exact, sorted=False)
    return float(ref[idx].sum()) / k, abs(idx.numel() - k) / k


def bench_selection(size: int, repeat: int, seeds: int = 5) -> dict[str, Any]:
    """Timing on seed 0; recall / count error over ``seeds`` seeds (worst case reported)."""
    from neurips18.compress import topk

    rows = []
    for vname, x in _vectors(size, 0).items():
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
    quality = []
    for seed in range(1, seeds):
        for vname, x in _vectors(size, seed).items():
            for frac in (0.01, 0.001):
                for exact in (True, False):
                    rec, cnt = _quality(x, int(frac * size), exact)
                    quality.append({"vector": vname, "seed": seed, "density": frac,
                                    "mode": "exact" if exact else "approximate",
                                    "recall": rec, "count_error": cnt})
    g = _mlp_gradient()
    if g is not None:
        for frac in (0.01, 0.001):
            for exact in (True, False):
                rec, cnt = _quality(g, int(frac * g.numel()), exact)
                quality.append({"vector": f"MNIST MLP gradient (d={g.numel()})", "seed": 0,
                                "density": frac, "mode": "exact" if exact else "approximate",
                                "recall": rec, "count_error": cnt})
    for r in rows:  # seed 0 of the timing run counts too
        quality.append({k: r[k] for k in ("vector", "density", "mode", "recall",
                                          "count_error")} | {"seed": 0})
    worst = {}
    for mode in ("exact", "approximate"):
        q = [r for r in quality if r["mode"] == mode]
        worst[mode] = {"min_recall": min(r["recall"] for r in q),
                       "max_count_error": max(r["count_error"] for r in q), "cases": len(q)}
    return {"timing": rows, "quality": quality, "worst": worst}


def bench_probabilities(size: int, repeat: int) -> list[dict[str, Any]]:
    from neurips18.compress import optimal_probabilities

    rows = []
    for vname, x in _vectors(size, 1).items():
        for frac in (0.01, 0.001):
            for method in ("greedy", "exact"):
                # interleaved pairs (abs, ours), best of each: load drifts hit both alike
                t_abs, t, p = float("inf"), float("inf"), None
                for _ in range(max(5, repeat)):
                    ta, _ = _best(lambda x=x: torch.abs(x), 1)
                    to, p = _best(lambda x=x, f=frac, m=method: optimal_probabilities(x, f, m),
                                  1)
                    t_abs, t = min(t_abs, ta), min(t, to)
                assert p is not None
                rows.append({
                    "vector": vname, "density": frac, "method": method,
                    "abs_ms": 1000 * t_abs, "ours_ms": 1000 * t, "ratio_to_abs": t / t_abs,
                    "sum_p_over_target": float(p.sum()) / (frac * size),
                    "saturated": int((p >= 1).sum()),
                })
    return rows


def _spawn_safely(cfg: dict[str, Any], timeout_s: float = 600.0) -> dict[str, Any] | str:
    from neurips18.repro._common.ddp import spawn_variants

    try:
        return spawn_variants(cfg, timeout_s=timeout_s)
    except Exception as exc:  # a crashing anchor must not hide the other measurements
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"


def _merge_rounds(results: dict[str, Any], skip: int) -> dict[str, Any]:
    """Pool the step times of the rounds ``name#r`` of each variant (first ``skip`` of each
    round dropped: warm-up, bucket rebuild, PowerSGD's dense start)."""
    merged: dict[str, Any] = {}
    for key, r in results.items():
        name = key.split("#")[0]
        m = merged.setdefault(name, {"times": [], "desync_steps": 0, "error": None})
        m["times"] += r["times"][skip:]
        m["desync_steps"] = (None if r["desync_steps"] is None or m["desync_steps"] is None
                             else m["desync_steps"] + r["desync_steps"])
        m["error"] = m["error"] or r["error"]
    return merged


def bench_ddp(steps: int, runs: int, run_steps: int, rounds: int = 3) -> dict[str, Any]:
    """DDP step times, measured in interleaved rounds (A B C A B C ...) so that load drifts on
    a shared machine hit every variant alike; medians over the pooled steps of all rounds.

    PyTorch's PowerSGD hook issues its second and third allreduce from inside future
    callbacks (gloo's worker thread), so with several buckets the ranks can issue collectives
    in different orders and gloo aborts or hangs (collective mismatch; see also
    pytorch/pytorch#58467). It is therefore measured with one bucket (``bucket_cap_mb=100``),
    side by side with no hook and our top-k at the same bucket layout, and separately tried
    with DDP's default buckets to record whether it fails.
    """
    default_buckets = [
        ("no hook", "none", {}),
        ("fp16 hook", "fp16", {}),
        ("top-k 1% (ours)", "topk", {"density": 0.01}),
        ("top-k 1% approx (ours)", "topk", {"density": 0.01, "exact": False}),
        ("unbiased 2% (ours)", "unbiased", {"density": 0.02}),
    ]
    ours_one_bucket = [
        ("[1 bucket] no hook", "none", {}),
        ("[1 bucket] top-k 1% (ours)", "topk", {"density": 0.01}),
    ]
    one_bucket = ours_one_bucket + [
        ("[1 bucket] PowerSGD rank 1", "powersgd", {
            "matrix_approximation_rank": 1, "start_powerSGD_iter": 2,
            "use_error_feedback": True, "warm_start": True}),
        ("[1 bucket] PowerSGD rank 4", "powersgd", {
            "matrix_approximation_rank": 4, "start_powerSGD_iter": 2}),
    ]
    base_cfg = {"hidden": [1024, 1024], "batch": 64, "steps": steps, "lr": 0.05,
                "data": "random", "check_every": 1}
    out: dict[str, Any] = {"timing": {}, "rounds": rounds, "steps_per_round": steps,
                           "skipped_per_round": 5}
    results: dict[str, Any] = {}
    for variants, extra in ((default_buckets, {}), (one_bucket, {"bucket_cap_mb": 100})):
        rot = [(f"{n}#{r}", k, kw) for r in range(rounds) for n, k, kw in variants]
        r = _spawn_safely({**base_cfg, **extra, "variants": rot}, timeout_s=300.0)
        if isinstance(r, str) and variants is one_bucket:
            # PowerSGD deadlocked or crashed: record it, then time ours without it
            out["powersgd_one_bucket_failure"] = r
            for name, _, _ in one_bucket[len(ours_one_bucket):]:
                results[name] = {"times": [], "desync_steps": None, "error": r}
            variants = ours_one_bucket
            rot = [(f"{n}#{r}", k, kw) for r in range(rounds) for n, k, kw in variants]
            r = _spawn_safely({**base_cfg, **extra, "variants": rot}, timeout_s=300.0)
        if isinstance(r, str):
            for name, _, _ in variants:
                results[name] = {"times": [], "desync_steps": None, "error": r}
        else:
            results.update(_merge_rounds(r, 5))
    # PowerSGD with DDP's default buckets (several): recorded, expected to fail on gloo
    ps_default = [("[default buckets] PowerSGD rank 4", "powersgd",
                   {"matrix_approximation_rank": 4, "start_powerSGD_iter": 2})]
    r = _spawn_safely({**base_cfg, "steps": 20, "timeout_s": 30, "variants": ps_default},
                      timeout_s=120.0)
    if isinstance(r, str):
        results[ps_default[0][0]] = {"times": [], "desync_steps": None, "error": r}
    else:
        results.update(_merge_rounds(r, 5))

    def med(name: str) -> float:
        ts = results.get(name, {}).get("times", [])
        return statistics.median(ts) if ts else float("nan")

    for name, r in results.items():
        base = med("[1 bucket] no hook" if name.startswith("[1 bucket]") else "no hook")
        m = med(name)
        out["timing"][name] = {"median_ms": 1000 * m, "ratio_to_no_hook": m / base,
                               "steps": len(r["times"]),
                               "desync_steps": r["desync_steps"], "error": r["error"]}
    out["ratios"] = {
        "topk / no hook (default buckets)": med("top-k 1% (ours)") / med("no hook"),
        "topk / no hook (1 bucket)": med("[1 bucket] top-k 1% (ours)") / med("[1 bucket] no hook"),
        "topk / PowerSGD rank 1 (1 bucket)":
            med("[1 bucket] top-k 1% (ours)") / med("[1 bucket] PowerSGD rank 1"),
        "topk / PowerSGD rank 4 (1 bucket)":
            med("[1 bucket] top-k 1% (ours)") / med("[1 bucket] PowerSGD rank 4"),
        "topk (default buckets) / PowerSGD rank 1 (1 bucket)":
            med("top-k 1% (ours)") / med("[1 bucket] PowerSGD rank 1"),
    }
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


def _print_ddp(ddp: dict[str, Any]) -> None:
    print("\n== DDP step, 2 ranks gloo loopback, MLP 784-1024-1024-10, batch 64/rank ==")
    print("| hook | median step ms | ratio to no hook | desync steps | error |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in ddp["timing"].items():
        print(f"| {name} | {r['median_ms']:.1f} | {r['ratio_to_no_hook']:.2f} | "
              f"{r['desync_steps']} | {(r['error'] or '')[:80]} |")
    for k, v in ddp["ratios"].items():
        print(f"{k}: {v:.3f}")
    if "repeated_runs" in ddp:
        print("repeated runs:", ddp["repeated_runs"])


def _print_probabilities(rows: list[dict[str, Any]], size: int) -> None:
    print(f"\n== optimal probabilities vs one torch.abs pass, {size:,} float32 ==")
    print("| vector | density | method | abs ms | ours ms | ratio to abs | sum p / target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['vector']} | {r['density']:g} | {r['method']} | {r['abs_ms']:.0f} | "
              f"{r['ours_ms']:.0f} | {r['ratio_to_abs']:.2f} | {r['sum_p_over_target']:.4f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=25_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ddp-steps", type=int, default=45, help="steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved DDP timing rounds")
    ap.add_argument("--runs", type=int, default=50, help="repeated short DDP runs per hook")
    ap.add_argument("--run-steps", type=int, default=10)
    ap.add_argument("--skip-ddp", action="store_true")
    ap.add_argument("--out", default="results/bench/compress.json")
    ap.add_argument("--only-probabilities", action="store_true",
                    help="rerun only the optimal-probabilities part, update it in --out")
    ap.add_argument("--only-ddp", action="store_true",
                    help="rerun only the DDP part and update it in the existing --out file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.only_probabilities:
        out = Path(args.out)
        prev = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
        prev["probabilities"] = bench_probabilities(args.size, args.repeat)
        prev["probabilities_command"] = "python benchmarks/bench_compress.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        _print_probabilities(prev["probabilities"], args.size)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(prev, indent=2) + "\n", encoding="utf-8")
        print(f"\nupdated the probabilities part of {out}")
        return
    if args.only_ddp:
        out = Path(args.out)
        prev = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
        prev["ddp"] = bench_ddp(args.ddp_steps, args.runs, args.run_steps, args.rounds)
        prev["ddp"]["command"] = "python benchmarks/bench_compress.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        _print_ddp(prev["ddp"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(prev, indent=2) + "\n", encoding="utf-8")
        print(f"\nupdated the DDP part of {out}")
        return
    res: dict[str, Any] = {"size": args.size, "threads": 1, "torch": torch.__version__,
                           "command": "python benchmarks/bench_compress.py "
                                      + " ".join(argv if argv is not None else sys.argv[1:])}
    res["notes"] = [
        ("Timing ratios are within one process (selection, probabilities) or within one "
         "process group in interleaved rounds (DDP); absolute times depend on machine load."),
        ("PowerSGD (torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook) issues the "
         "allreduce of its P and Q factors from future callbacks, i.e. on gloo's worker "
         "thread, while DDP calls the hook of the next bucket on the autograd thread; with "
         "several buckets the two ranks can enqueue collectives in different orders and gloo "
         "aborts ('Received data size doesn't match expected size. Is there a distributed "
         "collective mismatch') or times out. With one bucket the order is fixed and it runs. "
         "Related upstream report: pytorch/pytorch#58467 (PowerSGD hook parity test failing on "
         "gloo). Even with one bucket it deadlocked once here (both gloo worker threads "
         "blocked in PowerSGD's callback waiting on a future; every run is therefore under "
         "a watchdog). Our hooks issue every collective from the hook call itself."),
    ]
    res["selection"] = bench_selection(args.size, args.repeat)
    print(f"\n== top-k selection, {args.size:,} float32, 1 thread ==")
    print("| vector | density | mode | torch.topk ms | ours ms | speed-up | recall | count err |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in res["selection"]["timing"]:
        print(f"| {r['vector']} | {r['density']:g} | {r['mode']} | {r['torch_topk_ms']:.0f} | "
              f"{r['ours_ms']:.0f} | {r['speedup']:.2f}x | {r['recall']:.4f} | "
              f"{r['count_error']:.4f} |")
    for mode, w in res["selection"]["worst"].items():
        print(f"{mode}: worst recall {w['min_recall']:.4f}, worst count error "
              f"{w['max_count_error']:.4f} over {w['cases']} cases (distributions x seeds x "
              "densities, plus a real MNIST MLP gradient when the data is available)")
    res["probabilities"] = bench_probabilities(args.size, args.repeat)
    _print_probabilities(res["probabilities"], args.size)
    if not args.skip_ddp:
        res["ddp"] = bench_ddp(args.ddp_steps, args.runs, args.run_steps, args.rounds)
        _print_ddp(res["ddp"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
