"""SGD whose weights, momentum and updates live in a narrow float format.

Wang et al. (NeurIPS 2018, arXiv:1812.08011, Sec. 3) keep the master weights in FP16 (1-6-9)
with no FP32 copy, and make every AXPY of the update (L2 regularisation, momentum, weight
update) round stochastically: with round-to-nearest, an update smaller than half an ulp of
the weight is lost, so small learning rates stall; stochastic rounding keeps the expected
update. :class:`StochasticRoundingSGD` implements that update; ``rounding="nearest"``
gives the ablation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from neurips18._validation import Interval, Options, as_torch_generator, check, invalid
from neurips18.lowprec.formats import E6M9, FORMAT, FloatFormat
from neurips18.lowprec.quantize import Rounding, _quantize, draw_key

_ROUNDINGS = ("nearest", "stochastic")
_GROUP_RULES = {  # checked for every parameter group, defaults and per-group values alike
    "lr": ("learning rate", Interval(float, 0.0, None)),
    "momentum": ("momentum value", Interval(float, 0.0, None)),
    "weight_decay": ("weight_decay value", Interval(float, 0.0, None)),
    "fmt": ("fmt", FORMAT),
    "rounding": ("rounding", Options(_ROUNDINGS)),
}


# torch.optim.SGD options this optimizer does not implement, with the value that means "off":
# a parameter group asking for another value would otherwise be run without it, silently
_UNSUPPORTED = {"nesterov": False, "dampening": 0.0, "maximize": False,
                "differentiable": False}


def _step(params: list[torch.Tensor], grads: list[torch.Tensor],
          momentum_buffers: list[torch.Tensor | None], *, lr: float, momentum: float,
          weight_decay: float, fmt: FloatFormat, rounding: Rounding,
          generator: torch.Generator | None) -> None:
    """The unchecked core of :func:`sr_sgd`."""
    def rnd(x: torch.Tensor) -> torch.Tensor:
        key = draw_key(generator, x.device) if rounding == "stochastic" else None
        return _quantize(x, fmt, key)

    for i, (w, g) in enumerate(zip(params, grads, strict=True)):
        d = g.detach().float()
        wf = w.detach().float()
        if weight_decay != 0:
            d = rnd(d + weight_decay * wf)
        if momentum != 0:
            buf = momentum_buffers[i]
            # in float32 whatever the buffer's dtype (Optimizer.load_state_dict casts it
            # to the parameter's: momentum * buf would be rounded to float16 first)
            buf = rnd(d) if buf is None else rnd(momentum * buf.float() + d)
            momentum_buffers[i] = buf
            d = buf
        w.detach().copy_(rnd(wf - lr * d).to(w.dtype))


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
    generator: torch.Generator | int | None,
) -> None:
    """Functional core: one low-precision SGD step, in place.

    For each parameter ``w`` with gradient ``g`` (every AXPY computed in float32, then
    rounded once to ``fmt``):

    * ``g <- round(g + weight_decay * w)``   (if weight_decay != 0)
    * ``v <- round(momentum * v + g)``       (if momentum != 0; ``v`` starts as round(g))
    * ``w <- round(w - lr * v)``

    ``momentum_buffers`` entries that are None are created (and written back in the list).
    ``generator``: a ``torch.Generator``, an int seed (the same noise at every call) or
    None (torch's default generator).
    """
    hyper = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "fmt": fmt,
             "rounding": rounding}
    checked = {k: check(name, hyper[k], rule) for k, (name, rule) in _GROUP_RULES.items()}
    if not len(params) == len(grads) == len(momentum_buffers):
        raise invalid("grads", grads, f"one gradient and one buffer per parameter "
                      f"({len(params)} parameters)")
    gen = as_torch_generator(generator, allow_none=True)
    _step(params, grads, momentum_buffers, generator=gen, **checked)


# (exponent bits, mantissa bits) of the parameter dtypes that can store a format's values
_STORAGE = {torch.float64: (11, 52), torch.float32: (8, 23), torch.bfloat16: (8, 7),
            torch.float16: (5, 10)}


def _check_storage(p: torch.Tensor, fmt: FloatFormat) -> None:
    """Refuse a parameter whose dtype cannot hold every value of ``fmt`` exactly: the
    update rounded to ``fmt`` would be rounded again to the dtype (to nearest), which
    undoes stochastic rounding (bfloat16 weights under E6M9 never moved by steps below
    half a bfloat16 ulp) and overflows or flushes what the dtype's range lacks."""
    e, m = _STORAGE.get(p.dtype, (0, 0))
    if e < fmt.exp_bits or m < fmt.man_bits:
        raise invalid("params", f"a {p.dtype} parameter of shape {tuple(p.shape)}",
                      f"parameters whose dtype holds every {fmt} value exactly (float32 or "
                      f"float64{', bfloat16' if fmt.exp_bits <= 8 and fmt.man_bits <= 7 else ''}"
                      f"{', float16' if fmt.exp_bits <= 5 and fmt.man_bits <= 10 else ''}): "
                      "keep float32 master weights (model.float()) and cast for the forward "
                      "pass if needed")


class StochasticRoundingSGD(torch.optim.Optimizer):
    """SGD with master weights and momentum stored in ``fmt`` (default the paper's E6M9).

    Parameters
    ----------
    params : iterable of parameters or parameter groups.
    lr : learning rate (finite, >= 0).
    momentum : momentum factor (finite, >= 0).
    weight_decay : L2 penalty (finite, >= 0).
    fmt : format of the weights, the momentum buffer and every intermediate of the update.
    generator : ``torch.Generator`` or int seed for the stochastic rounding (torch's
        default generator if None).
    rounding : ``"stochastic"`` (the paper) or ``"nearest"`` (ablation that loses updates
        smaller than half an ulp of the weight).

    The parameters of every group -- at construction and in :meth:`add_param_group` -- are
    rounded to their group's ``fmt`` (to nearest), so the model starts from representable
    master weights; float32 storage is kept for convenience but holds only ``fmt`` values
    afterwards. :meth:`state_dict` holds plain data only (formats as dicts, and the state of
    the optimizer's own generator), so ``torch.load`` with its default safe loading reads
    it, and a run resumed from it continues with the same random stream.

    A parameter group that sets one of ``torch.optim.SGD``'s options this optimizer does not
    implement (``nesterov``, ``dampening``, ``maximize``, ``differentiable``) to anything but
    its "off" value is refused rather than run without it; other extra keys (a group's
    name, a scheduler's ``initial_lr``) are kept and ignored, as in torch.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        fmt: FloatFormat = E6M9,
        generator: torch.Generator | int | None = None,
        rounding: Rounding = "stochastic",
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, fmt=fmt,
                        rounding=rounding)
        for k, (name, rule) in _GROUP_RULES.items():
            defaults[k] = check(name, defaults[k], rule)
        self.generator = as_torch_generator(generator, allow_none=True)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group (hyperparameters checked, parameters rounded to its
        ``fmt``)."""
        if isinstance(param_group, dict):
            for k, off in _UNSUPPORTED.items():
                if k in param_group and param_group[k] != off:
                    raise invalid(f"param_group[{k!r}]", param_group[k],
                                  f"{off!r} or no {k!r} key (StochasticRoundingSGD has no "
                                  f"{k}; it would be ignored)")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for k, (name, rule) in _GROUP_RULES.items():
            group[k] = check(name, group[k], rule)
        with torch.no_grad():
            for p in group["params"]:
                if not p.is_floating_point():
                    raise invalid("params", p, "floating-point parameters")
                _check_storage(p, group["fmt"])
                p.copy_(_quantize(p, group["fmt"], None).to(p.dtype))

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
            _step(params, grads, bufs, lr=group["lr"], momentum=group["momentum"],
                  weight_decay=group["weight_decay"], fmt=group["fmt"],
                  rounding=group["rounding"], generator=self.generator)
            if group["momentum"] != 0:
                for p, buf in zip(params, bufs, strict=True):
                    self.state[p]["momentum_buffer"] = buf
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain data: formats as dicts of their fields, plus the
        state of the optimizer's generator (if it has one) under ``"generator_state"``."""
        sd = super().state_dict()
        for g in sd["param_groups"]:
            f = g["fmt"]
            g["fmt"] = {"exp_bits": f.exp_bits, "man_bits": f.man_bits,
                        "subnormals": f.subnormals, "overflow": f.overflow}
        if self.generator is not None:
            sd["generator_state"] = self.generator.get_state()
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a :meth:`state_dict` (formats given as dicts or as ``FloatFormat``); the
        optimizer's generator resumes from the saved state. A state saved with a generator
        needs an optimizer built with one (an error otherwise: its stream would be lost)."""
        sd = dict(state_dict)
        gen_state = sd.pop("generator_state", None)
        if gen_state is not None and self.generator is None:
            # the saved run drew its rounding from its own generator: resuming from torch's
            # default one instead would continue with another stream, silently
            raise invalid("state_dict", "a state with 'generator_state'",
                          "an optimizer built with a generator to resume that stream "
                          "(generator=torch.Generator(); its seed is replaced by the saved "
                          "state), or the state without its 'generator_state'")
        groups = []
        for g in sd["param_groups"]:
            g = dict(g)
            if isinstance(g.get("fmt"), Mapping):
                g["fmt"] = FloatFormat(**g["fmt"])
            groups.append(g)
        sd["param_groups"] = groups
        if len(groups) == len(self.param_groups):  # else torch's own check refuses it
            # the saved groups replace the current ones: check them as add_param_group
            # does (a saved E6M9 group over bfloat16 parameters otherwise rounded every
            # update back to bfloat16, to nearest, and small steps were lost)
            for g, cur in zip(groups, self.param_groups, strict=True):
                for k, off in _UNSUPPORTED.items():
                    if k in g and g[k] != off:
                        raise invalid(f"state_dict param_group[{k!r}]", g[k],
                                      f"{off!r} or no {k!r} key (StochasticRoundingSGD has "
                                      f"no {k}; it would be ignored)")
                for k, (name, rule) in _GROUP_RULES.items():
                    if k not in g:
                        raise invalid("state_dict", f"a param group without {k!r}",
                                      "a state saved by StochasticRoundingSGD")
                    g[k] = check(name, g[k], rule)
                for p in cur["params"]:
                    _check_storage(p, g["fmt"])
        super().load_state_dict(sd)
        if gen_state is not None and self.generator is not None:
            self.generator.set_state(gen_state)
