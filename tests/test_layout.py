"""The package's layout rules: no module reaches into another subpackage's private modules;
benchmarks use public names (or the reproductions' shared ``repro._common``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "neurips18"
SHARED = {"neurips18._validation", "neurips18._native", "neurips18._cache"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def _private_part(name: str) -> str | None:
    """The first private component of a dotted neurips18 name, as a prefix."""
    parts = name.split(".")
    if parts[0] != "neurips18":
        return None
    for i, p in enumerate(parts[1:], start=1):
        if p.startswith("_") and not p.startswith("__"):
            return ".".join(parts[: i + 1])
    return None


def _owner(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def test_no_module_imports_another_subpackages_private_names():
    bad = []
    for path in SRC.rglob("*.py"):
        owner = _owner(path)  # e.g. neurips18.compress
        for line, name in _imports(path):
            private = _private_part(name)
            if private is None or private in SHARED:
                continue
            if private.startswith(owner + ".") or private == owner:
                continue  # its own private modules
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_benchmarks_use_public_names():
    bad = []
    for path in (ROOT / "benchmarks").glob("*.py"):
        for line, name in _imports(path):
            private = _private_part(name)
            if private is None or private in SHARED or private.startswith(
                    "neurips18.repro._common"):
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)
