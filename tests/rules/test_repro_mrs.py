"""The mrs reproduction runs end to end on a tiny configuration and draws its figure."""

from __future__ import annotations

import pytest

from neurips18.repro import registry
from neurips18.repro.core import RunContext


def test_registered():
    repro = registry.get("mrs")
    assert repro.capability == "rules" and set(repro.profiles) == {"quick", "full"}


def test_tiny_run_and_plot(tmp_path, tic_tac_toe):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    repro = registry.get("mrs")
    config = dict(repro.profiles["quick"])
    config.update(
        datasets=["tic-tac-toe"],
        anchors={"ripper": [], "brs": []},
        synthetic_repeats=1,
        synthetic_n=1000,
        synthetic_attributes=8,
    )
    ctx = RunContext(
        profile="quick", config=config, seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False
    )
    outcome = repro.run(ctx)
    by_metric = {c.metric: c for c in outcome.comparisons}
    assert by_metric["tic-tac-toe: test accuracy"].verdict == "pass"
    assert by_metric["tic-tac-toe: rules (true concept: 8)"].ours == 8
    assert by_metric["tic-tac-toe: test accuracy (paper)"].verdict == "no-reference"
    assert any(c.source.startswith("anchor: CART") for c in outcome.comparisons)
    # a second run resumes from the checkpoints and gives the same numbers
    ctx2 = RunContext(
        profile="quick", config=config, seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False
    )
    again = repro.run(ctx2)
    assert ctx2.resumed_steps and [c.ours for c in again.comparisons] == [
        c.ours for c in outcome.comparisons
    ]
    repro.plot(outcome.data, Figure(figsize=(8, 6)))
