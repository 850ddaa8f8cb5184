"""The command line: listing, reproducing, reporting and its exit codes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neurips18 import cli
from neurips18.repro import Judgement, Profile, Reference, References, Reproduction, registry

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-m", "neurips18.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=120,
    )


def test_list_works_without_results(tmp_path):
    r = _run("list", "--results", str(tmp_path / "a"), "--runs", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("not run") == 2 * len(registry.module_names())
    for name in registry.module_names():
        assert name in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["reproduce", "no-such-paper"], "unknown paper 'no-such-paper'"),
        (["reproduce", "all", "--profile", "medium"], "has no profile 'medium'"),
        (["reproduce", "all", "--seed", "-3"], "--seed must be a non-negative integer"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args, message):
    r = _run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_output_dir_exits_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = _run("reproduce", "all", "--out", str(blocker / "results"))
    assert r.returncode == 2
    assert "cannot write results" in r.stderr and "Traceback" not in r.stderr


def test_report_on_missing_results_exits_2(tmp_path):
    r = _run("report", "--results", str(tmp_path / "none"))
    assert r.returncode == 2 and "does not exist" in r.stderr


@dataclasses.dataclass(frozen=True)
class _Cfg(Profile):
    pass


def _toy(run, ours_ref=1.0):
    refs = References(Reference("m", "m", ours_ref, source="closed form", tol=0.01))
    return Reproduction(
        name="toy", title="Toy", citation="c", capability="none",
        profiles={"smoke": _Cfg(), "quick": _Cfg(), "full": _Cfg()}, references=refs,
        run=run, judge=lambda data, cfg: Judgement([refs.row("m", data["m"])]),
    )


def test_exit_codes_follow_verdicts(tmp_path, monkeypatch, capsys):
    def make(ours):
        return _toy(lambda ctx: {"m": ours})

    repros = {"toy": make(1.0)}
    monkeypatch.setattr(registry, "get", lambda n: repros[n] if n in repros else
                        (_ for _ in ()).throw(registry.UnknownReproductionError(n)))
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| m | 1 | 1 | closed form |" in out
    # the last lines: one summary table (paper, pass, fail, no-ref, wall time) and the path
    tail = out.strip().splitlines()[-3:]
    assert tail[0].split() == ["paper", "pass", "fail", "no-ref", "wall", "s", "status"]
    assert tail[1].split()[:4] == ["toy", "1", "0", "0"] and tail[2].startswith("results: ")
    repros["toy"] = make(2.0)
    assert cli.main(["reproduce", "all", "--out", str(tmp_path), "--no-progress"]) == 1
    runs = tmp_path / "runs"
    assert cli.main(["reproduce", "toy", "--out", str(runs / "quick"), "--no-progress"]) == 1
    capsys.readouterr()
    assert cli.main(["list", "--results", str(tmp_path), "--runs", str(runs)]) == 0
    listing_out = capsys.readouterr().out
    assert listing_out.count("quick: 0 pass, 1 fail, 0 no-ref") == 2  # results/ and runs/
    out = tmp_path / "docs" / "report.md"
    assert cli.main(["report", "--results", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## toy: Toy" in text and "| fail |" in text
    assert "](../toy/figure.png)" in text  # relative to the report's own folder
    assert "uncommitted" not in text or "**with uncommitted changes**" in text
    meta_file = tmp_path / "toy" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta.update(commit="0123456789abcdef", dirty=True)
    meta_file.write_text(json.dumps(meta))
    assert cli.main(["report", "--results", str(tmp_path), "--out", str(out)]) == 0
    assert "`0123456789ab` **with uncommitted changes**" in out.read_text()
    listing = json.loads((tmp_path / "toy" / "result.json").read_text())
    assert listing["summary"]["fail"] == 1
    # a tolerance fix is a rejudge, not a rerun
    repros["toy"] = _toy(lambda ctx: (_ for _ in ()).throw(AssertionError("reran")), 2.0)
    assert cli.main(["rejudge", "toy", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "toy" / "result.json").read_text())["summary"]["fail"] == 0


def test_a_crashing_paper_exits_3_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    """A paper whose run raised an exception ended the whole command with exit 1, the code
    of a failed tolerance, and the papers after it never ran."""

    def crash(ctx):
        raise RuntimeError("boom in the paper's code")

    repros = {"toy": _toy(crash), "toy2": dataclasses.replace(_toy(lambda ctx: {"m": 1.0}),
                                                             name="toy2")}
    monkeypatch.setattr(registry, "get", lambda n: repros[n])
    monkeypatch.setattr(registry, "module_names", lambda: ["toy", "toy2"])
    code = cli.main(["reproduce", "all", "--out", str(tmp_path), "--no-progress",
                     "--jobs", "1"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_ERROR == 3
    assert "boom in the paper's code" in captured.err and "Traceback" in captured.err
    rows = {line.split()[0]: line for line in captured.out.splitlines()
            if line.startswith(("toy ", "toy2 "))}
    assert "error (RuntimeError)" in rows["toy"]
    assert rows["toy2"].split()[:4] == ["toy2", "1", "0", "0"]
    assert (tmp_path / "toy2" / "result.json").exists()


def test_child_exit_codes_map_to_statuses(tmp_path):
    """In --jobs mode a child that crashed (exit 3, or any code that is not a verdict) or
    was interrupted must not let the command exit 0 or 1 as if it had been judged."""
    assert cli._summary_row("p", tmp_path, cli.EXIT_ERROR, False)[-1] == "error"
    assert cli._summary_row("p", tmp_path, 1, False)[-1] == "exit 1"
    assert cli._summary_row("p", tmp_path, -9, False)[-1] == "exit -9"
    assert cli._summary_row("p", tmp_path, 130, False)[-1] == "interrupted"


def test_a_jobs_child_refused_for_a_held_folder_reads_usage_error(tmp_path):
    """With --jobs, a paper whose folder another process was writing (the child's own
    summary said "usage error") was listed as "data error"."""
    def child(status):
        return ("\n== summary ==\npaper  pass  fail  no-ref  wall s  status\n"
                f"p      -     -     -       -       {status}\nresults: {tmp_path}\n")

    assert cli._summary_row("p", tmp_path, 2, True, child("usage error"))[-1] == "usage error"
    assert cli._summary_row("p", tmp_path, 2, True, child("data error"))[-1] == "data error"
    assert cli._summary_row("p", tmp_path, 2, False)[-1] == "data error"
    assert cli._exit_code(["ok", "usage error"]) == cli.EXIT_USAGE
    assert cli._exit_code(["ok", "FAIL", "exit 1"]) == cli.EXIT_ERROR
    assert cli._exit_code(["ok", "error"]) == cli.EXIT_ERROR
    assert cli._exit_code(["ok", "interrupted", "FAIL"]) == 130  # was 1, or 0 without FAIL
    assert cli._exit_code(["ok", "data error", "FAIL"]) == cli.EXIT_USAGE
    assert cli._exit_code(["ok", "FAIL, resumed 2 steps"]) == cli.EXIT_FAIL
    assert cli._exit_code(["ok", "ok, skipped covertype (no data)"]) == cli.EXIT_OK


def test_data_error_exits_2(tmp_path, monkeypatch, capsys):
    from neurips18.datasets import DatasetNotFoundError

    def run(ctx):
        raise DatasetNotFoundError("data file x/y not found")

    repro = _toy(run)
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path)]) == 2
    assert "data file x/y not found" in capsys.readouterr().err


def test_corrupt_data_is_a_data_error_and_absent_data_is_named(tmp_path, monkeypatch, capsys):
    """A checksum error in a part's probe was taken for absent data: the part was
    skipped, the summary said a bare 'ok' and the run exited 0."""
    import dataclasses

    from neurips18.datasets import ChecksumError, DatasetNotFoundError

    def probe(exc):
        def f():
            raise exc
        return f

    base = _toy(lambda ctx: {"m": 1.0})
    repros = {"toy": dataclasses.replace(base, needs={"real": probe(ChecksumError("bad x"))})}
    monkeypatch.setattr(registry, "get", lambda n: repros[n])
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "bad x" in capsys.readouterr().err
    repros["toy"] = dataclasses.replace(
        base, needs={"real": probe(DatasetNotFoundError("x not found"))})
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "ok, skipped real (no data)" in capsys.readouterr().out
    assert cli.main(["list", "--results", str(tmp_path), "--runs", str(tmp_path)]) == 0
    assert "skipped real (no data)" in capsys.readouterr().out


def test_the_device_recorded_is_the_one_used(tmp_path, monkeypatch, capsys):
    import dataclasses

    repros = {"toy": _toy(lambda ctx: {"m": 1.0})}
    monkeypatch.setattr(registry, "get", lambda n: repros[n])
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress",
                     "--device", "cuda:3"]) == 0  # a CPU-only paper: the device is not used
    assert "not used" in capsys.readouterr().err
    assert json.loads((tmp_path / "toy" / "meta.json").read_text())["device"] == "cpu"
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--device", "bogus"]) == 2
    repros["toy"] = dataclasses.replace(repros["toy"], uses_device=True)
    import torch

    if not torch.cuda.is_available():
        assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress",
                         "--device", "cuda:0"]) == 2
        assert "not available on this machine" in capsys.readouterr().err


def test_version_and_list_from_another_directory(tmp_path):
    from neurips18 import __version__

    r = _run("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"neurips18 {__version__}"
    # run from elsewhere, `list` still finds the checkout's committed results/
    r = _run("list", "--runs", str(tmp_path / "none"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    committed = [p.name for p in (REPO / "results").iterdir() if (p / "meta.json").exists()]
    assert committed and all("full: " in line for line in r.stdout.splitlines()
                             if line.split()[:1] and line.split()[0] in committed)


def _data_without_timings(path: Path) -> dict:
    res = json.loads(path.read_text())

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not k.endswith("seconds")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(res["data"])


def test_papers_in_parallel_processes_give_the_sequential_results(tmp_path):
    papers = ["mrs", "dp_kmeans"]
    seq = _run("reproduce", *papers, "--profile", "smoke", "--out", str(tmp_path / "seq"),
               "--jobs", "1", cwd=tmp_path)
    par = _run("reproduce", *papers, "--profile", "smoke", "--out", str(tmp_path / "par"),
               "--jobs", "2", cwd=tmp_path)
    assert seq.returncode == par.returncode, (seq.stdout[-2000:], par.stdout[-2000:])
    assert "2 at a time" in par.stdout
    # each paper's table is printed whole and in the order asked for, then one summary
    assert par.stdout.index("== mrs (smoke) ==") < par.stdout.index("== dp_kmeans (smoke) ==")
    assert par.stdout.count("== summary ==") == 1
    # a smoke run says that its verdicts are not a test of the claims
    for run in (seq, par):
        assert run.stdout.rstrip().endswith(cli.SMOKE_NOTE)
    rows = {line.split()[0]: line.split()[1:4] for line in par.stdout.splitlines()
            if line.split()[:1] in (["mrs"], ["dp_kmeans"])}
    for name in papers:
        res = json.loads((tmp_path / "par" / name / "result.json").read_text())
        s = res["summary"]
        assert rows[name] == [str(s["pass"]), str(s["fail"]), str(s["no-reference"])]
        assert _data_without_timings(tmp_path / "par" / name / "result.json") == \
            _data_without_timings(tmp_path / "seq" / name / "result.json")


def test_jobs_must_be_positive():
    r = _run("reproduce", "all", "--jobs", "0")
    assert r.returncode == 2 and "--jobs must be a positive integer" in r.stderr


def test_a_run_while_another_writes_the_folder_exits_2(tmp_path, monkeypatch, capsys):
    from neurips18.repro import harness

    repro = _toy(lambda ctx: {"v": 1.0})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    with harness._exclusive(tmp_path / "toy"):
        assert cli.main(["reproduce", "toy", "--out", str(tmp_path)]) == 2
        captured = capsys.readouterr()
        assert "another neurips18 process" in captured.err and "usage error" in captured.out
    assert not (tmp_path / "toy" / "result.json").exists()


def test_a_file_where_the_papers_folder_goes_exits_2_not_3(tmp_path, monkeypatch, capsys):
    """--out holding a file named like the paper passed the writability check, then made
    the run stop with a FileExistsError traceback, status "error" and exit 3: the code of a
    paper that crashed, for a problem with the output folder."""
    repro = _toy(lambda ctx: {"m": 1.0})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    (tmp_path / "toy").write_text("not a folder\n")
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "cannot write results to" in captured.err and "Traceback" not in captured.err
    assert "usage error" in captured.out
    assert (tmp_path / "toy").read_text() == "not a folder\n"


def test_a_judge_that_crashes_in_rejudge_exits_3(tmp_path, monkeypatch, capsys):
    """rejudge let an exception of the judge (an IndexError on data of another shape)
    escape as a traceback with exit 1, the code of a failed tolerance."""
    repros = {"toy": _toy(lambda ctx: {"m": 1.0})}
    monkeypatch.setattr(registry, "get", lambda n: repros[n])
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0

    def broken(data, cfg):
        return Judgement([[][0]])

    repros["toy"] = dataclasses.replace(repros["toy"], judge=broken)
    capsys.readouterr()
    assert cli.main(["rejudge", "toy", "--out", str(tmp_path)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "IndexError" in err and "rejudging toy stopped with an error" in err


@pytest.mark.parametrize("damage, code", [("old format", 2), ("judge crashes", 3)])
def test_rejudge_all_goes_on_past_a_paper_it_cannot_rejudge(tmp_path, monkeypatch, capsys,
                                                             damage, code):
    """`rejudge all` stopped at the first paper it could not rejudge: the papers after it
    kept their old verdicts, and nothing said they had not been rejudged."""
    repros = {"a": dataclasses.replace(_toy(lambda ctx: {"m": 1.0}), name="a"),
              "b": dataclasses.replace(_toy(lambda ctx: {"m": 1.0}), name="b")}
    monkeypatch.setattr(registry, "get", lambda n: repros[n])
    monkeypatch.setattr(registry, "module_names", lambda: ["a", "b"])
    assert cli.main(["reproduce", "all", "--out", str(tmp_path), "--no-progress",
                     "--jobs", "1"]) == 0
    if damage == "old format":
        res = json.loads((tmp_path / "a" / "result.json").read_text())
        del res["config"]
        (tmp_path / "a" / "result.json").write_text(json.dumps(res))
    else:
        repros["a"] = dataclasses.replace(repros["a"], judge=lambda data, cfg: [][0])
    # b's judge changed since its run: its verdict must be rebuilt
    b_refs = References(Reference("m", "m", 5.0, source="closed form", tol=0.01))
    repros["b"] = dataclasses.replace(
        repros["b"], references=b_refs,
        judge=lambda data, cfg: Judgement([b_refs.row("m", data["m"])]))
    capsys.readouterr()
    assert cli.main(["rejudge", "all", "--out", str(tmp_path)]) == code
    out = capsys.readouterr().out
    assert "a: not rejudged" in out and "b: 1 rows, 1 fail" in out
    assert json.loads((tmp_path / "b" / "result.json").read_text())["summary"]["fail"] == 1
    assert "rejudged" in json.loads((tmp_path / "b" / "meta.json").read_text())


@pytest.mark.parametrize("damage", ["truncated", "no summary"])
def test_report_on_an_unreadable_result_exits_2_naming_the_folder(tmp_path, monkeypatch,
                                                                   capsys, damage):
    """A truncated result.json (or one of a format without 'summary') made `report` end
    with a traceback and exit 1, the code of a failed tolerance."""
    repro = _toy(lambda ctx: {"m": 1.0})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0
    res_file = tmp_path / "toy" / "result.json"
    if damage == "truncated":
        res_file.write_text(res_file.read_text()[:40])
    else:
        res = json.loads(res_file.read_text())
        del res["summary"]
        res_file.write_text(json.dumps(res))
    capsys.readouterr()
    out = tmp_path / "docs" / "results.md"
    assert cli.main(["report", "--results", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "toy") in err and "cannot read the result" in err
    assert ("summary" in err) if damage == "no summary" else ("JSONDecodeError" in err)
    assert not out.exists()


@pytest.mark.parametrize("file, key, value, named", [
    ("result.json", "ours", "0.93", "comparisons[0].ours is '0.93'"),
    ("result.json", "interval", [0.1], "comparisons[0].interval is [0.1]"),
    ("meta.json", "wall_time_s", "12.5", "wall_time_s is '12.5'"),
    ("meta.json", "commit", 1234, "commit is 1234"),
    ("meta.json", "rejudged", ["yesterday"], "rejudged is ['yesterday']"),
])
def test_report_on_a_hand_edited_value_of_the_wrong_type_exits_2_naming_it(
        tmp_path, monkeypatch, capsys, file, key, value, named):
    """A number written as a string in result.json ("ours": "0.93") or meta.json
    ("wall_time_s": "12.5"), or a commit that is not a string, passed the reading checks
    and ended `report` with a traceback while the page was formatted, and exit code 1:
    the code of a failed tolerance."""
    repro = _toy(lambda ctx: {"m": 1.0})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0
    path = tmp_path / "toy" / file
    doc = json.loads(path.read_text())
    (doc["comparisons"][0] if file == "result.json" else doc)[key] = value
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    out = tmp_path / "docs" / "results.md"
    assert cli.main(["report", "--results", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the result" in err and named in err and str(tmp_path / "toy") in err
    assert not out.exists()


def test_report_on_a_result_it_cannot_open_names_that_file(tmp_path, monkeypatch, capsys):
    """A result.json that cannot be read (here a folder of that name) was reported as
    "cannot write report <out>", pointing at the page instead of the result."""
    repro = _toy(lambda ctx: {"m": 1.0})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0
    res_file = tmp_path / "toy" / "result.json"
    res_file.unlink()
    res_file.mkdir()
    capsys.readouterr()
    out = tmp_path / "docs" / "results.md"
    assert cli.main(["report", "--results", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the result" in err and str(res_file) in err
    assert "cannot write report" not in err and not out.exists()


def test_sigterm_to_a_jobs_run_stops_its_children(tmp_path, monkeypatch):
    """A SIGTERM to `reproduce all --jobs N` killed the parent alone: its children ran on
    as orphans (a rerun found their folders locked) and the log folder stayed behind."""
    import signal
    import subprocess as sp
    import tempfile
    import threading

    started: list[sp.Popen] = []
    real_popen = sp.Popen

    def sleeper(cmd, **kw):  # a child that would run on for a while
        proc = real_popen([sys.executable, "-c", "import time; time.sleep(15)"], **kw)
        started.append(proc)
        return proc

    monkeypatch.setattr(sp, "Popen", sleeper)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    args = cli._parser().parse_args(["reproduce", "a", "b", "--out", str(tmp_path / "o"),
                                     "--profile", "smoke", "--no-progress"])
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    class Unhandled(Exception):
        pass

    def fallback(signum, frame):  # what a SIGTERM that the command leaves alone does here
        raise Unhandled

    before = signal.signal(signal.SIGTERM, fallback)
    timer.start()
    try:
        code = cli._reproduce_in_processes(["a", "b"], args, 2)
    except Unhandled:
        code = None
    finally:
        timer.cancel()
        restored = signal.signal(signal.SIGTERM, before)
    assert restored is fallback  # the command put back the handler it found
    assert code == 143  # 128 + SIGTERM, as the shell reports it
    assert len(started) == 2 and all(p.poll() is not None for p in started)
    assert not list(tmp_path.glob("neurips18-reproduce-*"))  # the log folder is gone


def test_a_seed_beyond_what_the_papers_take_is_refused_before_any_run(tmp_path, monkeypatch,
                                                                      capsys):
    """--seed 4294967296 was accepted: mrs then stopped with an error (scikit-learn takes
    seeds below 2**32) after the papers before it had run."""
    calls = []
    repro = _toy(lambda ctx: calls.append(ctx.seed) or {"m": 1.0})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    code = cli.main(["reproduce", "toy", "--seed", str(2**32), "--out", str(tmp_path),
                     "--no-progress"])
    assert code == cli.EXIT_USAGE and calls == []
    assert "--seed must be a non-negative integer at most 2147483647" in capsys.readouterr().err
    assert cli.main(["reproduce", "toy", "--seed", str(2**31 - 1), "--out", str(tmp_path),
                     "--no-progress"]) == 0
    assert calls == [2**31 - 1]


def test_bench_passes_its_arguments_and_puts_sys_argv_back(tmp_path, monkeypatch, capsys):
    """`bench` replaced sys.argv with the benchmark's and left it so: a program calling
    cli.main twice saw the first benchmark's arguments as its own afterwards."""
    (tmp_path / "bench_echo.py").write_text("import sys\nprint('argv', sys.argv[1:])\n")
    monkeypatch.setattr(sys, "argv", ["caller", "--mine"])
    assert cli.main(["bench", "--dir", str(tmp_path), "echo", "-x", "1"]) == 0
    assert "argv ['-x', '1']" in capsys.readouterr().out
    assert sys.argv == ["caller", "--mine"]


