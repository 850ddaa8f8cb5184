"""A 2-rank gloo check of the hooks, run by ``torch.multiprocessing.spawn``.

Used by ``tests/compress/test_hooks_distributed.py``; it lives in the package so that spawned
processes can import it by name. Each rank trains a small MLP for a few steps under each hook,
records every bucket's input and output, and saves them with its final parameters.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from . import (
    TopKState,
    UnbiasedSparsifyState,
    topk_hook,
    unbiased_sparsify_hook,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 4))


def _recording(hook: Any, records: list[dict[str, Any]]) -> Any:
    def wrapped(state, bucket):  # type: ignore[no-untyped-def]  # DDP checks annotations
        entry = {"key": bucket.index(), "last": bucket.is_last(), "inp": bucket.buffer().clone()}
        records.append(entry)
        fut = hook(state, bucket)

        def rec(f: Any) -> torch.Tensor:
            out = f.value()
            entry["out"] = out.clone()
            return out

        return fut.then(rec)

    return wrapped


def _train(kind: str, rank: int, steps: int, nan_step: int | None, **kw: Any) -> dict[str, Any]:
    model = DDP(_model(), bucket_cap_mb=0.01)  # several buckets
    if kind == "topk":
        state: Any = TopKState(density=0.05, error_feedback=True, **kw)
        hook: Any = topk_hook
    else:
        state = UnbiasedSparsifyState(density=0.1, seed=3, **kw)
        hook = unbiased_sparsify_hook
    records: list[dict[str, Any]] = []
    model.register_comm_hook(state, _recording(hook, records))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(100 + rank)
    error = None
    for step in range(steps):
        x = torch.randn(16, 20, generator=gen)
        y = torch.randint(0, 4, (16,), generator=gen)
        loss = nn.functional.cross_entropy(model(x), y)
        if nan_step is not None and step == nan_step and rank == 1:
            loss = loss * float("nan")
        opt.zero_grad()
        try:
            loss.backward()
        except Exception as exc:  # the policy under test: every rank must raise
            error = f"{type(exc).__name__}: {exc}"
            break
        opt.step()
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return {"records": records, "params": params, "error": error,
            "bytes_sent": state.bytes_sent, "dense_bytes": state.dense_bytes}


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        res = {
            "topk": _train("topk", rank, 6, None, warmup_steps=1),
            "unbiased": _train("unbiased", rank, 6, None, warmup_steps=1),
            "skip": _train("topk", rank, 5, 2, warmup_steps=1, nonfinite="skip"),
            "raise": _train("topk", rank, 5, 2, warmup_steps=1, nonfinite="raise"),
        }
        # a collective after the failure proves the ranks are still in lock-step
        t = torch.tensor([float(rank)])
        dist.all_reduce(t)
        res["after"] = float(t)
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
