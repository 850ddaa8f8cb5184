"""The two reproduction modules run end to end on tiny settings and draw their figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurips18.repro.core import RunContext
from neurips18.repro.registry import get


def _mnist_or_skip() -> None:
    from neurips18.datasets import DataError, load_mnist

    try:
        load_mnist("test")
    except DataError as exc:
        pytest.skip(f"MNIST not available: {exc}")


def _ctx(tmp_path: Path, config: dict) -> RunContext:
    return RunContext(profile="quick", config=config, seed=0, checkpoint_dir=tmp_path,
                      progress=False)


def _draw(repro, data) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig = plt.figure()
    repro.plot(data, fig)
    plt.close(fig)


def test_sparsification_tiny(tmp_path: Path) -> None:
    _mnist_or_skip()
    repro = get("sparsification")
    cfg = dict(repro.profiles["quick"])
    cfg.update(mnist_n=400, synthetic_n=300, synthetic_d=200, steps=60, eval_every=20,
               mc_draws=200, losses=["logistic"], solver_maxiter=100)
    out = repro.run(_ctx(tmp_path, cfg))
    verdicts = {c.metric: c.verdict for c in out.comparisons}
    assert any("Monte Carlo" in m for m in verdicts)
    mc = next(c for c in out.comparisons if "Monte Carlo" in c.metric)
    assert mc.verdict == "pass"  # the closed form E||Q||^2 = sum g^2/p holds
    _draw(repro, out.data)
    # resumable: a second run reads every step from the checkpoint
    ctx2 = _ctx(tmp_path, cfg)
    repro.run(ctx2)
    assert ctx2.computed_steps == [] and len(ctx2.resumed_steps) >= 3


def test_topk_convergence_tiny(tmp_path: Path) -> None:
    _mnist_or_skip()
    repro = get("topk_convergence")
    cfg = dict(repro.profiles["quick"])
    cfg.update(ks=[0.01, 0.1], conv_ks=[1.0, 0.01], logreg_n=400, logreg_steps=40,
               mlp_hidden=[16], mlp_steps=30, xi_every=10, e2e=False)
    out = repro.run(_ctx(tmp_path, cfg))
    closed = [c for c in out.comparisons if c.source.startswith("closed form")]
    assert closed and all(c.verdict == "pass" for c in closed)
    assert out.data["mlp"]["0.01"]["xi"], "xi was measured"
    _draw(repro, out.data)
