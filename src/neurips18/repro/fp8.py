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
accuracy table is recorded as not recovered and not re-run; MNIST MLP/CNN stand in. The
GEMMs use the recipe's "fast" accumulation mode (float32 inside a chunk of 64, E6M9 between
chunks) for speed; the accumulation study uses the exact mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from neurips18.repro.core import (
    MEASURED,
    Judgement,
    Profile,
    Reference,
    References,
    Reproduction,
    RunContext,
)

CITATION = "Wang, Choi, Brand, Chen, Gopalakrishnan. NeurIPS 2018. arXiv:1812.08011"


@dataclass(frozen=True)
class Regime:
    """Training runs at one or more learning rates: ``epochs`` passes each."""

    lrs: tuple[float, ...]
    epochs: int


@dataclass(frozen=True)
class Config(Profile):
    acc_sizes: tuple[int, ...]
    acc_vectors: int
    sweep_size: int
    sweep_chunks: tuple[int, ...]
    models: tuple[str, ...]
    n_train: int
    n_test: int
    seeds: int
    batch: int
    standard: Regime
    small: Regime
    loss_scale: float

    def check(self) -> None:
        if not set(self.models) <= {"mlp", "cnn"}:
            raise ValueError(f"models must be among 'mlp', 'cnn', got {self.models}")
        if len(self.standard.lrs) != 1:
            raise ValueError(f"standard.lrs must hold one learning rate, got {self.standard.lrs}")
        if self.seeds < 1 or self.batch < 1 or self.n_train < self.batch:
            raise ValueError("seeds and batch must be >= 1 and n_train >= batch")


PROFILES = {
    "smoke": Config(acc_sizes=(1024,), acc_vectors=8, sweep_size=1024, sweep_chunks=(1, 64),
                    models=("mlp",), n_train=256, n_test=500, seeds=1, batch=64,
                    standard=Regime((0.1,), 1), small=Regime((0.002, 0.001), 1),
                    loss_scale=1024.0),
    "quick": Config(acc_sizes=(1024, 4096, 16384), acc_vectors=32, sweep_size=16384,
                    sweep_chunks=(1, 8, 32, 64, 128, 256, 1024), models=("mlp",),
                    n_train=6000, n_test=10000, seeds=1, batch=64,
                    standard=Regime((0.1,), 2), small=Regime((0.002, 0.0005), 2),
                    loss_scale=1024.0),
    "full": Config(acc_sizes=(1024, 2048, 4096, 8192, 16384, 32768, 65536), acc_vectors=32,
                   sweep_size=16384, sweep_chunks=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
                                                   4096),
                   models=("mlp", "cnn"), n_train=60000, n_test=10000, seeds=3, batch=64,
                   standard=Regime((0.1,), 2), small=Regime((0.002, 0.001, 0.0005), 1),
                   loss_scale=1024.0),
}

# Values measured by the project's brief (shared/papers/fp8.md), same setting as ours:
# E5M2 inputs, E6M9 round-to-nearest accumulation, median relative error over 32 vectors.
_BRIEF_ACC = {  # (dist, N) -> (sequential, chunk 64)
    ("uniform", 1024): (1.5e-2, 6.3e-4),
    ("uniform", 16384): (0.75, 2.4e-3),
    ("uniform", 65536): (0.94, 2.7e-3),
    ("normal", 1024): (7.2e-3, 1.7e-3),
    ("normal", 16384): (3.4e-2, 4.9e-3),
    ("normal", 65536): (6.0e-2, 9.1e-3),
}
_BRIEF_SWEEP = {1: 0.75, 8: 0.019, 64: 0.0023, 128: 0.0016, 1024: 0.015}  # N = 16K, uniform

# The paper's accuracy table (FP32 vs FP8 test error per model): not recovered.
_PAPER_TABLE_MODELS = ("CIFAR10-CNN", "CIFAR10-ResNet", "ImageNet AlexNet", "ImageNet ResNet18",
                       "ImageNet ResNet50", "speech DNN")

