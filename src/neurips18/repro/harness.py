"""Run a reproduction in a profile and write its outputs atomically.

Layout of ``<out>/<paper>/`` after a finished run::

    result.json   comparison rows (metric, ours, paper, source, tolerance, verdict) + data
    table.md      the same rows as a Markdown table, with the citation and profile
    figure.png    the paper's figure, drawn from our data
    meta.json     commit, seed, versions, profile and its settings, wall time, command

While a run is under way its completed steps live in ``<out>/<paper>/.checkpoint/``; a run
that is killed resumes from there when started again with the same profile and seed (and the
same code and settings: a checkpoint written by other ones is discarded). The
four output files are first written to a staging directory and then moved into place, so a
reader never sees a half-written result; ``meta.json`` is moved last.
"""

from __future__ import annotations

import json
import numbers
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from neurips18.repro import registry
from neurips18.repro.core import (
    Comparison,
    Judgement,
    Profile,
    Reproduction,
    RunContext,
    atomic_write_text,
    dumps,
    validate_profile,
)

OUTPUT_FILES = ("result.json", "table.md", "figure.png", "meta.json")

# The largest base seed: the reproductions hand seeds derived from it (the base plus
# offsets well below a million) to scikit-learn, which takes seeds below 2**32 only, so a
# base seed near 2**32 made a paper stop with an error after part of its work was done.
MAX_SEED = 2**31 - 1


class OutputDirError(OSError):
    """The output directory cannot be created or written."""


class RunInProgressError(OutputDirError):
    """Another process is running or re-judging the same paper into the same directory."""


@contextmanager
def _exclusive(paper_dir: Path) -> Iterator[None]:
    """Hold ``<paper_dir>/.lock`` for the duration, or raise :class:`RunInProgressError`.

    Two runs of one paper into one directory share its checkpoint (one run's settings
    check discards or re-stamps the other's steps) and replace each other's output files
    one by one, which can leave a result.json of one run beside the meta.json of the
    other; the second run is refused instead."""
    import fcntl

    lock = paper_dir / ".lock"
    try:
        paper_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a file where the paper's folder goes: not a crash
        raise OutputDirError(f"cannot write results to {str(paper_dir)!r}: "
                             f"{exc.strerror or exc}") from None
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunInProgressError(
                f"another neurips18 process is writing {str(paper_dir)!r} (its lock "
                f"{str(lock)!r} is held); wait for it to finish or use another --out"
            ) from None
        try:  # the holder before us may have removed the file after we opened it
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


@dataclass
class RunResult:
    name: str
    profile: str
    out_dir: Path
    judgement: Judgement
    data: dict[str, Any]
    wall_time_s: float
    resumed_steps: list[str]
    skipped: dict[str, str]

    @property
    def rows(self) -> list[Comparison]:
        return self.judgement.rows

    @property
    def failed(self) -> list[Comparison]:
        return [c for c in self.judgement.rows if c.verdict == "fail"]


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


# What decides a run's numbers: a change here makes the checkout "dirty". Outputs
# (results/, docs/) written by this or a concurrent run do not.
_CODE_PATHS = ("src", "pyproject.toml")


