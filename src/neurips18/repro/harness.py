"""Run a reproduction in a profile and write its outputs atomically.

Layout of ``<out>/<paper>/`` after a finished run::

    result.json   comparison rows (metric, ours, paper, source, tolerance, verdict) + data
    table.md      the same rows as a Markdown table, with the citation and profile
    figure.png    the paper's figure, drawn from our data
    meta.json     commit, seed, versions, profile and its settings, wall time, command

While a run is under way its completed steps live in ``<out>/<paper>/.checkpoint/``; a run
that is killed resumes from there when started again with the same profile and seed. The
four output files are first written to a staging directory and then moved into place, so a
reader never sees a half-written result; ``meta.json`` is moved last.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from neurips18.repro import registry
from neurips18.repro.core import Comparison, Outcome, Reproduction, RunContext, dumps

PROFILES = ("quick", "full")
OUTPUT_FILES = ("result.json", "table.md", "figure.png", "meta.json")


class OutputDirError(OSError):
    """The output directory cannot be created or written."""


@dataclass
class RunResult:
    name: str
    profile: str
    out_dir: Path
    outcome: Outcome
    wall_time_s: float
    resumed_steps: list[str]

    @property
    def failed(self) -> list[Comparison]:
        return [c for c in self.outcome.comparisons if c.verdict == "fail"]


def check_writable(out: Path) -> None:
    """Raise :class:`OutputDirError` unless ``out`` can hold result files."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or exc
        raise OutputDirError(f"cannot write results to {str(out)!r}: {reason}") from None


def _git_commit() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return {"commit": sha, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("neurips18", "numpy", "scipy", "scikit-learn", "torch", "pandas", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def format_table(rows: list[Comparison]) -> str:
    """The comparison rows as a Markdown table."""

    def num(v: float | None) -> str:
        return "not recovered" if v is None else f"{v:.4g}"

    lines = [
        "| metric | ours | paper / reference | source | tolerance | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in rows:
        ours = "n/a" if c.ours is None else f"{c.ours:.4g}"
        lines.append(
            f"| {c.metric} | {ours} | {num(c.paper)} | {c.source} | {c.tolerance} | "
            f"{c.verdict} |"
        )
    return "\n".join(lines) + "\n"


def _table_md(repro: Reproduction, outcome: Outcome, profile: str, seed: int) -> str:
    parts = [
        f"# {repro.title}\n",
        f"{repro.citation}\n",
        f"Profile `{profile}`, seed {seed}. Capability: `neurips18.{repro.capability}`.\n",
        format_table(outcome.comparisons),
    ]
    if outcome.notes:
        parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in outcome.notes) + "\n")
    return "\n".join(parts)


def _draw(repro: Reproduction, data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 4.5))
    try:
        if repro.plot is not None:
            repro.plot(data, fig)
        else:
            fig.text(0.5, 0.5, f"{repro.name}: no figure", ha="center")
        fig.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def run(
    name: str,
    *,
    profile: str = "quick",
    out: Path | str = "results",
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
) -> RunResult:
    """Run reproduction ``name`` and write ``<out>/<name>/``; resumes an interrupted run."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    repro = registry.get(name)
    if profile not in repro.profiles:
        raise ValueError(f"{name} has no profile {profile!r}; it has {sorted(repro.profiles)}")
    out = Path(out)
    check_writable(out)
    paper_dir = out / name
    ckpt = paper_dir / ".checkpoint" / f"{profile}-seed{seed}"
    ctx = RunContext(
        profile=profile,
        config=repro.profiles[profile],
        seed=seed,
        checkpoint_dir=ckpt,
        progress=progress,
        device=device,
    )
    # Wall time accumulates across interrupted attempts so meta.json tells the real cost.
    clock_file = ckpt / "_elapsed.json"
    previous = 0.0
    if clock_file.exists():
        try:
            previous = float(json.loads(clock_file.read_text())["elapsed_s"])
        except (OSError, ValueError, KeyError, TypeError):
            previous = 0.0
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        outcome = repro.run(ctx)
    finally:
        from neurips18.repro.core import atomic_write_text

        atomic_write_text(
            clock_file, dumps({"elapsed_s": previous + time.perf_counter() - t0})
        )
    wall = previous + time.perf_counter() - t0
    if not isinstance(outcome, Outcome):
        raise TypeError(f"{name}.run must return an Outcome, got {type(outcome).__name__}")

    counts = {v: sum(c.verdict == v for c in outcome.comparisons)
              for v in ("pass", "fail", "no-reference")}
    result = {
        "paper": name,
        "title": repro.title,
        "citation": repro.citation,
        "capability": repro.capability,
        "profile": profile,
        "seed": seed,
        "summary": counts,
        "comparisons": [c.to_dict() for c in outcome.comparisons],
        "notes": outcome.notes,
        "data": outcome.data,
    }
    meta = {
        **_git_commit(),
        "paper": name,
        "profile": profile,
        "config": dict(repro.profiles[profile]),
        "seed": seed,
        "device": device,
        "versions": _versions(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": _torch_threads(),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 3),
        "resumed_steps": ctx.resumed_steps,
        "computed_steps": ctx.computed_steps,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    paper_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=paper_dir))
    try:
        (staging / "result.json").write_text(dumps(result), encoding="utf-8")
        (staging / "table.md").write_text(_table_md(repro, outcome, profile, seed), "utf-8")
        _draw(repro, outcome.data, staging / "figure.png")
        (staging / "meta.json").write_text(dumps(meta), encoding="utf-8")
        for fname in OUTPUT_FILES:  # meta.json last: its presence marks a complete result
            os.replace(staging / fname, paper_dir / fname)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(ckpt, ignore_errors=True)
    try:
        ckpt.parent.rmdir()  # only when no other profile/seed has a run under way
    except OSError:
        pass
    return RunResult(name, profile, paper_dir, outcome, wall, ctx.resumed_steps)


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].get_num_threads())


def last_status(out: Path | str, name: str) -> str:
    """A one-word status of the last finished run of ``name`` under ``out``."""
    path = Path(out) / name / "result.json"
    if not (Path(out) / name / "meta.json").exists() or not path.exists():
        return "not run"
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
        s = res["summary"]
        return f"{res['profile']}: {s['pass']} pass, {s['fail']} fail, {s['no-reference']} no-ref"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable"
