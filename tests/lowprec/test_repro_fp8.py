"""The fp8 reproduction runs end to end on a tiny configuration (MNIST needed)."""

from __future__ import annotations

import pytest

from neurips18.repro.core import RunContext


def test_fp8_reproduction_tiny(tmp_path):
    from neurips18.datasets import DataError, load_mnist

    try:
        load_mnist("test")
    except DataError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from neurips18.repro import fp8

    cfg = {
        "acc_sizes": [1024], "acc_vectors": 8, "sweep_size": 1024, "sweep_chunks": [1, 64],
        "models": ["mlp"], "n_train": 256, "n_test": 500, "seeds": 1, "batch": 64,
        "standard": {"lr": 0.1, "epochs": 1}, "small": {"lrs": [0.002, 0.001], "epochs": 1},
        "loss_scale": 1024.0,
    }
    ctx = RunContext(profile="quick", config=cfg, seed=0, checkpoint_dir=tmp_path / "ck",
                     progress=False)
    out = fp8.run(ctx)
    names = [c.metric for c in out.comparisons]
    assert any("sequential" in n for n in names)
    assert any("FP8 recipe" in n for n in names)
    # one SR row and one nearest-gap row per lr of the sweep, plus the growth row
    assert sum("FP8 + SR updates" in n for n in names) == 2
    assert sum("nearest updates (points), lr" in n for n in names) == 2
    assert any("minus gap" in n for n in names)
    assert set(out.data["small_lr_gaps"]["mlp"]) == {"0.002", "0.001"}
    seq = out.data["accumulation"]["vs_n"]["acc-uniform-1024"]
    assert seq["64"] < seq["1024"]  # chunking helps
    for r in out.data["training"].values():
        assert 0.0 <= r["acc"] <= 100.0
    # resumes from the checkpoints without recomputing
    ctx2 = RunContext(profile="quick", config=cfg, seed=0, checkpoint_dir=tmp_path / "ck",
                      progress=False)
    fp8.run(ctx2)
    assert ctx2.computed_steps == [] and ctx2.resumed_steps
    fp8.plot(out.data, Figure())