# Nearest-rounding ablation over small learning rates; pass criteria fixed before the sweep
# was first run: at every learning rate (a) FP8 + SR is within _SR_TOL points of FP32 and
# (b) FP8 with round-to-nearest updates is at least _GAP_MIN points below FP32 (our reading
# of "visibly fails"); (c) the nearest-rounding gap at the smallest lr is at least the gap
# at the largest (the failure grows as lr shrinks).
_GAP_MIN = 5.0
_SR_TOL = 1.0
_BRIEF = "brief measurement (shared/papers/fp8.md, 'Measured here'), not the paper"
_ISSUE_03 = ("issue target: within 0.3 points of FP32 (reference = our FP32 run, same seeds)")

REFERENCES = References(
    *(Reference(f"acc_{dist}_{n}_{kind}", f"median rel. error, {dist}, N={n}, "
                + ("sequential FP16" if kind == "seq" else "chunk 64"),
                ref[0 if kind == "seq" else 1], source=_BRIEF, tol=0.5, mode="rel")
      for (dist, n), ref in _BRIEF_ACC.items() for kind in ("seq", "chunk")),
    *(Reference(f"sweep_{cl}", f"median rel. error, uniform, N={{n}}, chunk {cl}", ref,
                source=_BRIEF, tol=0.5, mode="rel") for cl, ref in _BRIEF_SWEEP.items()),
    Reference("swamping_ratio", "error ratio sequential / chunk-64 (uniform, N=16K)", 10.0,
              source="paper Fig. 3(b) caption (qualitative: chunks of >= 32 remove the FP16 "
                     "swamping error); threshold 10x is ours", mode="min"),
    Reference("fp8_standard", "{model}: test accuracy FP8 recipe, no loss scaling (%), lr {lr}",
              MEASURED, source=_ISSUE_03, tol=0.3, mode="min"),
    Reference("fp8_ls_standard", "{model}: test accuracy FP8 recipe + loss scale {scale} (%), "
              "lr {lr}", MEASURED, source=_ISSUE_03, tol=0.3, mode="min"),
    Reference("fp32_standard", "{model}: test accuracy FP32 (%), lr {lr} (reference run)", None,
              source="paper table not recovered; MNIST is not in the paper"),
    Reference("sr_small", "{model}: test accuracy FP8 + SR updates (%), lr {lr}", MEASURED,
              source="issue target: SR within 1 point of FP32 (reference = our FP32 run at the "
                     "same lr, same seeds)", tol=_SR_TOL, mode="min"),
    Reference("nearest_gap", "{model}: accuracy gap FP32 - FP8 nearest updates (points), "
              "lr {lr}", _GAP_MIN,
              source="issue target ('visibly fails at small learning rates'); threshold 5 "
                     "points at every lr of the sweep, ours, fixed before the sweep",
              mode="min"),
    Reference("nearest_growth", "{model}: nearest gap at lr {lo} minus gap at lr {hi} (points)",
              0.0, source="issue: the failure appears at small learning rates; criterion "
                          "(fixed before the sweep): the gap does not shrink as lr shrinks",
              mode="min"),
    Reference("paper_table", "paper table: {model} test error FP8 - FP32 (points)", None,
              source="arXiv:1812.08011 accuracy table: not recovered"),
)

VARIANTS_STANDARD = ("fp32", "fp8", "fp8-ls", "fp8-nearest")
VARIANTS_SMALL = ("fp32", "fp8", "fp8-nearest")


# ----------------------------------------------------------------------------- accumulation
def _dot_errors(dist: str, n: int, vectors: int, chunks: tuple[int, ...],
                seed: int) -> dict[str, float]:
    import torch

    from neurips18.lowprec import E5M2, E6M9, chunked_sum, quantize

    g = torch.Generator().manual_seed(seed)
    draw = (lambda: torch.rand(vectors, n, generator=g)) if dist == "uniform" else (
        lambda: torch.randn(vectors, n, generator=g))
    a, b = quantize(draw(), E5M2), quantize(draw(), E5M2)
    p = a * b  # exact in float32 and in E6M9
    exact = p.double().sum(-1)
    out: dict[str, float] = {}
    for cl in chunks:
        s = chunked_sum(p, E6M9, chunk=min(cl, n)).double()
        out[str(cl)] = ((s - exact).abs() / exact.abs()).median().item()
    return out


