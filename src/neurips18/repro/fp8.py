"""Reproduction: Wang et al., "Training Deep Neural Networks with 8-bit Floating Point Numbers".

Two experiments, both on this CPU:

1. Accumulation study (the paper's Fig. 3b setting): relative error of length-N dot products of
   FP8 (E5M2) vectors accumulated in FP16 (E6M9) sequentially vs in chunks, against N and
   against the chunk length. E5M2 x E5M2 products are exact in E6M9, so the dot product in
   exact mode equals a chunked sum of the products (that is what is computed).
2. MNIST training: FP32 vs the FP8 recipe (E5M2 GEMM inputs, chunked E6M9 accumulation,
   first/last layer in E6M9, E6M9 master weights updated with stochastic rounding) vs the
   same recipe with round-to-nearest weight updates, at a standard and at a small learning
   rate.

Departures from the paper: CIFAR-10 and ImageNet are not available here, so the paper's
accuracy table is recorded (where it could be recovered) but not re-run; MNIST MLP/CNN stand
in. The GEMMs use the recipe's "fast" accumulation mode (float32 inside a chunk of 64, E6M9
between chunks) for speed; the accumulation study uses the exact mode.
"""

from __future__ import annotations

import functools
from typing import Any

from neurips18.repro.core import Comparison, Outcome, Reproduction, RunContext, compare

# Values measured by the project's brief (shared/papers/fp8.md), same setting as ours:
# E5M2 inputs, E6M9 round-to-nearest accumulation, median relative error over 32 vectors.
_BRIEF = "brief measurement (shared/papers/fp8.md, 'Measured here'), not the paper"
_BRIEF_ACC = {  # (dist, N) -> (sequential, chunk 64)
    ("uniform", 1024): (1.5e-2, 6.3e-4),
    ("uniform", 16384): (0.75, 2.4e-3),
    ("uniform", 65536): (0.94, 2.7e-3),
    ("normal", 1024): (7.2e-3, 1.7e-3),
    ("normal", 16384): (3.4e-2, 4.9e-3),
    ("normal", 65536): (6.0e-2, 9.1e-3),
}
_BRIEF_SWEEP = {1: 0.75, 8: 0.019, 64: 0.0023, 128: 0.0016, 1024: 0.015}  # N = 16K, uniform

# The paper's accuracy table (FP32 vs FP8 test error per model). The search tools only
# exposed the abstract and introduction of arXiv:1812.08011, so no number is recorded.
_PAPER_TABLE_MODELS = ["CIFAR10-CNN", "CIFAR10-ResNet", "ImageNet AlexNet", "ImageNet ResNet18",
                       "ImageNet ResNet50", "speech DNN"]

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "acc_sizes": [1024, 4096, 16384],
        "acc_vectors": 32,
        "sweep_size": 16384,
        "sweep_chunks": [1, 8, 32, 64, 128, 256, 1024],
        "models": ["mlp"],
        "n_train": 6000,
        "n_test": 10000,
        "seeds": 1,
        "batch": 64,
        "standard": {"lr": 0.1, "epochs": 2},
        "small": {"lr": 0.002, "epochs": 2},
        "loss_scale": 1024.0,
    },
    "full": {
        "acc_sizes": [1024, 2048, 4096, 8192, 16384, 32768, 65536],
        "acc_vectors": 32,
        "sweep_size": 16384,
        "sweep_chunks": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
        "models": ["mlp", "cnn"],
        "n_train": 60000,
        "n_test": 10000,
        "seeds": 3,
        "seeds_per_model": {"cnn": 1},  # CPU budget: the emulated CNN is ~5x slower
        "batch": 64,
        "standard": {"lr": 0.1, "epochs": 2},
        "small": {"lr": 0.002, "epochs": 1},
        "loss_scale": 1024.0,
    },
}


# ----------------------------------------------------------------------------- accumulation
def _dot_errors(dist: str, n: int, vectors: int, chunks: list[int], seed: int) -> dict[str, Any]:
    import torch

    from neurips18.lowprec import E5M2, E6M9, chunked_sum, quantize

    g = torch.Generator().manual_seed(seed)
    draw = (lambda: torch.rand(vectors, n, generator=g)) if dist == "uniform" else (
        lambda: torch.randn(vectors, n, generator=g))
    a, b = quantize(draw(), E5M2), quantize(draw(), E5M2)
    p = a * b  # exact in float32 and in E6M9
    exact = p.double().sum(-1)
    out: dict[str, Any] = {}
    for cl in chunks:
        s = chunked_sum(p, E6M9, chunk=min(cl, n)).double()
        rel = ((s - exact).abs() / exact.abs()).median().item()
        out[str(cl)] = rel
    return out


