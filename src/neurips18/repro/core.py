"""The reproduction contract: what a reproduction module declares and what it computes.

A reproduction module (``neurips18/repro/<paper>.py``) separates computing from judging.
It declares, as data:

* a frozen, typed profile config (a subclass of :class:`Profile`) and three instances of it,
  ``smoke`` (seconds: for the tests), ``quick`` (the README's main job) and ``full`` (the
  committed results); the harness validates them and sets the run's thread count from them;
* its references (:class:`References`): one :class:`Reference` per compared quantity, with
  the value (the paper's, a closed form, an issue target; or ``measured`` when the reference
  is an anchor or our own baseline measured in the same run; or ``None`` when it could not
  be recovered), its source, the tolerance and the mode;
* optionally the data sets it needs (``needs``): a part whose data is absent is skipped by
  the harness with the reason, never failed.

and two functions:

* ``run(ctx: RunContext) -> dict``: computes, returns JSON-serialisable data; long steps go
  through :meth:`RunContext.cached` so an interrupted run resumes. The same command, seed
  and thread count give the same data; wall-clock measurements, the only exception, live
  under keys ending in ``seconds``;
* ``judge(data: dict, config) -> Judgement``: pure; turns the data into comparison rows
  (with :meth:`References.row`) and notes. ``neurips18 rejudge <paper>`` reruns only this,
  from a ``result.json``.

::

    @dataclass(frozen=True)
    class Config(Profile):
        n_train: int
        lrs: tuple[float, ...]

    PROFILES = {"smoke": Config(200, (0.1,)), "quick": Config(6000, (0.1,)),
                "full": Config(60000, (0.1, 0.01), threads=1)}
    REFERENCES = References(
        Reference("acc_fp8", "test accuracy FP8 - FP32 (points)", 0.0, source="issue target",
                  tol=0.3, mode="abs"),
        Reference("err_paper", "paper: test error (%)", None, source="Table 2: not recovered"),
    )
    REPRODUCTION = Reproduction(name="fp8", ..., profiles=PROFILES, references=REFERENCES,
                                run=run, judge=judge, plot=plot)

Modules keep heavy imports (torch, the capability subpackages) inside functions, so that
listing the registry stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

Verdict = Literal["pass", "fail", "no-reference"]
Mode = Literal["abs", "rel", "min", "max"]
_MODES = ("abs", "rel", "min", "max")
T = TypeVar("T")

__all__ = [
    "Comparison",
    "Estimate",
    "Judgement",
    "MEASURED",
    "Profile",
    "Reference",
    "References",
    "Reproduction",
    "RunContext",
    "compare",
    "estimate",
]


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Comparison:
    """One row of a reproduction's comparison table.

    ``paper`` is the reference value (the paper's number, an anchor's measured value, a
    closed form or a target, as ``source`` says) or ``None`` where there is none.
    ``tolerance`` is the check in words; ``mode`` and ``tol`` are its machine-readable form.
    ``interval`` is the 95 % interval (or the level the tolerance text names) of ``ours``
    when ``ours`` is a mean over ``n`` seeds;
    the verdict then requires the whole interval to satisfy the check.
    """

    metric: str
    ours: float | None
    paper: float | None
    source: str
    tolerance: str
    verdict: Verdict
    mode: Mode = "abs"
    tol: float | None = None
    note: str = ""
    key: str = ""
    interval: tuple[float, float] | None = None
    n: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = None if self.interval is None else list(self.interval)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        if kw.get("interval") is not None:
            kw["interval"] = tuple(kw["interval"])
        return cls(**kw)


def _describe(mode: Mode, tol: float, with_interval: bool, level: float = 0.95) -> str:
    x = f"{100 * level:g}% interval of ours" if with_interval else "ours"
    if mode == "abs":
        return f"{x} within ref +/- {tol:g}"
    if mode == "rel":
        return f"{x} within ref +/- {tol:g} * |ref|"
    if mode == "min":
        return f"{x} >= ref - {tol:g}" if tol else f"{x} >= ref"
    return f"{x} <= ref + {tol:g}" if tol else f"{x} <= ref"


def _holds(mode: Mode, value: float, ref: float, tol: float) -> bool:
    diff = value - ref
    return {
        "abs": abs(diff) <= tol,
        "rel": abs(diff) <= tol * abs(ref),
        "min": diff >= -tol,
        "max": diff <= tol,
    }[mode]


def compare(
    metric: str,
    ours: float | None,
    paper: float | None,
    *,
    source: str,
    tol: float,
    mode: Mode = "abs",
    note: str = "",
    interval: Sequence[float] | None = None,
    n: int | None = None,
    key: str = "",
    judged: bool = True,
    level: float = 0.95,
) -> Comparison:
    """Build a comparison row and decide its verdict.

    ``mode``: ``"abs"`` (|ours - ref| <= tol), ``"rel"`` (|ours - ref| <= tol |ref|),
    ``"min"`` (ours >= ref - tol) or ``"max"`` (ours <= ref + tol). ``ours`` that is
    ``None`` or not finite fails; ``paper=None`` gives ``"no-reference"``. With
    ``interval=(low, high)`` the check must hold at both ends (for ``min`` at the low end,
    for ``max`` at the high end): a claim passes only when its uncertainty supports it;
    ``level`` is that interval's coverage, as the tolerance text states it.
    ``judged=False``: the row is shown with its reference but without a verdict (a claim
    the profile's run cannot support, judged in another profile).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
    if not source:
        raise ValueError("source must say where the reference value comes from")
    if not (isinstance(level, int | float) and 0 < level < 1):
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    ours_f = None if ours is None else float(ours)
    paper_f = None if paper is None else float(paper)
    iv = None
    if interval is not None:
        bounds = [float(v) for v in interval]
        # the ends are read as (low, high): swapped, a "min" check read the high end as
        # the low one and passed a claim its interval does not support
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise ValueError(f"interval must be (low, high) with low <= high, got "
                             f"{tuple(interval)!r}")
        iv = (bounds[0], bounds[1])
    verdict: Verdict
    if paper_f is None:
        verdict = "no-reference"
    elif ours_f is None or not math.isfinite(ours_f):
        verdict = "fail"
    elif iv is not None:
        if not all(math.isfinite(v) for v in iv):
            ok = False
        elif mode == "min":
            ok = _holds(mode, iv[0], paper_f, tol)
        elif mode == "max":
            ok = _holds(mode, iv[1], paper_f, tol)
        else:
            ok = _holds(mode, iv[0], paper_f, tol) and _holds(mode, iv[1], paper_f, tol)
        verdict = "pass" if ok else "fail"
    else:
        verdict = "pass" if _holds(mode, ours_f, paper_f, tol) else "fail"
    tolerance = ("n/a (no reference)" if paper_f is None
                 else _describe(mode, tol, iv is not None, level))
    if not judged and paper_f is not None:
        verdict = "no-reference"
        tolerance = f"not judged in this profile ({tolerance})"
    return Comparison(
        metric=metric, ours=ours_f, paper=paper_f, source=source,
        tolerance=tolerance, verdict=verdict, mode=mode,
        tol=float(tol), note=note, key=key, interval=iv, n=n,
    )


# ----------------------------------------------------------------------------- uncertainty
@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` seeds with its two-sided ``level`` Student-t interval."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def estimate(values: Sequence[float], paired_with: Sequence[float] | None = None,
             *, level: float = 0.95) -> Estimate:
    """The mean of ``values`` (or of ``values - paired_with``, seed by seed: a paired
    comparison where both arms share initialisation and data order) and its t interval.
    With one value the interval is unbounded (``-inf, inf``): no claim can rest on it."""
    if not (isinstance(level, int | float) and 0 < level < 1):
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    xs = [float(v) for v in values]
    if paired_with is not None:
        if len(paired_with) != len(xs):
            raise ValueError(f"paired samples differ in length: {len(xs)} vs {len(paired_with)}")
        xs = [a - float(b) for a, b in zip(xs, paired_with, strict=True)]
    n = len(xs)
    if n == 0:
        raise ValueError("estimate needs at least one value")
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(mean, -math.inf, math.inf, 1, level)
    from scipy import stats

    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, level)


# ----------------------------------------------------------------------------- references
class _Measured:
    _instance: _Measured | None = None

    def __new__(cls) -> _Measured:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MEASURED"


MEASURED: Any = _Measured()
"""A reference value measured in the same run (an anchor, our own baseline); the judge
supplies it."""


@dataclass(frozen=True)
class Reference:
    """A declared reference: what is compared, against what, from where, with which check.

    ``metric`` may hold ``str.format`` fields that the judge fills (``"{model}: ..."``).
    ``value`` is a number, :data:`MEASURED` (the judge passes the value measured in the
    run) or ``None`` (no reference: the row is informative, or the paper's value was not
    recovered).
    """

    key: str
    metric: str
    value: float | None | _Measured
    source: str
    tol: float = 0.0
    mode: Mode = "abs"

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"{self.key}: mode must be one of {_MODES}, got {self.mode!r}")
        if not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"{self.key}: tol must be finite and >= 0, got {self.tol!r}")
        if not self.source:
            raise ValueError(f"{self.key}: source must say where the reference comes from")


class References(Mapping[str, Reference]):
    """A module's table of references, keyed by :attr:`Reference.key`."""

    def __init__(self, *refs: Reference) -> None:
        self._refs: dict[str, Reference] = {}
        for r in refs:
            if r.key in self._refs:
                raise ValueError(f"duplicate reference key {r.key!r}")
            self._refs[r.key] = r

    def __getitem__(self, key: str) -> Reference:
        return self._refs[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def row(
        self,
        key: str,
        ours: float | None | Estimate,
        /,
        *,
        ref: float | None = None,
        note: str = "",
        judged: bool = True,
        **fmt: Any,
    ) -> Comparison:
        """The comparison row for reference ``key``: ``ours`` (a number, or an
        :class:`Estimate`, whose interval then decides), ``ref`` only for a
        :data:`MEASURED` reference, ``fmt`` fills the metric's format fields;
        ``judged=False`` shows the row without a verdict (see :func:`compare`)."""
        r = self._refs[key]
        if r.value is MEASURED:
            value = ref
        else:
            if ref is not None:
                raise ValueError(f"reference {key!r} is declared, not measured: pass no ref=")
            value = r.value  # type: ignore[assignment]
        metric = r.metric.format(**fmt) if fmt else r.metric
        source = r.source.format(**fmt) if fmt else r.source
        if isinstance(ours, Estimate):
            return compare(metric, ours.mean, value, source=source, tol=r.tol, mode=r.mode,
                           note=note, interval=ours.interval if ours.n > 1 else None,
                           n=ours.n, key=key, judged=judged, level=ours.level)
        return compare(metric, ours, value, source=source, tol=r.tol, mode=r.mode, note=note,
                       key=key, judged=judged)


@dataclass
class Judgement:
    """What a module's ``judge`` returns: the rows of the table and the notes under it."""

    rows: list[Comparison]
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """Base of every module's profile config: a frozen dataclass of plain, typed fields
    (numbers, strings, booleans, tuples, dicts of these, other such dataclasses).

    ``threads``: the torch/BLAS thread count the harness sets for the run (and restores
    after); it is part of the profile so the same command gives the same digits on any
    machine. Subclasses may override :meth:`check` for rules beyond the types.
    """

    threads: int = field(default=1, kw_only=True)

    def check(self) -> None:
        """Extra rules (ranges, consistency); raise ``ValueError`` naming the field."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        """Rebuild a profile from its JSON form (lists become the annotated tuples)."""
        return _coerce(dict(d), cls)  # type: ignore[no-any-return]


def _type_ok(value: Any, tp: Any, where: str) -> None:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            try:
                _type_ok(value, a, where)
                return
            except TypeError as exc:
                errors.append(str(exc))
        raise TypeError(f"{where}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is not None:
            raise TypeError(f"{where}: expected None, got {value!r}")
        return
    if origin is Literal:
        if value not in args:
            raise TypeError(f"{where}: {value!r} is not one of {args}")
        return
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):  # type: ignore[arg-type]
            raise TypeError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        _check_fields(value, where)
        return
    if origin is tuple:
        if not isinstance(value, tuple):
            raise TypeError(f"{where}: expected a tuple, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            for i, v in enumerate(value):
                _type_ok(v, args[0], f"{where}[{i}]")
        elif args:
            if len(args) != len(value):
                raise TypeError(f"{where}: expected {len(args)} items, got {len(value)}")
            for i, (v, a) in enumerate(zip(value, args, strict=True)):
                _type_ok(v, a, f"{where}[{i}]")
        return
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {type(value).__name__}")
        if args:
            for k, v in value.items():
                _type_ok(k, args[0], f"{where} key")
                _type_ok(v, args[1], f"{where}[{k!r}]")
        return
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{where}: expected a number, got {value!r}")
        return
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}: expected an int, got {value!r}")
        return
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise TypeError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        return
    raise TypeError(f"{where}: unsupported annotation {tp!r} in a profile config")


def _hints(cls: type) -> dict[str, Any]:
    import sys

    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def _check_fields(obj: Any, where: str) -> None:
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        _type_ok(getattr(obj, f.name), hints[f.name], f"{where}.{f.name}")


def validate_profile(name: str, cfg: Any) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``cfg`` is a well-typed :class:`Profile`."""
    if not isinstance(cfg, Profile):
        raise TypeError(f"profile {name!r} must be a Profile dataclass, got {type(cfg).__name__}")
    params = getattr(type(cfg), "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"profile {name!r}: {type(cfg).__name__} must be a frozen dataclass")
    _check_fields(cfg, f"{type(cfg).__name__}[{name}]")
    if not (1 <= cfg.threads <= 256):
        raise ValueError(f"profile {name!r}: threads must be in [1, 256], got {cfg.threads}")
    cfg.check()


def _coerce_key(key: Any, tp: Any) -> Any:
    """A dict key read back from JSON, which writes every key as a string: the key 64 of
    a ``dict[int, float]`` field came back as ``"64"`` (and 0.5 as ``"0.5"``, True as
    ``"true"``), so the rebuilt profile differed from the one that ran."""
    if not isinstance(key, str):
        return _coerce(key, tp)
    options = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(
        tp) in (typing.Union, types.UnionType) else [tp]
    if str in options or Any in options:
        return key
    for a in options:
        try:
            if a is bool and key in ("true", "false"):
                return key == "true"
            if a is int:
                return int(key)
            if a is float:
                return float(key)
        except ValueError:
            continue
    if type(None) in typing.get_args(tp) and key == "null":
        return None
    return key


def _coerce(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        for a in non_none:
            try:
                out = _coerce(value, a)
                _type_ok(out, a, "value")
                return out
            except (TypeError, ValueError):
                continue
        return value
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        hints = _hints(tp)  # type: ignore[arg-type]
        kw = {f.name: _coerce(value[f.name], hints[f.name])
              for f in dataclasses.fields(tp) if f.name in value}
        return tp(**kw)
    if origin is tuple and isinstance(value, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if args:
            return tuple(_coerce(v, a) for v, a in zip(value, args, strict=False))
        return tuple(value)
    if origin in (dict, Mapping) and isinstance(value, Mapping) and args:
        return {_coerce_key(k, args[0]): _coerce(v, args[1]) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return value  # ints are valid floats; keep the value as written
    return value


# ----------------------------------------------------------------------------- modules
def needs_mnist() -> None:
    """The ``needs`` probe of the reproductions that train on MNIST: both splits present in
    the data directory (nothing is downloaded)."""
    from neurips18.datasets import load_mnist

    load_mnist("train", download=False)
    load_mnist("test", download=False)


@dataclass(frozen=True)
class Reproduction:
    """A registered paper reproduction (see the module docstring).

    ``needs`` maps a part of the experiment to a probe that raises
    :class:`neurips18.datasets.DataError` when its data is absent; the harness runs the
    probes first and tells ``run`` (``ctx.skipped``) which parts to leave out, and why.
    ``uses_device``: the module trains networks and honours ``--device`` (it moves its
    models with :func:`neurips18.repro._common.to_device`).
    """

    name: str
    title: str
    citation: str
    capability: str
    profiles: Mapping[str, Profile]
    references: References
    run: Callable[[RunContext], dict[str, Any]]
    judge: Callable[[dict[str, Any], Any], Judgement]
    plot: Callable[[dict[str, Any], Any], None] | None = None
    needs: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    uses_device: bool = False
    description: str = ""

    def config(self, profile: str) -> Profile:
        if profile not in self.profiles:
            raise ValueError(f"{self.name} has no profile {profile!r}; it has "
                             f"{sorted(self.profiles)}")
        return self.profiles[profile]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(obj: Any) -> Any:
    # NumPy scalars and arrays and tuples of them, without importing NumPy here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n"


class RunContext:
    """Everything a reproduction's ``run`` needs from the harness.

    Attributes
    ----------
    profile : the profile's name (``"smoke"``, ``"quick"``, ``"full"``).
    config : the profile's config (the module's :class:`Profile` subclass).
    seed : the base seed; derive every generator from it (``ctx.seed + i``).
    checkpoint_dir : a directory that survives an interrupted run.
    device : the torch device for modules that train networks (``uses_device``).
    skipped : parts of the experiment whose data is absent, with the reason.
    """

    def __init__(
        self,
        *,
        profile: str,
        config: Any,
        seed: int,
        checkpoint_dir: Path,
        progress: bool = True,
        device: str = "cpu",
        skipped: Mapping[str, str] | None = None,
    ) -> None:
        self.profile = profile
        self.config = config
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.progress_enabled = progress
        self.device = device
        self.skipped: dict[str, str] = dict(skipped or {})
        self.resumed_steps: list[str] = []
        self.computed_steps: list[str] = []
        checkpoint_dir.mkdir(parents=True, exist_ok=True)

    def has(self, part: str) -> bool:
        """Whether the data of ``part`` (a key of the module's ``needs``) is present."""
        return part not in self.skipped

    def cached(self, key: str, fn: Callable[[], T]) -> T:
        """Return ``fn()``, computing it only if no checkpoint for ``key`` exists.

        The value must be JSON-serialisable (floats, lists, dicts, strings). After an
        interruption, a rerun with the same profile and seed resumes from the last completed
        step instead of starting again; a fresh and a resumed run see identical values.
        """
        if not key or any(c in key for c in "/\\\0") or key.startswith("."):
            raise ValueError(f"checkpoint key must be a plain file name, got {key!r}")
        path = self.checkpoint_dir / f"{key}.json"
        if path.exists():
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                value = None  # a damaged checkpoint is recomputed, never trusted
            else:
                self.resumed_steps.append(key)
                return value  # type: ignore[no-any-return]
        value = fn()
        text = dumps(value)
        atomic_write_text(path, text)
        self.computed_steps.append(key)
        return json.loads(text)  # type: ignore[no-any-return]

    def progress(self, iterable: Iterable[T], *, desc: str, total: int | None = None) -> Any:
        """A tqdm progress bar (to stderr) unless progress display is disabled."""
        from tqdm.auto import tqdm

        return tqdm(
            iterable, desc=desc, total=total, disable=not self.progress_enabled, leave=False
        )
