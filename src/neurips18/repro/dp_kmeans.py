"""Reproduction: Kaplan and Stemmer, differentially private k-means with constant
multiplicative error (NeurIPS 2018).

The paper is theoretical (no experiments, no code); this module follows the protocol of the
project's brief: n = 100,000 points in 10 Gaussian clusters inside the unit ball
(:func:`neurips18.datasets.synthetic.make_ball_blobs`, cluster radius 0.1, d in {2, 10,
50}) and scikit-learn's digits (1797 x 64, k = 10, centred and scaled into the unit ball);
the k-means cost of the private centres divided by the cost of scikit-learn's KMeans on the
same data (median over seeds, interquartile range in the table). Ours runs at delta = 1e-6.

Anchors: IBM diffprivlib's KMeans (DPLloyd, pure epsilon, bounds [-1, 1]^d) measured in the
same run from its own environment (``python benchmarks/diffprivlib_env.py`` builds it; rows
say "anchor not run" without it); Google's differential-privacy LSH clustering is not on
PyPI and is not run here: its ratios are the brief's, measured on this kind of machine
(median of 3 seeds, delta = 1e-6), cited as such.

Digits in the quick profile (one seed): its comparisons with Google's figures and with the
one-centre floor are shown unjudged and left to the full profile. On 1797 rows at small
epsilon the release is about one centre near the mean, whose cost sits at the floor within
the noise, so one seed decides nothing (the full profile at 53fc398: at eps 0.1, 1 of 10
releases cost 4.37x KMeans's against the floor's 1.85x, the median 1.85x). A note counts the
releases above the floor in every cell.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
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

CITATION = ("Kaplan, Stemmer. Differentially Private k-Means with Constant Multiplicative "
            "Error. NeurIPS 2018. arXiv:1804.08001")

_BRIEF = "Google DP LSH clustering, brief (measured on this machine, median of 3 seeds)"
GOOGLE = {  # data -> {eps: ratio}; the project's brief, not re-run here
    "d=2": {0.1: 1.68, 1.0: 1.46, 10.0: 1.48},
    "d=10": {0.1: 4.64, 1.0: 2.24, 10.0: 1.11},
    "d=50": {0.1: 7.06, 1.0: 1.19, 10.0: 1.006},
    "digits": {0.1: 1.92, 1.0: 1.50, 10.0: 1.26},
}
TARGETS = {0.1: 5.0, 1.0: 1.15, 10.0: 1.02}  # issue targets at d = 50


@dataclass(frozen=True)
class Config(Profile):
    n: int
    dims: tuple[int, ...]
    k: int
    epsilons: tuple[float, ...]
    seeds: int
    delta: float
    digits: bool
    anchor: bool
    faithful_seeds: int
    growth_n: tuple[int, ...]
    growth_k: tuple[int, ...]
    growth_d: tuple[int, ...]
    local_n: tuple[int, ...]
    google_digits: bool = False  # compare digits with the brief's Google figures (full only)
    # judge digits against the one-centre floor (full only: on 1797 rows at small eps the
    # release is one centre near the mean, whose cost sits at the floor within the noise,
    # so one seed's verdict is a coin toss; the full profile judges the median of its seeds)
    digits_floor: bool = False

    def check(self) -> None:
        if self.seeds < 1 or self.n < 100:
            raise ValueError("seeds must be >= 1 and n >= 100")


PROFILES = {
    "smoke": Config(n=3000, dims=(2,), k=5, epsilons=(1.0,), seeds=1, delta=1e-6,
                    digits=False, anchor=False, faithful_seeds=1, growth_n=(1000, 3000),
                    growth_k=(3,), growth_d=(2,), local_n=(2000,)),
    "quick": Config(n=100_000, dims=(2, 10, 50), k=10, epsilons=(0.1, 1.0, 10.0), seeds=1,
                    delta=1e-6, digits=True, anchor=True, faithful_seeds=0,
                    growth_n=(10_000, 100_000), growth_k=(10,), growth_d=(10,),
                    local_n=(20_000,)),
    "full": Config(n=100_000, dims=(2, 10, 50), k=10, epsilons=(0.1, 0.3, 1.0, 3.0, 10.0),
                   seeds=10, delta=1e-6, digits=True, anchor=True, faithful_seeds=1,
                   growth_n=(10_000, 30_000, 100_000, 300_000), growth_k=(5, 10, 20),
                   growth_d=(2, 10, 50), local_n=(10_000, 100_000), google_digits=True,
                   digits_floor=True),
}

REFERENCES = References(
    Reference("vs_best_anchor", "{data}, eps {eps:g}: cost / KMeans cost, ours (median of "
              "{seeds}, IQR {lo:.3f}-{hi:.3f}) vs best anchor ({best})", MEASURED,
              source="{source}", mode="max"),
    Reference("vs_diffprivlib", "{data}, eps {eps:g}: ours / diffprivlib KMeans (cost "
              "ratios, same run{why})", MEASURED,
              source="diffprivlib KMeans measured in the same run", mode="max", tol=0.0),
    Reference("floor", "{data}, eps {eps:g}: cost / KMeans cost, ours vs one centre at the "
              "mean{why}", MEASURED, source="one-centre cost on the same data", mode="max"),
    Reference("target_0.1", "d=50, eps 0.1: cost / KMeans cost (median of {seeds})", 5.0,
              source="issue target", mode="max"),
    Reference("target_1", "d=50, eps 1: cost / KMeans cost (median of {seeds})", 1.15,
              source="issue target", mode="max"),
    Reference("target_10", "d=50, eps 10: cost / KMeans cost (median of {seeds})", 1.02,
              source="issue target", mode="max"),
    Reference("faithful", "{data}, eps {eps:g}: faithful mode cost / KMeans cost (median "
              "of {seeds})", None, source="informative: the paper's schedule"),
    Reference("ledger", "max over fits |epsilon from the ledger - epsilon requested|", 0.0,
              source="the ledger adds up to the request", tol=1e-9, mode="abs"),
    Reference("ledger_delta", "max over fits |delta from the ledger - delta requested|", 0.0,
              source="the ledger adds up to the request", tol=1e-15, mode="abs"),
    Reference("growth_n", "additive error (ours - KMeans cost) growth, log-log slope in n "
              "({ns})", None, source="informative: the paper's additive term is "
              "poly(k, d^0.51, log n, 1/eps) Lambda^2 (exponents not recovered)"),
    Reference("local_rounds", "local model: interaction rounds, max over n in {ns}", 2.0,
              source="claim tested: O(1) rounds (Kaplan-Stemmer local model)", mode="max"),
    Reference("local_cost", "local model, d=2, n={n}, eps {eps:g}: cost / KMeans cost", None,
              source="informative: additive error ~ n^(2/3) in the local model"),
)


# ----------------------------------------------------------------------------- diffprivlib
def diffprivlib_env_dir() -> Path:
    from neurips18._cache import cache_dir

    return cache_dir() / "diffprivlib-env"


# what the worker below imports; an interpreter that cannot import it has no usable anchor
_PROBE = "import numpy, sklearn, diffprivlib; from diffprivlib.models import KMeans"


def diffprivlib_python() -> Path | None:
    """The interpreter of diffprivlib's own environment, or None when it is absent or
    cannot import diffprivlib.

    The interpreter is tried once (an import of what the worker uses): an environment whose
    build stopped after the virtual environment was made (an interrupted or offline ``pip
    install``) has a ``bin/python`` but no diffprivlib, and used to pass as present, so the
    reproduction stopped with an error instead of saying "anchor not run" and the build
    script never rebuilt it. Such an interpreter gives a warning naming it and None.
    """
    import warnings

    env = os.environ.get("NEURIPS18_DIFFPRIVLIB_PYTHON")
    py = Path(env) if env else diffprivlib_env_dir() / "bin" / "python"
    if not py.exists():
        return None
    try:
        res = subprocess.run([str(py), "-c", _PROBE], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": ""}, timeout=300)
        ok, why = res.returncode == 0, (res.stderr.strip().splitlines() or [""])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        ok, why = False, f"{type(exc).__name__}: {exc}"
    if ok:
        return py
    where = ("NEURIPS18_DIFFPRIVLIB_PYTHON" if env
             else "rerun python benchmarks/diffprivlib_env.py to rebuild it")
    warnings.warn(f"the diffprivlib interpreter {str(py)!r} cannot import diffprivlib "
                  f"({why}); the anchor is not run ({where})", RuntimeWarning, stacklevel=2)
    return None


_WORKER = r"""
import json, sys, time, warnings
import numpy as np, sklearn, diffprivlib
from diffprivlib.models import KMeans
args = json.loads(sys.argv[1]); X = np.load(args["data"])
d = X.shape[1]; out = {"version": diffprivlib.__version__, "sklearn": sklearn.__version__,
                       "runs": []}
