"""Properties of the sgld reproduction beyond the registry-driven smoke test: the closed
forms' own slopes, rows built from the per-seed data, and the covertype part when its data
is present."""

from __future__ import annotations

import numpy as np
import pytest

from neurips18 import datasets
from neurips18.repro import estimate, harness, registry


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("sgld")
    return harness.run("sgld", profile="smoke", out=out, progress=False)


def test_closed_form_slopes_and_identity(smoke):
    runs = smoke.data["runs"]
    assert len(runs) == registry.get("sgld").profiles["smoke"].seeds
    for r in runs:
        # the closed forms on the logistic model, simulation-free: LMC and SGLDFP
        # concentrate like 1/N, SGLD does not
        th = r["logistic_vs_n"]["theory"]
        for meth, target in (("lmc", -1), ("sgldfp", -1), ("sgld", 0)):
            assert th["cov_slopes"][meth] == pytest.approx(target, abs=0.1)
        assert r["closed_vs_sim"]["identity_rel_err"] < 1e-12
    by = {c.metric: c for c in smoke.rows}
    ident = by["max |C_SGLD - C_SGLDFP - C_SGD| / max |C_SGLD| (worst seed)"]
    assert ident.verdict == "pass"


def test_rows_are_means_over_seeds_paired_with_the_closed_forms(smoke):
    runs = smoke.data["runs"]
    row = next(c for c in smoke.rows if c.key == "logistic_slope_gap"
               and "||C - C_post||_F" in c.metric and c.metric.endswith(
                   "sgldfp, minus the closed forms' slope"))
    gaps = [r["logistic_vs_n"]["slopes"]["cov_err"]["sgldfp"]
            - r["logistic_vs_n"]["theory"]["cov_slopes"]["sgldfp"] for r in runs]
    est = estimate(gaps)
    assert row.n == len(runs) and row.ours == pytest.approx(est.mean)
    assert row.interval == pytest.approx(est.interval)
    sim = [c for c in smoke.rows if c.key == "closed_vs_sim"]
    assert sim and all(c.interval is not None and c.n == len(runs) for c in sim)


def test_covertype_part_runs_when_its_data_is_present(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 2500
    X = rng.standard_normal((n, 5))
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ np.linspace(-1, 1, 5)))).astype(float)
    fake = datasets.Dataset(name="covertype", X=X, y=y,
                            feature_names=tuple(f"pc{i}" for i in range(5)),
                            target_name="lodgepole pine", classes=("other", "lodgepole pine"))
    monkeypatch.setattr(datasets, "load_covertype", lambda *a, **k: fake)
    res = harness.run("sgld", profile="smoke", out=tmp_path, progress=False)
    assert res.skipped == {}
    rows = [c for c in res.rows if c.metric.startswith("covertype")]
    assert len(rows) == 8  # cov and mean slopes of the four methods (grid below 1e3)
    assert res.data["runs"][0]["covertype_vs_n"]["ns"] == [300, 2500]
