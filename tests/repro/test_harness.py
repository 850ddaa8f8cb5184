"""The reproduction harness: comparison verdicts, atomic outputs, checkpoints and resume."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from neurips18.repro import (
    MEASURED,
    Judgement,
    Profile,
    Reference,
    References,
    Reproduction,
    compare,
    estimate,
    harness,
    registry,
)


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


def test_interval_decides_the_verdict():
    # the mean satisfies the claim but its interval does not: the claim is not supported
    wide = compare("gap", 0.1, 0.0, source="t", tol=0.3, interval=(-0.5, 0.7), n=3)
    assert wide.verdict == "fail" and "95% interval" in wide.tolerance
    assert compare("gap", 0.1, 0.0, source="t", tol=0.3, interval=(-0.2, 0.25)).verdict == "pass"
    assert compare("acc", 1.0, 0.0, source="t", tol=0.0, mode="min",
                   interval=(0.1, 1e9)).verdict == "pass"
    assert compare("acc", 1.0, 0.0, source="t", tol=0.0, mode="min",
                   interval=(-0.1, 2.0)).verdict == "fail"
    assert compare("t", 1.0, 2.0, source="t", tol=0.0, mode="max",
                   interval=(0.0, 2.5)).verdict == "fail"


def test_an_interval_given_high_end_first_is_refused():
    """compare(interval=(0.7, -0.5), mode="min") checked 0.7 as the low end and passed a
    claim whose interval reaches -0.5; three numbers were cut to the first two."""
    for bad in ((0.7, -0.5), (0.1, 0.7, -3.0), (0.1,)):
        with pytest.raises(ValueError, match="interval must be"):
            compare("acc", 0.5, 0.0, source="t", tol=0.0, mode="min", interval=bad)
    one_point = compare("acc", 0.5, 0.0, source="t", tol=0.0, mode="min", interval=(0.5, 0.5))
    assert one_point.verdict == "pass"
    nan_end = compare("acc", 0.5, 0.0, source="t", tol=0.0, mode="min",
                      interval=(math.nan, 0.7))
    assert nan_end.verdict == "fail"


def test_a_row_shown_without_verdict_keeps_its_reference():
    row = compare("acc", 0.9, 0.995, source="target", tol=0.0, mode="min", judged=False)
    assert row.verdict == "no-reference" and row.paper == 0.995
    assert row.tolerance.startswith("not judged in this profile")


def test_estimate_matches_scipy_and_pairs_by_seed():
    from scipy import stats

    xs = [98.1, 98.4, 97.9, 98.3]
    e = estimate(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=sum(xs) / 4, scale=stats.sem(xs))
    assert e.mean == pytest.approx(sum(xs) / 4) and e.low == pytest.approx(lo)
    assert e.high == pytest.approx(hi) and e.n == 4
    ys = [x - 0.2 for x in xs]
    p = estimate(xs, paired_with=ys)
    assert p.mean == pytest.approx(0.2) and p.high - p.low == pytest.approx(0.0, abs=1e-9)
    one = estimate([1.0])
    assert one.low == -math.inf and one.high == math.inf
    with pytest.raises(ValueError, match="differ in length"):
        estimate([1.0, 2.0], paired_with=[1.0])


def test_a_row_from_an_estimate_names_its_interval_level():
    """An Estimate of another level (estimate(..., level=0.5)) decided the verdict with its
    own, narrower interval while the row said "95% interval of ours"."""
    refs = References(Reference("g", "gap", 0.0, source="target", tol=0.1))
    vals = [0.01, 0.02, 0.03, 0.05]
    half = refs.row("g", estimate(vals, level=0.5))
    assert half.interval == estimate(vals, level=0.5).interval
    assert half.tolerance.startswith("50% interval of ours") and "95%" not in half.tolerance
    assert refs.row("g", estimate(vals)).tolerance.startswith("95% interval of ours")
    assert refs.row("g", estimate(vals, level=0.99)).tolerance.startswith("99% interval")
    for bad in (0.0, 1.0, 95, math.nan):
        with pytest.raises(ValueError, match="level"):
            estimate(vals, level=bad)
        with pytest.raises(ValueError, match="level"):
            compare("g", 0.0, 0.0, source="t", tol=0.1, interval=(0.0, 0.1), level=bad)


def test_references_rows():
    refs = References(
        Reference("a", "sum for {who}", 3.0, source="closed form", tol=1e-12),
        Reference("b", "anchor", MEASURED, source="anchor measured here", tol=0.1, mode="rel"),
        Reference("c", "paper value", None, source="Table 2: not recovered"),
    )
    assert refs.row("a", 3.0, who="x").metric == "sum for x"
    assert refs.row("b", 1.05, ref=1.0).verdict == "pass"
    assert refs.row("b", 1.2, ref=1.0).verdict == "fail"
    assert refs.row("c", 5.0).verdict == "no-reference"
    with pytest.raises(ValueError, match="declared, not measured"):
        refs.row("a", 3.0, ref=3.0, who="x")
    with pytest.raises(ValueError, match="duplicate"):
        References(Reference("a", "m", 1.0, source="s"), Reference("a", "m", 2.0, source="s"))
    with pytest.raises(ValueError, match="tol"):
        Reference("z", "m", 1.0, source="s", tol=-1.0)


@dataclass(frozen=True)
class _ToyConfig(Profile):
    scale: float
    steps: tuple[int, ...] = (0, 1, 2)


def test_profiles_are_validated():
    from neurips18.repro.core import validate_profile

    validate_profile("quick", _ToyConfig(1.0))
    with pytest.raises(TypeError, match="scale"):
        validate_profile("quick", _ToyConfig("big"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"steps\[1\]"):
        validate_profile("quick", _ToyConfig(1.0, (0, "1")))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        validate_profile("quick", _ToyConfig(1.0, threads=0))
    with pytest.raises(TypeError, match="Profile"):
        validate_profile("quick", {"scale": 1.0})
    cfg = _ToyConfig(2.0, (3, 4), threads=2)
    assert _ToyConfig.from_dict(cfg.to_dict()) == cfg


@dataclass(frozen=True)
class _KeyedConfig(Profile):
    lr_by_width: dict[int, float]
    weight_by_share: dict[float, int]
    label_by_flag: dict[bool, str]
    names: dict[str, int]
    by_optional: dict[int | None, int]


def test_a_profile_with_number_keys_comes_back_from_its_json_form():
    """JSON writes every key as a string: from_dict gave a dict[int, float] field the key
    "64" instead of 64, so the rebuilt config (what rejudge judges with) differed from the
    one that ran and failed its own type check."""
    from neurips18.repro.core import validate_profile

    cfg = _KeyedConfig({64: 0.1, 128: 0.05}, {0.5: 1, 1e-05: 2}, {True: "a", False: "b"},
                       {"64": 1}, {None: 0, 3: 1})
    back = _KeyedConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    validate_profile("quick", back)


class _Interrupt(Exception):
    pass


def _toy(calls: list[str], fail_after: int | None = None, tol_sum: float = 1e-12
         ) -> Reproduction:
    """A three-step toy reproduction that can be 'killed' after a number of steps."""

    def run(ctx):
        values = []
        for i in ctx.config.steps:
            def step(i=i):
                calls.append(f"step{i}")
                if fail_after is not None and len(calls) > fail_after:
                    raise _Interrupt
                return {"x": i * ctx.config.scale, "seed": ctx.seed}
            values.append(ctx.cached(f"step{i}", step)["x"])
        return {"values": values}

    refs = References(
        Reference("sum", "sum", 3.0, source="closed form", tol=tol_sum),
        Reference("first", "first", None, source="not recovered", tol=0.1),
    )

    def judge(data, cfg):
        v = data["values"]
        return Judgement([refs.row("sum", sum(v)), refs.row("first", v[0])], ["toy"])

    def plot(data, fig):
        fig.add_subplot(111).plot(data["values"])

    return Reproduction(
        name="toy", title="Toy", citation="nobody", capability="none",
        profiles={"smoke": _ToyConfig(1.0), "quick": _ToyConfig(1.0),
                  "full": _ToyConfig(2.0)},
        references=refs, run=run, judge=judge, plot=plot,
    )


@pytest.fixture
def toy_registry(monkeypatch):
    repros: dict[str, Reproduction] = {}
    monkeypatch.setattr(registry, "get", lambda name: repros[name])
    monkeypatch.setattr(registry, "module_names", lambda: sorted(repros))
    return repros


def test_drawing_the_figure_leaves_the_callers_matplotlib_backend(tmp_path, toy_registry):
    """Writing figure.png switched matplotlib to Agg for the rest of the process: after
    harness.run in a notebook its inline backend was gone and plots stopped showing."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    try:
        plt.switch_backend("svg")  # stands for the caller's backend (e.g. a notebook's)
        open_fig = plt.figure()
        toy_registry["toy"] = _toy([])
        harness.run("toy", profile="quick", out=tmp_path, seed=0, progress=False)
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [open_fig.number]  # the caller's figure is still open
        assert (tmp_path / "toy" / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        plt.close(open_fig)
    finally:
        plt.switch_backend(before)


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
    assert meta["seed"] == 3 and meta["profile"] == "quick"
    assert meta["config"] == {"threads": 1, "scale": 1.0, "steps": [0, 1, 2]}
    assert meta["threads"] == 1 and result["threads"] == 1
    assert {"numpy", "python", "torch"} <= set(meta["versions"])
    assert "commit" in meta and meta["wall_time_s"] >= 0
    assert (d / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (d / "table.md").read_text()
    assert "| sum | 3 | 3 | closed form |" in table and "not recovered" in table
    assert res.failed == []


def test_rejudge_rebuilds_verdicts_without_rerunning(tmp_path, toy_registry):
    calls: list[str] = []
    toy_registry["toy"] = _toy(calls)
    harness.run("toy", out=tmp_path, progress=False)
    before = json.loads((tmp_path / "toy" / "result.json").read_text())
    n_calls = len(calls)
    same = harness.rejudge("toy", out=tmp_path)
    assert len(calls) == n_calls  # nothing was recomputed
    after = json.loads((tmp_path / "toy" / "result.json").read_text())
    assert after["comparisons"] == before["comparisons"] and after["data"] == before["data"]
    assert [c.verdict for c in same.rows] == ["pass", "no-reference"]
    # a tolerance change shows up in the verdicts and in table.md, without a rerun
    toy_registry["toy"] = _toy(calls, tol_sum=0.0)
    (tmp_path / "toy" / "result.json").write_text(
        json.dumps({**before, "data": {"values": [0.0, 1.0, 2.5]}}))
    res = harness.rejudge("toy", out=tmp_path)
    assert len(calls) == n_calls and [c.verdict for c in res.failed] == ["fail"]
    assert "| sum | 3.5 | 3 |" in (tmp_path / "toy" / "table.md").read_text()
    meta = json.loads((tmp_path / "toy" / "meta.json").read_text())
    assert len(meta["rejudged"]) == 2


def test_rejudge_without_a_result_says_so(tmp_path, toy_registry):
    toy_registry["toy"] = _toy([])
    with pytest.raises(FileNotFoundError, match="no finished result"):
        harness.rejudge("toy", out=tmp_path)


def test_threads_are_set_from_the_profile_and_restored(tmp_path, toy_registry):
    import torch

    seen = []
    toy = _toy([])

    def run(ctx):
        seen.append(torch.get_num_threads())
        return toy.run(ctx)

    import dataclasses

    toy_registry["toy"] = dataclasses.replace(
        toy, run=run, profiles={**toy.profiles, "quick": _ToyConfig(1.0, threads=2)})
    before = torch.get_num_threads()
    harness.run("toy", out=tmp_path, progress=False)
    harness.run("toy", out=tmp_path, progress=False, threads_override=1)
    assert seen == [2, 1] and torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [2.7, True, "2"])
def test_a_thread_count_that_is_not_an_integer_is_refused(tmp_path, toy_registry, bad):
    """threads_override=2.7 ran on int(2.7) = 2 threads (and True on one), recorded as
    such in meta.json, with no word."""
    toy_registry["toy"] = _toy([])
    with pytest.raises(ValueError, match="threads_override must be an integer"):
        harness.run("toy", out=tmp_path, progress=False, threads_override=bad)
    assert not (tmp_path / "toy" / "meta.json").exists()


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
    assert not (tmp_path / "toy" / ".checkpoint" / "quick-seed0-threads1").exists()


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


def test_a_checkpoint_of_other_code_is_not_resumed(tmp_path, toy_registry, monkeypatch,
                                                   capsys):
    calls: list[str] = []
    toy_registry["toy"] = _toy(calls, fail_after=2)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, progress=False)
    real = harness._code_fingerprint
    monkeypatch.setattr(harness, "_code_fingerprint", lambda cfg: "edited" + real(cfg))
    toy_registry["toy"] = _toy(calls)
    res = harness.run("toy", out=tmp_path, progress=False)  # the code changed in between
    assert calls == ["step0", "step1", "step2", "step0", "step1", "step2"]
    assert not res.resumed_steps
    assert "discarding the checkpoint" in capsys.readouterr().err