def _git_commit(root: Path | None = None) -> dict[str, Any]:
    """The checkout's commit and whether its code differs from it: a tracked file under
    ``_CODE_PATHS`` changed, or a file there that git does not know and does not ignore (a
    new module, such as a paper added beside the others, is code the commit lacks).
    Called when a run starts, so it describes the code that ran."""
    root = Path(__file__).resolve().parents[3] if root is None else root
    try:
        # Only a checkout whose top is ``root`` describes this code. A package installed
        # into a virtual environment kept inside some repository (``.venv/lib/python3.x/
        # site-packages``) would otherwise be stamped with that repository's commit, and
        # as clean, whatever code was installed.
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        if not top or not os.path.samefile(top, root):
            return {"commit": None, "dirty": None}
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all", "--",
             *_CODE_PATHS],
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


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def format_table(rows: list[Comparison]) -> str:
    """The comparison rows as a Markdown table (a 95 % interval beside a mean over seeds)."""
    lines = [
        "| metric | ours | paper / reference | source | tolerance | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in rows:
        ours = _num(c.ours)
        if c.interval is not None:
            ours += f" [{c.interval[0]:.4g}, {c.interval[1]:.4g}]"
        if c.n:
            ours += f" (n={c.n})"
        ref = "not recovered" if c.paper is None else f"{c.paper:.4g}"
        lines.append(f"| {c.metric} | {ours} | {ref} | {c.source} | {c.tolerance} | "
                     f"{c.verdict} |")
    return "\n".join(lines) + "\n"


def _table_md(res: dict[str, Any], rows: list[Comparison], notes: list[str]) -> str:
    parts = [
        f"# {res['title']}\n",
        f"{res['citation']}\n",
        f"Profile `{res['profile']}`, seed {res['seed']}, {res.get('threads', '?')} thread(s). "
        f"Capability: `neurips18.{res['capability']}`.\n",
        format_table(rows),
    ]
    if notes:
        parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)


def _draw(repro: Reproduction, data: dict[str, Any], path: Path) -> None:
    # a Figure of its own, outside pyplot: selecting the Agg backend for it switched the
    # caller's backend for good (a notebook's inline one: its plots stopped showing)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5))
    if repro.plot is not None:
        repro.plot(data, fig)
    else:
        fig.text(0.5, 0.5, f"{repro.name}: no figure", ha="center")
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads and ``n`` BLAS/OpenMP threads; restore after."""
    from threadpoolctl import threadpool_limits

    torch = _maybe_torch()
    before = torch.get_num_threads() if torch is not None else None
    try:
        with threadpool_limits(limits=n):
            if torch is not None:
                torch.set_num_threads(n)
            yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)


def _maybe_torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch


def check_device(device: str, repro: Reproduction, *, quiet: bool = False) -> str:
    """The device the run really uses: ``device`` when the paper trains on it (refused when
    this machine lacks it), ``"cpu"`` for a paper that computes on the CPU only (with a
    word on stderr when another device was asked for), so meta.json tells the truth."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got "
                         f"{device!r}") from exc
    if not repro.uses_device:
        if dev.type != "cpu" and not quiet:
            print(f"neurips18: {repro.name} computes on the CPU only; --device {device} is "
                  "not used (meta.json records 'cpu')", file=sys.stderr)
        return "cpu"
    if dev.type == "cuda" and (not torch.cuda.is_available() or (
            dev.index is not None and dev.index >= torch.cuda.device_count())):
        raise ValueError(f"device {device!r} is not available on this machine "
                         f"({torch.cuda.device_count()} CUDA devices)")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: the reproductions run on 'cpu' or 'cuda'")
    return str(device)


def _probe_needs(repro: Reproduction) -> dict[str, str]:
    """The parts whose data is absent, with the reason. A file that is present but wrong
    (a checksum or parse error) is raised, never skipped: a corrupted data set must stop
    the run (exit 2), not quietly leave out the rows that use it."""
    from neurips18.datasets import DatasetNotFoundError

    skipped = {}
    for part, probe in repro.needs.items():
        try:
            probe()
        except DatasetNotFoundError as exc:
            skipped[part] = str(exc).splitlines()[0].removesuffix(" Looked in:")
    return skipped


def judge(repro: Reproduction, data: dict[str, Any], config: Profile,
          skipped: Mapping[str, str]) -> Judgement:
    """The module's verdicts on ``data`` (pure), with a note for every skipped part."""
    j = repro.judge(data, config)
    if not isinstance(j, Judgement):
        raise TypeError(f"{repro.name}.judge must return a Judgement, got {type(j).__name__}")
    notes = list(j.notes)
    for part, why in skipped.items():
        notes.append(f"Part '{part}' was skipped: its data is absent ({why}).")
    return Judgement(rows=list(j.rows), notes=notes)


