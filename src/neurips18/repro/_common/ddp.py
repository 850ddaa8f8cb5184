"""The local multi-process DDP launcher shared by tests, reproductions and benchmarks.

:func:`spawn` starts ``world`` gloo ranks on this machine (``torch.multiprocessing``), each
running ``fn(rank, world, port, out_dir, *args)``, under a watchdog that terminates them
when a hook deadlocks; rank 0 may leave ``result.pt`` in ``out_dir``, which is returned.
It lives in the package so that spawned processes can import the rank functions by name:

* :func:`hook_check` -- a small MLP trained a few steps under each hook, recording every
  bucket's input and output, non-finite gradients included (``tests/compress``);
* :func:`resume_check` -- every stateful hook trained without interruption and, side by
  side, checkpointed (``torch.save`` of model, optimizer and hook state), loaded with
  ``torch.load``'s safe default into a fresh DDP and resumed: the parameters after every
  step of both runs (``tests/compress``);
* :func:`unused_check` -- top-k with error feedback on a model with a head that every
  rank leaves unused on some steps (``find_unused_parameters=True``): per parameter, the
  gradients, the updates applied and the residual (``tests/compress``);
* :func:`fail_check` -- a rank that fails on purpose, for the failure report of :func:`spawn`;
* :func:`train_variants` -- an MNIST MLP trained under several hooks in one process group:
  step times, accuracy, bytes sent and a bitwise check that the ranks stay in lock-step
  (the ``topk_convergence`` reproduction and ``benchmarks/bench_compress.py``).

Each rank runs with one thread unless told otherwise; the seeds of the models and the data
are fixed per rank, and no rank touches another's generator.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from neurips18.compress import (
    TopKState,
    UnbiasedSparsifyState,
    topk_hook,
    unbiased_sparsify_hook,
)
from neurips18.repro._common.models import mlp
from neurips18.repro._common.training import evaluate, init_model, last_evaluation_steps

RESULT = "result.pt"


def _init(rank: int, world: int, port: int, threads: int, timeout_s: float) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))


def _settle() -> None:
    """The end of a rank's work, before ``destroy_process_group``: free the DDP reducers
    (each holds a reference to the process group, so the group would otherwise outlive
    ``destroy_process_group`` and be torn down at interpreter exit, possibly after the peer
    has gone) and wait until every rank has got here."""
    import gc

    gc.collect()
    dist.barrier()


def _entry(rank: int, fn: Any, world: int, port: int, out_dir: str, args: tuple) -> None:
    # this rank's stdout and stderr (the C++ ones included: gloo and the allocator write
    # there before an abort) go to a log that spawn() shows when a rank fails
    log = os.open(os.path.join(out_dir, f"rank{rank}.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    fn(rank, world, port, out_dir, *args)


def _log_tails(out_dir: str, world: int, chars: int = 3000) -> str:
    parts = []
    for r in range(world):
        path = os.path.join(out_dir, f"rank{r}.log")
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            text = "(no log)"
        parts.append(f"--- rank {r} (last {chars} characters) ---\n{text[-chars:]}")
    return "\n".join(parts)


def spawn(fn: Any, *args: Any, world: int = 2, timeout_s: float | None = None) -> Any:
    """Run ``fn(rank, world, port, out_dir, *args)`` on ``world`` local ranks; return what
    rank 0 saved as ``out_dir/result.pt`` (``None`` if nothing).

    ``timeout_s``: a watchdog for hooks that can deadlock (PyTorch's PowerSGD waits on a
    future inside a future callback, which can block every gloo worker thread): the ranks
    are terminated and ``TimeoutError`` raised when they have not finished in time.
    """
    import socket
    import tempfile
    import time

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        ctx = mp.spawn(_entry, args=(fn, world, port, tmp, args), nprocs=world, join=False)
        assert ctx is not None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                if ctx.join(timeout=2.0):
                    break
            except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
                # a rank raised or died (a signal): say what each rank printed
                raise RuntimeError(f"{exc}\n{_log_tails(tmp, world)}") from exc
            if deadline is not None and time.monotonic() > deadline:
                for proc in ctx.processes:
                    if proc.is_alive():
                        proc.terminate()
                for proc in ctx.processes:
                    proc.join(10.0)
                raise TimeoutError(
                    f"the ranks did not finish within {timeout_s:.0f} s (deadlock); "
                    f"terminated\n{_log_tails(tmp, world)}"
                )
        path = os.path.join(tmp, RESULT)
        if not os.path.exists(path):
            return None
        return torch.load(path)


def _model() -> nn.Module:
    return init_model(lambda: mlp((64, 64), n_in=20, n_out=4), 0)


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
    model = DDP(_model(), bucket_cap_mb=kw.pop("bucket_cap_mb", 0.01))  # several buckets
    state: Any = None
    hook: Any = None
    if kind == "topk":
        state = TopKState(**{"density": 0.05, "error_feedback": True, **kw})
        hook = topk_hook
    elif kind == "unbiased":
        state = UnbiasedSparsifyState(**{"density": 0.1, "seed": 3, **kw})
        hook = unbiased_sparsify_hook
    records: list[dict[str, Any]] = []
    if kind != "none":
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
            "stats": None if kind == "none" else state.stats()}


def hook_check(rank: int, world: int, port: int, out_dir: str, dest: str) -> None:
    """Each rank trains under every hook and saves ``dest/rank<r>.pt`` with its records."""
    _init(rank, world, port, 1, 60.0)
    try:
        res: dict[str, Any] = {
            "topk": _train("topk", rank, 6, None, warmup_steps=1),
            "unbiased": _train("unbiased", rank, 6, None, warmup_steps=1),
            "skip": _train("topk", rank, 5, 2, warmup_steps=1, nonfinite="skip"),
            "raise": _train("topk", rank, 5, 2, warmup_steps=1, nonfinite="raise"),
            "raise unbiased": _train("unbiased", rank, 5, 2, warmup_steps=1),
            "warmup skip": _train("topk", rank, 4, 0, warmup_steps=2, nonfinite="skip"),
            "warmup raise": _train("topk", rank, 4, 0, warmup_steps=2),
            "dense topk": _train("topk", rank, 4, None, density=1.0, bucket_cap_mb=100),
            "dense unbiased": _train("unbiased", rank, 4, None, density=1.0,
                                     bucket_cap_mb=100),
            "dense none": _train("none", rank, 4, None, bucket_cap_mb=100),
        }
        # a collective after the failure proves the ranks are still in lock-step
        t = torch.tensor([float(rank)])
        dist.all_reduce(t)
        res["after"] = float(t)
        torch.save(res, os.path.join(dest, f"rank{rank}.pt"))
        _settle()
    finally:
        dist.destroy_process_group()


def fail_check(rank: int, world: int, port: int, out_dir: str, how: str) -> None:
    """Rank 1 prints a line and then fails (``how``: ``"raise"`` a Python exception or
    ``"abort"`` the process, as a C++ abort would): shows that :func:`spawn` reports what
    the failing rank printed (``tests/repro``)."""
    print(f"rank {rank} of {world}: about to {how}", flush=True)
    if rank == 1:
        if how == "abort":
            os.abort()
        raise ValueError(f"rank {rank} failed on purpose")


class _Branchy(nn.Module):
    """A trunk and two heads, the second one used only when asked (conditional compute)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(20, 64)
        self.head = nn.Linear(64, 4)
        self.extra = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor, use_extra: bool) -> torch.Tensor:
        h = torch.relu(self.trunk(x))
        out = self.head(h)
        return out + self.extra(h) if use_extra else out