def test_list_reads_an_output_folder_given_as_runs(tmp_path, monkeypatch, capsys):
    """`list --runs runs/quick` (the folder `reproduce` wrote) showed "not run" for a paper
    whose finished result was in runs/quick/toy/: only the subfolders were looked in."""
    repro = _toy(lambda ctx: {"m": 1.0})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    out = tmp_path / "runs" / "quick"
    assert cli.main(["reproduce", "toy", "--out", str(out), "--no-progress"]) == 0
    for runs in (tmp_path / "runs", out):
        capsys.readouterr()
        assert cli.main(["list", "--results", str(tmp_path / "none"), "--runs",
                         str(runs)]) == 0
        row = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith("toy ")][0]
        assert "quick: 1 pass, 0 fail, 0 no-ref" in row, (runs, row)


def test_sigterm_to_a_run_keeps_the_time_it_spent(tmp_path, monkeypatch, capsys):
    """A SIGTERM ended `reproduce` at once, so the attempt's time was never written to the
    checkpoint: the rerun's meta.json gave the wall time of the last attempt only."""
    import signal
    import time

    state = {"attempt": 0}

    def run(ctx):
        state["attempt"] += 1
        ctx.cached("first", lambda: time.sleep(0.5) or 1.0)
        if state["attempt"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives here
        return {"m": 1.0}

    repro = _toy(run)
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])

    class Unhandled(Exception):
        pass

    def fallback(signum, frame):  # what a SIGTERM that the command leaves alone does here
        raise Unhandled

    before = signal.signal(signal.SIGTERM, fallback)
    try:
        try:
            code = cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"])
        except Unhandled:
            code = None
        assert signal.getsignal(signal.SIGTERM) is fallback  # put back after the run
    finally:
        signal.signal(signal.SIGTERM, before)
    assert code == 143 and "interrupted" in capsys.readouterr().err
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0
    meta = json.loads((tmp_path / "toy" / "meta.json").read_text())
    assert meta["resumed_steps"] == ["first"] and meta["wall_time_s"] >= 0.5


