"""Test-wide settings: never download; find the shared data directory if it is beside us."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SHARED = REPO.parent / "shared" / "data"

# Tests never touch the network: a missing file must skip, not download.
os.environ["NEURIPS18_OFFLINE"] = "1"
if "NEURIPS18_DATA_DIR" not in os.environ and _SHARED.is_dir():
    os.environ["NEURIPS18_DATA_DIR"] = str(_SHARED)


def _data_file(*parts: str) -> Path:
    """Path of a shared data file, or skip the test with the reason."""
    root = os.environ.get("NEURIPS18_DATA_DIR")
    if not root:
        pytest.skip("NEURIPS18_DATA_DIR is not set and ../shared/data is absent")
    path = Path(root).joinpath(*parts)
    if not path.exists() and not path.with_name(path.name + ".gz").exists():
        pytest.skip(f"data file {path} is absent")
    return path


@pytest.fixture
def data_file():
    """``data_file("mnist", "train-images-idx3-ubyte")``: the path, or skip with the reason."""
    return _data_file


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """An empty cache and no shared data dir, so only what the test provides is found."""
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NEURIPS18_DATA_DIR", raising=False)
    return tmp_path
