"""One way to check what a user passes in, used by every public entry point.

Constraints are declared next to the parameters they guard, as data, and checked by one
function; every failure raises :class:`ValidationError` with one message form::

    Invalid <name>: <value> (expected <rule>)

:class:`ValidationError` is both a ``ValueError`` and a ``TypeError``, so callers may catch
either (a wrong type and an out-of-range value are both "bad input").

Typical use in a function::

    from neurips18._validation import Interval, Options, check

    def topk(g, k, *, method="auto"):
        k = check("k", k, Interval(int, 1, None))
        method = check("method", method, Options({"auto", "exact", "approx"}))

and in a scikit-learn estimator, at the top of ``fit``::

    _PARAMS = {"n_clusters": [Interval(int, 1, None)], "epsilon": [Interval(float, 0, None,
               closed="neither")]}
    check_params(self.get_params(), _PARAMS)

Array checks (:func:`check_array`) need only NumPy; tensor checks (:func:`check_tensor`)
import torch when called. Random generators are normalised by :func:`as_numpy_generator`
and :func:`as_torch_generator` (a generator, or an int seed).

Kernels behind a checked entry point do not check again.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Interval",
    "InstanceOf",
    "Options",
    "Predicate",
    "ValidationError",
    "as_numpy_generator",
    "as_torch_generator",
    "check",
    "check_array",
    "check_params",
    "check_tensor",
    "invalid",
]


class ValidationError(ValueError, TypeError):
    """A parameter's value is not allowed (a wrong type, a value out of range, bad data)."""


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if type(value).__module__ == "builtins" and not isinstance(value, list | dict | tuple | set):
        return repr(value)
    if isinstance(value, list | tuple | set | dict) and len(repr(value)) <= 60:
        return repr(value)
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) == 0 and hasattr(value, "item"):
        return repr(value.item())  # a NumPy scalar or a 0-d tensor: show the number
    if shape is not None:
        dtype = getattr(value, "dtype", "")
        return f"{type(value).__name__} of shape {tuple(shape)} {dtype}".rstrip()
    text = repr(value)
    return text if len(text) <= 60 else f"<{type(value).__name__}>"


def invalid(name: str, value: Any, expected: str) -> ValidationError:
    """The error for parameter ``name`` holding ``value`` where ``expected`` was required."""
    return ValidationError(f"Invalid {name}: {_show(value)} (expected {expected})")