def _accumulation(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    res: dict[str, Any] = {"vs_n": {}, "sweep": {}}
    jobs = [(d, n) for d in ("uniform", "normal") for n in cfg["acc_sizes"]]
    for i, (dist, n) in enumerate(ctx.progress(jobs, desc="accumulation vs N")):
        key = f"acc-{dist}-{n}"
        job = functools.partial(_dot_errors, dist, n, cfg["acc_vectors"], [n, 64],
                                ctx.seed + 1000 + i)
        res["vs_n"][key] = ctx.cached(key, job)
    n = cfg["sweep_size"]
    res["sweep"] = ctx.cached(f"sweep-{n}", lambda: _dot_errors(
        "uniform", n, cfg["acc_vectors"], list(cfg["sweep_chunks"]), ctx.seed + 2000))
    return res


# ----------------------------------------------------------------------------- training
def _load(cfg: dict[str, Any], seed: int) -> tuple[Any, Any, Any, Any]:
    import numpy as np
    import torch

    from neurips18.datasets import load_mnist

    xtr, ytr = load_mnist("train")
    xte, yte = load_mnist("test")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(xtr))[: cfg["n_train"]]
    tidx = np.arange(min(cfg["n_test"], len(xte)))

    def prep(x: Any) -> Any:
        return ((torch.from_numpy(x.astype(np.float32)) / 255.0 - 0.1307) / 0.3081)[:, None]

    return prep(xtr[idx]), torch.from_numpy(ytr[idx]), prep(xte[tidx]), torch.from_numpy(
        yte[tidx])


def _train(model_name: str, variant: str, lr: float, epochs: int, seed: int, data: Any,
           batch: int, ctx: RunContext, loss_scale: float = 1.0) -> dict[str, Any]:
    import time

    import torch
    from torch import nn

    from neurips18.lowprec import Fp8Recipe, StochasticRoundingSGD, convert_to_fp8
    from neurips18.lowprec.models import mnist_cnn, mnist_mlp

    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)  # the initialisation only; every other draw has its generator
    model = mnist_mlp() if model_name == "mlp" else mnist_cnn()
    if variant == "fp32":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        convert_to_fp8(model, Fp8Recipe(loss_scale=loss_scale if variant == "fp8-ls" else 1.0))
        opt = StochasticRoundingSGD(model.parameters(), lr=lr,
                                    rounding="nearest" if variant == "fp8-nearest" else
                                    "stochastic",
                                    generator=torch.Generator().manual_seed(seed + 7))
    order_gen = torch.Generator().manual_seed(seed + 11)
    curve = []
    t0 = time.perf_counter()

    def evaluate() -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 1000):
                correct += (model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
        model.train()
        return 100.0 * correct / len(xte)

    steps = 0
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=order_gen)
        for i in range(0, len(xtr) - batch + 1, batch):
            sel = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xtr[sel]), ytr[sel])
            loss.backward()
            opt.step()
            steps += 1
        curve.append(evaluate())
    return {"acc": curve[-1], "curve": curve, "seconds": time.perf_counter() - t0,
            "steps": steps}


