"""The README's example for neurips18.embedding runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs(capsys):
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = [b for b in blocks if "neurips18.embedding" in b]
    assert len(code) == 1, "one README example for neurips18.embedding"
    exec(compile(code[0], "README.md", "exec"), {})
    out = capsys.readouterr().out.split("\n")
    shape, ratio = out[0].split(") ")
    assert shape == "(40, 3" and float(ratio) < 1.0
    assert out[1].endswith("True")
