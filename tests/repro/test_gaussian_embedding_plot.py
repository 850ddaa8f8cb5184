"""The gaussian_embedding figure draws without warnings when a profile has no p r grid
(the quick profile), so the main job's output stays clean."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from neurips18.repro import gaussian_embedding  # noqa: E402


def test_plot_without_a_pr_grid_does_not_warn():
    def run(m, err):
        return {"m": m, "p": 4, "r": 1, "rate": (4 / m) ** 0.5,
                **{k: {"err": err} for k in ("nonconvex", "convex_theory", "ls")}}

    data = {"m_grid": {"chain": [run(100, 0.2), run(400, 0.1)]}, "pr_grid": {"chain": []}}
    fig = plt.figure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gaussian_embedding.plot(data, fig)
    assert len(fig.axes) == 2
    plt.close(fig)
