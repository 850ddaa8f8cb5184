"""Reproductions of the papers' experiments, one module per paper.

See :mod:`neurips18.repro.core` for the contract a reproduction module follows and
:mod:`neurips18.repro.harness` for how it is run and where its outputs go. What several
reproductions share (MNIST tensors, one train/evaluate loop, the 2-process DDP launcher)
lives in :mod:`neurips18.repro._common`.
"""

from neurips18.repro.core import (
    MEASURED,
    Comparison,
    Estimate,
    Judgement,
    Profile,
    Reference,
    References,
    Reproduction,
    RunContext,
    compare,
    estimate,
)

__all__ = [
    "MEASURED",
    "Comparison",
    "Estimate",
    "Judgement",
    "Profile",
    "Reference",
    "References",
    "Reproduction",
    "RunContext",
    "compare",
    "estimate",
]
