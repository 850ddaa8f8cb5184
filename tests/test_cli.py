"""The command line: listing, reproducing, reporting and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neurips18 import cli
from neurips18.repro import registry

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


def test_exit_codes_follow_verdicts(tmp_path, monkeypatch, capsys):
    from neurips18.repro import Outcome, Reproduction, compare

    def make(ours):
        return Reproduction(
            name="toy", title="Toy", citation="c", capability="none",
            run=lambda ctx: Outcome([compare("m", ours, 1.0, source="closed form", tol=0.01)]),
            profiles={"quick": {}, "full": {}},
        )

    repros = {"toy": make(1.0)}
    monkeypatch.setattr(registry, "get", lambda n: repros[n] if n in repros else
                        (_ for _ in ()).throw(registry.UnknownReproductionError(n)))
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "| m | 1 | 1 | closed form |" in capsys.readouterr().out
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
    listing = json.loads((tmp_path / "toy" / "result.json").read_text())
    assert listing["summary"]["fail"] == 1


def test_data_error_exits_2(tmp_path, monkeypatch, capsys):
    from neurips18.datasets import DatasetNotFoundError
    from neurips18.repro import Reproduction

    def run(ctx):
        raise DatasetNotFoundError("data file x/y not found")

    repro = Reproduction(name="toy", title="T", citation="c", capability="none", run=run,
                         profiles={"quick": {}})
    monkeypatch.setattr(registry, "get", lambda n: repro)
    monkeypatch.setattr(registry, "module_names", lambda: ["toy"])
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path)]) == 2
    assert "data file x/y not found" in capsys.readouterr().err
