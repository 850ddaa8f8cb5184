"""The dp_kmeans figure shows the additive error against each of n, d and k (the issue
asks for its growth in all three)."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from neurips18.repro import dp_kmeans  # noqa: E402


def test_plot_has_a_panel_per_growth_variable():
    def row(n, k, d, add):
        return {"n": n, "k": k, "d": d, "opt": 1.0, "ours": 1.0 + add, "additive": add}

    rows = [row(1000, 10, 10, 1.0), row(3000, 10, 10, 0.5), row(10000, 10, 10, 0.2),
            row(3000, 5, 10, 0.1), row(3000, 20, 10, 0.4), row(3000, 10, 2, 0.3),
            row(3000, 10, 50, 0.6)]
    sets = {"d=2": {"baseline": {"kmeans": 1.0}, "cells": {"1.0": {"cost": [1.1]}}}}
    data = {"sets": sets, "growth": {"rows": rows}}
    fig = plt.figure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dp_kmeans.plot(data, fig)
    panels = {ax.get_xlabel(): ax for ax in fig.axes}
    assert {"n", "d", "k"} <= set(panels)
    xs = list(panels["k"].get_lines()[0].get_xdata())
    assert xs == [5, 10, 20]
    plt.close(fig)
