"""Independent scalar references for the lowprec tests (exact rational arithmetic)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest


def ref_round(v: float, e: int, m: int, subnormals: bool = True, overflow: str = "inf") -> float:
    """Round ``v`` to the nearest (ties to even) value of the 1-e-m format, exactly."""
    if math.isnan(v) or math.isinf(v) or v == 0:
        return v
    bias = 2 ** (e - 1) - 1
    emin, emax = 1 - bias, bias
    f = Fraction(abs(v))
    exp = f.numerator.bit_length() - f.denominator.bit_length()
    if Fraction(2) ** exp > f:
        exp -= 1
    exp = max(exp, emin)
    q = Fraction(2) ** (exp - m)
    n = f / q
    fl = math.floor(n)
    rem = n - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
        fl += 1
    r = fl * q
    if not subnormals and r < Fraction(2) ** emin:
        r = Fraction(0)
    maxv = (2 - Fraction(2) ** (-m)) * Fraction(2) ** emax
    if r > maxv:
        return math.copysign(math.inf if overflow == "inf" else float(maxv), v)
    return math.copysign(float(r), v)


def ref_chunked_sum(values: list[float], e: int, m: int, chunk: int) -> float:
    """Scalar chunk-based accumulation: round the terms, then after every addition."""
    values = [ref_round(v, e, m) for v in values]
    total = 0.0
    for start in range(0, len(values), chunk):
        part = 0.0
        for v in values[start:start + chunk]:
            part = ref_round(part + v, e, m)
        total = ref_round(total + part, e, m)
    return total


@pytest.fixture
def ref():
    class _Ref:
        round = staticmethod(ref_round)
        chunked_sum = staticmethod(ref_chunked_sum)

    return _Ref
