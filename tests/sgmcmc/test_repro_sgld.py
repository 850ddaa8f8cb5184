"""The reproduction module runs end to end on a tiny configuration and its table is sane."""

import numpy as np
import pytest

TINY = {
    "closed_vs_sim": {"n": 200, "d": 2, "batch_size": 10, "eta": 0.5, "n_steps": 20_000,
                      "without_replacement": True},
    "linear_vs_n": {"ns": [1e3, 1e4, 1e5], "d": 2, "batch_size": 10},
    "logistic_vs_n": {"ns": [300, 3000], "d": 2, "batch_size": 10,
                      "methods": ["lmc", "sgld", "sgldfp", "sgd"], "n_steps": 3000,
                      "steps_per_n": 0, "lmc_budget": 1e7, "ref_budget": 1e6},
    "logistic_big": {"n": 2000, "d": 3, "batch_size": 20, "n_steps": 3000,
                     "ref_samples": 500},
}


def test_sgld_reproduction_runs_and_resumes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from neurips18.repro import registry
    from neurips18.repro.core import RunContext

    rep = registry.get("sgld")
    assert set(rep.profiles) == {"quick", "full"}
    ctx = RunContext(profile="quick", config=TINY, seed=0, checkpoint_dir=tmp_path,
                     progress=False)
    out = rep.run(ctx)
    by = {c.metric: c for c in out.comparisons}
    ident = by["max |C_SGLD - C_SGLDFP - C_SGD| / max |C_SGLD|"]
    assert ident.verdict == "pass" and ident.ours < 1e-10
    # the closed-form slopes on linear regression do not depend on the simulation budget
    for meth, target in (("lmc", -1), ("sgldfp", -1), ("sgld", 0), ("sgd", 0)):
        row = by[f"linear regression: log-log slope of ||C - C_post||_F vs N, {meth}"]
        assert row.ours == pytest.approx(target, abs=0.15)
    assert all(c.source for c in out.comparisons)
    assert all(np.isfinite(c.ours) for c in out.comparisons)
    # the whole-grid logistic slopes are judged against the closed forms' own prediction,
    # which is simulation-free: LMC and SGLDFP concentrate like 1/N, SGLD does not
    th = out.data["logistic_vs_n"]["theory"]
    assert th["ns"] == [300, 3000]
    for meth, target in (("lmc", -1), ("sgldfp", -1), ("sgld", 0)):
        assert th["cov_slopes"][meth] == pytest.approx(target, abs=0.1)
        row = by[f"logistic regression: log-log slope of ||C - C_post||_F vs N, {meth}"]
        assert row.paper == pytest.approx(th["cov_slopes"][meth])
    fig = Figure()
    rep.plot(out.data, fig)
    assert len(fig.axes) == 4
    # a second run resumes every cached step
    ctx2 = RunContext(profile="quick", config=TINY, seed=0, checkpoint_dir=tmp_path,
                      progress=False)
    out2 = rep.run(ctx2)
    assert ctx2.computed_steps == []
    assert [c.ours for c in out2.comparisons] == pytest.approx([c.ours for c in out.comparisons])


def test_sgld_reproduction_uses_covertype_when_present(tmp_path, monkeypatch):
    import gzip

    from neurips18.repro import registry
    from neurips18.repro.core import RunContext

    rng = np.random.default_rng(0)
    n = 2500
    feats = np.column_stack([rng.integers(1800, 3900, n), rng.integers(0, 1400, (n, 9)),
                             rng.integers(0, 2, (n, 44))])
    label = np.where(feats[:, 0] + rng.normal(0, 300, n) > 2850, 2, 1)
    (tmp_path / "data" / "covertype").mkdir(parents=True)
    with gzip.open(tmp_path / "data" / "covertype" / "covtype.data.gz", "wt") as fh:
        for f, lab in zip(feats, label, strict=True):
            fh.write(",".join(map(str, f)) + f",{lab}\n")
    monkeypatch.setenv("NEURIPS18_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEURIPS18_OFFLINE", "1")
    ctx = RunContext(profile="quick", config=TINY, seed=0, checkpoint_dir=tmp_path / "ck",
                     progress=False)
    out = registry.get("sgld").run(ctx)
    rows = [c for c in out.comparisons if c.metric.startswith("covertype")]
    assert len(rows) == 8
    assert out.data["covertype_vs_n"]["ns"] == [300, 2500]