def test_rejudge_all_with_nothing_to_rejudge_exits_2(tmp_path, capsys):
    """`rejudge all --out <a mistyped folder>` printed nothing and exited 0, as if every
    verdict had been rebuilt and passed."""
    assert cli.main(["rejudge", "all", "--out", str(tmp_path / "reslts")]) == cli.EXIT_USAGE
    assert "nothing to rejudge" in capsys.readouterr().err


def test_report_on_a_folder_without_results_keeps_the_page(tmp_path, capsys):
    """`report --results runs` (a folder of output folders, not one) replaced the page with
    one holding no paper and exited 0."""
    (tmp_path / "runs" / "quick" / "toy").mkdir(parents=True)
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("the committed page\n")
    code = cli.main(["report", "--results", str(tmp_path / "runs"), "--out", str(page)])
    assert code == cli.EXIT_USAGE and "no finished result" in capsys.readouterr().err
    assert page.read_text() == "the committed page\n"


def test_bench_privacy_times_its_fits_on_one_thread(tmp_path, monkeypatch):
    """bench_privacy only set OMP_NUM_THREADS and friends when they were unset: a user whose
    shell had OMP_NUM_THREADS=2 (or a caller with a wider BLAS pool) got fit times on two
    BLAS threads, reported as the one-thread figures beside diffprivlib's (which is forced
    to one). Every timed fit now runs with the BLAS pools capped at one thread."""
    import importlib.util

    import threadpoolctl

    import neurips18.datasets.synthetic as synthetic
    import neurips18.repro.dp_kmeans as dp_kmeans

    spec = importlib.util.spec_from_file_location(
        "bench_privacy_under_test", REPO / "benchmarks" / "bench_privacy.py")
    assert spec is not None and spec.loader is not None
    saved_env = {v: os.environ.get(v) for v in
                 ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for v, val in saved_env.items():  # loading the file sets them; put the caller's back
        if val is None:
            monkeypatch.delenv(v, raising=False)
        else:
            monkeypatch.setenv(v, val)
    seen: list[int] = []

    def fake_fit(X, seed):  # type: ignore[no-untyped-def]
        seen.append(max(i["num_threads"] for i in threadpoolctl.threadpool_info()))
        return 1.0, 1.0

    import numpy as np

    monkeypatch.setattr(mod, "_fit", fake_fit)
    monkeypatch.setattr(dp_kmeans, "diffprivlib_python", lambda: None)
    monkeypatch.setattr(synthetic, "make_ball_blobs",
                        lambda n, d, k, generator=None: (np.zeros((4, d)), None))
    with threadpoolctl.threadpool_limits(2):
        if max(i["num_threads"] for i in threadpoolctl.threadpool_info()) < 2:
            pytest.skip("this BLAS cannot be widened to two threads")
        assert mod.main(["--quick", "--json", str(tmp_path / "p.json")]) == 0
    assert seen and set(seen) == {1}, seen


def test_bench_embedding_names_the_lattice_it_ran():
    """bench_embedding's scale rows called the lattice "250 x 400" whatever m was: the
    --quick run (m = 20,000, a 250 x 80 lattice) was reported under the full run's name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_embedding_under_test", REPO / "benchmarks" / "bench_embedding.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.bench_scale(2000, 4, 1)
    lattice = [r for r in rows if r["graph"].startswith("lattice")]
    assert [r["graph"] for r in lattice] == ["lattice 250 x 8"]
    assert lattice[0]["m"] == 2000
