"""Gradient sparsification for communication-efficient distributed training.

Two families of compressors, with bit accounting and PyTorch DDP communication hooks:

* optimal **unbiased** sparsification (Wangni et al., NeurIPS 2018, arXiv:1710.09854):
  :func:`optimal_probabilities`, :func:`sparsify_unbiased`;
* **top-k** with error feedback (Alistarh et al., NeurIPS 2018, arXiv:1809.10505):
  :func:`topk`, :class:`ErrorFeedback`.

The DDP hooks (:func:`topk_hook`, :func:`unbiased_sparsify_hook`) exchange (indices, values)
with ``all_gather``; :class:`Simulator` runs P virtual workers in one process with the same
kernels and produces bit-identical results.
"""

from __future__ import annotations

from .hooks import TopKState, UnbiasedSparsifyState, topk_hook, unbiased_sparsify_hook
from .simulator import Simulator
from .sparse import SparseGradient
from .topk import ErrorFeedback, topk, topk_sparsify
from .unbiased import (
    optimal_probabilities,
    optimal_scale,
    sparsification_variance,
    sparsify_unbiased,
)

__all__ = [
    "ErrorFeedback",
    "Simulator",
    "SparseGradient",
    "TopKState",
    "UnbiasedSparsifyState",
    "optimal_probabilities",
    "optimal_scale",
    "sparsification_variance",
    "sparsify_unbiased",
    "topk",
    "topk_hook",
    "topk_sparsify",
    "unbiased_sparsify_hook",
]