def _summary(rows: list[Comparison]) -> dict[str, int]:
    return {v: sum(c.verdict == v for c in rows) for v in ("pass", "fail", "no-reference")}


def _write_outputs(paper_dir: Path, repro: Reproduction, result: dict[str, Any],
                   rows: list[Comparison], notes: list[str], meta: dict[str, Any]) -> None:
    paper_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=paper_dir))
    try:
        (staging / "result.json").write_text(dumps(result), encoding="utf-8")
        (staging / "table.md").write_text(_table_md(result, rows, notes), "utf-8")
        _draw(repro, result["data"], staging / "figure.png")
        (staging / "meta.json").write_text(dumps(meta), encoding="utf-8")
        # The previous run's meta.json goes first: were it kept while the other files are
        # replaced, a reader in between (or a crash) would pair this run's result.json with
        # the other run's commit, seed and settings.
        (paper_dir / "meta.json").unlink(missing_ok=True)
        for fname in OUTPUT_FILES:  # meta.json last: its presence marks a complete result
            os.replace(staging / fname, paper_dir / fname)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(
    name: str,
    *,
    profile: str = "quick",
    out: Path | str = "results",
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
    threads_override: int | None = None,
) -> RunResult:
    """Run reproduction ``name`` and write ``<out>/<name>/``; resumes an interrupted run.

    The thread count comes from the profile (``threads_override`` replaces it and is
    recorded), so the same command and seed give the same digits on any machine.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a non-negative integer at most {MAX_SEED}, got "
                         f"{seed!r}")
    repro = registry.get(name)
    cfg = repro.config(profile)
    validate_profile(profile, cfg)
    device = check_device(device, repro)
    # int() made 2.7 two threads and True one, without a word
    if threads_override is not None and (isinstance(threads_override, bool) or not isinstance(
            threads_override, numbers.Integral)):
        raise ValueError(f"threads_override must be an integer in [1, 256] or None, got "
                         f"{threads_override!r}")
    n_threads = cfg.threads if threads_override is None else int(threads_override)
    if not 1 <= n_threads <= 256:
        raise ValueError(f"threads must be in [1, 256], got {n_threads}")
    out = Path(out)
    check_writable(out)
    with _exclusive(out / name):
        return _run_locked(name, repro, profile, cfg, out, seed, progress, device,
                           n_threads)


def _run_locked(name: str, repro: Reproduction, profile: str, cfg: Profile, out: Path,
                seed: int, progress: bool, device: str, n_threads: int) -> RunResult:
    paper_dir = out / name
    ckpt = paper_dir / ".checkpoint" / f"{profile}-seed{seed}-threads{n_threads}"
    # the device is a setting: steps computed on one device are not resumed on another
    _discard_stale_checkpoint(ckpt, {**cfg.to_dict(), "_device": device})
    skipped = _probe_needs(repro)
    ctx = RunContext(profile=profile, config=cfg, seed=seed, checkpoint_dir=ckpt,
                     progress=progress, device=device, skipped=skipped)
    # Wall time accumulates across interrupted attempts so meta.json tells the real cost.
    clock_file = ckpt / "_elapsed.json"
    previous = 0.0
    if clock_file.exists():
        try:
            previous = float(json.loads(clock_file.read_text())["elapsed_s"])
        except (OSError, ValueError, KeyError, TypeError):
            previous = 0.0
    started = datetime.now(UTC)
    commit = _git_commit()  # the code this run starts from
    t0 = time.perf_counter()
    try:
        with threads(n_threads):
            data = repro.run(ctx)
    finally:
        atomic_write_text(clock_file, dumps({"elapsed_s": previous + time.perf_counter() - t0}))
    wall = previous + time.perf_counter() - t0
    if not isinstance(data, dict):
        raise TypeError(f"{name}.run must return a dict of data, got {type(data).__name__}")
    data = json.loads(dumps(data))  # what rejudge will read back, exactly
    j = judge(repro, data, cfg, skipped)
    result = {
        "paper": name,
        "title": repro.title,
        "citation": repro.citation,
        "capability": repro.capability,
        "profile": profile,
        "seed": seed,
        "threads": n_threads,
        "config": cfg.to_dict(),
        "skipped": skipped,
        "summary": _summary(j.rows),
        "comparisons": [c.to_dict() for c in j.rows],
        "notes": j.notes,
        "data": data,
    }
    meta = {
        **commit,
        "paper": name,
        "profile": profile,
        "config": cfg.to_dict(),
        "seed": seed,
        "threads": n_threads,
        "device": device,
        "versions": _versions(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 3),
        "resumed_steps": ctx.resumed_steps,
        "computed_steps": ctx.computed_steps,
        # quoted as a shell would need it, so that it can be pasted back (an --out with
        # a space in it)
        "command": shlex.join(["neurips18", *sys.argv[1:]]) if sys.argv[0].endswith(
            ("neurips18", "cli.py")) else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    _write_outputs(paper_dir, repro, result, j.rows, j.notes, meta)
    shutil.rmtree(ckpt, ignore_errors=True)
    try:
        ckpt.parent.rmdir()  # only when no other profile/seed has a run under way
    except OSError:
        pass
    return RunResult(name, profile, paper_dir, j, data, wall, ctx.resumed_steps, skipped)


# Derived files that are not part of what decides a run's numbers.
_NOT_FINGERPRINTED = frozenset({".pyc", ".pyo"})


def _code_fingerprint(config: Mapping[str, Any]) -> str:
    """A hash of the package's own files, the versions of Python and of the libraries
    meta.json lists, and the profile's settings: a checkpoint is resumed only by the code
    and settings that wrote it. Every file the package ships counts, not only its sources:
    the shipped model weights (``coding/weights/*.pt``) decide the numbers of the steps
    that evaluate them. The libraries count too: after an upgrade between an interrupted
    run and its resumption (torch, scikit-learn), the result mixed steps computed by two
    versions while meta.json named only the second."""
    import hashlib

    import neurips18

    h = hashlib.sha256(dumps(dict(config)).encode())
    h.update(dumps(_versions()).encode())
    root = Path(neurips18.__file__).resolve().parent
    for f in sorted(root.rglob("*")):
        if (f.is_file() and "__pycache__" not in f.relative_to(root).parts
                and f.suffix not in _NOT_FINGERPRINTED):
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()


def _discard_stale_checkpoint(ckpt: Path, config: Mapping[str, Any]) -> None:
    """Keep ``ckpt`` only when the code and settings that wrote it are the current ones;
    otherwise remove it (saying so on stderr), so a run never mixes steps computed by two
    versions of the code. Leave the current fingerprint in it for the next attempt."""
    stamp = ckpt / "_code.json"
    now = _code_fingerprint(config)
    if ckpt.exists():
        try:
            then = json.loads(stamp.read_text(encoding="utf-8"))["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            then = None
        if then != now:
            if any(p.name != "_elapsed.json" for p in ckpt.glob("*.json")):
                print(f"neurips18: discarding the checkpoint in {ckpt}: it was written by "
                      "other code or settings than this run's", file=sys.stderr)
            shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, dumps({"fingerprint": now}))


def _nested_dataclass(tp: Any) -> Any:
    """The dataclass a field annotation stands for (``Inner`` or ``Inner | None``), else
    ``None``; dict-valued fields are values, not nested settings, and are never merged."""
    import dataclasses
    import types
    import typing

    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def _fill_config(cls: Any, current: Mapping[str, Any], stored: Mapping[str, Any],
                 where: str = "") -> tuple[dict[str, Any], list[str]]:
    """``stored`` (the run's settings) with every field it lacks taken from ``current``
    (the profile now), nested dataclasses field by field; and the dotted names filled."""
    import dataclasses

    from neurips18.repro.core import _hints

    hints = _hints(cls)
    out = dict(stored)
    filled: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name not in stored:
            if f.name in current:
                out[f.name] = current[f.name]
                filled.append(where + f.name)
            continue
        sub = _nested_dataclass(hints[f.name])
        if (sub is not None and isinstance(stored[f.name], Mapping)
                and isinstance(current.get(f.name), Mapping)):
            out[f.name], more = _fill_config(sub, current[f.name], stored[f.name],
                                             f"{where}{f.name}.")
            filled += more
    return out, sorted(filled)


def rejudge(name: str, *, out: Path | str = "results") -> RunResult:
    """Rebuild the verdicts, ``table.md`` and the figure of ``<out>/<name>/`` from its
    ``result.json`` with the current judge and references, without rerunning anything.
    ``meta.json`` records when and at which commit the rejudging happened."""
    repro = registry.get(name)
    paper_dir = Path(out) / name
    if not paper_dir.is_dir():
        raise FileNotFoundError(f"no finished result in {paper_dir} (result.json and "
                                "meta.json are needed); run `neurips18 reproduce` first")
    with _exclusive(paper_dir):
        return _rejudge_locked(name, repro, paper_dir)


def _rejudge_locked(name: str, repro: Reproduction, paper_dir: Path) -> RunResult:
    res_file, meta_file = paper_dir / "result.json", paper_dir / "meta.json"
    if not (res_file.exists() and meta_file.exists()):
        raise FileNotFoundError(f"no finished result in {paper_dir} (result.json and "
                                "meta.json are needed); run `neurips18 reproduce` first")
    res = json.loads(res_file.read_text(encoding="utf-8"))
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    missing = [k for k in ("profile", "config", "data") if k not in res]
    if missing:  # a result.json of an older format, or not a result at all
        raise ValueError(f"{res_file} lacks {', '.join(map(repr, missing))} (written by an "
                       "older version of neurips18?); rerun it with `neurips18 reproduce "
                       f"{name}` instead")
    current = repro.config(res["profile"])
    # a field added to the config since the run (a judging setting) takes the profile's
    # value, inside a nested settings dataclass too (there it took the class default, or
    # failed without one, and was not recorded)
    merged, filled = _fill_config(type(current), current.to_dict(), dict(res["config"]))
    cfg = type(current).from_dict(merged)
    validate_profile(res["profile"], cfg)
    skipped = dict(res.get("skipped", {}))
    j = judge(repro, res["data"], cfg, skipped)
    res.update(title=repro.title, citation=repro.citation, capability=repro.capability,
               summary=_summary(j.rows), comparisons=[c.to_dict() for c in j.rows],
               notes=j.notes)
    commit = _git_commit()
    meta.setdefault("rejudged", []).append({
        "utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit["commit"], "dirty": commit["dirty"],
        "config_fields_from_the_current_profile": filled,
    })
    res["config"] = cfg.to_dict()
    _write_outputs(paper_dir, repro, res, j.rows, j.notes, meta)
    return RunResult(name, res["profile"], paper_dir, j, res["data"],
                     float(meta.get("wall_time_s", 0.0)), [], skipped)


def last_status(out: Path | str, name: str) -> str:
    """A one-word status of the last finished run of ``name`` under ``out``."""
    path = Path(out) / name / "result.json"
    if not (Path(out) / name / "meta.json").exists() or not path.exists():
        return "not run"
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
        s = res["summary"]
        skipped = sorted(res.get("skipped") or {})
        return (f"{res['profile']}: {s['pass']} pass, {s['fail']} fail, {s['no-reference']} "
                "no-ref" + (f", skipped {', '.join(skipped)} (no data)" if skipped else ""))
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable"