def _accumulation(ctx: RunContext) -> dict[str, Any]:
    cfg: Config = ctx.config
    res: dict[str, Any] = {"vs_n": {}, "sweep": {}}
    jobs = [(d, n) for d in ("uniform", "normal") for n in cfg.acc_sizes]
    for i, (dist, n) in enumerate(ctx.progress(jobs, desc="accumulation vs N")):
        key = f"acc-{dist}-{n}"
        res["vs_n"][key] = ctx.cached(key, partial(_dot_errors, dist, n, cfg.acc_vectors,
                                                   (n, 64), ctx.seed + 1000 + i))
    n = cfg.sweep_size
    res["sweep"] = ctx.cached(f"sweep-{n}", partial(_dot_errors, "uniform", n, cfg.acc_vectors,
                                                    cfg.sweep_chunks, ctx.seed + 2000))
    return res


# ----------------------------------------------------------------------------- training
def _train_one(model_name: str, variant: str, lr: float, epochs: int, seed: int,
               data: tuple[Any, ...], cfg: Config, device: str) -> dict[str, Any]:
    import torch

    from neurips18.lowprec import Fp8Recipe, StochasticRoundingSGD, convert_to_fp8
    from neurips18.repro import _common
    from neurips18.repro._common.models import mnist_cnn, mnist_mlp

    xtr, ytr, xte, yte = data
    model = _common.init_model(mnist_mlp if model_name == "mlp" else mnist_cnn, seed)
    model = _common.to_device(model, device)
    if variant == "fp32":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        scale = cfg.loss_scale if variant == "fp8-ls" else 1.0
        convert_to_fp8(model, Fp8Recipe(loss_scale=scale))
        opt = StochasticRoundingSGD(
            model.parameters(), lr=lr,
            rounding="nearest" if variant == "fp8-nearest" else "stochastic",
            generator=torch.Generator(device=device).manual_seed(seed + 7))
    order = torch.Generator().manual_seed(seed + 11)
    return _common.train(model, opt, xtr, ytr, epochs=epochs, batch_size=cfg.batch,
                         generator=order, test=(xte, yte))


def _runs(cfg: Config) -> list[tuple[str, str, float, int, str, int]]:
    """(model, regime, lr, epochs, variant, seed) of every training run, in run order."""
    runs = []
    for m in cfg.models:
        (lr0,) = cfg.standard.lrs
        for v in VARIANTS_STANDARD:
            runs += [(m, "standard", lr0, cfg.standard.epochs, v, s) for s in range(cfg.seeds)]
        for lr in cfg.small.lrs:
            for v in VARIANTS_SMALL:
                runs += [(m, "small", lr, cfg.small.epochs, v, s) for s in range(cfg.seeds)]
    return runs


def _key(m: str, regime: str, lr: float, v: str, s: int) -> str:
    if regime == "standard":
        return f"train-{m}-standard-{v}-seed{s}"
    return f"train-{m}-small-lr{lr:g}-{v}-seed{s}"


def _training(ctx: RunContext) -> dict[str, Any]:
    from neurips18.repro._common import mnist_standardized

    cfg: Config = ctx.config
    data: list[tuple[Any, ...]] = []

    def job(m: str, lr: float, epochs: int, v: str, s: int) -> dict[str, Any]:
        if not data:
            data.append(mnist_standardized(cfg.n_train, cfg.n_test, ctx.seed))
        return _train_one(m, v, lr, epochs, ctx.seed + 100 * s, data[0], cfg, ctx.device)

    out: dict[str, Any] = {}
    for m, regime, lr, epochs, v, s in ctx.progress(_runs(cfg), desc="MNIST training"):
        key = _key(m, regime, lr, v, s)
        out[key] = ctx.cached(key, partial(job, m, lr, epochs, v, s))
    return out


def run(ctx: RunContext) -> dict[str, Any]:
    acc = _accumulation(ctx)
    train = _training(ctx) if ctx.has("mnist") else {}
    return {"accumulation": acc, "training": train}


# ----------------------------------------------------------------------------- judging
def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _accs(train: dict[str, Any], cfg: Config, m: str, regime: str, v: str,
          lr: float) -> list[float]:
    return [train[_key(m, regime, lr, v, s)]["acc"] for s in range(cfg.seeds)]


