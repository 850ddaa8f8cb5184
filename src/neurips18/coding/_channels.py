"""Channels: additive white Gaussian noise, and AWGN with a feedback link.

One SNR convention throughout :mod:`neurips18.coding`: the SNR is the ratio of the average
power per *channel symbol* to the noise variance, with symbols of unit average power, so the
noise standard deviation is ``sigma = 10 ** (-snr_db / 20)`` (the convention of the Deepcode
paper and its code). A code of rate ``R`` (information bits per channel use) spends ``1 / R``
symbols per bit, so ``Eb/N0 = SNR - 10 log10(2 R)`` in dB with real-valued (BPSK-like)
signalling, where ``N0 = 2 sigma^2``. At rate 1/3 this is ``Eb/N0 = SNR + 1.76 dB``.
:func:`snr_to_ebno_db` and :func:`ebno_to_snr_db` are the only places that convert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from neurips18._validation import Interval, check, invalid

if TYPE_CHECKING:
    import torch

__all__ = [
    "AWGN",
    "FeedbackChannel",
    "FeedbackRealization",
    "ebno_to_snr_db",
    "noise_std",
    "snr_to_ebno_db",
]

_SNR = Interval(float, -60.0, 100.0)


def noise_std(snr_db: float) -> float:
    """The noise standard deviation at ``snr_db`` (unit power per symbol)."""
    snr_db = check("snr_db", snr_db, _SNR)
    return 10.0 ** (-snr_db / 20.0)


def snr_to_ebno_db(snr_db: float, rate: float) -> float:
    """Eb/N0 in dB of a code of ``rate`` bits per real channel use at ``snr_db``.

    ``Eb = Es / rate`` with ``Es = 1`` and ``N0 = 2 sigma^2``: ``Eb/N0 = SNR / (2 rate)``.
    """
    snr_db = check("snr_db", snr_db, _SNR)
    rate = check("rate", rate, Interval(float, 0.0, None, closed="neither"))
    return snr_db - 10.0 * math.log10(2.0 * rate)


def ebno_to_snr_db(ebno_db: float, rate: float) -> float:
    """The inverse of :func:`snr_to_ebno_db`."""
    ebno_db = check("ebno_db", ebno_db, _SNR)
    rate = check("rate", rate, Interval(float, 0.0, None, closed="neither"))
    return ebno_db + 10.0 * math.log10(2.0 * rate)


@dataclass(frozen=True)
class AWGN:
    """Real additive white Gaussian noise at ``snr_db`` (unit average power per symbol).

    ``channel(x, generator=g)`` returns ``x + sigma * N(0, 1)`` (a new tensor); the noise is
    drawn in ``x``'s dtype from the given ``torch.Generator``.
    """

    snr_db: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", check("snr_db", self.snr_db, _SNR))

    @property
    def sigma(self) -> float:
        return 10.0 ** (-self.snr_db / 20.0)

    def noise(self, shape: tuple[int, ...], *, generator: torch.Generator,
              dtype: Any = None) -> torch.Tensor:
        import torch

        if not isinstance(generator, torch.Generator):
            # None would draw from torch's global generator without a word
            raise invalid("generator", generator, "a torch.Generator")
        return torch.randn(shape, generator=generator, dtype=dtype).mul_(self.sigma)

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        return x + self.noise(tuple(x.shape), generator=generator, dtype=x.dtype)


@dataclass(frozen=True)
class FeedbackRealization:
    """One draw of a feedback channel for a batch of blocks of ``positions`` positions and
    three streams (systematic, parity 1, parity 2).

    ``noise[b, k, s]``: the forward channel's noise on symbol ``s`` of position ``k``.
    ``feedback[b, k, :]``: what the transmitter knows when it forms position ``k``'s parity
    symbols: the fed-back Phase I noise of position ``k`` and the fed-back parity noises of
    position ``k - delay`` (zeros before any has arrived), each with the feedback link's own
    noise added and quantised if the channel quantises.
    """

    noise: torch.Tensor
    feedback: torch.Tensor


@dataclass(frozen=True)
class FeedbackChannel:
    """A forward AWGN channel with a feedback link from the receiver to the transmitter.

    The receiver sends back what it received; the transmitter, which knows what it sent,
    learns the forward noise plus the feedback link's noise.

    Parameters
    ----------
    forward_snr_db : SNR of the forward channel (unit average power per symbol).
    feedback_snr_db : SNR of the feedback link; ``None`` (default) is noiseless feedback.
    delay : how many positions late the parity symbols' noise reaches the transmitter
        (1: the noise on position ``k - 1``'s parities is known when position ``k`` is
        encoded, as in Deepcode; the Phase I noise is always known by then).
    quantization : ``None`` (analog feedback) or a number of bits ``q``: the fed-back value
        is rounded to the nearest of ``2**q`` uniform levels on ``[-3 s, 3 s]`` (clipped),
        ``s`` being the standard deviation of the fed-back value.
    """

    forward_snr_db: float
    feedback_snr_db: float | None = None
    delay: int = 1
    quantization: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "forward_snr_db",
                           check("forward_snr_db", self.forward_snr_db, _SNR))
        object.__setattr__(self, "feedback_snr_db",
                           check("feedback_snr_db", self.feedback_snr_db, _SNR, None))
        object.__setattr__(self, "delay", check("delay", self.delay, Interval(int, 1, 1000)))
        object.__setattr__(self, "quantization",
                           check("quantization", self.quantization, Interval(int, 1, 24), None))

    @property
    def sigma(self) -> float:
        return 10.0 ** (-self.forward_snr_db / 20.0)

    @property
    def feedback_sigma(self) -> float:
        return 0.0 if self.feedback_snr_db is None else 10.0 ** (-self.feedback_snr_db / 20.0)

    @property
    def noiseless(self) -> bool:
        return self.feedback_snr_db is None and self.quantization is None

    def forward_channel(self) -> AWGN:
        return AWGN(self.forward_snr_db)

    def _quantize(self, v: torch.Tensor) -> torch.Tensor:
        import torch

        q = self.quantization
        assert q is not None
        s = math.sqrt(self.sigma**2 + self.feedback_sigma**2)
        levels = 2**q
        step = 6.0 * s / levels
        # mid-rise uniform quantiser on [-3 s, 3 s]: level centres -3 s + (i + 1/2) step
        idx = torch.floor((v + 3.0 * s) / step).clamp_(0, levels - 1)
        return idx.mul_(step).add_(-3.0 * s + step / 2)

    def sample(self, batch: int, positions: int, *, generator: torch.Generator,
               dtype: Any = None) -> FeedbackRealization:
        """Draw the forward noise and the transmitter's feedback for ``batch`` blocks."""
        import torch

        batch = check("batch", batch, Interval(int, 1, None))
        positions = check("positions", positions, Interval(int, 2, None))
        if not isinstance(generator, torch.Generator):
            raise invalid("generator", generator, "a torch.Generator")
        dtype = dtype or torch.get_default_dtype()
        noise = torch.randn((batch, positions, 3), generator=generator, dtype=dtype)
        noise.mul_(self.sigma)
        fed = noise
        if self.feedback_snr_db is not None:
            w = torch.randn((batch, positions, 3), generator=generator, dtype=dtype)
            fed = noise + w.mul_(self.feedback_sigma)
        if self.quantization is not None:
            fed = self._quantize(fed)
        feedback = torch.zeros_like(noise)
        feedback[:, :, 0] = fed[:, :, 0]
        d = self.delay
        if d < positions:
            feedback[:, d:, 1:] = fed[:, : positions - d, 1:]
        return FeedbackRealization(noise=noise, feedback=feedback)
