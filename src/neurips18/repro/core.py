"""The building blocks every reproduction module uses.

A reproduction module (``neurips18/repro/<paper>.py``) defines one module-level object::

    REPRODUCTION = Reproduction(
        name="fp8",
        title="Training deep neural networks with 8-bit floating point numbers",
        citation="Wang, Choi, Brand, Chen, Gopalakrishnan. NeurIPS 2018. arXiv:1812.08011",
        capability="lowprec",
        run=run,            # run(ctx: RunContext) -> Outcome
        plot=plot,          # plot(data: dict, fig: matplotlib.figure.Figure) -> None
        profiles={"quick": {...}, "full": {...}},
    )

``run`` receives a :class:`RunContext` with the profile's settings, the seed, a resumable
checkpoint store (:meth:`RunContext.cached`) and a progress-bar factory; it returns an
:class:`Outcome`: the comparison rows (built with :func:`compare`) and a JSON-serialisable
``data`` dict from which ``plot`` draws the figure. The harness (:mod:`neurips18.repro.harness`)
writes everything to disk atomically.

Modules must keep heavy imports (torch, the capability subpackages) inside functions, so that
listing the registry stays cheap.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

Verdict = Literal["pass", "fail", "no-reference"]
Mode = Literal["abs", "rel", "min", "max"]
_MODES = ("abs", "rel", "min", "max")
T = TypeVar("T")


@dataclass(frozen=True)
class Comparison:
    """One row of a reproduction's comparison table.

    ``paper`` is the reference value (the paper's number, or an anchor's measured value, or a
    closed form, as ``source`` says) or ``None`` where it could not be recovered.
    ``tolerance`` is a human-readable statement of the check; ``mode`` and ``tol`` are its
    machine-readable form.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _describe(mode: Mode, tol: float) -> str:
    if mode == "abs":
        return f"|ours - ref| <= {tol:g}"
    if mode == "rel":
        return f"|ours - ref| <= {tol:g} * |ref|"
    if mode == "min":
        return f"ours >= ref - {tol:g}" if tol else "ours >= ref"
    return f"ours <= ref + {tol:g}" if tol else "ours <= ref"


def compare(
    metric: str,
    ours: float | None,
    paper: float | None,
    *,
    source: str,
    tol: float,
    mode: Mode = "abs",
    note: str = "",
) -> Comparison:
    """Build a comparison row and decide its verdict.

    Parameters
    ----------
    metric : what is measured, with its unit (e.g. ``"test accuracy, FP8 (%)"``).
    ours : our measured value; ``None`` or non-finite counts as a failure.
    paper : the reference value, or ``None`` where it could not be recovered (verdict
        ``"no-reference"``).
    source : where the reference comes from ("Table 2", "Fig. 3, read off the plot",
        "anchor: imodels BRS measured in this run", "closed form", "issue target").
    tol : the tolerance we hold ourselves to (non-negative).
    mode : ``"abs"`` (|ours - ref| <= tol), ``"rel"`` (|ours - ref| <= tol |ref|),
        ``"min"`` (ours >= ref - tol: at least as good) or ``"max"`` (ours <= ref + tol).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
    if not source:
        raise ValueError("source must say where the reference value comes from")
    ours_f = None if ours is None else float(ours)
    paper_f = None if paper is None else float(paper)
    verdict: Verdict
    if paper_f is None:
        verdict = "no-reference"
    elif ours_f is None or not math.isfinite(ours_f):
        verdict = "fail"
    else:
        diff = ours_f - paper_f
        ok = {
            "abs": abs(diff) <= tol,
            "rel": abs(diff) <= tol * abs(paper_f),
            "min": diff >= -tol,
            "max": diff <= tol,
        }[mode]
        verdict = "pass" if ok else "fail"
    return Comparison(
        metric=metric,
        ours=ours_f,
        paper=paper_f,
        source=source,
        tolerance=_describe(mode, tol),
        verdict=verdict,
        mode=mode,
        tol=float(tol),
        note=note,
    )


@dataclass
class Outcome:
    """What a reproduction's ``run`` returns."""

    comparisons: list[Comparison]
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reproduction:
    """A registered paper reproduction (see the module docstring)."""

    name: str
    title: str
    citation: str
    capability: str
    run: Callable[[RunContext], Outcome]
    plot: Callable[[dict[str, Any], Any], None] | None = None
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""


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
    # NumPy scalars and arrays, without importing NumPy here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n"


class RunContext:
    """Everything a reproduction's ``run`` needs from the harness.

    Attributes
    ----------
    profile : ``"quick"`` or ``"full"``.
    config : the profile's settings (from ``Reproduction.profiles[profile]``).
    seed : the base seed; derive every generator from it (``ctx.seed + i``).
    checkpoint_dir : a directory that survives an interrupted run; modules with long inner
        loops may keep their own state files here.
    """

    def __init__(
        self,
        *,
        profile: str,
        config: Mapping[str, Any],
        seed: int,
        checkpoint_dir: Path,
        progress: bool = True,
        device: str = "cpu",
    ) -> None:
        self.profile = profile
        self.config = dict(config)
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.progress_enabled = progress
        self.device = device
        self.resumed_steps: list[str] = []
        self.computed_steps: list[str] = []
        checkpoint_dir.mkdir(parents=True, exist_ok=True)

    def cached(self, key: str, fn: Callable[[], T]) -> T:
        """Return ``fn()``, computing it only if no checkpoint for ``key`` exists.

        The value must be JSON-serialisable (floats, lists, dicts, strings). After an
        interruption, a rerun with the same profile and seed resumes from the last completed
        step instead of starting again.
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
        # round-trip through JSON so a fresh and a resumed run see identical values
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