def test_the_fingerprint_follows_the_source_and_the_settings():
    a = harness._code_fingerprint({"n": 1})
    assert a == harness._code_fingerprint({"n": 1}) != harness._code_fingerprint({"n": 2})


def test_damaged_checkpoint_is_recomputed(tmp_path, toy_registry):
    calls: list[str] = []
    toy_registry["toy"] = _toy(calls, fail_after=1)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, progress=False)
    (tmp_path / "toy" / ".checkpoint" / "quick-seed0-threads1" / "step0.json").write_text(
        "{trunc")
    toy_registry["toy"] = _toy(calls)
    harness.run("toy", out=tmp_path, progress=False)
    assert calls == ["step0", "step1", "step0", "step1", "step2"]


def test_bad_arguments(tmp_path, toy_registry):
    toy_registry["toy"] = _toy([])
    with pytest.raises(ValueError, match="has no profile 'medium'"):
        harness.run("toy", profile="medium", out=tmp_path)
    with pytest.raises(ValueError, match="seed must be"):
        harness.run("toy", seed=-1, out=tmp_path)
    with pytest.raises(ValueError, match="at most 2147483647, got 4294967296"):
        harness.run("toy", seed=2**32, out=tmp_path)
    assert not (tmp_path / "toy").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(harness.OutputDirError, match="cannot write results"):
        harness.run("toy", out=blocker / "sub")


