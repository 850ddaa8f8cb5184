"""The README's multiparty example runs as written and shows what it claims."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_readme_example(data_file):
    data_file("credit-default", "UCI_Credit_Card.csv")
    text = README.read_text(encoding="utf-8")
    start = text.index("**Contamination attacks**")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = [ln.split() for ln in out.getvalue().strip().splitlines()]
    assert [float(ln[0]) for ln in lines] == [0.0, 30.0]
    plain, defended = ([float(v) for v in ln[1:]] for ln in lines)
    assert plain[0] > 0.8 and defended[0] < plain[0] - 0.4  # natural attack success
    assert defended[2] > plain[2] - 0.01  # accuracy
