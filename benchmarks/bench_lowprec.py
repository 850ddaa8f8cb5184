"""Side-by-side timings for neurips18.lowprec (one thread, ratios measured in one process).

    python benchmarks/bench_lowprec.py [--numel N] [--mm-size N] [--skip-exact] [--steps N]

1. quantize nearest / stochastic (random numbers included) on a float32 tensor vs
   ``x.clone()``, the ``torch.float8_e5m2`` round trip, and qtorch's ``float_quantize``
   (if qtorch is installed; its C++ extension compiles at first import).
2. chunked_matmul (E5M2 inputs, E6M9 accumulation, chunk 64) fast / exact vs FP32 matmul.
3. One training step of the MNIST CNN and MLP, a small transformer encoder (rows of an
   image as a sequence of 28 tokens) and an LSTM: FP8 recipe (+ StochasticRoundingSGD) vs
   FP32 SGD (the per-step ratio is the per-epoch ratio; best of three blocks of steps), with
   the time split into forward (+ loss), backward and optimizer step.

Writes results/bench/lowprec.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch


def _time(fn: Any, repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_quantize(numel: int) -> dict[str, Any]:
    from neurips18.lowprec import E5M2, quantize

    g = torch.Generator().manual_seed(0)
    x = torch.randn(numel, generator=g)
    res: dict[str, Any] = {"numel": numel}
    base = _time(lambda: x.clone())
    res["clone_s"] = base
    quantize(x, E5M2)  # compile outside the timing
    quantize(x, E5M2, "stochastic", g)
    rows = {
        "ours nearest": lambda: quantize(x, E5M2),
        "ours stochastic": lambda: quantize(x, E5M2, "stochastic", g),
        "torch float8_e5m2 cast round trip": lambda: x.to(torch.float8_e5m2).float(),
    }
    try:
        from qtorch.quant import float_quantize

        rows["qtorch float_quantize nearest"] = lambda: float_quantize(x, 5, 2, "nearest")
        rows["qtorch float_quantize stochastic"] = lambda: float_quantize(x, 5, 2,
                                                                          "stochastic")
    except Exception as exc:  # optional anchor
        res["qtorch"] = f"not available: {exc!r}"
    for name, fn in rows.items():
        t = _time(fn)
        res[name] = {"seconds": t, "x_clone": t / base}
    for mode in ("nearest", "stochastic"):
        q = f"qtorch float_quantize {mode}"
        if q in res:
            res[f"qtorch / ours ({mode})"] = res[q]["seconds"] / res[f"ours {mode}"]["seconds"]
    return res


def bench_matmul(n: int, exact: bool) -> dict[str, Any]:
    from neurips18.lowprec import E5M2, E6M9, chunked_matmul, quantize

    g = torch.Generator().manual_seed(1)
    a = quantize(torch.randn(n, n, generator=g), E5M2)
    b = quantize(torch.randn(n, n, generator=g), E5M2)
    base = _time(lambda: a @ b)
    res: dict[str, Any] = {"size": n, "fp32_matmul_s": base}
    t = _time(lambda: chunked_matmul(a, b, E6M9, 64, "fast"), repeat=3)
    res["fast"] = {"seconds": t, "x_fp32_matmul": t / base}
    if exact:
        t = _time(lambda: chunked_matmul(a, b, E6M9, 64, "exact"), repeat=2, warmup=0)
        res["exact"] = {"seconds": t, "x_fp32_matmul": t / base}
    return res


class _RowTransformer(torch.nn.Module):
    """A 28 x 28 image as a sequence of its rows: linear embedding, one encoder layer."""

    def __init__(self) -> None:
        from torch import nn

        super().__init__()
        self.embed = nn.Linear(28, 64)
        self.encoder = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x.reshape(-1, 28, 28))).mean(1))


class _RowLSTM(torch.nn.Module):
    """A 28 x 28 image as a sequence of its rows through a one-layer LSTM."""

    def __init__(self) -> None:
        from torch import nn

        super().__init__()
        self.lstm = nn.LSTM(28, 64, batch_first=True)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x.reshape(-1, 28, 28))[0][:, -1])


def bench_training(steps: int) -> dict[str, Any]:
    from torch import nn

    from neurips18.lowprec import Fp8Recipe, StochasticRoundingSGD, convert_to_fp8
    from neurips18.repro._common import init_model
    from neurips18.repro._common.models import mnist_cnn, mnist_mlp

    res: dict[str, Any] = {"batch": 64, "steps": steps}
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    for name, make in (("mlp", mnist_mlp), ("cnn", mnist_cnn),
                       ("transformer", _RowTransformer), ("lstm", _RowLSTM)):
        times: dict[str, float] = {}
        breakdown: dict[str, dict[str, float]] = {}
        for variant in ("fp32", "fp8"):
            model = init_model(make, 0)
            if variant == "fp32":
                opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            else:
                convert_to_fp8(model, Fp8Recipe())
                opt = StochasticRoundingSGD(model.parameters(), lr=0.01,
                                            generator=torch.Generator().manual_seed(0))

            def step(model: nn.Module = model, opt: torch.optim.Optimizer = opt,
                     phases: dict[str, float] | None = None) -> None:
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x), y)
                t1 = time.perf_counter()
                loss.backward()
                t2 = time.perf_counter()
                opt.step()
                t3 = time.perf_counter()
                if phases is not None:
                    for k, dt in (("forward", t1 - t0), ("backward", t2 - t1),
                                  ("optimizer", t3 - t2)):
                        phases[k] = phases.get(k, 0.0) + dt

            for _ in range(3):
                step()
            best = float("inf")
            for _ in range(3):  # best of three blocks of `steps` steps
                t = time.perf_counter()
                for _ in range(steps):
                    step()
                best = min(best, (time.perf_counter() - t) / steps)
            times[variant] = best
            ph: dict[str, float] = {}
            for _ in range(steps):
                step(phases=ph)
            breakdown[variant] = {k: v / steps for k, v in ph.items()}
        res[name] = {"fp32_step_s": times["fp32"], "fp8_step_s": times["fp8"],
                     "fp8_x_fp32": times["fp8"] / times["fp32"],
                     "breakdown_s": breakdown}
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--numel", type=int, default=16 * 2**20)
    p.add_argument("--mm-size", type=int, default=1024)
    p.add_argument("--skip-exact", action="store_true", help="skip the slow exact-mode GEMM")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default="results/bench/lowprec.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out: dict[str, Any] = {"command": " ".join(["python", *sys.argv]),
                           "torch": torch.__version__, "python": sys.version.split()[0],
                           "machine": platform.machine(), "threads": 1}
    print(f"quantize, {args.numel} float32 elements, 1 thread (ratio to x.clone()):")
    q = out["quantize"] = bench_quantize(args.numel)
    for k, v in q.items():
        if isinstance(v, dict):
            print(f"  {k:36s} {v['seconds'] * 1e3:8.1f} ms  {v['x_clone']:6.2f}x clone")
        elif k.startswith("qtorch /"):
            print(f"  {k:36s} {v:6.2f}x (qtorch time / ours)")
        elif k == "qtorch":
            print(f"  qtorch: {v}")
    print(f"chunked_matmul {args.mm_size}^3, E5M2 inputs, E6M9 accumulation, chunk 64:")
    m = out["matmul"] = bench_matmul(args.mm_size, not args.skip_exact)
    print(f"  fp32 matmul {m['fp32_matmul_s'] * 1e3:.1f} ms")
    for mode in ("fast", "exact"):
        if mode in m:
            print(f"  {mode:5s} {m[mode]['seconds'] * 1e3:10.1f} ms  "
                  f"{m[mode]['x_fp32_matmul']:7.1f}x fp32 matmul")
    print(f"training step, batch 64, {args.steps} steps (ratio = epoch ratio):")
    t = out["training"] = bench_training(args.steps)
    for name in ("cnn", "mlp", "transformer", "lstm"):
        r = t[name]
        print(f"  {name}: fp32 {r['fp32_step_s'] * 1e3:.1f} ms, fp8 {r['fp8_step_s'] * 1e3:.1f} ms"
              f"  -> {r['fp8_x_fp32']:.2f}x")
        for variant, ph in r["breakdown_s"].items():
            parts = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in ph.items())
            print(f"      {variant:4s} {parts}")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