def _training(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    data = None
    out: dict[str, Any] = {}
    runs = [(m, regime, v, s) for m in cfg["models"] for regime in ("standard", "small")
            for v in ("fp32", "fp8", "fp8-nearest") for s in range(_seeds(cfg, m))]
    # added after the first full run: the recipe with loss scaling (standard lr only)
    runs += [(m, "standard", "fp8-ls", s) for m in cfg["models"] for s in range(_seeds(cfg, m))]
    for m, regime, v, s in ctx.progress(runs, desc="MNIST training"):
        key = f"train-{m}-{regime}-{v}-seed{s}"

        def job(m: str = m, regime: str = regime, v: str = v, s: int = s) -> dict[str, Any]:
            nonlocal data
            if data is None:
                data = _load(cfg, ctx.seed)
            r = cfg[regime]
            return _train(m, v, r["lr"], r["epochs"], ctx.seed + 100 * s, data, cfg["batch"],
                          ctx, loss_scale=cfg["loss_scale"])

        out[key] = ctx.cached(key, job)
    return out


def _seeds(cfg: dict[str, Any], model: str) -> int:
    return int(cfg.get("seeds_per_model", {}).get(model, cfg["seeds"]))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def run(ctx: RunContext) -> Outcome:
    import torch

    # The emulation is many small kernels: one thread avoids OpenMP overhead (and keeps
    # the run fair on a shared 2-core machine). Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(ctx)
    finally:
        torch.set_num_threads(threads)


def _run(ctx: RunContext) -> Outcome:
    cfg = ctx.config
    acc = _accumulation(ctx)
    comps: list[Comparison] = []
    notes: list[str] = []
    for dist in ("uniform", "normal"):
        for n in cfg["acc_sizes"]:
            if (dist, n) not in _BRIEF_ACC:
                continue
            ref_seq, ref_chunk = _BRIEF_ACC[(dist, n)]
            r = acc["vs_n"][f"acc-{dist}-{n}"]
            comps.append(compare(f"median rel. error, {dist}, N={n}, sequential FP16", r[str(n)],
                                 ref_seq, source=_BRIEF, tol=0.5, mode="rel"))
            comps.append(compare(f"median rel. error, {dist}, N={n}, chunk 64", r["64"],
                                 ref_chunk, source=_BRIEF, tol=0.5, mode="rel"))
    sweep = acc["sweep"]
    for cl, ref in _BRIEF_SWEEP.items():
        if str(cl) in sweep:
            comps.append(compare(f"median rel. error, uniform, N={cfg['sweep_size']}, chunk {cl}",
                                 sweep[str(cl)], ref, source=_BRIEF, tol=0.5, mode="rel"))
    n16 = cfg["sweep_size"]
    seq16 = acc["vs_n"].get(f"acc-uniform-{n16}", {}).get(str(n16))
    if seq16 is not None:
        comps.append(compare("error ratio sequential / chunk-64 (uniform, N=16K)",
                             seq16 / sweep["64"], 10.0,
                             source="paper Fig. 3(b) caption (qualitative: chunks of >= 32 "
                                    "remove the FP16 swamping error); threshold 10x is ours",
                             tol=0.0, mode="min"))

    train = _training(ctx)
    for m in cfg["models"]:
        def accs(regime: str, v: str, m: str = m) -> list[float]:
            return [train[f"train-{m}-{regime}-{v}-seed{s}"]["acc"]
                    for s in range(_seeds(cfg, m))]

        fp32, fp8 = _mean(accs("standard", "fp32")), _mean(accs("standard", "fp8"))
        comps.append(compare(f"{m}: test accuracy FP8 recipe (%), lr {cfg['standard']['lr']}",
                             fp8, fp32, source="issue target: within 0.3 points of FP32 "
                             "(reference = our FP32 run, same seeds)", tol=0.3, mode="min"))
        ls = _mean(accs("standard", "fp8-ls"))
        comps.append(compare(f"{m}: test accuracy FP8 recipe + loss scale "
                             f"{cfg['loss_scale']:g} (%), lr {cfg['standard']['lr']}", ls, fp32,
                             source="issue target: within 0.3 points of FP32 (reference = our "
                             "FP32 run, same seeds)", tol=0.3, mode="min"))
        s32, s8 = _mean(accs("small", "fp32")), _mean(accs("small", "fp8"))
        snr = _mean(accs("small", "fp8-nearest"))
        comps.append(compare(f"{m}: test accuracy FP8 + SR (%), small lr {cfg['small']['lr']}",
                             s8, s32, source="issue target: SR within 1 point of FP32 "
                             "(reference = our FP32 run at the same lr)", tol=1.0, mode="min"))
        comps.append(compare(f"{m}: accuracy gap FP32 - FP8 nearest updates (points), small lr",
                             s32 - snr, 5.0, source="issue target ('visibly fails'); the 5-point "
                             "threshold is ours", tol=0.0, mode="min"))
        comps.append(compare(f"{m}: test accuracy FP32 (%), lr {cfg['standard']['lr']} "
                             "(reference run)", fp32, None,
                             source="paper table not recovered; MNIST is not in the paper",
                             tol=0.0))
    for model in _PAPER_TABLE_MODELS:
        comps.append(compare(f"paper table: {model} test error FP8 - FP32 (points)", None, None,
                             source="arXiv:1812.08011 accuracy table: not recovered (search "
                             "tools showed only abstract and introduction)", tol=0.0))
    notes.append("Accumulation rows compare with values measured by the project brief in the "
                 "same setting (another random stream), not with the paper, whose Fig. 3(b) "
                 "numbers could not be read; tolerance: within 50% (median of 32 vectors).")
    notes.append("The paper's FP32-vs-FP8 accuracy table (CIFAR-10, ImageNet, speech) was not "
                 "recoverable with the search tools: those rows have no reference. CIFAR-10 "
                 "and ImageNet are not available on this machine; the CIFAR ResNet code path is "
                 "tested on a synthetic batch (tests/lowprec).")
    seeds = {m: _seeds(cfg, m) for m in cfg["models"]}
    notes.append(f"Profile {ctx.profile}: MNIST {cfg['n_train']} train / {cfg['n_test']} test "
                 f"images, seeds per model {seeds}, batch {cfg['batch']}, plain SGD; "
                 f"epochs: {cfg['standard']['epochs']} at lr {cfg['standard']['lr']}, "
                 f"{cfg['small']['epochs']} at lr {cfg['small']['lr']}; GEMMs "
                 "in the recipe's fast accumulation mode (float32 within a chunk of 64, E6M9 "
                 "between chunks).")
    notes.append(f"'FP8 recipe' runs use loss_scale 1 (no loss scaling); 'fp8-ls' runs scale "
                 f"the errors entering the backward GEMMs by {cfg['loss_scale']:g} before the "
                 "E5M2 rounding (the value was fixed before running; not tuned).")
    secs = {k: v["seconds"] for k, v in train.items()}
    return Outcome(comparisons=comps, data={"accumulation": acc, "training": train,
                                            "config": cfg, "train_seconds": secs}, notes=notes)


def plot(data: dict[str, Any], fig: Any) -> None:
    acc = data["accumulation"]
    cfg = data["config"]
    axes = fig.subplots(1, 3)
    ax = axes[0]
    for dist, style in (("uniform", "-"), ("normal", "--")):
        ns = [n for n in cfg["acc_sizes"] if f"acc-{dist}-{n}" in acc["vs_n"]]
        seq = [acc["vs_n"][f"acc-{dist}-{n}"][str(n)] for n in ns]
        ch = [acc["vs_n"][f"acc-{dist}-{n}"]["64"] for n in ns]
        ax.loglog(ns, seq, "o" + style, label=f"{dist}, sequential")
        ax.loglog(ns, ch, "s" + style, label=f"{dist}, chunk 64")
    ax.set_xlabel("dot-product length N")
    ax.set_ylabel("median relative error")
    ax.set_title("FP8 inputs, FP16 (1-6-9) accumulation")
    ax.legend(fontsize=7)
    ax = axes[1]
    sw = acc["sweep"]
    cls = sorted(int(k) for k in sw)
    ax.loglog(cls, [sw[str(c)] for c in cls], "o-")
    ax.set_xlabel("chunk length CL")
    ax.set_ylabel("median relative error")
    ax.set_title(f"N = {cfg['sweep_size']}, uniform")
    ax = axes[2]
    train = data["training"]
    for key, r in sorted(train.items()):
        if key.endswith("seed0"):
            label = key.removeprefix("train-").removesuffix("-seed0")
            ax.plot(range(1, len(r["curve"]) + 1), r["curve"], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("MNIST")
    ax.legend(fontsize=6)
    fig.set_size_inches(15, 4.5)
    fig.tight_layout()


REPRODUCTION = Reproduction(
    name="fp8",
    title="Training deep neural networks with 8-bit floating point numbers",
    citation="Wang, Choi, Brand, Chen, Gopalakrishnan. NeurIPS 2018. arXiv:1812.08011",
    capability="lowprec",
    run=run,
    plot=plot,
    profiles=PROFILES,
    description="FP16 chunk-based accumulation study and MNIST FP32 vs FP8 (+SR) training.",
)
