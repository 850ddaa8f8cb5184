"""Fit time of PrivateKMeans (neurips18.privacy) vs diffprivlib's KMeans, one thread.

At n = 1e5, d = 50, k = 10, epsilon = 1: CPU seconds of our fit and of diffprivlib's (run in
its own environment, ``benchmarks/diffprivlib_env.py``; skipped with a note when absent),
their ratio in the same run (medians of the repeats), our fit at n = 2.5e4 ... 1e6 (the
fastest of the repeats at each size; linearity in n: the least-squares log-log slope over
the sizes, and from 1e5 to 1e6) and the wall time at n = 1e6. The load average is recorded:
on a shared machine wall time exceeds CPU time by the contention.

Usage: ``python benchmarks/bench_privacy.py [--quick] [--json results/bench/privacy.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

# one thread whatever the caller's environment says (a user's OMP_NUM_THREADS=4 used to be
# kept, so the "one thread" fit times ran on four); main() also caps the BLAS pools already
# loaded, for a caller that imported NumPy before this file
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"


def _fit(X, seed):  # type: ignore[no-untyped-def]
    from neurips18.privacy import PrivateKMeans

    t, w = time.process_time(), time.perf_counter()
    PrivateKMeans(10, epsilon=1.0, delta=1e-6, radius=1.0, random_state=seed).fit(X)
    return time.process_time() - t, time.perf_counter() - w


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    import numpy as np

    from neurips18.datasets.synthetic import make_ball_blobs
    from neurips18.repro.dp_kmeans import diffprivlib_python, run_diffprivlib

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default="results/bench/privacy.json")
    args = ap.parse_args(argv)
    reps = 1 if args.quick else 3
    X = make_ball_blobs(100_000, 50, 10, generator=0)[0]
    ours = [_fit(X, s)[0] for s in range(reps)]
    out = {"command": " ".join(["python", *sys.argv]), "platform": platform.platform(),
           "n": 100_000, "d": 50, "k": 10, "epsilon": 1.0, "ours_cpu_seconds": ours}
    if diffprivlib_python() is not None:
        dp = run_diffprivlib(X, n_clusters=10, epsilon=1.0, seeds=list(range(reps)))
        theirs = [r["cpu_seconds"] for r in dp["runs"]]
        out["diffprivlib_cpu_seconds"] = theirs
        out["ratio_ours_over_diffprivlib"] = float(np.median(ours) / np.median(theirs))
    else:
        out["diffprivlib"] = "not run: python benchmarks/diffprivlib_env.py builds it"
    sizes = [25_000, 100_000, 400_000] + ([] if args.quick else [1_000_000])
    scaling = []
    out["load_average_start"] = list(os.getloadavg())
    for n in sizes:
        Xn = make_ball_blobs(n, 50, 10, generator=1)[0]
        runs = [_fit(Xn, 0) for _ in range(reps if n <= 400_000 else 1)]
        cpu, wall = min(r[0] for r in runs), min(r[1] for r in runs)
        scaling.append({"n": n, "cpu_seconds": cpu, "wall_seconds": wall, "repeats": len(runs)})
        print(f"n={n:>9,d}: {cpu:.2f} CPU-s, {wall:.2f} s")
    out["load_average_end"] = list(os.getloadavg())
    out["scaling"] = scaling
    ln = np.log([r["n"] for r in scaling])
    lc = np.log([r["cpu_seconds"] for r in scaling])
    out["loglog_slope_in_n"] = float(np.polyfit(ln, lc, 1)[0])
    big = {r["n"]: r for r in scaling}
    if 1_000_000 in big:
        out["loglog_slope_1e5_to_1e6"] = math.log(
            big[1_000_000]["cpu_seconds"] / big[100_000]["cpu_seconds"]) / math.log(10.0)
        out["n_1e6_cpu_seconds"] = big[1_000_000]["cpu_seconds"]
        out["n_1e6_wall_seconds"] = big[1_000_000]["wall_seconds"]
    print(json.dumps({k: v for k, v in out.items() if k != "scaling"}, indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
