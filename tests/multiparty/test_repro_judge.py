"""The contamination reproduction's judge on hand-made data: each claim's verdict follows
the numbers (a defence that does not work fails; one that does passes)."""

from __future__ import annotations

from neurips18.repro import contamination as c


def _model(acc=0.81, natural=0.05, probes=0.06, inference=0.10):
    return {"acc": acc, "natural": natural, "probes": probes, "probes_before": 0.05,
            "n_natural": 80, "n_probes": 7000, "inference": inference,
            "inference_party0": 0.1, "chance": 0.1, "disc_acc": None, "steps": 1,
            "n_train": 20000, "fit_seconds": 1.0}


def _seed(defended_natural, jitter=0.0):
    return {
        "clean": _model(natural=0.06 + jitter),
        "b0.25": _model(acc=0.80, natural=0.97 - jitter, probes=0.96, inference=0.12),
        "lam30": _model(acc=0.80, natural=defended_natural + jitter,
                        probes=defended_natural, inference=0.105),
        "clean_label_lam0": _model(natural=0.7, probes=0.75),
        "clean_label_lam30": _model(natural=0.065 + jitter, probes=0.07, inference=0.101),
    }


def _verdicts(seeds, cfg):
    j = c.judge({"runs": {"credit": seeds}, "art_installed": False, "b_max": 0.25}, cfg)
    return {(r.key, r.metric): r.verdict for r in j.rows}


def test_quick_judges_the_clean_label_defence_and_the_flip_attack():
    cfg = c.PROFILES["quick"]
    v = _verdicts([_seed(0.5)], cfg)
    judged = {k: x for k, x in v.items() if x != "no-reference"}
    assert all(x == "pass" for x in judged.values()), judged
    keys = {k for k, _ in judged}
    assert keys == {"success_target", "defended_gap", "accuracy_gap", "inference"}
    assert all("clean-label" in m for k, m in judged if k != "success_target")


def test_full_fails_a_flip_defence_that_leaves_the_attack():
    cfg = c.PROFILES["full"]
    seeds = [_seed(0.45, jitter=j) for j in (0.0, 0.01, -0.01)]
    v = _verdicts(seeds, cfg)
    flip_gap = [x for (k, m), x in v.items() if k == "defended_gap" and "flip" in m]
    assert flip_gap == ["fail", "fail"]
    good = _verdicts([_seed(0.08, jitter=j) for j in (0.0, 0.01, -0.01)], cfg)
    assert [x for (k, m), x in good.items() if k == "defended_gap"] == ["pass"] * 4
    # without ART the anchor rows have no verdict and say how to install it
    j = c.judge({"runs": {"credit": seeds}, "art_installed": False, "b_max": 0.25}, cfg)
    anchor = [r for r in j.rows if r.key == "vs_anchor"]
    assert anchor and all(r.verdict == "no-reference" and "pip install" in r.note
                          for r in anchor)


def test_vectorised_provenance_filter_equals_art():
    import numpy as np
    import pytest

    poison = pytest.importorskip("art.defences.detector.poison")
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4, (300, 5)).astype(float)  # repeated values: rows collide
    data[::7] = rng.standard_normal((len(data[::7]), 5))
    labels = np.arange(300)
    segment = data[:60]
    a = poison.ProvenanceDefense.filter_input(data, labels, segment)
    b = c.filter_input_vectorised(data, labels, segment)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert len(b[1]) < 240  # rows outside the segment dropped too: the rule noted above
