"""The per-user cache directory shared by the data loaders and the native kernels.

``$NEURIPS18_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/neurips18``, else
``~/.cache/neurips18``. Standard library only (importing it costs nothing).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The cache root, resolved from the environment at each call (not created here)."""
    env = os.environ.get("NEURIPS18_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "neurips18"
