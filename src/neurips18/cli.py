"""The ``neurips18`` command: list, reproduce, rejudge, report, bench.

Exit codes: 0 when every reproduced number is within tolerance (or has no reference),
1 when some reproduced number is outside its tolerance, 2 for usage or data errors, 3 when
a paper's run (or, in ``rejudge``, its judge) stopped with an error (a crash: its rows were
not judged; in ``reproduce`` the other papers still run), 130 when interrupted (143 when
``reproduce`` is stopped by SIGTERM; with ``--jobs`` its children are stopped too).
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
EXIT_TERMINATED = 128 + 15  # the shell's code for a SIGTERM


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 already; keep the message short
        self.print_usage(sys.stderr)
        print(f"neurips18: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    from neurips18 import __version__

    p = _Parser(prog="neurips18", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"neurips18 {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ls = sub.add_parser("list", help="papers, capabilities and the status of their last results")
    ls.add_argument("--results", default=None,
                    help="committed results directory (default: the checkout's results/)")
    ls.add_argument("--runs", default="runs",
                    help="local runs directory, as written by `reproduce` (default: runs)")

    rp = sub.add_parser("reproduce", help="run a paper's reproduction and print the comparison")
    rp.add_argument("paper", nargs="+",
                    help="one or more paper names from `neurips18 list`, or `all`")
    rp.add_argument("--profile", default="quick",
                    help="smoke (seconds: a plumbing check, too small to test the papers' "
                         "claims), quick (the main job) or full (the committed results)")
    rp.add_argument("--out", default=None,
                    help="output directory (default: runs/<profile>; the committed full-profile "
                         "results live in results/, written with --out results)")
    rp.add_argument("--seed", type=int, default=0,
                    help="base seed (default: 0). Every generator of a run is derived from "
                         "it, in most papers as S plus a small offset, so runs with nearby "
                         "base seeds can share draws: space independent replications by a "
                         "million (0, 1000000, 2000000, ...); at most 2147483647")
    rp.add_argument("--device", default="cpu",
                    help="torch device for the reproductions that train networks")
    rp.add_argument("--threads", type=int, default=None,
                    help="override the profile's thread count (recorded in meta.json)")
    rp.add_argument("--no-progress", action="store_true", help="hide progress bars")
    rp.add_argument("--jobs", type=int, default=None,
                    help="with `all`: papers run at once, each in its own process (default: "
                         "the CPUs this process may use); every paper keeps its profile's "
                         "thread count, so the results do not depend on --jobs")

    rj = sub.add_parser("rejudge", help="rebuild verdicts and table.md from a result.json "
                                        "without rerunning")
    rj.add_argument("paper", help="a paper name, or `all`")
    rj.add_argument("--out", default="results", help="results directory (default: results)")

    rep = sub.add_parser("report", help="collect results/ into one Markdown page")
    rep.add_argument("--results", default="results")
    rep.add_argument("--out", default="docs/results.md")

    b = sub.add_parser("bench", help="run the side-by-side benchmarks in benchmarks/")
    b.add_argument("name", nargs="?", help="benchmark name (default: list them)")
    b.add_argument("--dir", default="benchmarks", help="benchmarks directory")
    b.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    return p


def _err(msg: str) -> int:
    print(f"neurips18: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _checkout_results() -> Path:
    """``results/`` of the source checkout this package runs from, else ``./results``."""
    here = Path(__file__).resolve()
    for parent in here.parents[1:4]:
        if (parent / "pyproject.toml").is_file() and (parent / "results").is_dir():
            return parent / "results"
    return Path("results")


def _cmd_list(args: argparse.Namespace) -> int:
    from neurips18.repro import harness, registry

    if args.results is None:
        args.results = str(_checkout_results())

    header = ("paper", "capability", f"{args.results}/", f"latest in {args.runs}/", "title")
    rows: list[tuple[str, ...]] = []
    for name in registry.module_names():
        try:
            repro = registry.get(name)
        except Exception as exc:  # a broken module must not hide the others
            rows.append((name, "?", f"broken: {type(exc).__name__}: {exc}", "", ""))
            continue
        # runs/ holds one folder per --out (runs/quick/<paper>/); the folder given may also
        # be such an --out itself (--runs runs/quick), which showed every paper "not run"
        runs = Path(args.runs)
        local = [runs, *(p for p in runs.iterdir() if p.is_dir())] if runs.is_dir() else []
        done = [d for d in local if (d / name / "meta.json").exists()]
        latest = max(done, key=lambda d: (d / name / "meta.json").stat().st_mtime, default=None)
        rows.append((
            name, repro.capability, harness.last_status(args.results, name),
            harness.last_status(latest, name) if latest else "not run", repro.title,
        ))
    if not rows:
        print("no reproductions registered")
        return EXIT_OK
    w = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    for r in [header, *rows]:
        print("  ".join(f"{c:<{w[i]}}" for i, c in enumerate(r[:4])) + "  " + r[4])
    return EXIT_OK


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from neurips18.datasets import DataError
    from neurips18.repro import harness, registry

    if not 0 <= args.seed <= harness.MAX_SEED:
        return _err(f"--seed must be a non-negative integer at most {harness.MAX_SEED} "
                    f"(seeds derived from it go to scikit-learn, which takes them below "
                    f"2**32), got {args.seed}")
    if args.threads is not None and not 1 <= args.threads <= 256:
        return _err(f"--threads must be in [1, 256], got {args.threads}")
    if args.out is None:
        args.out = str(Path("runs") / args.profile)
    names = (registry.module_names() if "all" in args.paper
             else list(dict.fromkeys(args.paper)))
    try:
        for name in names:
            registry.get(name).config(args.profile)
            harness.check_device(args.device, registry.get(name), quiet=True)
    except registry.UnknownReproductionError as exc:
        return _err(str(exc))
    except ValueError as exc:
        return _err(str(exc))
    try:
        harness.check_writable(Path(args.out))
    except harness.OutputDirError as exc:
        return _err(str(exc))

    jobs = args.jobs if args.jobs is not None else _usable_cpus()
    if jobs < 1:
        return _err(f"--jobs must be a positive integer, got {jobs}")
    if len(names) > 1 and jobs > 1:
        return _reproduce_in_processes(names, args, min(jobs, len(names)))

    summary: list[tuple[str, ...]] = []
    any_fail = False
    data_error = False
    crashed = False
    for name in names:
        print(f"\n== {name} ({args.profile}) ==", flush=True)
        try:
            with _sigterm_raises():  # a SIGTERM still records the attempt's time
                res = harness.run(
                    name, profile=args.profile, out=args.out, seed=args.seed,
                    progress=not args.no_progress and sys.stderr.isatty(),
                    device=args.device, threads_override=args.threads,
                )
        except DataError as exc:
            print(f"neurips18: data error in {name}: {exc}", file=sys.stderr)
            summary.append((name, "-", "-", "-", "-", "data error"))
            data_error = True
            continue
        except harness.OutputDirError as exc:  # its folder is held or cannot be made
            print(f"neurips18: error: {exc}", file=sys.stderr)
            summary.append((name, "-", "-", "-", "-", "usage error"))
            data_error = True
            continue
        except (KeyboardInterrupt, _Terminated) as exc:
            print(f"\ninterrupted: rerun the same command to resume {name} from its "
                  "checkpoint", file=sys.stderr)
            return EXIT_TERMINATED if isinstance(exc, _Terminated) else 130
        except Exception as exc:  # a crash is not a failed tolerance: say so, go on
            import traceback

            traceback.print_exc(file=sys.stderr)
            print(f"neurips18: {name} stopped with an error ({type(exc).__name__}: {exc}); "
                  "its rows were not judged", file=sys.stderr)
            summary.append((name, "-", "-", "-", "-", f"error ({type(exc).__name__})"))
            crashed = True
            continue
        print(harness.format_table(res.rows), end="")
        for note in res.judgement.notes:
            print(f"  note: {note}")
        counts = {v: sum(c.verdict == v for c in res.rows) for v in ("pass", "fail",
                                                                     "no-reference")}
        any_fail |= counts["fail"] > 0
        resumed = f", resumed {len(res.resumed_steps)} steps" if res.resumed_steps else ""
        summary.append((name, str(counts["pass"]), str(counts["fail"]),
                        str(counts["no-reference"]), f"{res.wall_time_s:.1f}",
                        ("FAIL" if counts["fail"] else "ok") + resumed
                        + _skipped_status(res.skipped)))
    _print_summary(summary, Path(args.out), args.profile)
    if crashed:
        return EXIT_ERROR
    if data_error:
        return EXIT_USAGE
    return EXIT_FAIL if any_fail else EXIT_OK


_SUMMARY_HEADER = "\n== summary =="


SMOKE_NOTE = ("smoke profile: a plumbing check that runs in seconds, far too small to test "
              "the papers' claims, so its pass/fail verdicts say nothing about them; the "
              "claims are judged by --profile quick (the main job) and full")


def _print_summary(summary: list[tuple[str, ...]], out: Path, profile: str) -> None:
    print(_SUMMARY_HEADER)
    header = ("paper", "pass", "fail", "no-ref", "wall s", "status")
    w = [max(len(r[i]) for r in [header, *summary]) for i in range(len(header))]
    for r in [header, *summary]:
        print("  ".join(f"{c:<{w[i]}}" for i, c in enumerate(r)).rstrip())
    print(f"results: {out.resolve()}")
    if profile == "smoke":
        print(SMOKE_NOTE)


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _reproduce_in_processes(names: list[str], args: argparse.Namespace, jobs: int) -> int:
    """Run each paper in a child ``neurips18 reproduce <paper>`` (at most ``jobs`` at once) and
    print each one's output, in the registry's order, as soon as it and those before it are
    done. The children are the sequential command itself, so every paper computes exactly
    what it computes alone."""
    import subprocess
    import tempfile
    import time

    base = [sys.executable, "-m", "neurips18.cli", "reproduce", "--profile", args.profile,
            "--out", args.out, "--seed", str(args.seed), "--device", args.device,
            "--jobs", "1"]
    if args.threads is not None:
        base += ["--threads", str(args.threads)]
    if args.no_progress or not sys.stderr.isatty():
        base.append("--no-progress")
    print(f"running {len(names)} papers, {jobs} at a time (each in its own process)",
          flush=True)
    logs = tempfile.TemporaryDirectory(prefix="neurips18-reproduce-")
    # a SIGTERM (a scheduler's or `kill`'s stop) stops the children as an interruption does
    term = _sigterm_raises()
    term.__enter__()
    running: dict[str, tuple[subprocess.Popen[bytes], Any]] = {}
    codes: dict[str, int] = {}
    waiting = list(names)
    printed = 0
    summary: list[tuple[str, ...]] = []
    try:
        while printed < len(names):
            while waiting and len(running) < jobs:
                name = waiting.pop(0)
                log = open(Path(logs.name) / f"{name}.log", "w+b")  # noqa: SIM115
                proc = subprocess.Popen([*base[:4], name, *base[4:]], stdout=log,
                                        stderr=subprocess.STDOUT)
                running[name] = (proc, log)
            for name, (proc, _log) in list(running.items()):
                if proc.poll() is not None:
                    codes[name] = proc.returncode
            while printed < len(names) and names[printed] in codes:
                name = names[printed]
                proc, log = running.pop(name)
                log.seek(0)
                text = log.read().decode(errors="replace")
                log.close()
                cut = text.find(_SUMMARY_HEADER)
                sys.stdout.write(text if cut < 0 else text[:cut] + "\n")
                sys.stdout.flush()
                summary.append(_summary_row(name, Path(args.out), codes[name], cut >= 0,
                                            text[cut:] if cut >= 0 else ""))
                printed += 1
            if printed < len(names):
                time.sleep(0.2)
    except (KeyboardInterrupt, _Terminated) as exc:
        for proc, _ in running.values():
            proc.terminate()
        print("\ninterrupted: rerun the same command to resume from the checkpoints",
              file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, _Terminated) else 130
    finally:
        term.__exit__(None, None, None)
        for proc, log in running.values():
            proc.wait()
            log.close()
        logs.cleanup()
    _print_summary(summary, Path(args.out), args.profile)
    return _exit_code([r[-1] for r in summary])


class _Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """Raised in the main thread by a SIGTERM, so that cleanup (``finally``) runs."""


def _raise_terminated(signum: int, frame: Any) -> NoReturn:
    raise _Terminated


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within: a SIGTERM raises :class:`_Terminated` (the handler found is put back after).
    Without it the process ends at once: no ``finally`` runs, so an interrupted run kept
    no record of its time and left its children (``--jobs``) and logs behind."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals cannot be caught there
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_code(statuses: list[str]) -> int:
    """The command's exit code from its children's statuses: a crash first, then an
    interruption, then usage or data errors, then failed tolerances."""
    if any(s.startswith(("error", "exit")) for s in statuses):
        return EXIT_ERROR
    if "interrupted" in statuses:  # a child stopped by a signal of its own: not a pass
        return 130
    if any(s in ("data error", "usage error") for s in statuses):
        return EXIT_USAGE
    if any(s.startswith("FAIL") for s in statuses):
        return EXIT_FAIL
    return EXIT_OK


def _summary_row(name: str, out: Path, code: int, finished: bool,
                 child_summary: str = "") -> tuple[str, ...]:
    """The summary line of a paper run in a child process, from its exit code and files
    (``finished``: the child printed its summary, so its result files are this run's;
    ``child_summary``: that summary, whose status tells a usage error from a data error)."""
    import json

    if code in (130, EXIT_TERMINATED):
        return (name, "-", "-", "-", "-", "interrupted")
    if code == EXIT_USAGE:
        # exit 2 is a data error or a usage error (another process holds the paper's
        # folder): both read "data error" here, which sent one looking at the data
        mine = [line for line in child_summary.splitlines() if line.split()[:1] == [name]]
        usage = bool(mine) and mine[0].rstrip().endswith("usage error")
        return (name, "-", "-", "-", "-", "usage error" if usage else "data error")
    if code == EXIT_ERROR:
        return (name, "-", "-", "-", "-", "error")
    if code not in (EXIT_OK, EXIT_FAIL) or not finished:
        return (name, "-", "-", "-", "-", f"exit {code}")
    try:
        res = json.loads((out / name / "result.json").read_text(encoding="utf-8"))
        meta = json.loads((out / name / "meta.json").read_text(encoding="utf-8"))
        s = res["summary"]
    except (OSError, ValueError, KeyError):
        return (name, "-", "-", "-", "-", f"exit {code}")
    resumed = meta.get("resumed_steps") or []
    status = ("FAIL" if s["fail"] else "ok") + (f", resumed {len(resumed)} steps"
                                                 if resumed else "")
    status += _skipped_status(res.get("skipped") or {})
    return (name, str(s["pass"]), str(s["fail"]), str(s["no-reference"]),
            f"{float(meta.get('wall_time_s', 0.0)):.1f}", status)


def _skipped_status(skipped: Any) -> str:
    """The summary's word on parts left out for lack of data (their rows were not run)."""
    return f", skipped {', '.join(sorted(skipped))} (no data)" if skipped else ""


