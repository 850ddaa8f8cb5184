"""Benchmarks for party-adversarial training (neurips18.multiparty), one thread, ratios
measured side by side in one process.

1. Cost of an epoch of adversarial training (lam > 0: a discriminator step and a
   network step on every batch) against an epoch of plain training, same network (64-64
   ReLU MLP), same data (UCI Credit Card, 20,000 records of ten parties, one-hot and
   standardised), same batches. Epochs are timed in interleaved pairs (plain, adversarial;
   then adversarial, plain) so that slow phases of a shared machine hit both members of a
   pair; the ratio reported is the median over pairs of the per-pair ratio, for wall-clock
   and for CPU time. Target: at most 2.5x.
2. Our defence against IBM ART's ProvenanceDefense on the same contaminated split (party 0
   sets MARRIAGE = 3 and default in a quarter of its records): attack success and
   validation accuracy side by side, and the time of each defence (ours: one adversarial
   fit; ART: detection, which refits the network twice per party, plus the final fit on
   the parties it keeps) as a ratio.

Usage: ``python benchmarks/bench_multiparty.py [--pairs 11] [--epochs 20] [--no-art]
[--json results/bench/multiparty.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def _split(b: float = 0.25, seed: int = 0):  # type: ignore[no-untyped-def]
    from neurips18.datasets import load_credit_default
    from neurips18.multiparty import contaminate, split_parties

    ds = load_credit_default()
    clean = split_parties(ds.X, ds.y, 10, validation_size=10_000, train_size=20_000,
                          random_state=seed)
    X0, y0 = clean.party(0)
    Xc, yc, _ = contaminate(X0, y0, attribute="MARRIAGE", value=3, label=1,
                            n_records=int(b * len(y0)), generator=seed + 1000)
    return clean, clean.replace_party(0, Xc, yc)


def _preprocessor():  # type: ignore[no-untyped-def]
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"),
          make_column_selector(dtype_include="category")),
         ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
          make_column_selector(dtype_include="number"))], sparse_threshold=0)


def _quartiles(v: list[float]) -> dict[str, float]:
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "q1": q[0], "q3": q[2]}


def bench_epoch(pairs: int) -> dict:
    import torch

    from neurips18.multiparty import MLP, PartyDiscriminator, train_adversarial

    _, bad = _split()
    pre = _preprocessor().fit(bad.X)
    x = torch.as_tensor(pre.transform(bad.X), dtype=torch.float32)
    y = torch.tensor(bad.y, dtype=torch.int64)  # copies: PartyData's arrays are read-only
    p = torch.tensor(bad.parties, dtype=torch.int64)

    def epoch(adversarial: bool) -> tuple[float, float]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            f = MLP(x.shape[1], 2, (64, 64))
            h = PartyDiscriminator(2, 10, (64,))
        opt = torch.optim.SGD(f.parameters(), lr=0.01, momentum=0.9)
        h_opt = torch.optim.SGD(h.parameters(), lr=0.01, momentum=0.9)
        kw = (dict(discriminator=h, discriminator_optimizer=h_opt, lam=1.0) if adversarial
              else dict(discriminator=None, discriminator_optimizer=None, lam=0.0))
        w, c = time.perf_counter(), time.process_time()
        train_adversarial(f, opt, x, y, p, epochs=1, batch_size=128,
                          generator=torch.Generator().manual_seed(1), **kw)
        return time.perf_counter() - w, time.process_time() - c

    epoch(False), epoch(True)  # warm-up
    wall, cpu, plain_s, adv_s = [], [], [], []
    for r in range(pairs):
        order = (False, True) if r % 2 == 0 else (True, False)
        got = {a: epoch(a) for a in order}
        wall.append(got[True][0] / got[False][0])
        cpu.append(got[True][1] / got[False][1])
        plain_s.append(got[False][0])
        adv_s.append(got[True][0])
    out = {
        "what": "epoch of adversarial training (lam = 1) / epoch of plain training, Credit "
                f"Card 20,000 x {x.shape[1]} features, MLP 64-64, batch 128",
        "pairs": pairs, "ratio_wall": _quartiles(wall), "ratio_cpu": _quartiles(cpu),
        "plain_epoch_seconds": statistics.median(plain_s),
        "adversarial_epoch_seconds": statistics.median(adv_s), "target_max_ratio": 2.5,
    }
    print(f"adversarial / plain epoch: wall {out['ratio_wall']['median']:.2f}x (IQR "
          f"{out['ratio_wall']['q1']:.2f}-{out['ratio_wall']['q3']:.2f}), CPU "
          f"{out['ratio_cpu']['median']:.2f}x over {pairs} pairs (target <= 2.5x)")
    return out


def bench_vs_art(epochs: int, lam: float) -> dict:
    import numpy as np

    from neurips18.multiparty import PartyAdversarialClassifier, attack_success

    try:
        from art.defences.detector.poison import ProvenanceDefense
        from art.estimators.classification.scikitlearn import ScikitlearnClassifier
    except ImportError:
        msg = "anchor not installed: pip install 'neurips18[multiparty-anchors]'"
        print(msg)
        return {"skipped": msg}
    clean, bad = _split()
    pre = _preprocessor().fit(bad.X)
    x = pre.transform(bad.X)
    Xv, yv = bad.validation()
    xv = pre.transform(Xv)

    def net(lam_: float) -> PartyAdversarialClassifier:
        return PartyAdversarialClassifier(lam=lam_, max_epochs=epochs, batch_size=128,
                                          random_state=0)

    def scores(model) -> dict:  # type: ignore[no-untyped-def]
        class Released:
            def predict(self, X):  # type: ignore[no-untyped-def]
                return model.predict(pre.transform(X))

        s = attack_success(Released(), Xv, yv, attribute="MARRIAGE", value=3, label=1)
        return {"natural": s.natural, "probes": s.probes,
                "accuracy": float(np.mean(model.predict(xv) == yv))}

    t = time.perf_counter()
    ours = net(lam).fit(x, bad.y, parties=bad.parties)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    undefended = net(0.0).fit(x, bad.y)
    plain_s = time.perf_counter() - t
    eye = np.eye(2)
    state = np.random.get_state()  # noqa: NPY002 - ART draws from NumPy's global generator
    np.random.seed(0)  # noqa: NPY002
    t = time.perf_counter()
    try:
        defence = ProvenanceDefense(
            ScikitlearnClassifier(net(0.0)), x.astype(np.float32), eye[bad.y],
            np.eye(10)[bad.parties], x_val=xv.astype(np.float32), y_val=eye[yv], eps=0.01,
            perf_func=lambda a, b: float(np.mean(a.argmax(1) == b.argmax(1))))
        report, _ = defence.detect_poison()
    finally:
        np.random.set_state(state)  # noqa: NPY002
    flagged = sorted(int(k) for k in report)
    keep = ~np.isin(bad.parties, flagged)
    art_model = net(0.0).fit(x[keep], bad.y[keep])
    art_s = time.perf_counter() - t
    out = {
        "what": "Credit Card, party 0 contaminates 500 of its 2,000 records "
                f"(MARRIAGE = 3 -> default); {epochs} epochs",
        "ours": {**scores(ours), "lam": lam, "seconds": ours_s},
        "undefended": {**scores(undefended), "seconds": plain_s},
        "art_provenance": {**scores(art_model), "eps": 0.01, "flagged": flagged,
                           "seconds": art_s},
        "time_ratio_art_over_ours": art_s / ours_s,
    }
    for k in ("undefended", "ours", "art_provenance"):
        r = out[k]
        print(f"{k:15s} success natural {r['natural']:.3f} probes {r['probes']:.3f} "
              f"accuracy {r['accuracy']:.4f} ({r['seconds']:.1f} s)")
    print(f"ProvenanceDefense flagged parties {flagged}; its time / ours: "
          f"{out['time_ratio_art_over_ours']:.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=11)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lam", type=float, default=30.0)
    ap.add_argument("--no-art", action="store_true")
    ap.add_argument("--json", default="results/bench/multiparty.json")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    out = {
        "setup": {"python": platform.python_version(), "machine": platform.machine(),
                  "torch": torch.__version__, "threads": 1,
                  "command": " ".join(["python", "benchmarks/bench_multiparty.py",
                                       *(sys.argv[1:] if argv is None else argv)])},
        "epoch_cost": bench_epoch(a.pairs),
        "vs_art": {"skipped": "--no-art"} if a.no_art else bench_vs_art(a.epochs, a.lam),
    }
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
