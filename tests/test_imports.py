"""Importing the package, the registry and every reproduction module stays cheap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    ).stdout
    return set(out.split())


def test_listing_papers_imports_no_torch_and_no_matplotlib():
    mods = _modules_after(
        "from neurips18.repro import registry\n"
        "[registry.get(n) for n in registry.module_names()]\n"
        "import neurips18.cli, neurips18.datasets"
    )
    assert "torch" not in mods
    assert "matplotlib" not in mods
