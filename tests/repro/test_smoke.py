"""Every registered reproduction, in its smoke profile, through the real harness.

For each module: a run interrupted after its first checkpoint resumes from it and draws its
figure; a second, uninterrupted run with the same seed and thread count gives identical
digits (rows and data); ``rejudge`` rebuilds the same rows from the ``result.json``; a
module that trains networks moves them to the run's device.
"""

from __future__ import annotations

import json

import pytest

from neurips18.repro import harness, registry
from neurips18.repro.core import RunContext


class _Interrupt(Exception):
    pass


def _without_timings(obj):
    """Data minus wall-clock measurements (keys ending in ``seconds``, by convention the only
    values allowed to differ between two runs of the same command)."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if not k.endswith("seconds")}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.mark.parametrize("name", registry.module_names())
def test_smoke_profile_resumes_and_repeats(name, tmp_path, monkeypatch):
    repro = registry.get(name)
    real_cached = RunContext.cached
    computed: list[str] = []

    def interrupting(self, key, fn):
        value = real_cached(self, key, fn)
        if self.computed_steps and not computed:
            computed.append(key)
            raise _Interrupt(key)
        return value

    monkeypatch.setattr(RunContext, "cached", interrupting)
    with pytest.raises(_Interrupt):
        harness.run(name, profile="smoke", out=tmp_path / "a", progress=False)
    monkeypatch.setattr(RunContext, "cached", real_cached)
    resumed = harness.run(name, profile="smoke", out=tmp_path / "a", progress=False)
    assert computed[0] in resumed.resumed_steps, "the completed step was not reused"
    png = (tmp_path / "a" / name / "figure.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert resumed.rows, f"{name} judged no rows"
    assert all(r.key for r in resumed.rows), "every row comes from a declared reference"
    assert set(r.key for r in resumed.rows) <= set(repro.references)

    fresh = harness.run(name, profile="smoke", out=tmp_path / "b", progress=False)
    a = json.loads((tmp_path / "a" / name / "result.json").read_text())
    b = json.loads((tmp_path / "b" / name / "result.json").read_text())
    assert a["comparisons"] == b["comparisons"], "same seed and threads, different rows"
    assert _without_timings(a["data"]) == _without_timings(b["data"]), (
        "same seed and threads, different data")

    again = harness.rejudge(name, out=tmp_path / "b")
    assert [r.to_dict() for r in again.rows] == [r.to_dict() for r in fresh.rows]


@pytest.mark.parametrize("name", registry.module_names())
def test_device_reaches_the_models(name, tmp_path, monkeypatch):
    if not registry.get(name).uses_device:
        pytest.skip(f"{name} trains no network")
    from neurips18.repro import _common
    from neurips18.repro._common import training

    seen: list[str] = []
    real = training.to_device

    def recording(model, device):
        seen.append(str(device))
        return real(model, device)

    monkeypatch.setattr(training, "to_device", recording)
    monkeypatch.setattr(_common, "to_device", recording)
    harness.run(name, profile="smoke", out=tmp_path, progress=False, device="cpu")
    assert seen and set(seen) == {"cpu"}


def test_a_quick_profile_repeats_to_the_digit(tmp_path):
    """The main job's own profile, twice from scratch (the cheapest quick profile; every
    module's smoke profile is repeated above): identical rows and data."""
    runs = [harness.run("gaussian_embedding", profile="quick", out=tmp_path / d,
                        progress=False) for d in ("a", "b")]
    a, b = (json.loads((tmp_path / d / "gaussian_embedding" / "result.json").read_text())
            for d in ("a", "b"))
    assert not runs[1].resumed_steps
    assert a["comparisons"] == b["comparisons"]
    assert _without_timings(a["data"]) == _without_timings(b["data"])