def test_unknown_paper_lists_the_known_ones():
    with pytest.raises(registry.UnknownReproductionError, match="unknown paper 'nope'; known:"):
        registry.get("nope")


def test_every_registered_reproduction_is_well_formed():
    for name in registry.module_names():
        r = registry.get(name)  # validates the profiles
        assert r.name == name and r.title and r.citation
        assert {"smoke", "quick", "full"} <= set(r.profiles), name
        assert isinstance(r.references, References) and len(r.references) > 0, name


def test_dirty_means_changed_code_not_changed_outputs(tmp_path):
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "results" / "table.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    assert harness._git_commit(tmp_path)["dirty"] is False
    (tmp_path / "results" / "table.md").write_text("a concurrent run's output\n")
    assert harness._git_commit(tmp_path)["dirty"] is False
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    got = harness._git_commit(tmp_path)
    assert got["dirty"] is True and len(got["commit"]) == 40


def test_an_untracked_module_under_src_makes_the_checkout_dirty(tmp_path):
    """A new file under src/ that git does not know (a paper module added beside the
    others, run before it is committed) was left out: meta.json named the commit, which
    lacks that code, as clean. Ignored files (bytecode) still do not count."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("__pycache__/\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "src" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "notes.txt").write_text("outside the code paths\n")
    assert harness._git_commit(tmp_path)["dirty"] is False
    (tmp_path / "src" / "pkg" / "newpaper.py").write_text("REPRODUCTION = None\n")
    assert harness._git_commit(tmp_path)["dirty"] is True


def test_a_library_upgrade_between_attempts_discards_the_checkpoint(monkeypatch):
    """The fingerprint covered the package's files and the settings only: a run resumed
    after a library upgrade (torch, scikit-learn) mixed steps of both versions, and
    meta.json named the second alone."""
    before = harness._code_fingerprint({"n": 1})
    real = harness._versions
    monkeypatch.setattr(harness, "_versions", lambda: {**real(), "torch": "99.0"})
    assert harness._code_fingerprint({"n": 1}) != before
    monkeypatch.setattr(harness, "_versions", real)
    assert harness._code_fingerprint({"n": 1}) == before


def test_the_fingerprint_covers_the_shipped_weights(tmp_path, monkeypatch):
    # a checkpoint of deepcode's "ours_*" steps was computed from coding/weights/*.pt; new
    # weights (a pull) must not resume it
    import neurips18

    pkg = tmp_path / "neurips18"
    (pkg / "coding" / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    weights = pkg / "coding" / "weights" / "deepcode_snr_0db.pt"
    weights.write_bytes(b"old weights")
    (pkg / "__pycache__").mkdir()
    monkeypatch.setattr(neurips18, "__file__", str(pkg / "__init__.py"))
    before = harness._code_fingerprint({"n": 1})
    (pkg / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"bytecode")
    assert harness._code_fingerprint({"n": 1}) == before  # caches do not count
    weights.write_bytes(b"new weights")
    assert harness._code_fingerprint({"n": 1}) != before


def test_an_interrupted_write_never_pairs_new_results_with_old_meta(tmp_path, toy_registry,
                                                                     monkeypatch):
    toy_registry["toy"] = _toy([])
    harness.run("toy", out=tmp_path, seed=0, progress=False)
    real = harness.os.replace

    def replace(src, dst):
        if str(dst).endswith("figure.png"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(harness.os, "replace", replace)
    with pytest.raises(OSError):
        harness.run("toy", out=tmp_path, seed=7, progress=False)
    d = tmp_path / "toy"
    assert json.loads((d / "result.json").read_text())["seed"] == 7
    # seed 0's meta.json beside seed 7's result.json would make report and list show it
    assert not (d / "meta.json").exists()
    assert harness.last_status(tmp_path, "toy") == "not run"


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, toy_registry):
    calls: list[str] = []
    toy_registry["toy"] = _toy(calls, fail_after=1)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, progress=False)
    step0 = tmp_path / "toy" / ".checkpoint" / "quick-seed0-threads1" / "step0.json"
    assert step0.exists()
    toy_registry["toy"] = _toy(calls)
    # while one run holds the folder, another (any seed) neither touches its checkpoint
    # nor replaces its files one by one beside the first run's
    with harness._exclusive(tmp_path / "toy"):
        for seed in (0, 1):
            with pytest.raises(harness.RunInProgressError, match="another neurips18"):
                harness.run("toy", out=tmp_path, seed=seed, progress=False)
        with pytest.raises(harness.RunInProgressError):
            harness.rejudge("toy", out=tmp_path)
        assert step0.exists() and not (tmp_path / "toy" / "result.json").exists()
    res = harness.run("toy", out=tmp_path, progress=False)  # the lock is released
    assert res.resumed_steps == ["step0"]
    assert not (tmp_path / "toy" / ".lock").exists()


def test_a_checkpoint_of_another_device_is_not_resumed(tmp_path, toy_registry, monkeypatch):
    import dataclasses

    calls: list[str] = []
    monkeypatch.setattr(harness, "check_device", lambda device, repro, quiet=False: device)
    toy_registry["toy"] = dataclasses.replace(_toy(calls, fail_after=2), uses_device=True)
    with pytest.raises(_Interrupt):
        harness.run("toy", out=tmp_path, progress=False, device="cpu")
    toy_registry["toy"] = dataclasses.replace(_toy(calls), uses_device=True)
    res = harness.run("toy", out=tmp_path, progress=False, device="cuda:0")
    # meta.json says cuda:0: none of its steps may be the CPU run's
    assert not res.resumed_steps and calls[-3:] == ["step0", "step1", "step2"]
    assert json.loads((tmp_path / "toy" / "meta.json").read_text())["device"] == "cuda:0"


def test_report_names_a_copied_folder_and_a_foreign_meta(tmp_path, toy_registry):
    import shutil

    from neurips18.repro import report

    toy_registry["toy"] = _toy([])
    harness.run("toy", out=tmp_path, seed=0, progress=False)
    shutil.copytree(tmp_path / "toy", tmp_path / "toy_old")
    harness.run("toy", out=tmp_path / "b", seed=5, progress=False)
    shutil.copy(tmp_path / "b" / "toy" / "meta.json", tmp_path / "toy_old" / "meta.json")
    shutil.rmtree(tmp_path / "b")
    text = report.write_report(tmp_path, tmp_path / "r.md").read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## toy: Toy", "## toy (folder `toy_old/`): Toy"]
    toy_old = text.split("## toy (folder")[1]
    assert "meta.json is not this result's" in toy_old and "seed: 5 vs 0" in toy_old
    assert "meta.json is not" not in text.split("## toy (folder")[0]


def test_the_recorded_command_can_be_pasted_back(tmp_path, toy_registry, monkeypatch):
    """meta.json joined the arguments with bare spaces: `--out 'my runs/x'` was recorded as
    `--out my runs/x`, which a shell splits into other arguments."""
    import shlex
    import sys

    toy_registry["toy"] = _toy([])
    out = tmp_path / "my runs é"
    argv = ["/x/neurips18", "reproduce", "toy", "--out", str(out), "--profile", "smoke"]
    monkeypatch.setattr(sys, "argv", argv)
    harness.run("toy", profile="smoke", out=out, progress=False)
    meta = json.loads((out / "toy" / "meta.json").read_text())
    assert shlex.split(meta["command"]) == ["neurips18", *argv[1:]]


def test_rejudge_of_an_older_result_format_names_what_is_missing(tmp_path, toy_registry):
    """A result.json written before results recorded their config made rejudge fail with
    the bare message "'config'" (a KeyError)."""
    toy_registry["toy"] = _toy([])
    harness.run("toy", profile="smoke", out=tmp_path, progress=False)
    res_file = tmp_path / "toy" / "result.json"
    res = json.loads(res_file.read_text())
    del res["config"]
    res_file.write_text(json.dumps(res))
    with pytest.raises(ValueError, match=r"lacks 'config' .*older version.*reproduce toy"):
        harness.rejudge("toy", out=tmp_path)


@dataclass(frozen=True)
class _Judging:
    n: int
    tol: float = 0.1  # a judging setting added after the run below, with a class default


@dataclass(frozen=True)
class _NestedConfig(Profile):
    judging: _Judging
    optional: _Judging | None = None
    names: dict[str, int] | None = None


def test_rejudge_fills_a_field_added_to_a_nested_config_from_the_profile(tmp_path,
                                                                         toy_registry):
    """A field added since the run takes the profile's value in rejudge, but only at the
    top level: one inside a nested settings dataclass took the class default (0.1 here,
    not the profile's 0.5), flipped the verdict and was not recorded as filled in."""
    def judge(data, cfg):
        refs = References(Reference("m", "m", 1.0, source="closed form", tol=cfg.judging.tol))
        return Judgement([refs.row("m", data["m"])])

    cfg = _NestedConfig(_Judging(3, tol=0.5), optional=_Judging(4, tol=0.5),
                        names={"a": 1, "b": 2})
    toy_registry["toy"] = Reproduction(
        name="toy", title="t", citation="c", capability="none",
        profiles={p: cfg for p in ("smoke", "quick", "full")},
        references=References(Reference("m", "m", 1.0, source="closed form")),
        run=lambda ctx: {"m": 1.3}, judge=judge)
    assert harness.run("toy", profile="quick", out=tmp_path, progress=False).failed == []
    res_file = tmp_path / "toy" / "result.json"
    res = json.loads(res_file.read_text())
    del res["config"]["judging"]["tol"]  # as written before the field existed
    del res["config"]["optional"]["tol"]
    res["config"]["names"] = {"a": 7}  # a dict-valued setting is a value, not merged
    res_file.write_text(json.dumps(res))
    again = harness.rejudge("toy", out=tmp_path)
    assert again.failed == [] and "+/- 0.5" in again.rows[0].tolerance
    stamp = json.loads((tmp_path / "toy" / "meta.json").read_text())["rejudged"][-1]
    assert stamp["config_fields_from_the_current_profile"] == ["judging.tol", "optional.tol"]
    stored = json.loads(res_file.read_text())["config"]
    assert stored["judging"] == {"n": 3, "tol": 0.5} and stored["names"] == {"a": 7}


def test_report_links_a_figure_whose_path_has_a_space(tmp_path, toy_registry):
    """The figure's link was the bare relative path: a results folder named 'my results'
    gave '![toy figure](../my results/toy/figure.png)', where Markdown ends the link at the
    space, so the page showed no figure."""
    import re
    from urllib.parse import unquote

    from neurips18.repro import report

    toy_registry["toy"] = _toy([])
    results = tmp_path / "my results é"
    harness.run("toy", out=results, seed=0, progress=False)
    out = tmp_path / "docs" / "results.md"
    text = report.write_report(results, out).read_text()
    (target,) = re.findall(r"!\[toy figure\]\(([^)]*)\)", text)
    assert " " not in target
    assert (out.parent / unquote(target)).resolve() == (results / "toy" / "figure.png").resolve()


def test_an_install_inside_another_repository_has_no_commit(tmp_path):
    """The package installed (not editable) into a virtual environment kept inside a git
    checkout took that checkout's commit, marked clean, as the code that ran."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    (tmp_path / "a").write_text("x\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "a"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "-m", "c"], check=True)
    site = tmp_path / ".venv" / "lib" / "python3.12"  # parents[3] of an installed harness
    site.mkdir(parents=True)
    assert harness._git_commit(site) == {"commit": None, "dirty": None}
    assert harness._git_commit(tmp_path)["commit"] is not None  # the checkout itself