# ----------------------------------------------------------------------------- constraints
class _Constraint:
    def accepts(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        return value


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass(frozen=True)
class Interval(_Constraint):
    """A number of type ``kind`` (``int`` or ``float``; a float interval also takes ints) in
    ``[low, high]``; ``None`` leaves a side open-ended. ``closed`` says which ends belong.
    NaN never lies in an interval; infinities only when a side is ``None`` and
    ``allow_inf`` is set."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"
    allow_inf: bool = False

    def accepts(self, value: Any) -> bool:
        if self.kind is int:
            if not _is_int(value):
                return False
        elif not _is_real(value):
            return False
        v = float(value)
        if math.isnan(v):
            return False
        if math.isinf(v) and not self.allow_inf:
            return False
        lo_ok = self.low is None or (v >= self.low if self.closed in ("both", "left")
                                     else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("both", "right")
                                      else v < self.high)
        return lo_ok and hi_ok

    def convert(self, value: Any) -> Any:
        return int(value) if self.kind is int else float(value)

    def describe(self) -> str:
        what = "an int" if self.kind is int else "a finite number"
        if self.kind is not int and self.allow_inf:
            what = "a number"
        if self.low is None and self.high is None:
            return what
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        if self.low is None:
            left = "("
        if self.high is None:
            right = ")"
        return f"{what} in {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Options(_Constraint):
    """One of a fixed set of values (compared with ``==``, never by truthiness)."""

    values: frozenset[Any] | Iterable[Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", frozenset(self.values))

    def accepts(self, value: Any) -> bool:
        try:
            return any(type(value) is type(v) and value == v for v in self.values)
        except TypeError:
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(sorted(repr(v) for v in self.values))


@dataclass(frozen=True)
class InstanceOf(_Constraint):
    """An instance of one of ``types`` (``None`` allowed when ``type(None)`` is listed)."""

    types: tuple[type, ...] | type
    label: str | None = None

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def describe(self) -> str:
        if self.label:
            return self.label
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        names = ["None" if t is type(None) else t.__name__ for t in types]
        return "an instance of " + " or ".join(names)


@dataclass(frozen=True)
class Predicate(_Constraint):
    """Any rule that is not an interval, a set of options or a type: ``fn(value)`` is True."""

    fn: Callable[[Any], bool]
    label: str

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.fn(value))
        except Exception:
            return False

    def describe(self) -> str:
        return self.label


NONE = InstanceOf(type(None), "None")


def _is_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    import numpy as np

    return isinstance(value, np.bool_)


# a switch: a Python or NumPy bool only (the string "False" is truthy, None is not False)
BOOL = Predicate(_is_bool, "a bool")


def check(name: str, value: Any, *constraints: _Constraint | None) -> Any:
    """Return ``value`` (numbers converted to the interval's kind) if any of ``constraints``
    accepts it; raise :class:`ValidationError` otherwise. ``None`` as a constraint means
    "``None`` is allowed"."""
    rules = [NONE if c is None else c for c in constraints]
    for c in rules:
        if c.accepts(value):
            return c.convert(value)
    raise invalid(name, value, " or ".join(c.describe() for c in rules))


def check_params(params: Mapping[str, Any], constraints: Mapping[str, list[Any]]) -> dict:
    """Check every parameter that has declared constraints; return the converted values."""
    out = dict(params)
    for name, rules in constraints.items():
        if name in params:
            out[name] = check(name, params[name], *rules)
    return out


# ----------------------------------------------------------------------------- arrays
def check_array(
    name: str,
    value: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: Any = "float64",
    finite: bool = True,
    min_rows: int = 1,
    min_cols: int | None = None,
    copy: bool = False,
) -> Any:
    """``value`` as a NumPy array of ``dtype`` (``None`` keeps the dtype, ``"numeric"``
    takes any real dtype as float64 unless it already is floating). Rejects the wrong number
    of dimensions, fewer than ``min_rows`` rows (or ``min_cols`` columns), non-numeric
    content and, when ``finite``, NaN or inf. The input is never modified; ``copy=True``
    guarantees the result shares no memory with it."""
    import numpy as np

    if hasattr(value, "__array__") or isinstance(value, list | tuple) or np.isscalar(value):
        try:
            if dtype == "numeric":
                arr = np.asarray(_nullable_as_float(value))
                if arr.dtype.kind not in "fiub":
                    raise invalid(name, value, "numeric data")
                if arr.dtype.kind != "f":
                    arr = arr.astype(np.float64)
            elif dtype is None:
                arr = np.asarray(value)
            else:
                arr = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise invalid(name, value, f"an array convertible to {dtype}") from None
    else:
        raise invalid(name, value, "an array-like")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            dims = " or ".join(f"{d}-D" for d in allowed)
            raise invalid(name, value, f"a {dims} array, got {arr.ndim}-D")
    if arr.ndim >= 1 and arr.shape[0] < min_rows:
        raise invalid(name, value, f"at least {min_rows} row(s)")
    if min_cols is not None and (arr.ndim < 2 or arr.shape[1] < min_cols):
        raise invalid(name, value, f"at least {min_cols} column(s)")
    if finite and arr.dtype.kind in "fc" and arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise invalid(name, value, f"finite values; found {bad} NaN or inf")
    if copy and np.may_share_memory(arr, value if isinstance(value, np.ndarray) else arr):
        arr = arr.copy()
    return arr


def _nullable_as_float(value: Any) -> Any:
    """A pandas frame or series of numbers held in nullable dtypes (``Int64``, ``Float64``,
    ``boolean``), or of bool columns beside number columns, as float64 with NaN for
    ``pd.NA``; anything else unchanged. NumPy makes such columns object arrays, which were
    refused as not numeric although they are."""
    import numpy as np

    dtypes = getattr(value, "dtypes", None)
    if dtypes is None or not hasattr(value, "to_numpy"):
        return value
    kinds = list(dtypes) if hasattr(dtypes, "__iter__") else [dtypes]
    nullable = any(type(t).__module__.startswith("pandas") and getattr(t, "_is_numeric", False)
                   for t in kinds)
    # a frame of bool columns beside number columns is an object array for NumPy too (a
    # frame scikit-learn reads as numbers was refused as not numeric)
    letters = [getattr(t, "kind", "O") for t in kinds]
    mixed_bool = "b" in letters and any(c != "b" for c in letters)
    if not (nullable or mixed_bool):
        return value
    if not all(c in "fiub" for c in letters):
        return value
    return value.to_numpy(dtype=np.float64, na_value=np.nan)


def check_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    floating: bool = True,
    finite: bool = True,
    nonempty: bool = True,
) -> Any:
    """Check a ``torch.Tensor``: its type, number of dimensions, floating dtype, that it is
    not empty and (when ``finite``) holds no NaN or inf. Returned unchanged."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise invalid(name, value, "a torch.Tensor")
    if floating and not torch.is_floating_point(value):
        raise invalid(name, value, "a floating-point tensor")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            raise invalid(name, value, f"{' or '.join(str(d) for d in allowed)} dimension(s)")
    if nonempty and value.numel() == 0:
        raise invalid(name, value, "a non-empty tensor")
    if finite and value.is_floating_point() and value.numel():
        if not bool(torch.isfinite(value.sum())) and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise invalid(name, value, f"finite values; found {bad} NaN or inf")
    return value


# ----------------------------------------------------------------------------- generators
def as_numpy_generator(generator: Any, name: str = "generator", *, allow_none: bool = False):
    """A ``numpy.random.Generator`` from a generator or a non-negative int seed (``None``
    gives a freshly seeded generator only when ``allow_none``)."""
    import numpy as np

    if isinstance(generator, np.random.Generator):
        return generator
    if _is_int(generator) and generator >= 0:
        return np.random.default_rng(int(generator))
    if generator is None and allow_none:
        return np.random.default_rng()
    rule = "a numpy.random.Generator or a non-negative int seed"
    raise invalid(name, generator, rule + (" or None" if allow_none else ""))


def as_torch_generator(generator: Any, name: str = "generator", *, allow_none: bool = False):
    """A CPU ``torch.Generator`` from a generator or an int seed in [0, 2**64) (``None`` gives
    ``None``, meaning torch's default generator, only when ``allow_none``)."""
    import torch

    if isinstance(generator, torch.Generator):
        return generator
    if _is_int(generator) and 0 <= generator < 2**64:  # torch seeds are 64-bit
        return torch.Generator().manual_seed(int(generator))
    if generator is None and allow_none:
        return None
    rule = "a torch.Generator or an int seed in [0, 2**64)"
    raise invalid(name, generator, rule + (" or None" if allow_none else ""))


@contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded by ``seed``, and put its state back
    afterwards (initial weights drawn by ``nn.Module`` constructors become a function of
    ``seed``; the caller's global state is untouched).

    Only the CPU generator is seeded: ``torch.manual_seed`` would also reseed every CUDA and
    MPS generator, which ``torch.random.fork_rng(devices=[])`` does not restore, so a GPU
    user's accelerator stream would change under them."""
    import torch

    # int(seed) made 1.9 and True the seed 1: other weights than asked for, silently
    if not (_is_int(seed) and -(2**63) <= seed < 2**64):
        raise invalid("seed", seed, "an int seed in [-2**63, 2**64)")
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


@contextmanager
def unchanged_on_error(obj: Any) -> Iterator[None]:
    """Run the block; if it raises, put back every attribute ``obj`` had before it (a
    refused refit leaves a fitted estimator whole, not half reset)."""
    before = dict(obj.__dict__)
    try:
        yield
    except BaseException:
        obj.__dict__.clear()
        obj.__dict__.update(before)
        raise