def unused_check(rank: int, world: int, port: int, out_dir: str, dest: str,
                 steps: int = 6) -> None:
    """Top-k with error feedback under ``find_unused_parameters=True``, the ``extra`` head
    used on even steps only (so unused by every rank on odd ones), one DDP bucket. Saves
    ``dest/rank<r>.pt``: per parameter, the sum of the rank-averaged gradients, the sum of
    the updates DDP applied (``p.grad``, zero when DDP left it None) and the rank-averaged
    residual at the end (error feedback conserves gradient mass: applied + residual =
    gradients), and the final parameters."""
    _init(rank, world, port, 1, 60.0)
    try:
        torch.manual_seed(0)
        net = _Branchy()
        model = DDP(net, bucket_cap_mb=100, find_unused_parameters=True)
        names = {id(p): n for n, p in net.named_parameters()}
        zeros = {n: torch.zeros(p.numel()) for n, p in net.named_parameters()}
        grads = {n: z.clone() for n, z in zeros.items()}
        applied = {n: z.clone() for n, z in zeros.items()}
        layout: list[tuple[str, int]] = []
        state = TopKState(density=0.05, error_feedback=True, warmup_steps=1)

        def hook(st, bucket):  # type: ignore[no-untyped-def]  # DDP checks annotations
            flat, off = bucket.buffer().reshape(-1), 0
            layout.clear()
            for p in bucket.parameters():
                grads[names[id(p)]] += flat[off : off + p.numel()]
                layout.append((names[id(p)], p.numel()))
                off += p.numel()
            return topk_hook(st, bucket)

        model.register_comm_hook(state, hook)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(100 + rank)
        for step in range(steps):
            x = torch.randn(16, 20, generator=gen)
            y = torch.randint(0, 4, (16,), generator=gen)
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x, step % 2 == 0), y).backward()
            for n, p in net.named_parameters():
                if p.grad is not None:
                    applied[n] += p.grad.reshape(-1)
            opt.step()
        (mem,) = state.memory.values() if state.memory else (torch.zeros(sum(
            n for _, n in layout)),)
        residual, off = {}, 0
        for n, k in layout:
            residual[n] = mem[off : off + k].clone()
            off += k
        del model, opt  # free the DDP before the teardown (see _settle)
        for d in (grads, residual):
            for v in d.values():
                dist.all_reduce(v)
                v /= world
        params = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        torch.save({"grads": grads, "applied": applied, "residual": residual,
                    "params": params}, os.path.join(dest, f"rank{rank}.pt"))
        _settle()
    finally:
        dist.destroy_process_group()


