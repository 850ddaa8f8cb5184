"""Binary floating-point formats narrower than float32.

A :class:`FloatFormat` describes a sign bit, ``exp_bits`` exponent bits and ``man_bits``
stored mantissa bits, with IEEE-754 conventions: exponent bias ``2**(exp_bits-1) - 1``, the
all-ones exponent reserved for infinities and NaNs, and (optionally) gradual underflow
through subnormal numbers.

The presets are the formats of Wang et al., "Training Deep Neural Networks with 8-bit
Floating Point Numbers" (NeurIPS 2018, arXiv:1812.08011) -- ``E5M2`` for data and products,
``E6M9`` for accumulation and weight updates -- plus the usual IEEE half precision,
bfloat16 and an IEEE-style ``E4M3``.

Overflow: with ``overflow="inf"`` (the default, IEEE behaviour and what a
``torch.float8_e5m2`` cast does) a value whose rounded magnitude exceeds the largest
finite number becomes +-inf; with ``overflow="saturate"`` it becomes +-``max_value``.
Infinite inputs stay infinite and NaN stays NaN in both modes.

Note that ``E4M3`` here keeps the IEEE-style top exponent (largest finite value 240, like
``ml_dtypes.float8_e4m3``); the OCP/NVIDIA ``float8_e4m3fn`` variant, which gives up
infinities to reach 448, is a different encoding and is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neurips18._validation import InstanceOf, Interval, Options, check

Overflow = Literal["inf", "saturate"]
_OVERFLOW = ("inf", "saturate")
_FIELDS = {
    # a wider exponent or mantissa does not fit float32, in which formats are emulated
    "exp_bits": (Interval(int, 2, 8),),
    "man_bits": (Interval(int, 0, 23),),
    "subnormals": (InstanceOf(bool, "True or False"),),
    "overflow": (Options(_OVERFLOW),),
}


@dataclass(frozen=True)
class FloatFormat:
    """A sign/exponent/mantissa floating-point format emulated inside float32.

    Parameters
    ----------
    exp_bits : number of exponent bits, 2..8 (8 is float32's own exponent range).
    man_bits : number of stored mantissa (fraction) bits, 0..23.
    subnormals : keep subnormal numbers (gradual underflow). If False, results below the
        smallest normal number are flushed to a signed zero.
    overflow : ``"inf"`` (round to +-inf, IEEE) or ``"saturate"`` (clamp to +-max_value).
    """

    exp_bits: int
    man_bits: int
    subnormals: bool = True
    overflow: Overflow = "inf"

    def __post_init__(self) -> None:
        for name, rules in _FIELDS.items():
            object.__setattr__(self, name, check(name, getattr(self, name), *rules))

    # ---- derived quantities -------------------------------------------------------------
    @property
    def bias(self) -> int:
        """Exponent bias, ``2**(exp_bits-1) - 1``."""
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emax(self) -> int:
        """Largest unbiased exponent of a finite number."""
        return self.bias

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def bits(self) -> int:
        """Total width in bits (sign + exponent + mantissa)."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def max_value(self) -> float:
        """Largest finite value, ``(2 - 2**-man_bits) * 2**emax``."""
        return float((2.0 - 2.0 ** (-self.man_bits)) * 2.0**self.emax)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value, ``2**emin``."""
        return float(2.0**self.emin)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (the smallest normal if subnormals are off)."""
        if not self.subnormals:
            return self.min_normal
        return float(2.0 ** (self.emin - self.man_bits))

    @property
    def eps(self) -> float:
        """Spacing between 1 and the next larger value, ``2**-man_bits``."""
        return float(2.0 ** (-self.man_bits))

    @property
    def name(self) -> str:
        extra = "" if self.subnormals else ", no subnormals"
        extra += "" if self.overflow == "inf" else ", saturating"
        return f"E{self.exp_bits}M{self.man_bits}{extra}"

    def with_overflow(self, overflow: Overflow) -> FloatFormat:
        """The same format with another overflow behaviour."""
        return FloatFormat(self.exp_bits, self.man_bits, subnormals=self.subnormals,
                           overflow=overflow)


E5M2 = FloatFormat(5, 2)
"""The paper's FP8 (1-5-2, bias 15): data, weights, activations and errors in GEMMs."""
E6M9 = FloatFormat(6, 9)
"""The paper's FP16 (1-6-9, bias 31): accumulation, master weights, updates. Not IEEE half."""
E4M3 = FloatFormat(4, 3)
"""IEEE-style 1-4-3 (bias 7, largest finite 240); not the OCP ``e4m3fn`` encoding."""
FP16 = FloatFormat(5, 10)
"""IEEE-754 binary16."""
BF16 = FloatFormat(8, 7)
"""bfloat16 (float32's exponent range, 7 mantissa bits)."""
FP32 = FloatFormat(8, 23)
"""float32 itself: quantizing to it is the identity (handy as a 'no rounding' format)."""

PRESETS: dict[str, FloatFormat] = {
    "E5M2": E5M2, "E6M9": E6M9, "E4M3": E4M3, "FP16": FP16, "BF16": BF16, "FP32": FP32,
}

FORMAT = InstanceOf(FloatFormat, "a FloatFormat (e.g. E5M2)")
"""The validation constraint of every ``fmt``-like parameter."""
