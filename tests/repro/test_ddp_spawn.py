"""The local DDP launcher reports what a failing rank printed (a C++ abort in a gloo run
otherwise reaches the test as a bare 'terminated with signal SIGABRT')."""

import pytest

pytest.importorskip("torch.distributed")


@pytest.mark.parametrize("how, says", [("raise", "rank 1 failed on purpose"),
                                       ("abort", "SIGABRT")])
def test_a_failing_rank_is_reported_with_its_output(how: str, says: str) -> None:
    from neurips18.repro._common.ddp import fail_check, spawn

    with pytest.raises(RuntimeError) as info:
        spawn(fail_check, how, world=2, timeout_s=120)
    text = str(info.value)
    assert says in text
    assert f"rank 1 of 2: about to {how}" in text  # the failing rank's own output
    assert "--- rank 0" in text and "--- rank 1" in text