STATEFUL_HOOKS: dict[str, tuple[str, dict[str, Any]]] = {
    "topk": ("topk", {"density": 0.05}),
    "topk approximate": ("topk", {"density": 0.05, "exact": False}),
    "unbiased": ("unbiased", {"density": 0.1, "seed": 3}),
    "unbiased uniform": ("unbiased", {"density": 0.1, "seed": 3, "sampling": "uniform"}),
    "unbiased with error feedback": ("unbiased", {"density": 0.1, "seed": 3,
                                                  "error_feedback": True}),
}


def _resumable(name: str, cap: float, static_graph: bool = False) -> tuple[Any, Any, Any, Any]:
    kind, kw = STATEFUL_HOOKS[name]
    model = DDP(_model(), bucket_cap_mb=cap, static_graph=static_graph)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state, hook = _make_hook(kind, kw)
    return model, opt, state, hook


def _resume_step(model: Any, opt: Any, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(16, 20, generator=gen)
    y = torch.randint(0, 4, (16,), generator=gen)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def resume_check(rank: int, world: int, port: int, out_dir: str, dest: str,
                 steps: int = 8, stops: tuple[int, ...] = (2, 5),
                 names: tuple[str, ...] | None = None, caps: tuple[float, ...] = (0.01, 100.0),
                 static_graph: bool = False) -> None:
    """For every stateful hook (or those in ``names``), DDP bucket cap (several buckets /
    one) and stop step: the parameters after each of ``steps`` steps of an uninterrupted
    run, and of a run checkpointed after ``stop`` steps and resumed in a fresh DDP from
    ``torch.load(path)`` (safe default loading); saved as ``dest/rank<r>.pt``. Every DDP is
    built with ``static_graph``."""
    _init(rank, world, port, 1, 60.0)
    try:
        res: dict[str, Any] = {}
        for name in names or tuple(STATEFUL_HOOKS):
            for cap in caps:
                model, opt, state, hook = _resumable(name, cap, static_graph)
                model.register_comm_hook(state, hook)
                gen = torch.Generator().manual_seed(100 + rank)
                full = [_resume_step(model, opt, gen) for _ in range(steps)]
                for stop in stops:
                    model, opt, state, hook = _resumable(name, cap, static_graph)
                    model.register_comm_hook(state, hook)
                    gen = torch.Generator().manual_seed(100 + rank)
                    part = [_resume_step(model, opt, gen) for _ in range(stop)]
                    path = os.path.join(dest, f"ckpt{rank}.pt")
                    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "hook": state, "data": gen.get_state()}, path)
                    del model, opt, state
                    ckpt = torch.load(path)
                    model, opt, _, hook = _resumable(name, cap, static_graph)
                    model.load_state_dict(ckpt["model"])
                    opt.load_state_dict(ckpt["optimizer"])
                    model.register_comm_hook(ckpt["hook"], hook)
                    gen = torch.Generator()
                    gen.set_state(ckpt["data"])
                    part += [_resume_step(model, opt, gen) for _ in range(steps - stop)]
                    res[f"{name}, bucket_cap_mb={cap:g}, stop={stop}"] = {
                        "full": full, "resumed": part, "stop": stop}
        del model, opt
        torch.save(res, os.path.join(dest, f"rank{rank}.pt"))
        _settle()
    finally:
        dist.destroy_process_group()


def _make_hook(kind: str, kw: dict[str, Any]) -> tuple[Any, Any]:
    if kind == "none":
        return None, None
    if kind == "topk":
        return TopKState(**kw), topk_hook
    if kind == "unbiased":
        return UnbiasedSparsifyState(**kw), unbiased_sparsify_hook
    if kind == "powersgd":
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as ps

        return ps.PowerSGDState(process_group=None, **kw), ps.powerSGD_hook
    if kind == "fp16":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        return None, default_hooks.fp16_compress_hook
    raise ValueError(f"unknown hook kind {kind!r}")


