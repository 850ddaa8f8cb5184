"""Two real gloo ranks on CPU: ranks stay bit-identical and equal the simulator."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from neurips18.compress import Simulator

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from neurips18.repro._common.ddp import hook_check, spawn

    out = tmp_path_factory.mktemp("ddp")
    spawn(hook_check, str(out), world=2, timeout_s=300)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _replay(sim: Simulator, r0: dict[str, Any], r1: dict[str, Any]) -> None:
    recs0, recs1 = r0["records"], r1["records"]
    assert len(recs0) == len(recs1) > 0
    assert len({r["key"] for r in recs0}) > 1  # several buckets exercised
    for a, b in zip(recs0, recs1, strict=True):
        assert a["key"] == b["key"]
        if "out" not in a:
            continue
        # ranks bit-identical
        assert torch.equal(a["out"], b["out"])
        got = sim.step([a["inp"], b["inp"]], key=a["key"], last=a["last"])
        assert torch.equal(got, a["out"].reshape(-1)), "hook and simulator differ"


@pytest.mark.parametrize("scenario", ["topk", "unbiased"])
def test_ranks_identical_and_equal_simulator(results: list[dict[str, Any]], scenario: str) -> None:
    r0, r1 = results[0][scenario], results[1][scenario]
    assert r0["error"] is None and r1["error"] is None
    assert torch.equal(r0["params"], r1["params"])
    if scenario == "topk":
        sim = Simulator(2, "topk", density=0.05, error_feedback=True, warmup_steps=1)
    else:
        sim = Simulator(2, "unbiased", density=0.1, seed=3, warmup_steps=1)
    _replay(sim, r0, r1)
    # sparse messages really are smaller than the dense buckets
    assert 0 < r0["bytes_sent"] < 0.5 * r0["dense_bytes"]


def test_nonfinite_skip_keeps_ranks_identical(results: list[dict[str, Any]]) -> None:
    r0, r1 = results[0]["skip"], results[1]["skip"]
    assert r0["error"] is None and r1["error"] is None
    assert torch.equal(r0["params"], r1["params"])
    assert bool(torch.isfinite(r0["params"]).all())


def test_nonfinite_raise_on_every_rank(results: list[dict[str, Any]]) -> None:
    e0, e1 = results[0]["raise"]["error"], results[1]["raise"]["error"]
    assert e0 is not None and e1 is not None
    assert "non-finite" in e0 and "non-finite" in e1
    assert "[1]" in e0  # names the offending rank
    assert bool(torch.isfinite(results[0]["raise"]["params"]).all())
    assert results[0]["after"] == results[1]["after"] == 1.0
