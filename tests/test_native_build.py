"""The shared build/cache/load machinery of the optional C kernels (neurips18._native)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neurips18 import _cache, _native
from neurips18.datasets import cache_dir as datasets_cache_dir

SRC = Path(__file__).resolve().parents[1] / "src"
_ADD = "int add3(int x) { return x + 3; }\n"
_SIG = {"add3": ([ctypes.c_int], ctypes.c_int)}
needs_cc = pytest.mark.skipif(_native.compiler() is None, reason="no C compiler")


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.delenv("NEURIPS18_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert _cache.cache_dir() == Path.home() / ".cache" / "neurips18"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "neurips18"
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path / "mine"))
    assert _cache.cache_dir() == tmp_path / "mine"
    assert datasets_cache_dir is _cache.cache_dir  # one function for data and kernels


@needs_cc
def test_build_goes_to_the_xdg_cache_and_is_reused(monkeypatch, tmp_path):
    monkeypatch.delenv("NEURIPS18_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lib = _native.load("unittest", _ADD, _SIG)
    assert lib is not None and lib.add3(4) == 7
    built = list((tmp_path / "neurips18" / "unittest-native").glob("unittest_*.so"))
    assert len(built) == 1
    mtime = built[0].stat().st_mtime_ns
    assert _native.load("unittest", _ADD, _SIG).add3(-3) == 0
    assert built[0].stat().st_mtime_ns == mtime  # loaded from the cache, not rebuilt
    # a different source is a different key
    assert _native.load("unittest", _ADD + "\n", _SIG) is not None
    assert len(list((tmp_path / "neurips18" / "unittest-native").glob("*.so"))) == 2


def test_switch_compiler_and_build_failures_give_none(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("NEURIPS18_TEST_NATIVE", "0")
    assert _native.load("unittest", _ADD, _SIG, switch="NEURIPS18_TEST_NATIVE") is None
    monkeypatch.setattr(_native, "compiler", lambda: None)
    assert _native.load("unittest", _ADD, _SIG) is None
    assert not (tmp_path / "unittest-native").exists()


@needs_cc
def test_broken_source_or_missing_symbol_gives_none_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="unavailable"):
        assert _native.load("unittest", "int add3(int x) { return x +; }\n", _SIG) is None
    with pytest.warns(RuntimeWarning, match="add3"):
        assert _native.load("unittest", "int other(void) { return 1; }\n", _SIG) is None


@needs_cc
def test_a_failed_build_keeps_the_compiler_output_in_the_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path))
    with pytest.warns(RuntimeWarning) as record:
        assert _native.load("unittest", "int add3(int x) { return x + undeclared_name; }\n",
                            _SIG) is None
    (w,) = [w for w in record if "unittest" in str(w.message)]
    text = str(w.message)
    assert "undeclared_name" in text  # the compiler's diagnostic, not just "failed"
    assert "-O3" in text and "exit status" in text  # the command that was run


@needs_cc
def test_the_warning_names_each_flag_set_tried(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path))
    with pytest.warns(_native.NativeBuildWarning) as rec:
        assert _native.load("unittest", "int add3(int x) { return x +; }\n", _SIG) is None
    text = str(rec[0].message)
    # the compiler's own diagnostic (file, line, "error") is in the warning, for each flag set
    assert "unittest_native.c:1" in text and "error" in text and "exit status" in text
    assert text.count("$ ") == 2
    with pytest.warns(_native.NativeBuildWarning, match="add3"):
        assert _native.load("unittest", "int other(void) { return 1; }\n", _SIG) is None


@needs_cc
def test_sgmcmc_kernel_imports_no_torch(tmp_path):
    code = ("import numpy as np\n"
            "from neurips18.sgmcmc import BayesianLinearRegression, sample\n"
            "X = np.random.default_rng(0).standard_normal((50, 2))\n"
            "m = BayesianLinearRegression(X, X[:, 0], 1.0)\n"
            "r = sample(m, 'sgld', 0.01, 5, 10, generator=np.random.default_rng(0))\n"
            "assert r.diagnostics['kernel'] == 'native', r.diagnostics['kernel']\n"
            "import sys; print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(SRC), "NEURIPS18_CACHE_DIR": str(tmp_path)}
    env.pop("NEURIPS18_SGMCMC_NATIVE", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300, env=env).stdout
    assert out.split() == ["False"]
