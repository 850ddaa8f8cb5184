"""SGD whose weights, momentum and updates live in a narrow float format.

Wang et al. (NeurIPS 2018, arXiv:1812.08011, Sec. 3) keep the master weights in FP16 (1-6-9)
with no FP32 copy, and make every AXPY of the update (L2 regularisation, momentum, weight
update) round stochastically: with round-to-nearest, an update smaller than half an ulp of
the weight is lost, so small learning rates stall; stochastic rounding keeps the expected
update. :class:`StochasticRoundingSGD` implements that update; ``rounding="nearest"``
gives the ablation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from neurips18.lowprec.formats import E6M9, FloatFormat
from neurips18.lowprec.quantize import Rounding, _check_format, quantize

_ROUNDINGS = ("nearest", "stochastic")


def sr_sgd(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor | None],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    fmt: FloatFormat,
    rounding: Rounding,
    generator: torch.Generator | None,
) -> None:
    """Functional core: one low-precision SGD step, in place.

    For each parameter ``w`` with gradient ``g`` (every AXPY computed in float32, then
    rounded once to ``fmt``):

    * ``g <- round(g + weight_decay * w)``   (if weight_decay != 0)
    * ``v <- round(momentum * v + g)``       (if momentum != 0; ``v`` starts as round(g))
    * ``w <- round(w - lr * v)``

    ``momentum_buffers`` entries that are None are created (and written back in the list).
    """
    for i, (w, g) in enumerate(zip(params, grads, strict=True)):
        d = g.detach().float()
        wf = w.detach().float()
        if weight_decay != 0:
            d = quantize(d + weight_decay * wf, fmt, rounding, generator)
        if momentum != 0:
            buf = momentum_buffers[i]
            if buf is None:
                buf = quantize(d, fmt, rounding, generator)
            else:
                buf = quantize(momentum * buf + d, fmt, rounding, generator)
            momentum_buffers[i] = buf
            d = buf
        new = quantize(wf - lr * d, fmt, rounding, generator)
        w.detach().copy_(new.to(w.dtype))


class StochasticRoundingSGD(torch.optim.Optimizer):
    """SGD with master weights and momentum stored in ``fmt`` (default the paper's E6M9).

    Parameters
    ----------
    params : iterable of parameters or parameter groups.
    lr : learning rate (>= 0).
    momentum : momentum factor (>= 0).
    weight_decay : L2 penalty (>= 0).
    fmt : format of the weights, the momentum buffer and every intermediate of the update.
    generator : ``torch.Generator`` for the stochastic rounding (default generator if None).
    rounding : ``"stochastic"`` (the paper) or ``"nearest"`` (ablation that loses updates
        smaller than half an ulp of the weight).

    The parameters are rounded to ``fmt`` (to nearest) when the optimizer is built, so the
    model starts from representable master weights; float32 storage is kept for
    convenience but holds only ``fmt`` values afterwards.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        fmt: FloatFormat = E6M9,
        generator: torch.Generator | None = None,
        rounding: Rounding = "stochastic",
    ) -> None:
        if not isinstance(lr, int | float) or not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not isinstance(momentum, int | float) or not momentum >= 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not isinstance(weight_decay, int | float) or not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_format(fmt)
        if rounding not in _ROUNDINGS:
            raise ValueError(f"Invalid rounding: {rounding!r} (allowed: {_ROUNDINGS})")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, fmt=fmt,
                        rounding=rounding)
        super().__init__(params, defaults)
        self.generator = generator
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if not p.is_floating_point():
                        raise TypeError(f"parameters must be floating point, got {p.dtype}")
                    p.copy_(quantize(p, group["fmt"]).to(p.dtype))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """Perform one optimisation step (optionally re-evaluating the loss with closure)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, bufs = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("StochasticRoundingSGD does not support sparse gradients")
                params.append(p)
                grads.append(p.grad)
                bufs.append(self.state[p].get("momentum_buffer"))
            sr_sgd(params, grads, bufs, lr=group["lr"], momentum=group["momentum"],
                   weight_decay=group["weight_decay"], fmt=group["fmt"],
                   rounding=group["rounding"], generator=self.generator)
            if group["momentum"] != 0:
                for p, buf in zip(params, bufs, strict=True):
                    self.state[p]["momentum_buffer"] = buf
        return loss
