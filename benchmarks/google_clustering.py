"""Google's differentially private clustering next to ours, on scikit-learn's digits.

Google's clustering (the ``learning/clustering`` folder of github.com/google/differential-
privacy) is not on PyPI, so this script runs it from a checkout you name; none of its code
is part of neurips18. It needs ``absl-py`` and ``dp-accounting`` (``pip install -e
'.[privacy-anchors]' absl-py``)::

    git clone https://github.com/google/differential-privacy /tmp/google-dp
    python benchmarks/google_clustering.py --checkout /tmp/google-dp

Data and cost are those of the reproduction ``dp_kmeans``: digits centred and scaled into the
unit ball, k = 10, cost divided by scikit-learn KMeans's (n_init=3), median and quartiles
over the seeds, delta = 1e-6.

The two do not protect the same neighbouring data sets. Google's accounting is for one
record added or removed (its sums have sensitivity radius, its counts 1); ours is for one
record replaced by another (sensitivity 2 radius and sqrt 2), a relation under which an
add/remove mechanism with (eps, delta) is only (2 eps, (1 + e^eps) delta)-DP (group
privacy over a removal and an addition). So the table has two Google columns: at the
requested (eps, delta) under its own relation, and at (eps / 2, delta / (1 + e^(eps/2))),
which is (eps, delta)-DP under ours -- the like-for-like comparison.

Google's code draws from NumPy's global generator (and scikit-learn's KMeans without a
seed, which draws from it too); the script seeds it with ``numpy.random.seed(seed)`` before
each fit, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np


def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float64)
    X = X - X.mean(0)
    return X / np.linalg.norm(X, axis=1).max()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkout", required=True,
                    help="a checkout of github.com/google/differential-privacy")
    ap.add_argument("--epsilons", default="0.1,1,3,10")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--delta", type=float, default=1e-6)
    args = ap.parse_args(argv)
    folder = os.path.join(args.checkout, "learning")
    if not os.path.isdir(os.path.join(folder, "clustering")):
        ap.error(f"--checkout: {args.checkout!r} has no learning/clustering folder")
    sys.path.insert(0, folder)
    from clustering import clustering_algorithm, clustering_params  # noqa: E402
    from sklearn.cluster import KMeans

    from neurips18.privacy import PrivateKMeans, kmeans_cost

    X = _digits()
    base = KMeans(n_clusters=10, n_init=3, random_state=0).fit(X).inertia_

    def google(eps: float, delta: float, seed: int) -> float:
        np.random.seed(seed)  # noqa: NPY002 -- its code draws from the global generator
        res = clustering_algorithm.private_lsh_clustering(
            10, clustering_params.Data(X, radius=1.0),
            clustering_params.DifferentialPrivacyParam(epsilon=eps, delta=delta))
        return kmeans_cost(X, np.asarray(res.centers, dtype=np.float64)) / base

    def ours(eps: float, seed: int) -> float:
        m = PrivateKMeans(10, epsilon=eps, delta=args.delta, radius=1.0,
                          method="kaplan-stemmer", random_state=seed).fit(X)
        return -m.score(X) / base

    def fmt(r: list[float]) -> str:
        q1, med, q3 = np.percentile(r, [25, 50, 75])
        return f"{med:.3f} ({q1:.3f}-{q3:.3f})"

    seeds = range(args.seeds)
    print(f"digits, k = 10, delta = {args.delta:g}, median (IQR) of {args.seeds} seeds, "
          "cost / KMeans cost")
    print("| eps | ours (replace one) | Google (add/remove, eps) | Google (eps/2: replace one) |")
    print("| --- | --- | --- | --- |")
    for eps in (float(e) for e in args.epsilons.split(",")):
        half_delta = args.delta / (1.0 + math.exp(eps / 2.0))
        row = [fmt([ours(eps, s) for s in seeds]),
               fmt([google(eps, args.delta, s) for s in seeds]),
               fmt([google(eps / 2.0, half_delta, s) for s in seeds])]
        print(f"| {eps:g} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
