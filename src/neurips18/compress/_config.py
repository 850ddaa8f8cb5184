"""The settings of a sparse exchange, shared by every hook state and the simulator."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from neurips18._validation import BOOL, Interval, Options, check

from ._unbiased import DENSITY, MAX_ITER

__all__ = ["HookConfig"]

_RULES: dict[str, tuple[Any, ...]] = {
    "compressor": (Options({"topk", "unbiased"}),),
    "density": (DENSITY,),
    "error_feedback": (BOOL,),
    "warmup_steps": (Interval(int, 0, None),),
    "nonfinite": (Options({"raise", "skip"}),),
    "seed": (Interval(int, 0, None),),
    "exact": (BOOL,),
    "method": (Options({"exact", "greedy"}),),
    "max_iter": (MAX_ITER,),
    "sampling": (Options({"optimal", "uniform"}),),
}


@dataclass(frozen=True)
class HookConfig:
    """What a sparse exchange does, fixed when its state is created (validated here).

    Attributes
    ----------
    compressor : ``"topk"`` (Alistarh et al.) or ``"unbiased"`` (Wangni et al.).
    density : fraction of each bucket's coordinates sent per step, in (0, 1] (top-k sends
        ``k = ceil(density * n)``; the unbiased sparsifier sends that many in expectation).
    error_feedback : keep what was not sent as a residual added to the next gradient.
    warmup_steps : initial iterations exchanged densely (allreduce).
    nonfinite : ``"raise"`` or ``"skip"``: what every rank does when some rank's gradient
        holds NaN/inf (see :mod:`neurips18.compress`).
    seed : seed of the per-rank generators of the unbiased sparsifier (rank ``r`` draws from
        ``(seed * 1_000_003 + r) mod 2**64``, torch seeds being 64-bit); unused by top-k.
    exact : top-k only: exact selection, or the approximate threshold selection.
    method, max_iter : unbiased only: how the scale ``lambda`` is found.
    sampling : unbiased only: ``"optimal"`` (Wangni's probabilities) or ``"uniform"``.
    """

    compressor: str
    density: float = 0.01
    error_feedback: bool = True
    warmup_steps: int = 1
    nonfinite: str = "raise"
    seed: int = 0
    exact: bool = True
    method: str = "greedy"
    max_iter: int = 2
    sampling: str = "optimal"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = check(f.name, getattr(self, f.name), *_RULES[f.name])
            if isinstance(value, np.bool_):
                value = bool(value)
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints)."""
        return asdict(self)
