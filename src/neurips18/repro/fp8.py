"""Reproduction: Wang et al., "Training Deep Neural Networks with 8-bit Floating Point Numbers".

Two experiments, both on this CPU:

1. Accumulation study (the paper's Fig. 3b setting): relative error of length-N dot products of
   FP8 (E5M2) vectors accumulated in FP16 (E6M9) sequentially vs in chunks, against N and
   against the chunk length. E5M2 x E5M2 products are exact in E6M9, so the dot product in
   exact mode equals a chunked sum of the products (that is what is computed).
2. MNIST training: FP32 vs the FP8 recipe (E5M2 GEMM inputs, chunked E6M9 accumulation,
   first/last layer in E6M9, E6M9 master weights updated with stochastic rounding) vs the
   same recipe with round-to-nearest weight updates, at a standard learning rate (with and
   without loss scaling) and over a sweep of small learning rates (the SR ablation).

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

# Nearest-rounding ablation: a sweep over small learning rates. Pass criterion, fixed before
# the sweep was first run (session 2) and not to be moved: at EVERY learning rate of the sweep
# (a) FP8 + SR is within 1 point of FP32 (issue target) and (b) FP8 with round-to-nearest
# updates is at least 5 points below FP32 (our reading of "visibly fails"; the same threshold
# as the single-lr check of session 1); and (c) the nearest-rounding gap at the smallest lr is
# at least the gap at the largest (the failure grows as lr shrinks).
_GAP_MIN = 5.0
_SR_TOL = 1.0

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
        "small": {"lrs": [0.002, 0.0005], "epochs": 2},
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
        "batch": 64,
        "standard": {"lr": 0.1, "epochs": 2},
        "small": {"lrs": [0.002, 0.001, 0.0005], "epochs": 1},
        "loss_scale": 1024.0,
    },
}


def _small_lrs(cfg: dict[str, Any]) -> list[float]:
    small = cfg["small"]
    return [float(v) for v in small.get("lrs", [small.get("lr")])]


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


def _runs(cfg: dict[str, Any]) -> list[tuple[str, str, float, int, str, int]]:
    """(model, regime, lr, epochs, variant, seed) of every training run, in run order."""
    runs = []
    for m in cfg["models"]:
        st = cfg["standard"]
        for v in ("fp32", "fp8", "fp8-ls", "fp8-nearest"):
            runs += [(m, "standard", st["lr"], st["epochs"], v, s) for s in range(_seeds(cfg, m))]
        for lr in _small_lrs(cfg):
            for v in ("fp32", "fp8", "fp8-nearest"):
                runs += [(m, "small", lr, cfg["small"]["epochs"], v, s)
                         for s in range(_seeds(cfg, m))]
    return runs


def _key(m: str, regime: str, lr: float, v: str, s: int) -> str:
    if regime == "standard":
        return f"train-{m}-standard-{v}-seed{s}"
    return f"train-{m}-small-lr{lr:g}-{v}-seed{s}"


def _training(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    data = None
    out: dict[str, Any] = {}
    for m, regime, lr, epochs, v, s in ctx.progress(_runs(cfg), desc="MNIST training"):
        key = _key(m, regime, lr, v, s)

        def job(m: str = m, lr: float = lr, epochs: int = epochs, v: str = v,
                s: int = s) -> dict[str, Any]:
            nonlocal data
            if data is None:
                data = _load(cfg, ctx.seed)
            return _train(m, v, lr, epochs, ctx.seed + 100 * s, data, cfg["batch"], ctx,
                          loss_scale=cfg["loss_scale"])

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
    gaps: dict[str, dict[str, dict[str, float]]] = {}
    for m in cfg["models"]:
        def accs(regime: str, v: str, lr: float = 0.0, m: str = m) -> list[float]:
            return [train[_key(m, regime, lr, v, s)]["acc"] for s in range(_seeds(cfg, m))]

        lr0 = cfg["standard"]["lr"]
        fp32, fp8 = _mean(accs("standard", "fp32")), _mean(accs("standard", "fp8"))
        comps.append(compare(f"{m}: test accuracy FP8 recipe, no loss scaling (%), lr {lr0}",
                             fp8, fp32, source="issue target: within 0.3 points of FP32 "
                             "(reference = our FP32 run, same seeds)", tol=0.3, mode="min"))
        ls = _mean(accs("standard", "fp8-ls"))
        comps.append(compare(f"{m}: test accuracy FP8 recipe + loss scale "
                             f"{cfg['loss_scale']:g} (%), lr {lr0}", ls, fp32,
                             source="issue target: within 0.3 points of FP32 (reference = our "
                             "FP32 run, same seeds)", tol=0.3, mode="min"))
        comps.append(compare(f"{m}: test accuracy FP32 (%), lr {lr0} (reference run)", fp32,
                             None, source="paper table not recovered; MNIST is not in the paper",
                             tol=0.0))
        gaps[m] = {}
        lrs = _small_lrs(cfg)
        for lr in lrs:
            s32 = _mean(accs("small", "fp32", lr))
            s8 = _mean(accs("small", "fp8", lr))
            snr = _mean(accs("small", "fp8-nearest", lr))
            gaps[m][f"{lr:g}"] = {"fp32": s32, "sr": s8, "nearest": snr,
                                  "gap_sr": s32 - s8, "gap_nearest": s32 - snr}
            comps.append(compare(f"{m}: test accuracy FP8 + SR updates (%), lr {lr:g}", s8, s32,
                                 source="issue target: SR within 1 point of FP32 (reference = "
                                 "our FP32 run at the same lr, same seeds)", tol=_SR_TOL,
                                 mode="min"))
            comps.append(compare(f"{m}: accuracy gap FP32 - FP8 nearest updates (points), "
                                 f"lr {lr:g}", s32 - snr, _GAP_MIN,
                                 source="issue target ('visibly fails at small learning "
                                 "rates'); threshold 5 points at every lr of the sweep, ours, "
                                 "fixed before the sweep", tol=0.0, mode="min"))
        if len(lrs) > 1:
            lo, hi = f"{min(lrs):g}", f"{max(lrs):g}"
            comps.append(compare(f"{m}: nearest gap at lr {lo} minus gap at lr {hi} (points)",
                                 gaps[m][lo]["gap_nearest"] - gaps[m][hi]["gap_nearest"], 0.0,
                                 source="issue: the failure appears at small learning rates; "
                                 "criterion (fixed before the sweep): the gap does not shrink "
                                 "as lr shrinks", tol=0.0, mode="min"))
    for model in _PAPER_TABLE_MODELS:
        comps.append(compare(f"paper table: {model} test error FP8 - FP32 (points)", None, None,
                             source="arXiv:1812.08011 accuracy table: not recovered (the "
                             "search tools showed only the abstract and introduction, in two "
                             "sessions)", tol=0.0))
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
                 f"{cfg['small']['epochs']} at each lr of the small-lr sweep "
                 f"{[f'{v:g}' for v in _small_lrs(cfg)]}; GEMMs "
                 "in the recipe's fast accumulation mode (float32 within a chunk of 64, E6M9 "
                 "between chunks).")
    notes.append(f"'FP8 recipe, no loss scaling' runs use loss_scale 1; 'fp8-ls' runs scale "
                 f"the errors entering the backward GEMMs by {cfg['loss_scale']:g} before the "
                 "E5M2 rounding (the value was fixed before running; not tuned). Whether the "
                 "paper's recipe uses loss scaling could not be checked: the search tools "
                 "exposed only the paper's abstract and introduction, which do not mention it. "
                 "Both rows are therefore kept; neither is labelled 'the paper's recipe'.")
    notes.append("Nearest-rounding ablation: pass criterion fixed before the sweep was run "
                 f"-- at every lr, FP8 + SR within {_SR_TOL:g} point of FP32 and FP8 + nearest "
                 f"at least {_GAP_MIN:g} points below FP32; the nearest gap at the smallest lr "
                 "at least the gap at the largest.")
    secs = {k: v["seconds"] for k, v in train.items()}
    return Outcome(comparisons=comps, data={"accumulation": acc, "training": train,
                                            "config": cfg, "train_seconds": secs,
                                            "small_lr_gaps": gaps}, notes=notes)


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
    gaps = data.get("small_lr_gaps", {})
    for m, marker in zip(sorted(gaps), "os^", strict=False):
        lrs = sorted(gaps[m], key=float)
        x = [float(v) for v in lrs]
        ax.semilogx(x, [gaps[m][v]["gap_nearest"] for v in lrs], marker + "-",
                    label=f"{m}: FP8, nearest updates")
        ax.semilogx(x, [gaps[m][v]["gap_sr"] for v in lrs], marker + "--",
                    label=f"{m}: FP8, stochastic rounding")
    ax.axhline(_GAP_MIN, color="grey", lw=0.8, ls=":")
    ax.axhline(_SR_TOL, color="grey", lw=0.8, ls="-.")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("FP32 accuracy - FP8 accuracy (points)")
    ax.set_title("MNIST: weight-update rounding vs lr")
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
