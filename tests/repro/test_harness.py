"""The reproduction harness: comparison verdicts, atomic outputs, checkpoints and resume."""

from __future__ import annotations

import json
import math

import pytest

from neurips18.repro import Outcome, Reproduction, compare, harness, registry


def test_compare_verdicts():
    assert compare("m", 1.0, 1.05, source="Table 1", tol=0.1).verdict == "pass"
    assert compare("m", 1.0, 1.2, source="Table 1", tol=0.1).verdict == "fail"
    assert compare("m", 0.9, 1.0, source="t", tol=0.05, mode="rel").verdict == "fail"
    assert compare("m", 0.96, 1.0, source="t", tol=0.05, mode="rel").verdict == "pass"
    assert compare("acc", 0.99, 0.995, source="issue target", tol=0, mode="min").verdict == "fail"
    assert compare("acc", 1.0, 0.995, source="issue target", tol=0, mode="min").verdict == "pass"
    assert compare("time", 12.0, 10.0, source="issue target", tol=0, mode="max").verdict == "fail"
    row = compare("m", 3.0, None, source="Table 2: not recovered", tol=0.1)
    assert row.verdict == "no-reference" and row.paper is None
    assert compare("m", math.nan, 1.0, source="t", tol=10).verdict == "fail"
    assert compare("m", None, 1.0, source="t", tol=10).verdict == "fail"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"tol": -1}, "tol must be"), ({"tol": math.inf}, "tol must be"),
     ({"tol": 0.1, "mode": "close"}, "mode must be"), ({"tol": 0.1, "source": ""}, "source")],
)
def test_compare_rejects_bad_arguments(kwargs, match):
    kw = {"source": "t", **kwargs}
    with pytest.raises(ValueError, match=match):
        compare("m", 1.0, 1.0, **kw)


class _Interrupt(Exception):
    pass


def _toy(calls: list[str], fail_after: int | None = None) -> Reproduction:
    """A three-step toy reproduction that can be 'killed' after a number of steps."""

    def run(ctx):
        values = []
        for i in range(3):
            def step(i=i):
                calls.append(f"step{i}")
                if fail_after is not None and len(calls) > fail_after:
                    raise _Interrupt
                return {"x": i * ctx.config["scale"], "seed": ctx.seed}
            values.append(ctx.cached(f"step{i}", step)["x"])
        return Outcome(
            comparisons=[
                compare("sum", sum(values), 3.0, source="closed form", tol=1e-12),
                compare("first", values[0], None, source="not recovered", tol=0.1),
            ],
            data={"values": values},
            notes=["toy"],
        )

    def plot(data, fig):
        fig.add_subplot(111).plot(data["values"])

    return Reproduction(
        name="toy", title="Toy", citation="nobody", capability="none", run=run, plot=plot,
        profiles={"quick": {"scale": 1.0}, "full": {"scale": 2.0}},
    )


@pytest.fixture
def toy_registry(monkeypatch):
    repros: dict[str, Reproduction] = {}
    monkeypatch.setattr(registry, "get", lambda name: repros[name])
    monkeypatch.setattr(registry, "module_names", lambda: sorted(repros))
    return repros


def test_outputs_are_complete(tmp_path, toy_registry):
    toy_registry["toy"] = _toy([])
    res = harness.run("toy", profile="quick", out=tmp_path, seed=3, progress=False)
    d = tmp_path / "toy"
    assert sorted(p.name for p in d.iterdir()) == sorted(harness.OUTPUT_FILES)
    result = json.loads((d / "result.json").read_text())
    assert result["summary"] == {"pass": 1, "fail": 0, "no-reference": 1}
    row = result["comparisons"][0]
    assert {"metric", "ours", "paper", "source", "tolerance", "verdict"} <= set(row)
    assert result["comparisons"][1]["paper"] is None
    meta = json.loads((d / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["profile"] == "quick" and meta["config"] == {"scale": 1.0}
    assert {"numpy", "python", "torch"} <= set(meta["versions"])
    assert "commit" in meta and meta["wall_time_s"] >= 0
    assert (d / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (d / "table.md").read_text()
    assert "| sum | 3 | 3 | closed form |" in table and "not recovered" in table
    assert res.failed == []


def test_interrupted_run_resumes_from_checkpoint(tmp_path, toy_registry):
    calls: list[str] = []
    toy_registry["toy"] = _toy(calls, fail_after=2)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, progress=False)
    assert not (tmp_path / "toy" / "result.json").exists()  # nothing half-written
    toy_registry["toy"] = _toy(calls)
    res = harness.run("toy", out=tmp_path, progress=False)
    assert calls == ["step0", "step1", "step2", "step2"]  # steps 0 and 1 were not redone
    assert res.resumed_steps == ["step0", "step1"]
    meta = json.loads((tmp_path / "toy" / "meta.json").read_text())
    assert meta["resumed_steps"] == ["step0", "step1"]
    assert not (tmp_path / "toy" / ".checkpoint" / "quick-seed0").exists()


def test_checkpoints_are_per_profile_and_seed(tmp_path, toy_registry):
    calls: list[str] = []
    toy_registry["toy"] = _toy(calls, fail_after=1)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, seed=1, progress=False)
    toy_registry["toy"] = _toy(calls)
    harness.run("toy", out=tmp_path, seed=2, progress=False)  # another seed: no reuse
    assert calls == ["step0", "step1", "step0", "step1", "step2"]


def test_failing_comparison_and_previous_result_kept_atomically(tmp_path, toy_registry):
    toy_registry["toy"] = _toy([])
    harness.run("toy", out=tmp_path, progress=False)
    before = (tmp_path / "toy" / "result.json").read_text()
    toy_registry["toy"] = _toy([], fail_after=0)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, profile="full", progress=False)
    assert (tmp_path / "toy" / "result.json").read_text() == before
    toy_registry["toy"] = _toy([])
    res = harness.run("toy", out=tmp_path, profile="full", progress=False)
    assert [c.verdict for c in res.failed] == ["fail"]  # 0 + 2 + 4 != 3


def test_damaged_checkpoint_is_recomputed(tmp_path, toy_registry):
    calls: list[str] = []
    toy_registry["toy"] = _toy(calls, fail_after=1)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, progress=False)
    (tmp_path / "toy" / ".checkpoint" / "quick-seed0" / "step0.json").write_text("{trunc")
    toy_registry["toy"] = _toy(calls)
    harness.run("toy", out=tmp_path, progress=False)
    assert calls == ["step0", "step1", "step0", "step1", "step2"]


def test_bad_arguments(tmp_path, toy_registry):
    toy_registry["toy"] = _toy([])
    with pytest.raises(ValueError, match="profile must be one of"):
        harness.run("toy", profile="medium", out=tmp_path)
    with pytest.raises(ValueError, match="seed must be"):
        harness.run("toy", seed=-1, out=tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(harness.OutputDirError, match="cannot write results"):
        harness.run("toy", out=blocker / "sub")


def test_unknown_paper_lists_the_known_ones():
    with pytest.raises(registry.UnknownReproductionError, match="unknown paper 'nope'; known:"):
        registry.get("nope")


def test_every_registered_reproduction_is_well_formed():
    for name in registry.module_names():
        r = registry.get(name)
        assert r.name == name and r.title and r.citation
        assert {"quick", "full"} <= set(r.profiles), name
