"""Optional C kernel for the GLM samplers: a whole block of SGLD/SGLDFP/SGD steps per call.

For :class:`~neurips18.sgmcmc.BayesianLinearRegression` and
:class:`~neurips18.sgmcmc.BayesianLogisticRegression` the step of
:func:`~neurips18.sgmcmc.langevin_step` with the minibatch or control-variate gradient
estimate is an affine map plus one minibatch product (see ``_glm_kernel.c``, shipped as
package data beside this module). Chaining the public step pays a few microseconds of Python
per step; here a block of steps runs in one C call. The random numbers are not drawn here:
the caller passes the block's scaled noise and minibatch indices, drawn from its
``numpy.random.Generator`` exactly as for the NumPy path, so a seed gives the same chain
either way up to the order of floating-point summation. The kernel is single-threaded and
its sums have a fixed order (dot products in eight partial sums), so its results do not
depend on the thread count.

Built on first use by :mod:`neurips18._native` (cache ``<cache>/sgmcmc-native``); without a
C compiler, or with ``NEURIPS18_SGMCMC_NATIVE=0``, :func:`lib` returns None and the sampler
chains the public step in NumPy. Standard library and NumPy only (no torch).
"""

from __future__ import annotations

import ctypes
import functools
from importlib import resources
from typing import Any

from neurips18 import _native as _build

__all__ = ["LINK_IDENTITY", "LINK_LOGISTIC", "SOURCE", "SWITCH", "entry_point", "lib"]

SWITCH = "NEURIPS18_SGMCMC_NATIVE"
SOURCE = "_glm_kernel.c"
LINK_IDENTITY = 0  # h(z) = k z
LINK_LOGISTIC = 1  # h(z) = 1 / (1 + exp(-z))

_vp, _i64, _f64, _int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
_ARGS = [_vp, _i64, _vp, _i64, _i64, _vp, _vp, _f64, _f64, _vp, _vp, _int, _f64, _i64, _i64,
         _vp, _i64, _vp]
_SIGNATURES: dict[str, _build.Signature] = {"sg_glm_f32": (_ARGS, _i64),
                                            "sg_glm_f64": (_ARGS, _i64)}


def source() -> str:
    """The kernel's C source (the package-data file ``_glm_kernel.c``)."""
    return resources.files(__package__).joinpath(SOURCE).read_text(encoding="utf-8")


@functools.cache
def lib() -> Any:
    """The loaded kernel, or None (no compiler, failed build, or ``NEURIPS18_SGMCMC_NATIVE=0``).

    Cached: after changing the environment variable call ``lib.cache_clear()``.
    """
    return _build.load("sgmcmc", source(), _SIGNATURES, switch=SWITCH, libs=("m",))


def entry_point(dtype_char: str) -> Any:
    """The block function for a float32 (``"f"``) or float64 (``"d"``) model, or None."""
    lb = lib()
    if lb is None:
        return None
    return {"f": lb.sg_glm_f32, "d": lb.sg_glm_f64}[dtype_char]
