"""Focused checks of the fp8 reproduction's pieces (the registry-driven smoke test runs it)."""

from __future__ import annotations

from neurips18.repro import fp8


def test_chunking_removes_swamping_in_the_accumulation_study():
    err = fp8._dot_errors("uniform", 4096, 8, (4096, 64), seed=3)
    assert err["64"] * 10 < err["4096"]  # chunks of 64 cut the sequential error tenfold


def test_judge_gives_one_row_per_claim_and_lr():
    cfg = fp8.PROFILES["smoke"]
    data = {"accumulation": {"vs_n": {"acc-uniform-1024": {"1024": 0.015, "64": 6e-4},
                                      "acc-normal-1024": {"1024": 7e-3, "64": 1.7e-3}},
                             "sweep": {"1": 0.5, "64": 0.002}},
            "training": {}}
    for m, regime, lr, _, v, s in fp8._runs(cfg):
        data["training"][fp8._key(m, regime, lr, v, s)] = {"acc": 90.0 if "nearest" not in v
                                                           else 50.0}
    j = fp8.judge(data, cfg)
    keys = [r.key for r in j.rows]
    assert keys.count("sr_small") == len(cfg.small.lrs)
    assert keys.count("nearest_gap") == len(cfg.small.lrs)
    assert keys.count("nearest_growth") == 1
    assert all(r.verdict != "fail" for r in j.rows if r.key in ("sr_small", "nearest_gap"))
