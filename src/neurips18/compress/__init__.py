"""Gradient sparsification for communication-efficient distributed training.

Two families of compressors, with bit accounting and PyTorch DDP communication hooks:

* optimal **unbiased** sparsification (Wangni et al., NeurIPS 2018, arXiv:1710.09854):
  :func:`optimal_probabilities`, :func:`sparsify_unbiased`;
* **top-k** with error feedback (Alistarh et al., NeurIPS 2018, arXiv:1809.10505):
  :func:`topk`, :class:`ErrorFeedback`.

The DDP hooks (:func:`topk_hook`, :func:`unbiased_sparsify_hook`) exchange (indices, values)
with ``all_gather``; :class:`Simulator` runs P virtual workers in one process with the same
kernels and produces bit-identical results.

Example::

    from neurips18.compress import TopKState, topk_hook
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    state = TopKState(density=0.01, error_feedback=True)     # send 1 % of each bucket
    ddp.register_comm_hook(state, topk_hook)
    ...                                                       # train as usual
    torch.save({"model": ddp.state_dict(), "hook": state}, "ckpt.pt")  # state pickles

Several machines (the hooks only use ``all_gather`` on the process group, gloo or NCCL)::

    torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \
        --rdzv-endpoint=HOST0:29500 train.py        # on every node

Kernels outside DDP::

    p = optimal_probabilities(g, density=0.01, method="greedy")
    msg = sparsify_unbiased(g, 0.01, generator=torch.Generator().manual_seed(0))
    msg.bits("hybrid"), msg.to_dense()
    values, indices = topk(g, k=1000)
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
