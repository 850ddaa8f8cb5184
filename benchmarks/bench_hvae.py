"""HVAE training cost: neurips18.hvae vs pythae's HVAE, and gradient caching, side by side.

The model is the same for every contender: MLP encoder 784-200-200-(mu, sigma) and Bernoulli
MLP decoder 50-200-200-784 (softplus), latent dimension 50, K = 10 leapfrog steps, batch 100,
Adamax (lr 5e-4), dynamically binarised MNIST (60,000 training images). One thread; times are
process CPU time.

Three measurements:

* ``flow``: one ELBO forward + backward of our HVAE with the cached-gradient flow (K + 1
  gradient evaluations) against the same flow recomputing the gradient at the start of every
  step (2K evaluations), for the MLP decoder's fused gradient and for the plain autograd path
  a user decoder takes; interleaved pairs, the median of the per-pair ratios and its
  interquartile range.
* ``epoch``: one full training epoch of our ``Trainer`` on the 60,000 images (CPU seconds).
* ``pythae``: training steps of our HVAE and of pythae's HVAE (same networks and initial
  weights, same minibatches, Adamax) in interleaved blocks; the median per-pair ratio of
  CPU time per step, and the implied CPU seconds per 60k-image epoch of each.

Usage: python benchmarks/bench_hvae.py [--rounds 7] [--block 30] [--no-epoch]
       [--json results/bench/hvae.json]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from neurips18.hvae import HVAE, HamiltonianFlow, MLPDecoder, MLPEncoder, Trainer  # noqa: E402
from neurips18.repro._common import mnist_tensors  # noqa: E402

L, K, BATCH = 50, 10, 100


def _quartiles(xs: list[float]) -> dict[str, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "q1": q[0], "q3": q[2], "n": len(xs)}


class _AutogradOnly(nn.Module):
    """The decoder seen through log_prob only: the flow takes the autograd path."""

    def __init__(self, inner: MLPDecoder) -> None:
        super().__init__()
        self.inner = inner
        self.latent_dim = inner.latent_dim

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.inner.log_prob(x, z)


def ours(cache: bool = True, fused: bool = True) -> HVAE:
    enc = MLPEncoder(L, generator=0)
    dec = MLPDecoder(L, generator=1)
    return HVAE(enc, dec if fused else _AutogradOnly(dec),
                HamiltonianFlow(L, K, tempering="free", cache_gradients=cache))


def pythae_model():
    from pythae.models import HVAE as PythaeHVAE
    from pythae.models import HVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    enc, dec = MLPEncoder(L, generator=0), MLPDecoder(L, generator=1)

    class Enc(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = enc

        def forward(self, x):
            h = x.reshape(x.shape[0], -1)
            for layer in self.net.layers:
                h = F.softplus(layer(h))
            return ModelOutput(embedding=self.net.mu(h), log_covariance=self.net.sigma(h))

    class Dec(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = dec

        def forward(self, z):
            return ModelOutput(reconstruction=self.net.logits(z))

    cfg = HVAEConfig(input_dim=(1, 28, 28), latent_dim=L, n_lf=K, eps_lf=0.2,
                     beta_zero=0.81 ** K, learn_eps_lf=True, learn_beta_zero=True,
                     reconstruction_loss="bce")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PythaeHVAE(cfg, encoder=Enc(), decoder=Dec())


def _batches(x: torch.Tensor, n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, x.shape[0], (n, BATCH), generator=g)
    return [torch.bernoulli(x[i], generator=g) for i in idx]


def bench_flow(x: torch.Tensor, rounds: int, block: int) -> dict:
    out = {}
    for fused in (True, False):
        models = {c: ours(cache=c, fused=fused) for c in (True, False)}
        data = _batches(x, block, 1)
        gen = torch.Generator().manual_seed(2)

        def run(model, data=data, gen=gen):
            t = time.process_time()
            for xb in data:
                model.zero_grad(set_to_none=True)
                (-model.elbo(xb, generator=gen).mean()).backward()
            return (time.process_time() - t) / len(data)

        for m in models.values():
            run(m)  # warm-up
        ratios, t_cached, t_naive = [], [], []
        for r in range(rounds):
            order = (True, False) if r % 2 == 0 else (False, True)
            t = {c: run(models[c]) for c in order}
            t_cached.append(t[True])
            t_naive.append(t[False])
            ratios.append(t[False] / t[True])
        out["fused-mlp-gradient" if fused else "autograd-gradient"] = {
            "speedup_cached_over_naive": _quartiles(ratios),
            "cached_ms_per_step": 1e3 * statistics.median(t_cached),
            "naive_ms_per_step": 1e3 * statistics.median(t_naive),
            "gradient_evaluations": {"cached": K + 1, "naive": 2 * K},
        }
    return out


def bench_epoch(x: torch.Tensor) -> dict:
    model = ours()
    tr = Trainer(model, batch_size=BATCH, max_epochs=1, progress=False, generator=0)
    t0, w0 = time.process_time(), time.perf_counter()
    res = tr.fit(x)
    return {"cpu_seconds": time.process_time() - t0, "wall_seconds": time.perf_counter() - w0,
            "images": int(x.shape[0]), "train_elbo": res.history[-1]["train_elbo"]}


def bench_pythae(x: torch.Tensor, rounds: int, block: int) -> dict:
    try:
        from importlib.metadata import version

        pm = pythae_model()
        ver = version("pythae")
    except ImportError:
        return {"skipped": "pythae not installed: pip install 'neurips18[hvae-anchors]'"}
    om = ours()
    opt_o = torch.optim.Adamax(om.parameters(), lr=5e-4, eps=1e-7)
    opt_p = torch.optim.Adamax(pm.parameters(), lr=5e-4, eps=1e-7)
    gen = torch.Generator().manual_seed(3)

    def step_o(xb):
        opt_o.zero_grad(set_to_none=True)
        (-om.elbo(xb, generator=gen).mean()).backward()
        opt_o.step()

    def step_p(xb):
        opt_p.zero_grad(set_to_none=True)
        pm({"data": xb}).loss.backward()
        opt_p.step()

    def run(step, data):
        t = time.process_time()
        for xb in data:
            step(xb)
        return (time.process_time() - t) / len(data)

    warm = _batches(x, 5, 4)
    run(step_o, warm)
    run(step_p, warm)
    ratios, t_o, t_p = [], [], []
    for r in range(rounds):
        data = _batches(x, block, 10 + r)
        if r % 2 == 0:
            a, b = run(step_o, data), run(step_p, data)
        else:
            b, a = run(step_p, data), run(step_o, data)
        t_o.append(a)
        t_p.append(b)
        ratios.append(b / a)
    steps = x.shape[0] // BATCH
    return {
        "pythae_version": ver,
        "speedup_ours_over_pythae": _quartiles(ratios),
        "ours_ms_per_step": 1e3 * statistics.median(t_o),
        "pythae_ms_per_step": 1e3 * statistics.median(t_p),
        "ours_cpu_seconds_per_epoch": steps * statistics.median(t_o),
        "pythae_cpu_seconds_per_epoch": steps * statistics.median(t_p),
        "note": "pythae's HVAE takes grad U without create_graph (its ELBO gradient does "
                "not differentiate through the flow's gradients) and evaluates 2K + 2 "
                "decoder passes per step; ours differentiates the whole flow with K + 1.",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=30, help="minibatches per timed block")
    ap.add_argument("--no-epoch", action="store_true", help="skip the full-epoch timing")
    ap.add_argument("--json", default=str(ROOT / "results" / "bench" / "hvae.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x = mnist_tensors()["x_train"]
    result = {
        "command": " ".join(["python", "benchmarks/bench_hvae.py", *(argv or sys.argv[1:])]),
        "setup": {"latent_dim": L, "n_leapfrog": K, "batch": BATCH, "hidden": [200, 200],
                  "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "platform": platform.platform(), "cpu_count": os.cpu_count()},
    }
    try:
        result["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                          capture_output=True, text=True).stdout.strip()
    except OSError:
        result["commit"] = None
    result["flow"] = bench_flow(x, args.rounds, args.block)
    print(json.dumps(result["flow"], indent=1))
    result["pythae"] = bench_pythae(x, args.rounds, args.block)
    print(json.dumps(result["pythae"], indent=1))
    if not args.no_epoch:
        result["epoch"] = bench_epoch(x)
        print(json.dumps(result["epoch"], indent=1))
    f = result["flow"]["fused-mlp-gradient"]["speedup_cached_over_naive"]["median"]
    result["targets"] = {
        "cached_flow_speedup_ge_1.5": f >= 1.5,
        "epoch_cpu_seconds_le_40": (result.get("epoch", {}).get("cpu_seconds", float("inf"))
                                    <= 40 if not args.no_epoch else None),
        "faster_than_pythae": (result["pythae"].get("speedup_ours_over_pythae", {})
                               .get("median", 0) > 1 if "skipped" not in result["pythae"]
                               else None),
    }
    print(json.dumps(result["targets"]))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