def _cmd_rejudge(args: argparse.Namespace) -> int:
    from neurips18.repro import harness, registry

    out = Path(args.out)
    if args.paper == "all":
        names = [n for n in registry.module_names() if (out / n / "result.json").exists()]
        if not names:  # a mistyped --out rebuilt nothing and still exited 0
            return _err(f"no result.json of a registered paper under {str(out)!r}; nothing "
                        "to rejudge (is --out the folder that `reproduce --out` wrote?)")
    else:
        names = [args.paper]
    # with `all`, a paper that cannot be rejudged does not stop the others (they were left
    # as they were without a word); the exit code is the worst one, as in `reproduce`
    any_fail = usage = crashed = False
    for name in names:
        try:
            res = harness.rejudge(name, out=out)
        except registry.UnknownReproductionError as exc:
            return _err(str(exc))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            _err(f"cannot rejudge {name}: {exc}")
            print(f"{name}: not rejudged (see the error above)")
            usage = True
            continue
        except Exception as exc:  # the judge itself broke: a crash, not a failed tolerance
            import traceback

            traceback.print_exc(file=sys.stderr)
            print(f"neurips18: rejudging {name} stopped with an error "
                  f"({type(exc).__name__}: {exc}); its rows were not judged", file=sys.stderr)
            print(f"{name}: not rejudged (its judge stopped with an error)")
            crashed = True
            continue
        fails = len(res.failed)
        any_fail |= fails > 0
        print(f"{name}: {len(res.rows)} rows, {fails} fail -> {res.out_dir}")
    if crashed:
        return EXIT_ERROR
    if usage:
        return EXIT_USAGE
    return EXIT_FAIL if any_fail else EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from neurips18.repro import report

    results = Path(args.results)
    if not results.is_dir():
        return _err(f"results directory {str(results)!r} does not exist; run `reproduce` first")
    try:
        path = report.write_report(results, Path(args.out))
    except report.UnreadableResultError as exc:
        return _err(str(exc))
    except OSError as exc:
        return _err(f"cannot write report {args.out!r}: {exc.strerror or exc}")
    print(f"wrote {path}")
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    bdir = Path(args.dir)
    if not bdir.is_dir():
        return _err(f"benchmarks directory {str(bdir)!r} not found (run from the repository root)")
    available = sorted(p.stem.removeprefix("bench_") for p in bdir.glob("bench_*.py"))
    if not args.name:
        print("benchmarks:", ", ".join(available) or "(none)")
        return EXIT_OK
    if args.name not in available:
        return _err(f"unknown benchmark {args.name!r}; available: {', '.join(available)}")
    # the benchmark reads its own arguments from sys.argv; the caller's are put back after
    saved = sys.argv
    sys.argv = [str(bdir / f"bench_{args.name}.py"), *args.args]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv = saved
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    handler = {
        "list": _cmd_list,
        "reproduce": _cmd_reproduce,
        "rejudge": _cmd_rejudge,
        "report": _cmd_report,
        "bench": _cmd_bench,
    }[args.command]
    try:
        return handler(args)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
