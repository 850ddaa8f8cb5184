"""The LTE turbo code through Sionna (``pip install 'neurips18[coding-anchors]'``)."""

from __future__ import annotations

from typing import Any

import torch

from neurips18._validation import Interval, Options, check, invalid
from neurips18.coding._code import Code, check_bits

__all__ = ["TurboCode"]

_LLR_MAX = 20.0
_MISSING = ("TurboCode needs Sionna: pip install 'neurips18[coding-anchors]' "
            "(the sionna-no-rt package)")


class TurboCode(Code):
    """Sionna's rate-1/3 LTE turbo code: two recursive systematic convolutional encoders
    of constraint length 4 (3GPP polynomials), the 3GPP interleaver, both encoders
    terminated (``3 K + 12`` coded bits), BPSK, and ``num_iter`` iterations of the BCJR
    decoder (``algorithm``: ``"map"``, ``"log"`` or ``"maxlog"``). ``constraint_length``
    3, 5 or 6 gives Sionna's turbo code of that length instead (with its own number of
    termination bits), named so in the results, not LTE's.

    The 3GPP interleaver is tabulated for ``K`` in {40, 48, 56, ...}; for another ``K``
    Sionna takes the next larger table entry and prunes it (for ``K = 50``: the ``K = 56``
    interleaver). Decoding takes the channel LLRs ``2 y / sigma^2``, clipped to +/-20
    (Sionna's MAP decoder overflows for much larger ones), so the received values are kept
    with the noise level they were sent at.
    """

    def __init__(self, block_length: int = 50, *, num_iter: int = 6, algorithm: str = "map",
                 constraint_length: int = 4) -> None:
        self._k = check("block_length", block_length, Interval(int, 40, 6144))
        self.num_iter = check("num_iter", num_iter, Interval(int, 1, 100))
        self.algorithm = check("algorithm", algorithm, Options({"map", "log", "maxlog"}))
        self.constraint_length = check("constraint_length", constraint_length,
                                       Interval(int, 3, 6))
        # Sionna's configuration re-seeds torch's global generators from OS entropy when it
        # is first imported (sionna.phy.config with no seed set): a caller's
        # torch.manual_seed(...) was undone by building the first TurboCode, and every later
        # draw from the global generator differed from run to run. Their state is kept.
        with torch.random.fork_rng():
            try:
                from sionna.phy.fec.turbo import TurboDecoder, TurboEncoder
            except ImportError as exc:
                raise ImportError(_MISSING) from exc
            self._enc = TurboEncoder(constraint_length=self.constraint_length, rate=1 / 3,
                                     terminate=True, interleaver_type="3GPP",
                                     precision="single", device="cpu")
            # the decoder must be built before the encoder's coderate is read
            self._dec = TurboDecoder(self._enc, num_iter=self.num_iter,
                                     algorithm=self.algorithm, hard_out=True,
                                     precision="single", device="cpu")
            self._n = int(self._enc(torch.zeros(1, self._k)).shape[-1])

    @property
    def block_length(self) -> int:
        return self._k

    @property
    def n_channel_uses(self) -> int:
        return self._n

    @property
    def name(self) -> str:
        # the LTE code is the constraint-length-4 one; another length keeps the 3GPP
        # interleaver but is not LTE's code, and its results must not carry that name
        kind = "LTE" if self.constraint_length == 4 else \
            f"constraint length {self.constraint_length}"
        return f"turbo ({kind}, {self.num_iter} it. {self.algorithm.upper()})"

    def __repr__(self) -> str:
        cl = "" if self.constraint_length == 4 else \
            f", constraint_length={self.constraint_length}"
        return (f"TurboCode(block_length={self._k}, num_iter={self.num_iter}, "
                f"algorithm={self.algorithm!r}{cl})")

    def encode(self, bits: Any) -> torch.Tensor:
        """BPSK symbols ``2 c - 1`` of the codeword ``c`` ``(B, 3 K + 12)``."""
        b = check_bits(bits, self._k).to(torch.float32)
        return 2.0 * self._enc(b) - 1.0

    def decode(self, received: Any, *, snr_db: float | None = None) -> torch.Tensor:
        """Bits ``(B, K)`` from the received values; ``snr_db`` is the channel's SNR
        (needed for the LLRs)."""
        if snr_db is None:
            raise invalid("snr_db", None, "the SNR (dB) the block was received at")
        snr_db = check("snr_db", snr_db, Interval(float, -60.0, 100.0))
        if not isinstance(received, torch.Tensor) or received.dim() != 2 or \
                received.shape[1] != self._n:
            raise invalid("received", received, f"a tensor of shape (batch, {self._n})")
        if received.shape[0] == 0:
            raise invalid("received", received, "at least one block")
        if received.is_complex():
            raise invalid("received", received, "real values")
        if not bool(torch.isfinite(received).all()):
            raise invalid("received", received, "finite values")
        s2 = 10.0 ** (-snr_db / 10.0)
        # Sionna's BCJR ("map") overflows for channel LLRs of about 100 and more (noiseless
        # or high-SNR input decodes to garbage); clip at its own extrinsic limit, 20
        llr = ((2.0 / s2) * received.to(torch.float32)).clamp_(-_LLR_MAX, _LLR_MAX)
        with torch.no_grad():
            return self._dec(llr).to(torch.int64)

    def decoder_for(self, channel: Any):  # type: ignore[no-untyped-def]
        """Decode blocks received through ``channel`` (its SNR gives the LLRs)."""
        snr = getattr(channel, "snr_db", getattr(channel, "forward_snr_db", None))
        return lambda received: self.decode(received, snr_db=snr)
