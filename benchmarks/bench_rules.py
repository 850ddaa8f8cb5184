"""Benchmarks for multi-value rule sets (neurips18.rules), one thread, ratios in-process.

1. Per-iteration cost of the simulated annealing on ~30k rows (Adult train, 32,561 rows and
   UCI credit default, 30,000 rows), and the cost of scoring one rule set with the bitset
   engine vs a plain numpy boolean-mask evaluation of the same posterior.
2. Fit time, accuracy and size of MRS vs CART (scikit-learn), RIPPER (wittgenstein) and BRS
   (imodels) on Tic-Tac-Toe, Mushroom and Adult, measured in the same process.

Usage: ``python benchmarks/bench_rules.py [--quick] [--no-brs] [--json results/bench/rules.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def _timeit(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_iterations(quick: bool) -> list[dict]:
    import numpy as np

    from neurips18 import datasets
    from neurips18.repro.mrs import ACCURACY_PRIOR
    from neurips18.rules import MRSPrior, MultiValueRuleSetClassifier
    from neurips18.rules._search import RuleSpace

    rows = []
    sets = [("adult (32,561 rows)", datasets.load_adult("train"))]
    try:
        sets.append(("credit default (30,000 rows)", datasets.load_credit_default()))
    except Exception as err:  # noqa: BLE001 - optional data set
        print(f"credit default skipped: {err}")
    n_iter = 1000 if quick else 4000
    for label, d in sets:
        for prior_name, prior in (("default prior", None), ("accuracy prior", ACCURACY_PRIOR)):
            clf = MultiValueRuleSetClassifier(
                n_iterations=n_iter, random_state=0, prior=prior, max_rules=15
            )
            clf.fit(d.X, d.y)
            rows.append(
                {
                    "what": f"annealing iteration, {label}, {prior_name}",
                    "ms_per_iteration": clf.fit_time_["per_iteration_ms"],
                    "mining_s": clf.fit_time_["mining_s"],
                    "n_rules": clf.n_rules_,
                }
            )
            print(
                f"{label:30s} {prior_name:15s} {clf.fit_time_['per_iteration_ms']:.3f} ms/iter "
                f"(mining {clf.fit_time_['mining_s']:.2f} s, {clf.n_rules_} rules)"
            )
        # scoring one rule set: bitsets vs numpy masks (same posterior, checked equal)
        from neurips18.rules._encoding import transform

        codes = transform(d.X.set_axis(range(d.X.shape[1]), axis=1), clf.encodings_)
        space = RuleSpace(codes, d.y, [e.n_values for e in clf.encodings_], MRSPrior())
        rules = clf.rule_codes_
        covs = [space.rule_cov(r) for r in rules]

        def bits(space=space, rules=rules, covs=covs) -> float:  # type: ignore[no-untyped-def]
            union = 0
            for c in covs:
                union |= c
            return space.log_posterior(rules, union)

        # the numpy reference: one boolean column per attribute value, precomputed
        items = [
            [codes[:, j] == v for v in range(e.n_values)] for j, e in enumerate(clf.encodings_)
        ]
        y = d.y.astype(bool)

        def masks(rules=rules, items=items, y=y, space=space) -> float:  # type: ignore[no-untyped-def]
            cov = np.zeros(len(y), bool)
            for r in rules:
                m = np.ones(len(y), bool)
                for j, vals in r:
                    c = np.zeros(len(y), bool)
                    for v in vals:
                        c |= items[j][v]
                    m &= c
                cov |= m
            tp, fp = int((cov & y).sum()), int((cov & ~y).sum())
            return space.log_gp_m(len(rules)) + sum(space.rule_prior(r) for r in rules) + tp + fp

        assert space.log_posterior(rules) == bits()
        t_bits = _timeit(lambda: [bits() for _ in range(100)]) / 100
        t_mask = _timeit(lambda: [masks() for _ in range(100)]) / 100
        rows.append(
            {
                "what": f"score one rule set ({len(rules)} rules), {label}",
                "bitset_us": t_bits * 1e6,
                "numpy_bool_columns_us": t_mask * 1e6,
                "speedup": t_mask / t_bits,
            }
        )
        print(
            f"{label:30s} score a {len(rules)}-rule set: bitsets {t_bits * 1e6:.1f} us, "
            f"numpy bool columns {t_mask * 1e6:.1f} us (x{t_mask / t_bits:.1f})"
        )
    return rows


def bench_anchors(quick: bool, brs: bool) -> list[dict]:
    from neurips18.repro import mrs

    rows = []
    cfg = mrs.REPRODUCTION.profiles["quick" if quick else "full"]
    for name in ("tic-tac-toe", "mushroom", "adult"):
        Xtr, Xte, ytr, yte = mrs._split(name, 0, 8000 if quick and name == "adult" else None)
        params = dict(cfg["mrs"][name], random_state=0)
        results = [mrs._fit_mrs(Xtr, ytr, Xte, yte, params), mrs._fit_cart(Xtr, ytr, Xte, yte, 0)]
        r = mrs._fit_ripper(Xtr, ytr, Xte, yte, 0)
        if r:
            results.append(r)
        if brs and name == "tic-tac-toe":
            r = mrs._fit_brs(Xtr, ytr, Xte, yte, 0)
            if r:
                results.append(r)
        ours = results[0]
        for m in results:
            m = {k: v for k, v in m.items() if k not in ("rule_text", "trace", "bounds")}
            m["dataset"] = name
            m["fit_time_ratio_ours_over_this"] = ours["fit_s"] / m["fit_s"]
            rows.append(m)
            print(
                f"{name:12s} {m['model']:28s} acc {m['accuracy']:.4f} rules {m['rules']:3d} "
                f"conds {m['conditions']:4d} feats {m['features']:2d} fit {m['fit_s']:8.2f} s "
                f"(ours/this x{m['fit_time_ratio_ours_over_this']:.2f})"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations, adult subsampled")
    ap.add_argument("--no-brs", action="store_true", help="skip the (slow) imodels BRS anchor")
    ap.add_argument("--json", default="results/bench/rules.json")
    args = ap.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    out = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "iterations": bench_iterations(args.quick),
        "anchors": bench_anchors(args.quick, not args.no_brs),
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
