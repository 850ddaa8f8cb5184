"""The README's SG-MCMC example runs as written and says what it claims."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_sgmcmc_example_runs():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**SG-MCMC**"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert [ln.split()[0] for ln in lines] == ["sgld", "sgldfp"]
