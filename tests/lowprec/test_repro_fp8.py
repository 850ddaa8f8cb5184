"""Focused checks of the fp8 reproduction's pieces (the registry-driven smoke test runs it)."""

from __future__ import annotations

import math

from neurips18.repro import fp8
from neurips18.repro.core import estimate


def test_chunking_removes_swamping_in_the_accumulation_study():
    err = fp8._dot_errors("uniform", 4096, 8, (4096, 64), seed=3)
    assert err["64"] * 10 < err["4096"]  # chunks of 64 cut the sequential error tenfold


def _fake_data(cfg, acc):
    vs_n = {f"acc-{d}-{n}": {str(n): 0.5, "64": 0.002} for d in ("uniform", "normal")
            for n in cfg.acc_sizes}
    data = {"accumulation": {"vs_n": vs_n, "sweep": {"1": 0.5, "64": 0.002}},
            "training": {}, "average_last": cfg.standard.average_last}
    for key, kw in fp8._runs(cfg):
        a = acc(kw)
        data["training"][key] = {"curve": [a] * cfg.standard.evals_last_epoch, "final": a}
    return data


def test_judge_pairs_by_seed_and_gives_one_row_per_claim_and_lr():
    cfg = fp8.PROFILES["full"]

    def acc(kw):  # a seed effect shared by the arms, and a small FP8 offset
        base = 97.0 + 0.5 * kw["seed"]
        return base - {"fp32": 0.0, "fp8": 0.05, "fp8-ls": 0.02,
                       "fp8-nearest": 20.0 + 5 * kw["lr"]}[kw["variant"]]

    j = fp8.judge(_fake_data(cfg, acc), cfg)
    keys = [r.key for r in j.rows]
    assert keys.count("sr_gap") == len(cfg.small.lrs) * len(cfg.small.models)
    assert keys.count("transformer_gap") == 1
    assert keys.count("nearest_growth") == len(cfg.small.models)
    assert keys.count("fp8_gap") == len(cfg.standard.models)
    gap = next(r for r in j.rows if r.key == "fp8_gap")
    # paired: the seed effect (0.5 points per seed) cancels, the interval is the offset's
    assert math.isclose(gap.ours, -0.05, abs_tol=1e-9)
    assert gap.interval[1] - gap.interval[0] < 1e-6 and gap.verdict == "pass"
    assert all(r.verdict == "pass" for r in j.rows if r.key in ("sr_gap", "nearest_gap"))


def test_a_row_failing_on_its_interval_says_how_many_seeds_it_needs():
    cfg = fp8.PROFILES["full"]

    def acc(kw):  # FP8 0.1 below FP32 with a seed-dependent spread of +-0.4
        noise = 0.4 if kw["seed"] % 2 else -0.4
        return 97.0 - (0.1 + noise if kw["variant"] == "fp8" else 0.0)

    j = fp8.judge(_fake_data(cfg, acc), cfg)
    row = next(r for r in j.rows if r.key == "fp8_gap")
    assert row.verdict == "fail"
    est = estimate([-(0.1 + (0.4 if s % 2 else -0.4)) for s in range(cfg.standard.seeds)])
    need = fp8.seeds_needed(est, 0.0, 0.3, "abs")
    assert need is not None and need > cfg.standard.seeds
    assert any(f"about {need} seeds" in n for n in j.notes)
    assert fp8.seeds_needed(estimate([-0.5, -0.6, -0.4]), 0.0, 0.3, "abs") is None


def test_standard_accuracy_averages_the_last_evaluations():
    st = fp8.PROFILES["full"].standard
    r = {"curve": [90.0, 97.0, 97.2, 97.4, 97.6], "final": 97.6}
    assert math.isclose(fp8.standard_accuracy(r, st), (97.2 + 97.4 + 97.6) / 3)
