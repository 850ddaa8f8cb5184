"""The README's hvae example runs as written, twice (the second run resumes its checkpoint
and prints the same numbers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**Hamiltonian VAE**"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_and_resumes(tmp_path):
    code = _example()
    assert "HVAE" in code and "Trainer" in code
    runs = [subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "hvae.pt").exists()
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
