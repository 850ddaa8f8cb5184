"""Build, cache and load the optional C kernels (standard library only: no NumPy, no torch).

A kernel is C source, a ``.c`` file that the subpackage using it ships as package data and
reads (``importlib.resources``); its variants (float and double, say) are written once and
instantiated with the preprocessor inside the file. :func:`load`
compiles it with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) into
``<cache>/<name>-native/<name>_<key>.so``, where ``<cache>`` is
:func:`neurips18._cache.cache_dir` and ``<key>`` a hash of the source, the compiler, the
flags and the CPU, then opens it with :mod:`ctypes` and declares the function signatures.
Flags are tried from the fastest (``-march=native``) to a portable set; the shared object is
written under a temporary name and moved into place with :func:`os.replace`, so processes
building at the same time never load a partial file. Nothing is compiled at import: callers
call :func:`load` (behind their own ``functools.cache``) when a kernel is first needed, and
fall back to their Python kernels when it returns None -- no compiler, a failed build, or
the caller's environment switch set to ``0``. A build that fails (or a library that cannot
be loaded) is reported in a :class:`NativeBuildWarning` (a RuntimeWarning) that carries the
compiler's command and output, so that the reason for the slower fallback is visible.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neurips18._cache import cache_dir

__all__ = ["BASE_FLAGS", "NATIVE_FLAGS", "NativeBuildWarning", "Signature", "compiler",
           "enabled", "load"]

# No -ffast-math anywhere: the kernels must round like the Python kernels they replace.
BASE_FLAGS = ("-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared")
NATIVE_FLAGS = ("-march=native",)

# (argument ctypes, return ctype or None)
Signature = tuple[Sequence[Any], Any]
_LOG_CHARS = 4000  # of each compiler output kept in the warning


class NativeBuildWarning(RuntimeWarning):
    """A C kernel could not be built or loaded; the Python kernels are used instead. The
    message holds the compiler command and its output."""


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def compiler() -> str | None:
    """Path of the C compiler to use, or None if there is none."""
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")


def enabled(switch: str) -> bool:
    """False if the environment variable ``switch`` is set to ``0``."""
    return os.environ.get(switch, "1") != "0"


def _build(source: str, name: str, cc: str, flags: Sequence[str], libs: Sequence[str],
           target: Path) -> str | None:
    """Compile ``source`` into ``target``; None on success, else the command and its output."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / f"{name}_native.c"
        src.write_text(source)
        out = Path(tmp) / target.name
        cmd = [cc, *flags, str(src), "-o", str(out), *(f"-l{lib}" for lib in libs)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  timeout=120, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"$ {' '.join(cmd)}\n{exc!r}"
        if proc.returncode != 0 or not out.exists():
            log = (proc.stderr + proc.stdout).strip()
            if len(log) > _LOG_CHARS:
                log = "...\n" + log[-_LOG_CHARS:]
            return f"$ {' '.join(cmd)}\n(exit status {proc.returncode})\n{log}"
        os.replace(out, target)  # atomic: a concurrent builder never sees a partial file
    return None


def load(name: str, source: str, signatures: Mapping[str, Signature], *,
         switch: str | None = None, libs: Sequence[str] = ()) -> Any:
    """The compiled kernel ``name`` as a :class:`ctypes.CDLL`, or None if unavailable.

    ``signatures`` maps each exported function to its argument types and return type;
    ``switch`` names an environment variable that disables the kernel when ``0``; ``libs``
    are extra libraries to link (``"m"`` for ``-lm``). Not cached: wrap it in
    ``functools.cache``. When no set of flags gives a loadable kernel, a
    :class:`NativeBuildWarning` gives the commands and the compiler's output.
    """
    if switch is not None and not enabled(switch):
        return None
    cc = compiler()
    if cc is None:
        return None
    failures: list[str] = []
    for flags in ((*BASE_FLAGS, *NATIVE_FLAGS), BASE_FLAGS):
        parts = [source, cc, *flags, *(f"-l{lib}" for lib in libs), platform.machine(),
                 _cpu_signature()]
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]
        path = cache_dir() / f"{name}-native" / f"{name}_{key}.so"
        try:
            if not path.exists():
                failure = _build(source, name, cc, flags, libs, path)
                if failure is not None:
                    failures.append(failure)
                    continue
            lib = ctypes.CDLL(str(path))
            for fn, (argtypes, restype) in signatures.items():
                f = getattr(lib, fn)
                f.argtypes = list(argtypes)
                f.restype = restype
        except (OSError, AttributeError, subprocess.SubprocessError) as exc:
            failures.append(f"loading {path}: {exc!r}")
            continue
        return lib
    if failures:
        warnings.warn(f"neurips18: the native kernel {name!r} is unavailable (falling back to "
                      "the slower Python kernels):\n" + "\n\n".join(failures),
                      NativeBuildWarning, stacklevel=2)
    return None
