"""The hvae reproduction's judge on hand-made data: which rows it emits and how it decides."""

from __future__ import annotations

import math

from neurips18.repro import hvae as rp


def _gauss(d, method, sigma_true, delta_mle, sigma_mle=0.0):
    return {"d": d, "rep": 0, "method": method, "delta_true": d + 0.1,
            "sigma_true": sigma_true, "delta_mle": delta_mle, "sigma_mle": sigma_mle,
            "mle_delta_true": float(d), "mle_sigma_true": 0.0}


def _mnist(kind, seed, nll, elbo):
    return {"kind": kind, "seed": seed, "nll": nll, "elbo": elbo, "epochs_run": 3,
            "best_epoch": 3, "val_elbo": [-100.0], "epoch_seconds": 1.0}


def _data(gaps, pythae=None):
    g = [_gauss(5, "hvae_tempered", 1e-3, 5e-3), _gauss(5, "hvae_untempered", 3.0, 0.1),
         _gauss(5, "planar", 0.5, 0.2), _gauss(5, "vb", 1e-4, 2e-3)]
    runs = []
    for s, gap in enumerate(gaps):
        runs += [_mnist("vae", s, 90.0 + gap, -95.0), _mnist("hvae", s, 90.0, -93.0)]
    return {"gaussian": g, "mnist": runs, "pythae": pythae, "pythae_version": "0.1.2"}


def test_full_judge_rows_and_verdicts():
    cfg = rp.PROFILES["full"]
    j = rp.judge(_data([1.0, 1.1, 0.9], {"nll": 95.0, "nll_first": 96.0, "own_nll": 80.0,
                                          "images_own": 500, "epoch_seconds": 2.0,
                                          "eps_lf": 0.1, "beta_zero": 0.5, "val_elbo": []}),
                 cfg)
    rows = {(r.key, r.metric): r for r in j.rows}
    by_key = {}
    for r in j.rows:
        by_key.setdefault(r.key, []).append(r)
    assert by_key["g_sigma"][0].verdict == "pass"
    assert by_key["g_delta_mle"][0].verdict == "pass"
    assert by_key["g_untempered"][0].verdict == "pass"
    ranks = {r.metric: r for r in by_key["g_rank"]}
    assert len(ranks) == 2
    vb = next(r for m, r in ranks.items() if "VB" in m)
    nf = next(r for m, r in ranks.items() if "planar" in m)
    assert vb.verdict == "fail" and math.isclose(vb.ours, 5e-3 / 2e-3)
    assert nf.verdict == "pass"
    gap = by_key["m_gap"][0]
    assert gap.n == 3 and math.isclose(gap.ours, 1.0) and gap.verdict == "pass"
    assert gap.interval[0] < 1.0 < gap.interval[1]
    assert by_key["m_pythae_nll"][0].paper == 95.0 and by_key["m_pythae_nll"][0].verdict == "pass"
    assert by_key["m_bound"][0].verdict == "pass"
    assert len(rows) == len(j.rows)


def test_gap_interval_decides_with_few_seeds():
    cfg = rp.PROFILES["full"]
    # mean 0.5 >= 0.3, but two seeds that disagree: the interval does not support it
    j = rp.judge(_data([0.1, 0.9, 0.5]), cfg)
    gap = next(r for r in j.rows if r.key == "m_gap")
    assert math.isclose(gap.ours, 0.5) and gap.verdict == "fail"


def test_anchor_missing_and_quick_rows():
    cfg = rp.PROFILES["quick"]
    data = _data([1.0])
    data["gaussian"] = [r for r in data["gaussian"] if r["method"] != "planar"]
    j = rp.judge(data, cfg)
    keys = [r.key for r in j.rows]
    assert "m_anchor_missing" in keys and "m_gap" not in keys and "g_rank" not in keys
    assert "g_delta_mle" not in keys
    missing = next(r for r in j.rows if r.key == "m_anchor_missing")
    assert "pip install 'neurips18[hvae-anchors]'" in missing.source
    assert missing.verdict == "no-reference"
