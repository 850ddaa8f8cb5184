"""Sparse gradient container and its coding length.

A :class:`SparseGradient` is what a worker sends: the kept coordinates (``indices``), their
values, and the dense ``shape``. It knows how many bits its message costs under two coding
models (:meth:`SparseGradient.bits`):

``"plain"``
    every kept coordinate costs an index (``ceil(log2 d)`` bits) and a full value
    (``value_bits``, 32 for float32).

``"hybrid"``
    the coding described by Wangni et al. (NeurIPS 2018, arXiv:1710.09854) for their
    optimal unbiased sparsifier: saturated coordinates (sent with probability 1) carry their
    exact value, every other kept coordinate has the same magnitude ``1/lambda`` and so
    costs only a sign bit, plus one shared float for ``1/lambda``. The positions are coded
    as an index list or as a d-bit bitmap, whichever is shorter. Sparsifiers that do not
    produce a shared magnitude (top-k) fall back to full values. This is our reading of the
    paper's coding model (the paper's exact constants: not recovered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neurips18._validation import Interval, Options, check, check_tensor, invalid

__all__ = ["SparseGradient"]

_CODINGS = Options({"hybrid", "plain"})
_DIM = Interval(int, 0, None)


@dataclass(frozen=True, eq=False)
class SparseGradient:
    """A sparse message: ``to_dense()[indices] == values``, zero elsewhere.

    Attributes
    ----------
    indices : int64 tensor of flat (row-major) positions, unique.
    values : tensor of the transmitted values (same length as ``indices``).
    shape : the dense shape.
    saturated : optional bool tensor aligned with ``values``: True where the coordinate was
        kept with probability one and its value is sent exactly; False where the value is
        ``sign * scale`` (Wangni's sampled coordinates).
    scale : the shared magnitude ``1/lambda`` of the non-saturated kept coordinates, or None.
    """

    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]
    saturated: torch.Tensor | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        check_tensor("indices", self.indices, ndim=1, floating=False, nonempty=False)
        check_tensor("values", self.values, ndim=1, finite=False, nonempty=False)
        if self.indices.numel() != self.values.numel():
            raise invalid("values", self.values,
                          f"as many entries as indices ({self.indices.numel()})")
        if self.saturated is not None:
            # bits() counts saturated entries as full values and the rest as sign bits: a
            # mask of another length or dtype gave a meaningless (even shrinking) count
            check_tensor("saturated", self.saturated, ndim=1, floating=False, nonempty=False)
            if (self.saturated.dtype != torch.bool
                    or self.saturated.numel() != self.values.numel()):
                raise invalid("saturated", self.saturated,
                              f"a bool tensor with one entry per value "
                              f"({self.values.numel()})")
        # a dimension must be a non-negative integer: int() truncated (2.7, 3) to (2, 3)
        # silently, and (-2, -3) passed as 6 coordinates
        dims = self.shape
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise invalid("shape", dims, "a sequence of non-negative integers")
        dims = tuple(dims)
        if not all(_DIM.accepts(s) for s in dims):
            raise invalid("shape", dims, "a sequence of non-negative integers")
        object.__setattr__(self, "shape", tuple(int(s) for s in dims))
        if self.indices.numel():  # a negative index wrapped round, one too large failed late
            lo, hi = int(self.indices.min()), int(self.indices.max())
            if lo < 0 or hi >= self.numel:
                raise invalid("indices", self.indices, f"flat positions in [0, {self.numel}) "
                              f"for shape {self.shape}; found {lo if lo < 0 else hi}")
            if self.indices.numel() > 1:
                # a repeated position kept one of its values in to_dense() (which one is
                # unspecified) and dropped the others, silently
                srt = torch.sort(self.indices.reshape(-1)).values
                rep = srt[1:] == srt[:-1]
                if bool(rep.any()):
                    pos = int(srt[1:][rep][0])
                    raise invalid("indices", self.indices,
                                  f"unique flat positions; {pos} appears more than once")

    @property
    def numel(self) -> int:
        """Number of coordinates of the dense vector (d)."""
        return math.prod(self.shape)

    @property
    def nnz(self) -> int:
        """Number of transmitted coordinates."""
        return int(self.indices.numel())

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.numel, dtype=self.values.dtype, device=self.values.device)
        out[self.indices] = self.values
        return out.reshape(self.shape)

    def bits(self, coding: str = "hybrid", value_bits: int = 32) -> int:
        """Coding length of this message in bits (see the module docstring)."""
        check("coding", coding, _CODINGS)
        check("value_bits", value_bits, Interval(int, 1, None))
        d, n = self.numel, self.nnz
        idx_bits = max(1, math.ceil(math.log2(d))) if d > 1 else 1
        if coding == "plain":
            return n * (idx_bits + value_bits)
        position_bits = min(n * idx_bits, d)
        if self.saturated is None or self.scale is None:
            return position_bits + n * value_bits
        n_sat = int(self.saturated.sum())
        n_sign = n - n_sat
        return position_bits + n_sat * value_bits + n_sign + (value_bits if n_sign else 0)
