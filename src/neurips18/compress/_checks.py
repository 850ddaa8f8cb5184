"""Input checks shared by the compression kernels (errors name the parameter and the value)."""

from __future__ import annotations

import math
from typing import Any

import torch


def check_vector(g: Any, name: str = "g", *, allow_nonfinite: bool = False) -> torch.Tensor:
    """Return ``g`` flattened to 1-D; reject non-tensors, empty and non-finite input."""
    if not isinstance(g, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(g).__name__}")
    if not torch.is_floating_point(g):
        raise TypeError(f"{name} must have a floating dtype, got {g.dtype}")
    if g.numel() == 0:
        raise ValueError(f"{name} must not be empty (numel=0)")
    flat = g.reshape(-1)
    if not allow_nonfinite and not all_finite(flat):
        bad = int((~torch.isfinite(flat)).sum())
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); sparsifying it would "
            "propagate them to every worker. Check the loss / learning rate, or use "
            "gradient clipping."
        )
    return flat


def all_finite(t: torch.Tensor) -> bool:
    """True when every entry is finite.

    Fast path: the sum of finite numbers is finite unless it overflows, and any NaN/inf makes
    the sum non-finite; only a non-finite sum triggers the full elementwise check.
    """
    if bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


def check_density(density: Any, name: str = "density") -> float:
    if isinstance(density, bool) or not isinstance(density, int | float):
        raise TypeError(f"{name} must be a number in (0, 1], got {type(density).__name__}")
    density = float(density)
    if not (math.isfinite(density) and 0.0 < density <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {density!r}")
    return density


def check_k(k: Any, numel: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= numel:
        raise ValueError(f"k must be in [1, numel={numel}], got {k}")
    return k


def k_for_density(density: float, numel: int) -> int:
    """Number of coordinates a top-k compressor keeps at ``density`` (at least 1)."""
    return max(1, min(numel, int(math.ceil(density * numel))))
