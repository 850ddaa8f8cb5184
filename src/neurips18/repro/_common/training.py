"""One train/evaluate loop for the reproductions that train networks.

* :func:`init_model` builds a model from a seed inside ``torch.random.fork_rng``: PyTorch's
  layers initialise from the global generator, whose state is restored afterwards, so no
  reproduction leaves the global RNG changed.
* :func:`to_device` moves a model to the run's ``--device`` (every module with
  ``uses_device=True`` goes through it; a test checks the device reaches the model).
* :func:`train` runs epochs of minibatch training in a random order drawn from an explicit
  generator, dropping the last incomplete batch, and evaluates after every epoch.
* :func:`evaluate` gives the accuracy in percent (exact count of correct predictions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from neurips18._validation import Interval, invalid, torch_seeded


def init_model(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``factory()`` with torch's global generator seeded by ``seed`` inside a fork: the
    same seed gives the same initial weights, and the caller's global RNG is untouched."""
    with torch_seeded(seed):  # only the CPU generator (see torch_seeded)
        return factory()


def to_device(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` moved to ``device`` (the run's ``--device``)."""
    return model.to(torch.device(device))


def last_evaluation_steps(steps: int, eval_every: int, count: int) -> list[int]:
    """The steps (1-based) of the last ``count`` evaluations of a run of ``steps`` steps
    that evaluates after every ``eval_every``-th step and after the last one.

    ``count`` above the number of evaluations is refused: slicing gave fewer than asked
    for (and a count of 0 was read as 1), while the caller averaged and reported them as
    ``count``."""
    steps = _checked_int("steps", steps, 1, None)
    eval_every = _checked_int("eval_every", eval_every, 1, None)
    marks = [t for t in range(1, steps + 1) if t % eval_every == 0 or t == steps]
    if not Interval(int, 1, len(marks)).accepts(count):
        raise invalid("acc_evals", count, f"an int in [1, {len(marks)}], the number of "
                      f"evaluations in {steps} steps with eval_every={eval_every}")
    return marks[-int(count):]


def _checked_int(name: str, value: Any, low: int, high: int | None) -> int:
    if not Interval(int, low, high).accepts(value):
        raise invalid(name, value, Interval(int, low, high).describe())
    return int(value)


def _same_length(xname: str, x: torch.Tensor, yname: str, y: torch.Tensor) -> None:
    """Inputs and labels pair up one to one: extra labels were ignored (the steps and the
    accuracy used the first ``len(x)`` of them), silently."""
    if len(x) != len(y):
        raise invalid(yname, y, f"{len(x)} labels, one per row of {xname}")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
             batch_size: int = 1000) -> float:
    """Accuracy in percent of ``model`` on ``(x, y)``, in eval mode and without gradients;
    the model's training mode is restored."""
    _same_length("x", x, "y", y)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            correct += int((model(xb).argmax(1).cpu() == y[i:i + batch_size]).sum())
    model.train(was_training)
    return 100.0 * correct / len(x)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
    evals_per_epoch: int = 1,
) -> dict[str, Any]:
    """Train for ``epochs`` passes over ``(x, y)`` in batches of ``batch_size``, the order of
    each epoch a permutation from ``generator``. With ``test``, the test accuracy is
    recorded ``evals_per_epoch`` times per epoch (evenly spaced, the last at the epoch's
    end; at most one per batch, so ``evals_per_epoch`` is refused above the number of
    complete batches). Returns ``{"curve": [...], "curve_steps": [...], "acc": last
    accuracy, "steps", "seconds"}``."""
    _same_length("x", x, "y", y)
    if test is not None:
        _same_length("test[0]", test[0], "test[1]", test[1])
    if epochs > 0 and not 1 <= batch_size <= len(x):  # incomplete batches are dropped
        raise ValueError(f"Invalid batch_size: {batch_size!r} (expected an int in [1, "
                         f"{len(x)}], the number of training records: with more, no step "
                         "would be taken)")
    n_batches = (len(x) - batch_size) // batch_size + 1 if len(x) >= batch_size else 0
    if test is not None and epochs > 0:
        # each evaluation needs a step of its own: with more evaluations than batches the
        # rounded marks coincided (or fell on step 0) and fewer were recorded, silently
        if not Interval(int, 1, n_batches).accepts(evals_per_epoch):
            raise invalid("evals_per_epoch", evals_per_epoch,
                          f"an int in [1, {n_batches}], the number of complete batches per "
                          "epoch: one evaluation at most after each step")
        evals_per_epoch = int(evals_per_epoch)
    device = next(model.parameters()).device
    curve: list[float] = []
    curve_steps: list[int] = []
    marks = {round(n_batches * (k + 1) / evals_per_epoch) for k in range(evals_per_epoch)}
    steps = 0
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=generator)
        for b, i in enumerate(range(0, len(x) - batch_size + 1, batch_size), start=1):
            sel = perm[i:i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[sel].to(device)), y[sel].to(device))
            loss.backward()
            optimizer.step()
            steps += 1
            if test is not None and b in marks:
                curve.append(evaluate(model, *test))
                curve_steps.append(steps)
    return {"acc": curve[-1] if curve else None, "curve": curve, "curve_steps": curve_steps,
            "steps": steps, "seconds": time.perf_counter() - t0}