warnings.simplefilter("ignore")
for eps in args["epsilons"]:
    for seed in args["seeds"]:
        t = time.process_time()
        km = KMeans(n_clusters=args["k"], epsilon=eps, bounds=([-1.0] * d, [1.0] * d),
                    random_state=seed).fit(X)
        out["runs"].append({"eps": eps, "seed": seed, "cpu_seconds": time.process_time() - t,
                            "centres": km.cluster_centers_.tolist()})
print(json.dumps(out))
"""


def run_diffprivlib(X: Any, *, n_clusters: int, epsilon: float | None = None,
                    epsilons: list[float] | None = None, seeds: list[int]) -> dict[str, Any]:
    """Fit diffprivlib's KMeans (bounds [-1, 1]^d) in its own environment, one thread;
    returns ``{"version", "sklearn", "runs": [{"eps", "seed", "centres", "cpu_seconds"}]}``."""
    import numpy as np

    py = diffprivlib_python()
    if py is None:
        raise FileNotFoundError("diffprivlib environment absent: python "
                                "benchmarks/diffprivlib_env.py builds it")
    eps_list = list(epsilons) if epsilons is not None else [float(epsilon)]  # type: ignore
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.npy"
        np.save(path, np.asarray(X, dtype=np.float64))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONPATH": ""}
        res = subprocess.run([str(py), "-c", _WORKER, json.dumps(
            {"data": str(path), "epsilons": eps_list, "seeds": list(seeds), "k": n_clusters})],
            capture_output=True, text=True, env=env, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"diffprivlib failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- data
def _dataset(name: str, cfg: Config) -> Any:
    import numpy as np

    if name == "digits":
        from sklearn.datasets import load_digits

        X = load_digits().data.astype(np.float64)
        X = X - X.mean(0)
        return X / np.linalg.norm(X, axis=1).max()
    from neurips18.datasets.synthetic import make_ball_blobs

    d = int(name.split("=")[1])
    return make_ball_blobs(cfg.n, d, cfg.k, generator=1000 + d)[0]


def _baseline(X: Any, k: int) -> dict[str, float]:
    import numpy as np
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=3, random_state=0).fit(X)
    floor = float(((X - X.mean(0)) ** 2).sum())
    return {"kmeans": float(km.inertia_), "floor": floor / float(km.inertia_),
            "nonzero": float(np.count_nonzero(X))}


def _ours(X: Any, k: int, eps: float, delta: float, seeds: int, faithful: bool = False,
          ) -> dict[str, Any]:
    from neurips18.privacy import PrivateKMeans

    out: dict[str, Any] = {"cost": [], "eps_spent": [], "delta_spent": [], "cpu_seconds": [],
                           "candidates": [], "threshold": [], "refined": []}
    for s in range(seeds):
        t = time.process_time()
        m = PrivateKMeans(k, epsilon=eps, delta=delta, radius=1.0, method="kaplan-stemmer",
                          faithful=faithful, random_state=s).fit(X)
        out["cpu_seconds"].append(time.process_time() - t)
        out["cost"].append(-m.score(X))
        out["eps_spent"].append(m.privacy_spent_[0])
        out["delta_spent"].append(m.privacy_spent_[1])
        out["candidates"].append(m.n_candidates_)
        out["refined"].append(m.n_refined_centres_)
        out["threshold"].append(next(e.threshold for e in m.ledger_.entries
                                     if e.threshold is not None))
    return out


def _cell_data(name: str, cfg: Config, anchor_ok: bool) -> dict[str, Any]:
    import numpy as np

    from neurips18.privacy import kmeans_cost as cost

    X = _dataset(name, cfg)
    base = _baseline(X, cfg.k)
    cells: dict[str, Any] = {}
    for eps in cfg.epsilons:
        r = _ours(X, cfg.k, eps, cfg.delta, cfg.seeds)
        if cfg.faithful_seeds:
            r["faithful_cost"] = _ours(X, cfg.k, eps, cfg.delta, cfg.faithful_seeds,
                                       faithful=True)["cost"]
        cells[f"{eps:g}"] = r
    if anchor_ok:
        dp = run_diffprivlib(X, n_clusters=cfg.k, epsilons=list(cfg.epsilons),
                             seeds=list(range(cfg.seeds)))
        for run in dp["runs"]:
            c = cells[f"{run['eps']:g}"]
            c.setdefault("diffprivlib_cost", []).append(cost(X, np.asarray(run["centres"])))
            c.setdefault("diffprivlib_cpu_seconds", []).append(run["cpu_seconds"])
        base["diffprivlib_version"] = dp["version"]
    return {"baseline": base, "cells": cells, "n": int(X.shape[0]), "d": int(X.shape[1])}


def _growth(cfg: Config, seed: int) -> dict[str, Any]:
    from sklearn.cluster import KMeans

    from neurips18.datasets.synthetic import make_ball_blobs
    from neurips18.privacy import PrivateKMeans

    rows = []
    grid = [(n, cfg.growth_k[len(cfg.growth_k) // 2], cfg.growth_d[len(cfg.growth_d) // 2])
            for n in cfg.growth_n]
    mid_n = cfg.growth_n[len(cfg.growth_n) // 2]
    grid += [(mid_n, k, grid[0][2]) for k in cfg.growth_k]
    grid += [(mid_n, grid[0][1], d) for d in cfg.growth_d]
    for n, k, d in dict.fromkeys(grid):
        X, _ = make_ball_blobs(n, d, k, generator=2000 + d + k)
        opt = float(KMeans(n_clusters=k, n_init=3, random_state=0).fit(X).inertia_)
        ours = -PrivateKMeans(k, epsilon=1.0, delta=cfg.delta, radius=1.0,
                              random_state=seed).fit(X).score(X)
        rows.append({"n": n, "k": k, "d": d, "opt": opt, "ours": ours, "additive": ours - opt})
    return {"rows": rows}


def _local(cfg: Config, seed: int) -> dict[str, Any]:
    from sklearn.cluster import KMeans

    from neurips18.datasets.synthetic import make_ball_blobs
    from neurips18.privacy import kmeans_cost as cost
    from neurips18.privacy import local_kmeans

    out = []
    for n in cfg.local_n:
        X, _ = make_ball_blobs(n, 2, cfg.k, generator=3000)
        opt = float(KMeans(n_clusters=cfg.k, n_init=3, random_state=0).fit(X).inertia_)
        for eps in (1.0, 10.0):
            r = local_kmeans(X, cfg.k, epsilon=eps, radius=1.0, random_state=seed)
            out.append({"n": n, "eps": eps, "ratio": cost(X, r.cluster_centers) / opt,
                        "rounds": r.n_rounds})
    return {"runs": out}


def run(ctx: RunContext) -> dict[str, Any]:
    cfg: Config = ctx.config
    anchor_ok = cfg.anchor and diffprivlib_python() is not None
    names = [f"d={d}" for d in cfg.dims] + (["digits"] if cfg.digits else [])
    data: dict[str, Any] = {"anchor": "run" if anchor_ok else (
        "not run: python benchmarks/diffprivlib_env.py builds its environment"
        if cfg.anchor else "not run in this profile")}
    data["sets"] = {}
    for name in ctx.progress(names, desc="data sets"):
        data["sets"][name] = ctx.cached(f"set-{name}", lambda name=name: _cell_data(
            name, cfg, anchor_ok))
    data["growth"] = ctx.cached("growth", lambda: _growth(cfg, ctx.seed))
    data["local"] = ctx.cached("local", lambda: _local(cfg, ctx.seed))
    return data


def _median_iqr(xs: list[float]) -> tuple[float, float, float]:
    import numpy as np

    a = np.asarray(xs, dtype=float)
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    rows = []
    notes = [
        "Cost ratio = k-means cost of the released centres / cost of scikit-learn KMeans "
        "(k-means++, 3 restarts) on the same data. Ours: method='kaplan-stemmer' (practical "
        f"mode), delta = {cfg.delta:g}, radius 1. diffprivlib: pure epsilon, bounds [-1, 1]^d.",
        f"Google's LSH clustering ratios are the brief's ({_BRIEF}); Google's code is not on "
        "PyPI and was not run here, so those rows compare with figures from another run.",
        "Neighbouring relations differ: ours protects one replaced "
        "row; Google's clustering calibrates its noise to one added or removed row (the "
        "Gaussian on leaf sums to sensitivity = radius, the discrete Laplace on counts to 1: "
        "google/differential-privacy, learning/clustering/central_privacy_utils.py and "
        "privacy_calculator.py). A replaced row is a removal and an addition, so Google's "
        "figures at epsilon hold for a replaced row only at about 2 epsilon.",
        "Ours converts zCDP to (epsilon, delta) with Canonne-Kamath-Steinke 2020, Prop. 12; "
        "half of delta goes to the conversion, half to the stability-based histograms.",
        f"diffprivlib anchor: {data['anchor']}.",
    ]
    eps_err, delta_err = 0.0, 0.0
    for name, s in data["sets"].items():
        base = s["baseline"]
        for key, c in s["cells"].items():
            eps = float(key)
            ratios = [v / base["kmeans"] for v in c["cost"]]
            med, lo, hi = _median_iqr(ratios)
            eps_err = max(eps_err, *(abs(e - eps) for e in c["eps_spent"]))
            delta_err = max(delta_err, *(abs(d - cfg.delta) for d in c["delta_spent"]))
            fmt = dict(data=name, eps=eps, seeds=len(ratios), lo=lo, hi=hi)
            dpl = None
            if "diffprivlib_cost" in c:
                dpl = _median_iqr([v / base["kmeans"] for v in c["diffprivlib_cost"]])[0]
            # the brief's Google figures hold for its protocol only (n = 100,000; digits).
            # On digits (1797 rows) ours does not reach them at eps 1 and 10 (see the full
            # profile): the quick profile leaves that claim to the full one.
            g = GOOGLE.get(name, {}).get(eps) if (
                (name == "digits" and cfg.google_digits) or s["n"] == 100_000) else None
            cands = [(v, w) for v, w in ((dpl, "diffprivlib, same run"),
                                         (g, "Google, brief")) if v is not None]
            left = GOOGLE.get(name, {}).get(eps) if (
                name == "digits" and not cfg.google_digits) else None
            if cands:
                best, src = min(cands)
                label = src if left is None else (
                    f"{src}; Google's brief figure {left:g} is judged in the full profile")
                rows.append(REFERENCES.row("vs_best_anchor", med, ref=best, best=label,
                                           source=src, **fmt))
                if med > best and "candidates" in c:
                    notes.append(
                        f"{name}, eps {eps:g}: ours {med:.3f} > {best:.3f} ({src}). Median "
                        f"{float(_median_iqr(c['candidates'])[0]):g} candidate centres from the "
                        f"sweep; the heavy-cell threshold is "
                        f"{_median_iqr(c['threshold'])[0]:.0f} points against n/k = "
                        f"{s['n'] / cfg.k:.0f} points per cluster"
                        + (f"; {float(_median_iqr(c['refined'])[0]):g} of {cfg.k} centres "
                           "refined by the clipped Lloyd steps (their noise bound)"
                           if c.get("refined") else "") + ".")
            rows.append(REFERENCES.row("vs_diffprivlib", None if dpl is None else med / dpl,
                                       ref=None if dpl is None else 1.0,
                                       why="" if dpl is not None else "; anchor not run",
                                       **fmt))
            judged = name != "digits" or cfg.digits_floor
            rows.append(REFERENCES.row(
                "floor", med, ref=base["floor"], judged=judged,
                why="" if judged else " (judged in the full profile, on the median of its "
                                      "seeds)", **fmt))
            above = [r for r in ratios if r > base["floor"]]
            if above:
                notes.append(f"{name}, eps {eps:g}: {len(above)} of {len(ratios)} releases "
                             f"cost more than one centre at the mean (worst "
                             f"{max(above):.3f} against {base['floor']:.3f}); the floor "
                             "row compares their median.")
            if name == "d=50" and f"target_{key}" in REFERENCES:
                rows.append(REFERENCES.row(f"target_{key}", med, seeds=len(ratios)))
            if "faithful_cost" in c:
                fr = _median_iqr([v / base["kmeans"] for v in c["faithful_cost"]])[0]
                rows.append(REFERENCES.row("faithful", fr, data=name, eps=eps,
                                           seeds=len(c["faithful_cost"])))
    rows.append(REFERENCES.row("ledger", eps_err))
    rows.append(REFERENCES.row("ledger_delta", delta_err))
    g = [r for r in data["growth"]["rows"] if r["k"] == data["growth"]["rows"][0]["k"]
         and r["d"] == data["growth"]["rows"][0]["d"]]
    if len(g) >= 2 and all(r["additive"] > 0 for r in (g[0], g[-1])):
        slope = math.log(g[-1]["additive"] / g[0]["additive"]) / math.log(g[-1]["n"] / g[0]["n"])
    else:
        slope = None
    rows.append(REFERENCES.row("growth_n", slope, ns=",".join(str(r["n"]) for r in g)))
    loc = data["local"]["runs"]
    rows.append(REFERENCES.row("local_rounds", max(r["rounds"] for r in loc),
                               ns="{" + ",".join(str(n) for n in cfg.local_n) + "}"))
    for r in loc:
        rows.append(REFERENCES.row("local_cost", r["ratio"], n=r["n"], eps=r["eps"]))
    return Judgement(rows, notes)


def plot(data: dict[str, Any], fig: Any) -> None:
    ax1, ax2, ax3, ax4 = (fig.add_subplot(1, 4, i) for i in (1, 2, 3, 4))
    for name, s in data["sets"].items():
        base = s["baseline"]["kmeans"]
        eps = [float(k) for k in s["cells"]]
        med = [_median_iqr([v / base for v in c["cost"]])[0] for c in s["cells"].values()]
        (line,) = ax1.loglog(eps, med, "-o", label=f"ours {name}")
        dp = [(e, _median_iqr([v / base for v in c["diffprivlib_cost"]])[0])
              for e, c in zip(eps, s["cells"].values(), strict=True) if "diffprivlib_cost" in c]
        if dp:
            ax1.loglog(*zip(*dp, strict=True), "--", color=line.get_color(), alpha=0.6)
        gg = GOOGLE.get(name, {})
        ax1.loglog(list(gg), list(gg.values()), ":", color=line.get_color(), alpha=0.6)
    ax1.set(xlabel="epsilon", ylabel="cost / KMeans cost",
            title="ours (solid), diffprivlib (dashed), Google (dotted)")
    ax1.legend(fontsize=7)
    rows = data["growth"]["rows"]
    for ax, var in ((ax2, "n"), (ax3, "d"), (ax4, "k")):
        other = [v for v in ("n", "k", "d") if v != var]
        r0 = rows[0]
        n_mid = rows[len(rows) // 2]["n"]
        if var == "n":
            sel = [r for r in rows if all(r[o] == r0[o] for o in other)]
        elif var == "d":
            sel = [r for r in rows if r["n"] == n_mid and r["k"] == r0["k"]]
        else:  # the k rows share n_mid and the first row's d
            sel = [r for r in rows if r["n"] == n_mid and r["d"] == r0["d"]]
        sel = sorted({r[var]: r for r in sel}.values(), key=lambda r: r[var])
        xs = [r[var] for r in sel]
        ys = [max(r["additive"], 1e-9) for r in sel]
        ax.loglog(xs, ys, "b-o", label="ours: cost - KMeans cost")
        if xs and var == "d":
            ax.loglog(xs, [ys[0] * (x / xs[0]) ** 0.51 for x in xs], "k--",
                      label="d^0.51 (bound's shape)")
        if xs and var == "n":
            ax.loglog(xs, [ys[0] * (math.log(x) / math.log(xs[0])) for x in xs], "k--",
                      label="log n (bound's shape)")
            ax.loglog(xs, [ys[0] * x / xs[0] for x in xs], "r:", label="linear in n")
        title = f"additive error vs {var}, eps 1"
        if var == "k":  # the bound is polynomial in k; its exponent was not recovered
            title += "\n(bound: poly(k), exponent not recovered)"
        ax.set(xlabel=var, ylabel="additive error", title=title)
        ax.legend(fontsize=7)
    fig.set_size_inches(17, 4.2)
    fig.tight_layout()


REPRODUCTION = Reproduction(
    name="dp_kmeans",
    title="Differentially Private k-Means with Constant Multiplicative Error",
    citation=CITATION,
    capability="privacy",
    profiles=PROFILES,
    references=REFERENCES,
    run=run,
    judge=judge,
    plot=plot,
    description="Private k-means cost ratios vs diffprivlib and Google's LSH clustering per "
                "(data, epsilon) cell; ledger audit; additive-error growth; local model.",
)
