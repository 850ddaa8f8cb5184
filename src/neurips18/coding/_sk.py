"""The Schalkwijk-Kailath scheme for the AWGN channel with feedback.

Schalkwijk and Kailath, "A coding scheme for additive noise channels with feedback",
IEEE Trans. Inf. Theory 12(2), 1966. ``K`` bits pick one of ``M = 2**K`` PAM points
``theta``; the first channel use sends ``theta`` at unit power, every later use sends the
receiver's current estimation error (which the transmitter knows through the feedback) at
unit power, and the receiver updates its linear MMSE estimate; its error variance shrinks by
``1 + SNR`` per use, so the error probability falls doubly exponentially with the number of
channel uses. After ``N`` uses the receiver picks the nearest PAM point. Once the error
variance is below what the arithmetic can scale back to unit power (standard deviation
under ``2 / finfo(dtype).max``, or ``1.5e-154`` in float64), the remaining uses send 0.

Three variants, named by ``variant``:

* ``"ideal"``: float64 arithmetic and noiseless feedback;
* ``"float32"``: the same scheme computed in float32 (finite precision at both ends: a
  ``2**K``-point constellation needs about ``K`` bits of resolution, float32 has 24);
* ``"noisy-feedback"``: float64, the transmitter learns the received values through an
  AWGN feedback link at ``feedback_snr_db`` and tracks the receiver's estimate from them.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch

from neurips18._validation import Interval, Options, check, invalid
from neurips18.coding._channels import AWGN, FeedbackChannel
from neurips18.coding._code import Code, check_bits

__all__ = ["SchalkwijkKailath"]


class SchalkwijkKailath(Code):
    """Schalkwijk-Kailath coding of ``block_length`` bits in ``n_channel_uses`` real uses.

    Parameters
    ----------
    block_length : bits per block ``K``: 1 to 52 for the float64 variants (``"ideal"``,
        ``"noisy-feedback"``: a ``2**K``-point constellation in float64), 1 to 62 for
        ``"float32"`` (the message index is an int64).
    n_channel_uses : channel uses ``N`` per block (default ``3 K``: rate 1/3).
    variant : ``"ideal"``, ``"float32"`` or ``"noisy-feedback"`` (module docstring).
    feedback_snr_db : the feedback link's SNR, required by ``"noisy-feedback"`` only.

    The scheme depends on the forward noise level, so there is no stand-alone ``encode``:
    ``transmit(bits, channel, generator=g)`` runs both ends and returns the receiver's
    final estimate of ``theta`` ``(B, 1)``; ``decode`` maps it to bits.
    """

    def __init__(self, block_length: int = 50, n_channel_uses: int | None = None, *,
                 variant: str = "ideal", feedback_snr_db: float | None = None) -> None:
        self.variant = check("variant", variant, Options({"ideal", "float32",
                                                          "noisy-feedback"}))
        # float64 holds the 2**K-point constellation and the receiver's estimate to the
        # constellation's resolution only up to K = 52: beyond, neighbouring messages
        # share a value and "ideal" would make errors that are not the scheme's
        self._k = check("block_length", block_length,
                        Interval(int, 1, 62 if self.variant == "float32" else 52))
        n = 3 * self._k if n_channel_uses is None else n_channel_uses
        self._n = check("n_channel_uses", n, Interval(int, 1, 100_000))
        if self.variant == "noisy-feedback":
            if feedback_snr_db is None:
                raise invalid("feedback_snr_db", None,
                              "a number (dB) for variant 'noisy-feedback'")
            feedback_snr_db = check("feedback_snr_db", feedback_snr_db,
                                    Interval(float, -60.0, 100.0))
        elif feedback_snr_db is not None:
            raise invalid("feedback_snr_db", feedback_snr_db,
                          f"None for variant {self.variant!r} (noiseless feedback)")
        self.feedback_snr_db = feedback_snr_db
        self._dtype = torch.float32 if self.variant == "float32" else torch.float64

    @property
    def block_length(self) -> int:
        return self._k

    @property
    def n_channel_uses(self) -> int:
        return self._n

    @property
    def needs_feedback(self) -> bool:
        return True

    @property
    def name(self) -> str:
        if self.variant == "noisy-feedback":
            return f"SK (feedback SNR {self.feedback_snr_db:g} dB)"
        return f"SK ({self.variant})"

    def __repr__(self) -> str:
        extra = "" if self.feedback_snr_db is None else f", feedback_snr_db={self.feedback_snr_db}"
        return (f"SchalkwijkKailath(block_length={self._k}, n_channel_uses={self._n}, "
                f"variant={self.variant!r}{extra})")

    def default_channel(self, snr_db: float) -> FeedbackChannel:
        return FeedbackChannel(snr_db, self.feedback_snr_db)

    # message <-> PAM point
    def _theta(self, bits: torch.Tensor) -> torch.Tensor:
        weights = 2 ** torch.arange(self._k - 1, -1, -1, dtype=torch.int64)
        m = (bits.to(torch.int64) * weights).sum(1)
        M = 2**self._k
        # exact in float64 for K <= 52; (2 m + 1 - M) / M in (-1, 1)
        return ((2 * m + 1 - M).to(torch.float64) / M).to(self._dtype)

    def encode(self, bits: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The PAM point ``theta`` ``(B, 1)`` of each block (the first channel input divided
        by the constellation's standard deviation). The later inputs depend on the channel:
        use :meth:`transmit`."""
        bits = check_bits(bits, self._k)
        return self._theta(bits).unsqueeze(1)

    def transmit(self, bits: Any, channel: AWGN | FeedbackChannel, *,
                 generator: torch.Generator) -> torch.Tensor:
        bits = check_bits(bits, self._k)
        snr, fb = self._channel_settings(channel)
        dt = self._dtype
        B = bits.shape[0]
        sigma = 10.0 ** (-snr / 20.0)
        s2 = sigma * sigma
        fb_sigma = 0.0 if fb is None else 10.0 ** (-fb / 20.0)
        theta = self._theta(bits)
        M = 2**self._k
        var_theta = (M * M - 1) / (3.0 * M * M)
        z = torch.randn((B, self._n), generator=generator, dtype=torch.float64).mul_(sigma)
        z = z.to(dt)
        w = None
        if fb_sigma > 0:
            w = torch.randn((B, self._n), generator=generator, dtype=torch.float64)
            w = w.mul_(fb_sigma).to(dt)
        # use 1: theta at unit power
        a = math.sqrt(var_theta)
        y = theta / a + z[:, 0]
        est_rx = a * y
        est_tx = est_rx if w is None else a * (y + w[:, 0])
        alpha = var_theta * s2  # the receiver's error variance
        shrink = 1.0 / (1.0 + s2)
        # the smallest error standard deviation the arithmetic can scale to unit power:
        # the error (at most 2) divided by it must stay finite in the working dtype, and
        # alpha, kept in float64, must stay a normal number
        sa_min = max(2.0 / torch.finfo(dt).max, math.sqrt(sys.float_info.min))
        for i in range(1, self._n):
            sa = math.sqrt(alpha)
            if sa < sa_min:
                # at high SNR (or with many uses) the error variance falls below what the
                # arithmetic holds (float32 from about 6 dB at K = 50, float64 above about
                # 21 dB): the remaining uses send 0 instead of overflowing to inf / NaN
                break
            x = (est_tx - theta) / sa
            y = x + z[:, i]
            gain = sa * shrink
            est_rx = est_rx - gain * y
            if w is None:
                est_tx = est_rx
            else:
                est_tx = est_tx - gain * (y + w[:, i])
            alpha = alpha * s2 * shrink
        return est_rx.unsqueeze(1)

    def _channel_settings(self, channel: Any) -> tuple[float, float | None]:
        """(forward SNR, feedback SNR or None) of ``channel`` for this variant.

        A plain :class:`AWGN` channel means the variant's own feedback. A
        :class:`FeedbackChannel` must describe the feedback the variant assumes (none for
        ``"ideal"`` and ``"float32"``, ``feedback_snr_db`` for ``"noisy-feedback"``), with
        analog values one use late: the scheme has no quantised or further delayed form,
        so such a channel is an error rather than silently run as another one.
        """
        if isinstance(channel, AWGN):
            return channel.snr_db, self.feedback_snr_db
        if not isinstance(channel, FeedbackChannel):
            raise invalid("channel", channel, "an AWGN or FeedbackChannel")
        if channel.quantization is not None or channel.delay != 1:
            raise invalid("channel", channel,
                          "analog feedback with delay 1 (SchalkwijkKailath has no quantised "
                          "or delayed-feedback form)")
        if channel.feedback_snr_db != self.feedback_snr_db:
            want = ("noiseless feedback (feedback_snr_db=None)" if self.feedback_snr_db is None
                    else f"feedback_snr_db={self.feedback_snr_db:g}")
            raise invalid("channel", channel,
                          f"{want}, as variant {self.variant!r} assumes; for another feedback "
                          "link build SchalkwijkKailath(variant='noisy-feedback', "
                          "feedback_snr_db=...)")
        return channel.forward_snr_db, channel.feedback_snr_db

    def decode(self, received: Any) -> torch.Tensor:
        """Bits ``(B, K)`` of the PAM point nearest to the final estimate ``(B, 1)``."""
        if not isinstance(received, torch.Tensor) or received.dim() != 2 or \
                received.shape[1] != 1:
            raise invalid("received", received, "the (batch, 1) estimates from transmit()")
        if not bool(torch.isfinite(received).all()):
            raise invalid("received", received, "finite values")
        M = 2**self._k
        est = received[:, 0].to(torch.float64)
        m = torch.round((est * M + M - 1) / 2).clamp_(0, M - 1).to(torch.int64)
        shifts = torch.arange(self._k - 1, -1, -1, dtype=torch.int64)
        return (m.unsqueeze(1) >> shifts) & 1
