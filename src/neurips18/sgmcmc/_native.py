"""Optional C kernel for the GLM samplers: a whole block of LMC/SGLD/SGLDFP/SGD steps per call.

For :class:`~neurips18.sgmcmc.BayesianLinearRegression` and
:class:`~neurips18.sgmcmc.BayesianLogisticRegression` one step is

    theta' = a theta + c + noise_j + s sum_{i in S_j} x_i (t_i - h(x_i^T theta)),

with a = 1 - gamma lambda, s = gamma N / p (gamma for LMC, where S_j is every row), h the
link (k z, or the logistic function), t the targets (LMC, SGLD, SGD) or h(x_i^T theta*)
(SGLDFP) and c = gamma lambda theta* for SGLDFP, else 0. The NumPy loop of
:mod:`neurips18.sgmcmc.sampler` pays a few microseconds of call overhead per step; here the
block's steps run in one C call. The random numbers are not drawn here: the caller passes
the block's scaled noise and minibatch indices, drawn from its ``numpy.random.Generator``
exactly as for the NumPy loop, so a seed gives the same chain either way up to the order of
floating-point summation. All arithmetic is in the model's dtype (a float32 model is
computed in float32), without ``-ffast-math``; dot products use eight partial sums in a
fixed order, and LMC's sum over the data set adds per-chunk partial sums.

:func:`~neurips18.sgmcmc.sample` uses it for SGLD, SGLDFP and SGD; for LMC it keeps the
NumPy loop, whose BLAS products over the whole data set beat this kernel's row loop (the
full-data mode is kept, and tested, for small data sets and later use).

Built on first use by :mod:`neurips18._native` (cache ``<cache>/sgmcmc-native``); without a
C compiler, or with ``NEURIPS18_SGMCMC_NATIVE=0``, :func:`lib` returns None and the sampler
keeps its NumPy loop. Standard library and NumPy only (no torch).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from neurips18 import _native as _build

__all__ = ["LINK_IDENTITY", "LINK_LOGISTIC", "SWITCH", "entry_point", "lib"]

SWITCH = "NEURIPS18_SGMCMC_NATIVE"
LINK_IDENTITY = 0  # h(z) = k z
LINK_LOGISTIC = 1  # h(z) = 1 / (1 + exp(-z))

_HEADER = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define PREFETCH(p) ((void)0)
#endif

enum { LANES = 8, CHUNK = 64 };
"""

