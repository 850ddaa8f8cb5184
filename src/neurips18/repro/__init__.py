"""Reproductions of the papers' experiments, one module per paper.

See :mod:`neurips18.repro.core` for how a reproduction is written and
:mod:`neurips18.repro.harness` for how it is run and where its outputs go.
"""

from neurips18.repro.core import Comparison, Outcome, Reproduction, RunContext, compare

__all__ = ["Comparison", "Outcome", "Reproduction", "RunContext", "compare"]
