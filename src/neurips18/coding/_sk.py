"""The Schalkwijk-Kailath scheme for the AWGN channel with feedback.

Schalkwijk and Kailath, "A coding scheme for additive noise channels with feedback",
IEEE Trans. Inf. Theory 12(2), 1966. ``K`` bits pick one of ``M = 2**K`` PAM points
``theta``; the first channel use sends ``theta`` at unit power, every later use sends the
receiver's current estimation error (which the transmitter knows through the feedback) at
unit power, and the receiver updates its linear MMSE estimate; its error variance shrinks by
``1 + SNR`` per use, so the error probability falls doubly exponentially with the number of
channel uses. After ``N`` uses the receiver picks the nearest PAM point. Every use sends
at most unit power on average (see ``SchalkwijkKailath._run`` for how the arithmetic keeps
it so); once the error variance is below what the arithmetic holds, the remaining uses
send 0.

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
    def transmit_returns_channel_output(self) -> bool:
        return False  # transmit returns the receiver's final estimate of theta

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
        if not isinstance(generator, torch.Generator):
            # None would draw the channel noise from torch's global generator
            raise invalid("generator", generator, "a torch.Generator")
        return self._run(bits, channel, generator)[0].unsqueeze(1)

    def _run(self, bits: torch.Tensor, channel: AWGN | FeedbackChannel,
             generator: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """Both ends of the scheme: the receiver's final estimate ``(B,)`` and the mean
        transmitted power of each channel use (``N`` values; 0 for the uses left silent).

        The float64 variants (``"ideal"``, ``"noisy-feedback"``) carry the estimates as
        ``theta`` plus their errors and update the errors, which the feedback gives the
        transmitter, directly: forming ``estimate - theta`` would cancel to the estimate's
        rounding (2.2e-16 near 1) long before the last use (the error's standard deviation
        falls by ``sqrt(1 + SNR)`` per use, to 1e-19 after 150 uses at -1 dB), and scaling
        that rounding to unit variance would send far more than unit power (an average of
        414 per use at -1 dB, K = 50, N = 150) while telling the receiver nothing. Kept as
        errors, every use sends unit power and the estimate is rounded once, at the end.
        ``"float32"`` keeps the finite-precision estimates at both ends it is there to show;
        once the error's standard deviation is below float32's resolution of the estimate
        (``eps`` = 1.2e-7, estimates lying in [-1, 1]) the remaining uses send 0."""
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
        a = math.sqrt(var_theta)
        power = [float((theta * theta).mean()) / var_theta]
        alpha = var_theta * s2  # the receiver's error variance (float32 path)
        shrink = 1.0 / (1.0 + s2)
        # the smallest error standard deviation the arithmetic can scale to unit power:
        # the error divided by it must stay finite in the working dtype, alpha (float64)
        # a normal number, and for float32 the error must still be resolved
        sa_min = max(2.0 / torch.finfo(dt).max, math.sqrt(sys.float_info.min))
        if self.variant == "float32":
            sa_min = max(sa_min, float(torch.finfo(dt).eps))
        if self.variant == "float32":
            # use 1: theta at unit power; both ends keep float32 estimates
            y = theta / a + z[:, 0]
            est_rx = a * y
            for i in range(1, self._n):
                sa = math.sqrt(alpha)
                if sa < sa_min:
                    break
                x = (est_rx - theta) / sa
                power.append(float((x.double() ** 2).mean()))
                y = x + z[:, i]
                est_rx = est_rx - (sa * shrink) * y
                alpha = alpha * s2 * shrink
        else:
            # use 1 leaves the receiver with theta + a z_1 (a = the constellation's
            # standard deviation); the transmitter with theta + a (z_1 + w_1)
            err_rx = a * z[:, 0]
            err_tx = err_rx if w is None else a * (z[:, 0] + w[:, 0])
            # covariance of (receiver's error, transmitter's error), tracked exactly: the
            # transmitter sends its own error at unit variance and the receiver's gain is
            # the linear MMSE one for that; with noiseless feedback the three are equal and
            # this is the textbook recursion (alpha shrinking by 1 / (1 + SNR) per use)
            fw2 = fb_sigma * fb_sigma
            v_rx = c = var_theta * s2
            v_tx = var_theta * (s2 + fw2)
            for i in range(1, self._n):
                if not min(v_rx, v_tx) >= sa_min * sa_min:
                    break
                st = math.sqrt(v_tx)
                x = err_tx / st
                power.append(float((x * x).mean()))
                y = x + z[:, i]
                gain = (c / st) * shrink
                err_rx = err_rx - gain * y
                err_tx = err_rx if w is None else err_tx - gain * (y + w[:, i])
                if w is None:  # v_rx = v_tx = c: the textbook 1 / (1 + SNR) per use
                    v_rx = v_tx = c = c * s2 * shrink
                else:
                    q = c * c / v_tx * shrink
                    v_rx, v_tx, c = (v_rx - q,
                                     v_tx - 2 * c * shrink + q * (1 + s2 + fw2) * shrink,
                                     c * s2 * shrink)
            est_rx = theta + err_rx
        power += [0.0] * (self._n - len(power))
        return est_rx, power

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
