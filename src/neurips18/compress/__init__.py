"""Gradient sparsification for communication-efficient distributed training.

Two families of compressors, with bit accounting and PyTorch DDP communication hooks:

* optimal **unbiased** sparsification (Wangni et al., NeurIPS 2018, arXiv:1710.09854):
  :func:`optimal_probabilities`, :func:`sparsify_unbiased`;
* **top-k** with error feedback (Alistarh et al., NeurIPS 2018, arXiv:1809.10505):
  :func:`topk`, :class:`ErrorFeedback`.

The DDP hooks (:func:`topk_hook`, :func:`unbiased_sparsify_hook`) exchange (indices, values)
with ``all_gather``; :class:`Simulator` runs P virtual workers in one process through the
same exchange and produces bit-identical results. The hook states keep their settings in one
frozen, validated :class:`HookConfig` and their counters in ``state.stats()``.

Example::

    from neurips18.compress import TopKState, topk_hook
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    state = TopKState(density=0.01, error_feedback=True)     # send 1 % of each bucket
    ddp.register_comm_hook(state, topk_hook)
    ...                                                       # train as usual
    torch.save({"model": ddp.state_dict(), "hook": state}, "ckpt.pt")
    ckpt = torch.load("ckpt.pt")                              # safe loading, exact resume

Several machines (the hooks only use ``all_gather``/``all_reduce`` on the process group,
gloo or NCCL)::

    torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \
        --rdzv-endpoint=HOST0:29500 train.py        # on every node

Kernels outside DDP::

    p = optimal_probabilities(g, density=0.01, method="greedy")
    msg = sparsify_unbiased(g, 0.01, generator=0)             # a torch.Generator or a seed
    msg.bits("hybrid"), msg.to_dense()
    values, indices = topk(g, k=1000)

Bad input raises :class:`neurips18._validation.ValidationError` (a ``ValueError`` and a
``TypeError``) naming the parameter, its value and what is allowed.
"""

from __future__ import annotations

import torch as _torch

from ._config import HookConfig
from ._hooks import TopKState, UnbiasedSparsifyState, topk_hook, unbiased_sparsify_hook
from ._simulator import Simulator
from ._sparse import SparseGradient
from ._topk import ErrorFeedback, topk, topk_sparsify
from ._unbiased import (
    optimal_probabilities,
    optimal_scale,
    sparsification_variance,
    sparsify_unbiased,
)

# checkpoints holding a hook state (or a simulator) load with torch.load's safe default
_torch.serialization.add_safe_globals([TopKState, UnbiasedSparsifyState, Simulator])

__all__ = [
    "ErrorFeedback",
    "HookConfig",
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