def small_lr_gaps(data: dict[str, Any], cfg: Config) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and small lr: mean accuracies of FP32, FP8 + SR, FP8 + nearest and the gaps."""
    train = data["training"]
    gaps: dict[str, dict[str, dict[str, float]]] = {}
    if not train:
        return gaps
    for m in cfg.models:
        gaps[m] = {}
        for lr in cfg.small.lrs:
            s32, s8, snr = (_mean(_accs(train, cfg, m, "small", v, lr)) for v in VARIANTS_SMALL)
            gaps[m][f"{lr:g}"] = {"fp32": s32, "sr": s8, "nearest": snr,
                                  "gap_sr": s32 - s8, "gap_nearest": s32 - snr}
    return gaps


def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    acc, train = data["accumulation"], data["training"]
    rows = []
    for dist in ("uniform", "normal"):
        for n in cfg.acc_sizes:
            if (dist, n) not in _BRIEF_ACC:
                continue
            r = acc["vs_n"][f"acc-{dist}-{n}"]
            rows.append(REFERENCES.row(f"acc_{dist}_{n}_seq", r[str(n)]))
            rows.append(REFERENCES.row(f"acc_{dist}_{n}_chunk", r["64"]))
    sweep = acc["sweep"]
    for cl in _BRIEF_SWEEP:
        if str(cl) in sweep:
            rows.append(REFERENCES.row(f"sweep_{cl}", sweep[str(cl)], n=cfg.sweep_size))
    n16 = cfg.sweep_size
    seq16 = acc["vs_n"].get(f"acc-uniform-{n16}", {}).get(str(n16))
    if seq16 is not None and "64" in sweep:
        rows.append(REFERENCES.row("swamping_ratio", seq16 / sweep["64"]))

    gaps = small_lr_gaps(data, cfg)
    if train:
        (lr0,) = cfg.standard.lrs
        for m in cfg.models:
            fp32, fp8, ls = (_mean(_accs(train, cfg, m, "standard", v, lr0))
                             for v in ("fp32", "fp8", "fp8-ls"))
            rows.append(REFERENCES.row("fp8_standard", fp8, ref=fp32, model=m, lr=lr0))
            rows.append(REFERENCES.row("fp8_ls_standard", ls, ref=fp32, model=m, lr=lr0,
                                       scale=f"{cfg.loss_scale:g}"))
            rows.append(REFERENCES.row("fp32_standard", fp32, model=m, lr=lr0))
            for lr in cfg.small.lrs:
                g = gaps[m][f"{lr:g}"]
                rows.append(REFERENCES.row("sr_small", g["sr"], ref=g["fp32"], model=m,
                                           lr=f"{lr:g}"))
                rows.append(REFERENCES.row("nearest_gap", g["gap_nearest"], model=m,
                                           lr=f"{lr:g}"))
            if len(cfg.small.lrs) > 1:
                lo, hi = f"{min(cfg.small.lrs):g}", f"{max(cfg.small.lrs):g}"
                rows.append(REFERENCES.row(
                    "nearest_growth", gaps[m][lo]["gap_nearest"] - gaps[m][hi]["gap_nearest"],
                    model=m, lo=lo, hi=hi))
    for model in _PAPER_TABLE_MODELS:
        rows.append(REFERENCES.row("paper_table", None, model=model))
    notes = [
        "Accumulation rows compare with values measured by the project brief in the same "
        "setting (another random stream), not with the paper, whose Fig. 3(b) numbers were "
        "not recovered; tolerance: within 50% (median of the vectors).",
        "The paper's FP32-vs-FP8 accuracy table (CIFAR-10, ImageNet, speech): not recovered; "
        "those rows have no reference. CIFAR-10 and ImageNet are not available on this "
        "machine; the CIFAR ResNet code path is tested on a synthetic batch (tests/lowprec).",
        f"MNIST {cfg.n_train} train / {cfg.n_test} test images, {cfg.seeds} seed(s) per "
        f"model, batch {cfg.batch}, plain SGD; epochs: {cfg.standard.epochs} at lr "
        f"{cfg.standard.lrs[0]:g}, {cfg.small.epochs} at each lr of the small-lr sweep "
        f"{[f'{v:g}' for v in cfg.small.lrs]}; GEMMs in the recipe's fast accumulation "
        "mode (float32 within a chunk of 64, E6M9 between chunks).",
        f"'FP8 recipe, no loss scaling' runs use loss_scale 1; 'fp8-ls' runs scale the errors "
        f"entering the backward GEMMs by {cfg.loss_scale:g} before the E5M2 rounding (fixed "
        "before running; not tuned). Whether the paper's recipe uses loss scaling: not "
        "recovered. Both rows are kept; neither is labelled 'the paper's recipe'.",
        f"Nearest-rounding ablation: pass criteria fixed before the sweep was run -- at every "
        f"lr, FP8 + SR within {_SR_TOL:g} point of FP32 and FP8 + nearest at least "
        f"{_GAP_MIN:g} points below FP32; the nearest gap at the smallest lr at least the gap "
        "at the largest.",
    ]
    return Judgement(rows, notes)


# ----------------------------------------------------------------------------- figure
def plot(data: dict[str, Any], fig: Any) -> None:
    acc = data["accumulation"]
    axes = fig.subplots(1, 3)
    ax = axes[0]
    for dist, style in (("uniform", "-"), ("normal", "--")):
        keys = sorted((k for k in acc["vs_n"] if k.startswith(f"acc-{dist}-")),
                      key=lambda k: int(k.rsplit("-", 1)[1]))
        ns = [int(k.rsplit("-", 1)[1]) for k in keys]
        ax.loglog(ns, [acc["vs_n"][k][str(n)] for k, n in zip(keys, ns, strict=True)],
                  "o" + style, label=f"{dist}, sequential")
        ax.loglog(ns, [acc["vs_n"][k]["64"] for k in keys], "s" + style,
                  label=f"{dist}, chunk 64")
    ax.set(xlabel="dot-product length N", ylabel="median relative error",
           title="FP8 inputs, FP16 (1-6-9) accumulation")
    ax.legend(fontsize=7)
    ax = axes[1]
    sw = acc["sweep"]
    cls = sorted(int(k) for k in sw)
    ax.loglog(cls, [sw[str(c)] for c in cls], "o-")
    ax.set(xlabel="chunk length CL", ylabel="median relative error",
           title="dot products of length 16K, uniform")
    ax = axes[2]
    train = data["training"]
    models = sorted({k.split("-")[1] for k in train})
    for m, marker in zip(models, "os^", strict=False):
        lrs = sorted({float(k.split("-lr")[1].split("-")[0]) for k in train
                      if k.startswith(f"train-{m}-small-")})
        for variant, style, label in (("fp8-nearest", "-", "nearest updates"),
                                      ("fp8", "--", "stochastic rounding")):
            gaps = []
            for lr in lrs:
                seeds = sorted(k for k in train if k.startswith(f"train-{m}-small-lr{lr:g}-fp32-"))
                g = [train[k]["acc"] - train[k.replace("-fp32-", f"-{variant}-")]["acc"]
                     for k in seeds]
                gaps.append(sum(g) / len(g))
            ax.semilogx(lrs, gaps, marker + style, label=f"{m}: FP8, {label}")
    ax.axhline(_GAP_MIN, color="grey", lw=0.8, ls=":")
    ax.axhline(_SR_TOL, color="grey", lw=0.8, ls="-.")
    ax.set(xlabel="learning rate", ylabel="FP32 accuracy - FP8 accuracy (points)",
           title="MNIST: weight-update rounding vs lr")
    ax.legend(fontsize=6)
    fig.set_size_inches(15, 4.5)
    fig.tight_layout()


def _needs_mnist() -> None:
    from neurips18.datasets import load_mnist

    load_mnist("train", download=False)
    load_mnist("test", download=False)


REPRODUCTION = Reproduction(
    name="fp8",
    title="Training deep neural networks with 8-bit floating point numbers",
    citation=CITATION,
    capability="lowprec",
    profiles=PROFILES,
    references=REFERENCES,
    run=run,
    judge=judge,
    plot=plot,
    needs={"mnist": _needs_mnist},
    uses_device=True,
    description="FP16 chunk-based accumulation study and MNIST FP32 vs FP8 (+SR) training.",
)
