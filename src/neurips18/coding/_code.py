"""The interface every code of :mod:`neurips18.coding` implements, and uncoded BPSK."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from neurips18._validation import invalid

if TYPE_CHECKING:
    import torch

    from neurips18.coding._channels import AWGN, FeedbackChannel

__all__ = ["Code", "UncodedBPSK", "check_bits"]


def check_bits(bits: Any, block_length: int, name: str = "bits") -> torch.Tensor:
    """``bits`` as a ``(B, block_length)`` tensor whose entries are exactly 0 or 1.

    Accepts bool, integer and floating tensors (and NumPy arrays); anything else, another
    shape, an empty batch or a value other than 0 and 1 is an error naming ``name``. The
    input is not modified.
    """
    import numpy as np
    import torch

    if isinstance(bits, np.ndarray):
        if bits.dtype.kind not in "biuf":
            raise invalid(name, bits, "an array of 0s and 1s")
        bits = torch.from_numpy(np.ascontiguousarray(bits))
    if not isinstance(bits, torch.Tensor):
        raise invalid(name, bits, f"a tensor of shape (batch, {block_length}) holding 0s and 1s")
    if bits.is_complex():
        raise invalid(name, bits, "real 0s and 1s")
    if bits.dim() != 2 or bits.shape[1] != block_length:
        raise invalid(name, bits, f"shape (batch, {block_length}): this code takes blocks "
                                  f"of {block_length} bits, got shape {tuple(bits.shape)}")
    if bits.shape[0] == 0:
        raise invalid(name, bits, "at least one block")
    if bits.dtype != torch.bool:
        ok = (bits == 0) | (bits == 1)
        if not bool(ok.all()):
            bad = bits[~ok].flatten()[:3].tolist()
            raise invalid(name, bits, f"only 0s and 1s; found {bad} (NaN, fractions and "
                                      "other integers are not bits)")
    return bits


class Code(abc.ABC):
    """A block code for the real AWGN channel (with or without feedback).

    ``block_length`` information bits are sent in ``n_channel_uses`` real channel uses of
    unit average power; ``rate = block_length / n_channel_uses``. ``encode(bits)`` maps
    ``(B, block_length)`` bits in {0, 1} to ``(B, n_channel_uses)`` symbols (feedback codes
    also take the feedback), ``decode(received)`` maps received values back to
    ``(B, block_length)`` int64 bits, and ``transmit(bits, channel, generator=g)`` returns
    what the receiver gets through ``channel``. ``default_channel(snr_db)`` is the channel
    ``simulate_ber`` uses when given a plain SNR.
    """

    @property
    @abc.abstractmethod
    def block_length(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_channel_uses(self) -> int: ...

    @property
    def rate(self) -> float:
        return self.block_length / self.n_channel_uses

    @property
    def needs_feedback(self) -> bool:
        return False

    @property
    def transmit_returns_channel_output(self) -> bool:
        """Whether ``transmit`` returns what the receiver got, one real value per channel
        use: ``simulate_ber`` then measures the power sent from it. A code whose
        ``transmit`` returns something else (an estimate, LLRs) says ``False``; the shape
        alone cannot tell, e.g. a single estimate per block of one channel use."""
        return True

    @property
    def name(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def encode(self, bits: Any, *args: Any, **kwargs: Any) -> torch.Tensor: ...

    @abc.abstractmethod
    def decode(self, received: Any) -> torch.Tensor: ...

    def default_channel(self, snr_db: float) -> AWGN | FeedbackChannel:
        from neurips18.coding._channels import AWGN

        return AWGN(snr_db)

    def decoder_for(self, channel: AWGN | FeedbackChannel) -> Any:
        """The decoding function for blocks received through ``channel`` (``decode``
        itself unless the decoder needs the channel's noise level)."""
        return self.decode

    def transmit(self, bits: Any, channel: AWGN | FeedbackChannel, *,
                 generator: torch.Generator) -> torch.Tensor:
        from neurips18.coding._channels import AWGN, FeedbackChannel

        if isinstance(channel, FeedbackChannel):
            channel = channel.forward_channel()  # a code without feedback ignores it
        if not isinstance(channel, AWGN):
            raise invalid("channel", channel, "an AWGN or FeedbackChannel")
        return channel(self._checked_symbols(self.encode(bits), bits), generator=generator)

    def _checked_symbols(self, x: Any, bits: Any) -> torch.Tensor:
        """``encode``'s output, checked to be real floating-point symbols, ``n_channel_uses``
        of them per block: the rate, and with it Eb/N0, is ``block_length /
        n_channel_uses``, so a codeword of another length would be measured at a wrong
        Eb/N0 without a word."""
        import torch

        name = f"{self.name}.encode(bits)"
        B = len(bits)
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] != B:
            raise invalid(name, x, f"a tensor of channel symbols with one row per block "
                                   f"({B} blocks)")
        if not x.is_floating_point():
            raise invalid(name, x, "floating-point channel symbols (got dtype "
                                   f"{x.dtype}; e.g. 2.0 * bits - 1.0 for BPSK)")
        if not bool(torch.isfinite(x).all()):
            # an infinite symbol survives any noise (a BER of 0 at infinite power) and a
            # NaN one is decided as some bit: either is a BER of no SNR at all
            bad = int((~torch.isfinite(x)).sum())
            raise invalid(name, x, f"finite channel symbols; found {bad} NaN or infinite")
        n = x[0].numel()
        if n != self.n_channel_uses:
            raise invalid(name, x, f"{self.n_channel_uses} channel symbols per block (this "
                                   f"code's n_channel_uses, which sets its rate "
                                   f"{self.rate:.4g}), got {n}")
        return x


class UncodedBPSK(Code):
    """Uncoded BPSK: bit ``b`` is sent as ``2 b - 1``, decided by the sign (rate 1)."""

    def __init__(self, block_length: int = 50) -> None:
        from neurips18._validation import Interval, check

        self._k = check("block_length", block_length, Interval(int, 1, None))

    @property
    def block_length(self) -> int:
        return self._k

    @property
    def n_channel_uses(self) -> int:
        return self._k

    def encode(self, bits: Any) -> torch.Tensor:
        import torch

        b = check_bits(bits, self._k)
        return 2.0 * b.to(torch.get_default_dtype()) - 1.0

    def decode(self, received: Any) -> torch.Tensor:
        import torch

        from neurips18._validation import check_tensor

        check_tensor("received", received, ndim=2)
        if received.shape[1] != self._k:
            raise invalid("received", received, f"shape (batch, {self._k})")
        return (received > 0).to(torch.int64)

    def __repr__(self) -> str:
        return f"UncodedBPSK(block_length={self._k})"