# One copy per dtype: REAL is float or double, SUF f32 or f64, EXP expf or exp, fabsSUF
# fabsf or fabs.
_BODY = r"""
/* x . th with LANES partial sums (lane l takes the terms k = l mod LANES), combined
   pairwise: a fixed order, and vectorisable without reassociating anything. */
static inline REAL dot_SUF(const REAL *restrict x, const REAL *restrict th, int64_t d) {
    REAL acc[LANES] = {0};
    int64_t k = 0;
    for (; k + LANES <= d; k += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[k + l] * th[k + l];
    for (int l = 0; k < d; k++, l++) acc[l] += x[k] * th[k];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* 1 / (1 + e^-z) without overflow: 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below, with
   e = e^-|z| <= 1; a select instead of a branch (the sign of z is unpredictable). */
static inline REAL logistic_SUF(REAL z) {
    REAL e = EXP(-fabsSUF(z));
    return (z >= 0 ? (REAL)1 : e) / ((REAL)1 + e);
}

/* g += sum over rows r of x_r (t_r - h(x_r . theta)), rows given by idx (m of them) or,
   if idx is NULL, rows r0 .. r0 + m - 1. */
static inline void resid_SUF(const REAL *restrict X, int64_t d, const int64_t *idx,
                             int64_t r0, int64_t m, const REAL *restrict theta,
                             const REAL *restrict t, int link, REAL k, REAL *restrict g) {
    for (int64_t i = 0; i < m; i++) {
        int64_t r = idx ? idx[i] : r0 + i;
        const REAL *x = X + r * d;
        REAL z = dot_SUF(x, theta, d);
        REAL h = link == 1 ? logistic_SUF(z) : k * z;
        REAL e = t[r] - h;
        for (int64_t j = 0; j < d; j++) g[j] += e * x[j];
    }
}

/* b steps. idx: b x p minibatch indices, or NULL for full-data steps (LMC); noise: b x d,
   or NULL (SGD); theta updated in place; every thin-th state (counting from step, the
   number of steps before this block) is copied to draws[kept], draws[kept + 1], ...
   work: 2 d scratch values. Returns the new number of kept draws. */
int64_t sg_glm_SUF(const REAL *restrict X, int64_t n, int64_t d, const int64_t *idx,
                   int64_t b, int64_t p, const REAL *noise, REAL *restrict theta, double a_,
                   double s_, const REAL *restrict c, const REAL *restrict t, int link,
                   double k_, int64_t step, int64_t thin, REAL *draws, int64_t kept,
                   REAL *restrict work) {
    const REAL a = (REAL)a_, s = (REAL)s_, k = (REAL)k_;
    REAL *g = work, *part = work + d;
    int64_t left = thin - step % thin;  /* steps until the next kept state */
    for (int64_t j = 0; j < b; j++) {
        memset(g, 0, sizeof(REAL) * (size_t)d);
        if (idx) {
            const int64_t *ij = idx + j * p;
            if (j + 1 < b) {  /* the next step's rows are known: fetch them now */
                const int64_t *in = ij + p;
                for (int64_t i = 0; i < p; i++) {
                    const REAL *x = X + in[i] * d;
                    PREFETCH(x);
                    PREFETCH(x + d - 1);
                    PREFETCH(t + in[i]);
                }
            }
            resid_SUF(X, d, ij, 0, p, theta, t, link, k, g);
        } else {
            for (int64_t r0 = 0; r0 < n; r0 += CHUNK) {
                int64_t m = n - r0 < CHUNK ? n - r0 : CHUNK;
                memset(part, 0, sizeof(REAL) * (size_t)d);
                resid_SUF(X, d, NULL, r0, m, theta, t, link, k, part);
                for (int64_t q = 0; q < d; q++) g[q] += part[q];
            }
        }
        const REAL *nz = noise ? noise + j * d : NULL;
        for (int64_t q = 0; q < d; q++) {
            REAL add = nz ? c[q] + nz[q] : c[q];
            theta[q] = a * theta[q] + add + s * g[q];
        }
        if (--left == 0) {
            memcpy(draws + kept * d, theta, sizeof(REAL) * (size_t)d);
            kept++;
            left = thin;
        }
    }
    return kept;
}
"""


def _source() -> str:
    out = [_HEADER]
    for real, suf, fns in (("float", "f32", "f"), ("double", "f64", "")):
        body = _BODY.replace("fabsSUF", "fabs" + fns).replace("EXP", "exp" + fns)
        out.append(body.replace("REAL", real).replace("SUF", suf))
    return "".join(out)


_SRC = _source()
_vp, _i64, _f64, _int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
_ARGS = [_vp, _i64, _i64, _vp, _i64, _i64, _vp, _vp, _f64, _f64, _vp, _vp, _int, _f64, _i64,
         _i64, _vp, _i64, _vp]
_SIGNATURES: dict[str, _build.Signature] = {"sg_glm_f32": (_ARGS, _i64),
                                            "sg_glm_f64": (_ARGS, _i64)}


@functools.cache
def lib() -> Any:
    """The loaded kernel, or None (no compiler, failed build, or ``NEURIPS18_SGMCMC_NATIVE=0``).

    Cached: after changing the environment variable call ``lib.cache_clear()``.
    """
    return _build.load("sgmcmc", _SRC, _SIGNATURES, switch=SWITCH, libs=("m",))


def entry_point(dtype_char: str) -> Any:
    """The block function for a float32 (``"f"``) or float64 (``"d"``) model, or None."""
    lb = lib()
    if lb is None:
        return None
    return {"f": lb.sg_glm_f32, "d": lb.sg_glm_f64}[dtype_char]