def train_variants(rank: int, world: int, port: int, out_dir: str, cfg: dict[str, Any]) -> None:
    """Train an MLP under several hooks in one process group; rank 0 saves a summary.

    ``cfg``: ``hidden`` (tuple), ``batch`` (per rank), ``steps``, ``lr``, ``data``
    (``"mnist"`` or ``"random"``), optional ``bucket_cap_mb`` (DDP's, default: DDP's own
    default), ``variants``: list of ``(name, kind, kwargs)`` (a ``bucket_cap_mb`` key in
    ``kwargs`` overrides the config's for that variant), optional ``seed`` (initial weights
    and minibatch order; default 0), ``acc_evals`` and ``eval_every`` (test accuracy at the
    last ``acc_evals`` evaluations, ``eval_every`` steps apart; default: the end only). For
    each variant: step times, test accuracy (MNIST: ``test_accs``, ``test_acc`` the last,
    ``test_acc_tail`` their mean), bytes/bits sent by this rank (PyTorch's PowerSGD: from its
    ``compression_stats()``, 32-bit values), and a bitwise check that both ranks hold
    identical parameters after every ``check_every``-th step.
    """
    import time

    from neurips18.repro._common.mnist import mnist_tensors

    _init(rank, world, port, int(cfg.get("threads", 1)), float(cfg.get("timeout_s", 120)))
    try:
        if cfg["data"] == "mnist":
            data = mnist_tensors(cfg.get("data_dir"))
        else:
            g = torch.Generator().manual_seed(0)
            data = {"x_train": torch.rand(4096, 784, generator=g),
                    "y_train": torch.randint(0, 10, (4096,), generator=g)}
        summary: dict[str, Any] = {}
        for name, kind, kw in cfg["variants"]:
            kw = dict(kw)
            cap_mb = kw.pop("bucket_cap_mb", cfg.get("bucket_cap_mb"))
            ddp_kw = {} if cap_mb is None else {"bucket_cap_mb": cap_mb}
            seed = int(cfg.get("seed", 0))
            model = DDP(init_model(lambda: mlp(tuple(cfg["hidden"])), seed), **ddp_kw)
            state, hook = _make_hook(kind, kw)
            if hook is not None:
                model.register_comm_hook(state, hook)
            opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
            gen = torch.Generator().manual_seed(1000 + rank + 7919 * seed)
            n = data["x_train"].shape[0]
            times, desync, error = [], 0, None
            check_every = int(cfg.get("check_every", 1))
            steps = int(cfg["steps"])
            marks = last_evaluation_steps(steps, cfg.get("eval_every", steps),
                                          cfg.get("acc_evals", 1))
            accs: list[float] = []
            for step in range(steps):
                idx = torch.randint(0, n, (cfg["batch"],), generator=gen)
                t0 = time.perf_counter()
                try:
                    loss = nn.functional.cross_entropy(model(data["x_train"][idx]),
                                                       data["y_train"][idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    break
                times.append(time.perf_counter() - t0)
                if step % check_every == 0 or step == cfg["steps"] - 1:
                    vec = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
                    allv = [torch.empty_like(vec) for _ in range(world)]
                    dist.all_gather(allv, vec)
                    desync += int(not all(torch.equal(allv[0], v) for v in allv[1:]))
                if "x_test" in data and step + 1 in marks:
                    accs.append(evaluate(model.module, data["x_test"], data["y_test"]))
            res: dict[str, Any] = {"times": times, "desync_steps": desync, "error": error}
            if accs:
                res["test_accs"] = accs
                res["test_acc"] = accs[-1]
                res["test_acc_tail"] = sum(accs) / len(accs)
            d = sum(p.numel() for p in model.parameters())
            res["d"] = d
            res["dense_bytes"] = 4.0 * d * len(times)
            if state is not None and hasattr(state, "bytes_sent"):
                res["bytes_sent"] = float(state.bytes_sent)
                res["bits_coded"] = float(state.bits_coded)
                res["dense_bytes_counted"] = float(state.dense_bytes)
            elif kind == "powersgd":
                dense_iters = min(len(times), int(state.start_powerSGD_iter))
                res["bytes_sent"] = 4.0 * (state.compression_stats()[2] + d * dense_iters)
                res["bits_coded"] = 8.0 * res["bytes_sent"]
            summary[name] = res
            dist.barrier()
        del model, opt
        if rank == 0:
            torch.save(summary, os.path.join(out_dir, RESULT))
        _settle()
    finally:
        dist.destroy_process_group()


def spawn_variants(
    cfg: dict[str, Any], world: int = 2, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run :func:`train_variants` on ``world`` local gloo ranks; returns rank 0's summary."""
    # refused here rather than in every rank: more acc_evals than evaluations averaged fewer
    steps = int(cfg["steps"])
    last_evaluation_steps(steps, cfg.get("eval_every", steps), cfg.get("acc_evals", 1))
    out: dict[str, Any] = spawn(train_variants, cfg, world=world, timeout_s=timeout_s)
    return out
