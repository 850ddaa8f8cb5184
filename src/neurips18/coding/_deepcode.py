"""Deepcode: a learned rate-1/3 code for the AWGN channel with feedback.

Kim, Jiang, Kannan, Oh, Viswanath, "Deepcode: Feedback Codes via Deep Learning",
NeurIPS 2018 (arXiv:1807.00801).

A block of ``K`` bits is padded with one zero to ``P = K + 1`` positions and sent in
``3 P`` channel uses. Phase I sends the bits as BPSK (``2 b - 1``); through the feedback the
transmitter learns the noise on them. Phase II: at position ``k`` a unidirectional tanh RNN
reads ``[b_k, n_k + w, m_{k-d} + w, o_{k-d} + w]`` (the fed-back Phase I noise and the
fed-back noise of the parity symbols of position ``k - d``) and a per-position
``Dense(2, sigmoid)`` gives two parity symbols. They are normalised per position and stream
to zero mean and unit variance (batch statistics while training, stored statistics after
:meth:`Deepcode.calibrate`, so that the encoder stays causal), then power is allocated: one
weight per stream, one per position on the first four and the last five positions, and one
global scale that makes the average power per symbol exactly 1. The decoder reads the
``P x 3`` received values with two bidirectional GRU layers, each followed by batch
normalisation, and a per-position ``Dense(1, sigmoid)``.

Two recurrent cells are available for the decoder: ``cell="torch"`` (PyTorch's fused GRU,
sigmoid gates, the reset gate applied after the recurrent product) for models trained here,
and ``cell="keras"`` (Keras 2.0.8's GRU: hard-sigmoid gates ``clip(0.2 x + 0.5, 0, 1)``,
gate order z, r, h, the reset gate applied before the recurrent product, one bias) for the
authors' weights (:meth:`Deepcode.from_official`).
"""

from __future__ import annotations

import copy
import io
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from neurips18._validation import Interval, Options, check, invalid
from neurips18.coding._channels import FeedbackChannel, FeedbackRealization
from neurips18.coding._code import Code, check_bits

if TYPE_CHECKING:
    from neurips18.coding._channels import AWGN

__all__ = ["Deepcode", "OfficialWeightsError"]

_HEAD = 4  # positions with their own power weight at the start of the block
_TAIL = 5  # ... and at its end
_CHUNK = 1024  # blocks per pass of the inference decoder


class OfficialWeightsError(ValueError):
    """A weight file is missing a key, has an array of the wrong shape, or is not an .npz."""


def _hard_sigmoid_(x: torch.Tensor) -> torch.Tensor:
    return x.mul_(0.2).add_(0.5).clamp_(0.0, 1.0)


class KerasGRU(nn.Module):
    """A bidirectional GRU layer with Keras 2.0.8 semantics (see the module docstring).

    Parameters in Keras' layout: ``kernel[d]`` ``(input, 3 H)``, ``recurrent_kernel[d]``
    ``(H, 3 H)``, ``bias[d]`` ``(3 H,)``, gates ``z, r, h``; ``d = 0`` forward, 1 backward.
    Input and output are ``(batch, time, features)``; the output concatenates the forward
    and the backward states.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        h3 = 3 * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.kernel = nn.Parameter(torch.empty(2, input_size, h3).uniform_(-bound, bound))
        self.recurrent_kernel = nn.Parameter(torch.empty(2, hidden_size, h3).uniform_(-bound,
                                                                                        bound))
        self.bias = nn.Parameter(torch.zeros(2, h3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        H = self.hidden_size
        # input projections of both directions for every step at once: (2, T, B, 3H),
        # the backward direction's time reversed so one loop serves both
        xt = x.transpose(0, 1)
        xp = torch.stack([xt, xt.flip(0)], 0).reshape(2, T * B, -1)
        xp = torch.baddbmm(self.bias.unsqueeze(1), xp, self.kernel).view(2, T, B, 3 * H)
        U = self.recurrent_kernel
        Uzr, Uh = U[:, :, : 2 * H], U[:, :, 2 * H:]
        h = x.new_zeros(2, B, H)
        outs = []
        fast = not torch.is_grad_enabled()
        for t in range(T):
            xpt = xp[:, t]
            if fast:
                zr = _hard_sigmoid_(torch.baddbmm(xpt[:, :, : 2 * H], h, Uzr))
                z, r = zr[:, :, :H], zr[:, :, H:]
                hh = torch.baddbmm(xpt[:, :, 2 * H:], r * h, Uh).tanh_()
                h = torch.addcmul(hh, z, h - hh)
            else:
                zr = (0.2 * torch.baddbmm(xpt[:, :, : 2 * H], h, Uzr) + 0.5).clamp(0.0, 1.0)
                z, r = zr[:, :, :H], zr[:, :, H:]
                hh = torch.tanh(torch.baddbmm(xpt[:, :, 2 * H:], r * h, Uh))
                h = hh + z * (h - hh)
            outs.append(h)
        hs = torch.stack(outs, 0)  # (T, 2, B, H)
        fwd, bwd = hs[:, 0], hs[:, 1].flip(0)
        return torch.cat([fwd, bwd], -1).transpose(0, 1)


def _run_direction(xp: torch.Tensor, U: torch.Tensor, bh: torch.Tensor | None,
                   out: torch.Tensor, *, reverse: bool, keras: bool) -> None:
    """One GRU direction over time without autograd; ``xp`` (T, B, 3H) holds the input
    projections with their bias, ``out`` (T, B, H) receives the states at their time
    index. ``keras``: gates z, r, h, hard sigmoid, reset before the recurrent product;
    else PyTorch's r, z, n, sigmoid, reset after it (``bh`` its recurrent bias)."""
    T, B, H3 = xp.shape
    H = H3 // 3
    h = xp.new_zeros(B, H)
    steps = range(T - 1, -1, -1) if reverse else range(T)
    if keras:
        Uzr, Uh = U[:, : 2 * H], U[:, 2 * H:]
        for t in steps:
            xt = xp[t]
            zr = _hard_sigmoid_(torch.addmm(xt[:, : 2 * H], h, Uzr))
            z, r = zr[:, :H], zr[:, H:]
            hh = torch.addmm(xt[:, 2 * H:], r * h, Uh).tanh_()
            h = torch.addcmul(hh, z, h - hh, out=out[t])
    else:
        assert bh is not None
        for t in steps:
            xt = xp[t]
            gh = torch.addmm(bh, h, U)
            rz = torch.add(xt[:, : 2 * H], gh[:, : 2 * H]).sigmoid_()
            r, z = rz[:, :H], rz[:, H:]
            n = torch.addcmul(xt[:, 2 * H:], r, gh[:, 2 * H:]).tanh_()
            h = torch.addcmul(n, z, h - n, out=out[t])


class _TorchGRU(nn.Module):
    """PyTorch's fused bidirectional GRU, batch first."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class Deepcode(Code, nn.Module):
    """The Deepcode feedback code (rate ``K / (3 (K + 1))``, about 1/3).

    Parameters
    ----------
    block_length : information bits per block ``K`` (at least 8; one zero is appended).
    hidden : units of the encoder RNN (50 in the paper).
    decoder_hidden : units of each decoder GRU direction (default ``hidden``).
    cell : ``"torch"`` (fused PyTorch GRU) or ``"keras"`` (Keras 2.0.8 GRU semantics).
    generator : a ``torch.Generator`` or int seed for the initial weights (``None``: torch's
        global generator, as for any ``nn.Module``).

    Use
    ---
    ``encode(bits, feedback)`` gives the codeword ``(B, K + 1, 3)`` (columns: systematic,
    parity 1, parity 2) from the bits ``(B, K)`` and what the feedback told the transmitter;
    ``decode(received)`` gives the bits back; ``transmit(bits, channel, generator=g)`` runs
    both ends of a :class:`~neurips18.coding.FeedbackChannel`. The encoder's normalisation
    uses stored statistics outside training: call :meth:`calibrate` after training (done by
    :func:`~neurips18.coding.train_deepcode`). A model serves the block length it was built
    for; :meth:`with_block_length` makes a copy for another length (see there).
    """

    def __init__(self, block_length: int = 50, hidden: int = 50, decoder_hidden: int | None = None,
                 *, cell: str = "torch", generator: Any = None) -> None:
        block_length = check("block_length", block_length, Interval(int, 8, 100_000))
        hidden = check("hidden", hidden, Interval(int, 1, 4096))
        decoder_hidden = check("decoder_hidden", decoder_hidden, Interval(int, 1, 4096), None)
        cell = check("cell", cell, Options({"torch", "keras"}))
        nn.Module.__init__(self)
        self._block_length = block_length
        self.hidden = hidden
        self.decoder_hidden = hidden if decoder_hidden is None else decoder_hidden
        self.cell = cell
        if generator is not None:
            from neurips18._validation import as_torch_generator, torch_seeded

            seed = int(torch.randint(0, 2**62, (1,),
                                     generator=as_torch_generator(generator)).item())
            with torch_seeded(seed):  # only the CPU generator (see torch_seeded)
                self._build()
        else:
            self._build()
        self.training_record: dict[str, Any] = {}

    def _build(self) -> None:
        P, H, Hd = self.positions, self.hidden, self.decoder_hidden
        self.encoder_rnn = nn.RNN(4, H, batch_first=True, nonlinearity="tanh")
        self.encoder_out = nn.Linear(H, 2)
        self.register_buffer("norm_mean", torch.zeros(P, 2))
        self.register_buffer("norm_var", torch.ones(P, 2))
        self.register_buffer("calibrated", torch.tensor(False))
        self.stream_weight = nn.Parameter(torch.ones(3))
        self.head_weight = nn.Parameter(torch.ones(_HEAD))
        self.tail_weight = nn.Parameter(torch.ones(_TAIL))
        gru = KerasGRU if self.cell == "keras" else _TorchGRU
        self.decoder_gru1 = gru(3, Hd)
        self.decoder_bn1 = nn.BatchNorm1d(2 * Hd, eps=1e-3, momentum=0.01)
        self.decoder_gru2 = gru(2 * Hd, Hd)
        self.decoder_bn2 = nn.BatchNorm1d(2 * Hd, eps=1e-3, momentum=0.01)
        self.decoder_out = nn.Linear(2 * Hd, 1)

    # ------------------------------------------------------------------ Code interface
    @property
    def block_length(self) -> int:
        return self._block_length

    @property
    def positions(self) -> int:
        return self._block_length + 1

    @property
    def n_channel_uses(self) -> int:
        return 3 * self.positions

    @property
    def rate(self) -> float:
        return self._block_length / self.n_channel_uses

    @property
    def needs_feedback(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return "Deepcode"

    def extra_repr(self) -> str:
        return (f"block_length={self._block_length}, hidden={self.hidden}, "
                f"decoder_hidden={self.decoder_hidden}, cell={self.cell!r}")

    # ------------------------------------------------------------------ encoder
    def _dtype(self) -> torch.dtype:
        return self.encoder_out.weight.dtype

    def _position_weights(self) -> torch.Tensor:
        """(P, 3) amplitude of every symbol, average power 1 over the block."""
        P = self.positions
        ones = self.head_weight.new_ones(P - _HEAD - _TAIL)
        pos = torch.cat([self.head_weight, ones, self.tail_weight])
        w = self.stream_weight
        den = (pos.pow(2).sum()) * (w.pow(2).sum())
        return pos[:, None] * w[None, :] * torch.sqrt(3.0 * P / den)

    def _parity(self, bits_p: torch.Tensor, feedback: torch.Tensor) -> torch.Tensor:
        """Parity before normalisation, (B, P, 2)."""
        rnn_in = torch.cat([bits_p.unsqueeze(-1), feedback], -1)
        return torch.sigmoid(self.encoder_out(self.encoder_rnn(rnn_in)[0]))

    def _normalise(self, parity: torch.Tensor) -> torch.Tensor:
        if self.training:
            # a training pass is for changing the encoder: the stored statistics no longer
            # describe it (a fine-tuned model normalised by its old statistics sends more
            # or less than unit power), so they must be measured again before use
            if parity.shape[0] < 2:
                # one block is its own batch mean: every parity symbol became exactly 0,
                # the block carried a third of its power and the encoder got no gradient
                # (BatchNorm refuses the same case)
                raise invalid("batch", parity.shape[0],
                              "at least 2 blocks in training mode (the encoder normalises "
                              "each position over the batch); for one block use eval mode "
                              "after calibrate()")
            self.calibrated.fill_(False)
            mean = parity.mean(0)
            var = parity.var(0, unbiased=False)
            return (parity - mean) / torch.sqrt(var + 1e-10)
        if not bool(self.calibrated):
            raise RuntimeError(
                "this Deepcode model has no stored normalisation statistics, or it has "
                "run in training mode since they were measured: call model.calibrate(...) "
                "after training (train_deepcode does), or load trained weights")
        return (parity - self.norm_mean) / torch.sqrt(self.norm_var)

    def _codeword(self, bits_p: torch.Tensor, feedback: torch.Tensor) -> torch.Tensor:
        parity = self._normalise(self._parity(bits_p, feedback))
        systematic = (2.0 * bits_p - 1.0).unsqueeze(-1)
        return torch.cat([systematic, parity], -1) * self._position_weights()

    def _padded(self, bits: torch.Tensor) -> torch.Tensor:
        bits = bits.to(self._dtype())
        return torch.cat([bits, bits.new_zeros(bits.shape[0], 1)], 1)

    def _check_feedback(self, feedback: Any, batch: int) -> torch.Tensor:
        if isinstance(feedback, FeedbackRealization):
            feedback = feedback.feedback
        if not isinstance(feedback, torch.Tensor):
            raise invalid("feedback", feedback,
                          "a FeedbackRealization or a tensor of shape (batch, K + 1, 3)")
        if tuple(feedback.shape) != (batch, self.positions, 3):
            raise invalid("feedback", feedback,
                          f"shape ({batch}, {self.positions}, 3) for {batch} block(s) of "
                          f"{self._block_length} bits, got {tuple(feedback.shape)}")
        if not feedback.is_floating_point() or not bool(torch.isfinite(feedback).all()):
            raise invalid("feedback", feedback, "finite floating-point values")
        return feedback.to(self._dtype())

    def encode(self, bits: Any, feedback: Any = None) -> torch.Tensor:
        """The codeword ``(B, K + 1, 3)`` for ``bits`` ``(B, K)`` in {0, 1}.

        ``feedback``: a :class:`FeedbackRealization` (from ``FeedbackChannel.sample``) or
        its ``feedback`` tensor ``(B, K + 1, 3)``: what the transmitter learned.
        """
        bits = check_bits(bits, self._block_length)
        if feedback is None:
            raise invalid("feedback", None, "the feedback the transmitter received: a "
                          "FeedbackRealization from FeedbackChannel.sample(...)")
        fb = self._check_feedback(feedback, bits.shape[0])
        return self._codeword(self._padded(bits), fb)

    # ------------------------------------------------------------------ decoder
    def _bn(self, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
        # statistics per feature over blocks and positions; on the (B T, C) view, which
        # batch norm handles several times faster than the strided (B, C, T) one
        B, T, C = x.shape
        return bn(x.reshape(B * T, C)).view(B, T, C)

    def _decoder_logits(self, received: torch.Tensor) -> torch.Tensor:
        if not self.training and not torch.is_grad_enabled():
            return self._decoder_logits_inference(received)
        x = self._bn(self.decoder_bn1, self.decoder_gru1(received))
        x = self._bn(self.decoder_bn2, self.decoder_gru2(x))
        return self.decoder_out(x[:, : self._block_length]).squeeze(-1)

    def _gru_weights(self, gru: nn.Module, d: int) -> tuple[torch.Tensor, torch.Tensor,
                                                          torch.Tensor, torch.Tensor | None]:
        """(input kernel (I, 3H), input bias (3H,), recurrent kernel (H, 3H), recurrent bias
        or None) of direction ``d`` in the cell's own gate order."""
        if isinstance(gru, KerasGRU):
            return gru.kernel[d], gru.bias[d], gru.recurrent_kernel[d], None
        g = gru.gru
        sfx = "_reverse" if d else ""
        return (getattr(g, f"weight_ih_l0{sfx}").T, getattr(g, f"bias_ih_l0{sfx}"),
                getattr(g, f"weight_hh_l0{sfx}").T, getattr(g, f"bias_hh_l0{sfx}"))

    def _decoder_logits_inference(self, received: torch.Tensor) -> torch.Tensor:
        """The decoder without autograd: both GRU layers as explicit loops over time with
        the input projections of all steps computed at once, each direction writing its
        states in place at their time index, and each batch norm (eval mode: an affine
        map per feature) folded into the next layer's input weights. Equal to the module
        path up to floating-point rounding (tested)."""
        B, T, _ = received.shape
        if B > _CHUNK:  # blocks of about a thousand keep the loop's tensors in cache
            return torch.cat([self._decoder_logits_inference(c)
                              for c in received.split(_CHUNK)])
        H = self.decoder_hidden
        keras = self.cell == "keras"
        x = received.transpose(0, 1).reshape(T * B, -1)
        scale = shift = None
        for gru, bn in ((self.decoder_gru1, self.decoder_bn1),
                        (self.decoder_gru2, self.decoder_bn2)):
            out = x.new_empty(T, B, 2 * H)
            for d in (0, 1):
                W, b, U, bh = self._gru_weights(gru, d)
                if scale is not None:
                    b = torch.addmv(b, W.T, shift)
                    W = W * scale[:, None]
                xp = torch.addmm(b, x, W).view(T, B, 3 * H)
                _run_direction(xp, U, bh, out[:, :, d * H:(d + 1) * H], reverse=bool(d),
                               keras=keras)
            x = out.view(T * B, 2 * H)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
        w = self.decoder_out.weight[0]
        bias = self.decoder_out.bias + torch.dot(w, shift)
        logits = torch.addmv(bias.expand(T * B), x, w * scale).view(T, B)
        return logits[: self._block_length].T

    def decode(self, received: Any, *, output: str = "bits") -> torch.Tensor:
        """Decode ``received`` ``(B, K + 1, 3)``: ``output="bits"`` (int64 in {0, 1}),
        ``"prob"`` (P(b = 1)) or ``"logit"`` (log P(b = 1) / P(b = 0)), shape ``(B, K)``."""
        output = check("output", output, Options({"bits", "prob", "logit"}))
        if not isinstance(received, torch.Tensor):
            raise invalid("received", received, "a tensor of shape (batch, K + 1, 3)")
        if received.dim() != 3 or tuple(received.shape[1:]) != (self.positions, 3):
            raise invalid("received", received,
                          f"shape (batch, {self.positions}, 3) for blocks of "
                          f"{self._block_length} bits")
        if received.shape[0] == 0:
            raise invalid("received", received, "at least one block")
        if not received.is_floating_point() or not bool(torch.isfinite(received).all()):
            raise invalid("received", received, "finite floating-point values")
        logits = self._decoder_logits(received.to(self._dtype()))
        if not bool(torch.isfinite(logits).all()):
            # a NaN logit compares False with 0 and would be decided as bit 0 without a
            # word (a BER of about 0.5 that looks like a bad code, not a broken model)
            raise ValueError(
                "Deepcode.decode: the decoder gave NaN or infinite logits for finite "
                "received values: the decoder's weights or batch-norm statistics hold NaN, "
                "inf or a negative variance (a diverged training run or a damaged file)")
        if output == "logit":
            return logits
        if output == "prob":
            return torch.sigmoid(logits)
        return (logits > 0).to(torch.int64)

    # ------------------------------------------------------------------ both ends
    def forward(self, bits: torch.Tensor, feedback: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``(B, K)`` after encoding, adding ``noise`` and decoding (the
        training path: no input checks)."""
        received = self._codeword(self._padded(bits), feedback) + noise
        return self._decoder_logits(received)

    def default_channel(self, snr_db: float) -> FeedbackChannel:
        return FeedbackChannel(snr_db)

    def transmit(self, bits: Any, channel: FeedbackChannel | AWGN, *,
                 generator: torch.Generator) -> torch.Tensor:
        """Encode with the feedback of one draw of ``channel`` and return what the receiver
        gets, ``(B, K + 1, 3)``."""
        bits = check_bits(bits, self._block_length)
        if not isinstance(channel, FeedbackChannel):
            raise invalid("channel", channel, "a FeedbackChannel (Deepcode needs feedback)")
        real = channel.sample(bits.shape[0], self.positions, generator=generator,
                              dtype=self._dtype())
        return self._codeword(self._padded(bits), real.feedback) + real.noise

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def calibrate(self, channel: FeedbackChannel, *, n_blocks: int = 100_000,
                  batch_size: int = 5_000, generator: Any) -> Deepcode:
        """Store the encoder's per-position normalisation statistics and the decoder's
        batch-norm statistics, measured on ``n_blocks`` random blocks through ``channel``
        (the encoder's first, then the decoder's with the stored encoder statistics).
        Returns ``self`` (in eval mode)."""
        from neurips18._validation import as_torch_generator

        if not isinstance(channel, FeedbackChannel):
            raise invalid("channel", channel, "a FeedbackChannel")
        n_blocks = check("n_blocks", n_blocks, Interval(int, 2, None))
        batch_size = check("batch_size", batch_size, Interval(int, 2, None))
        g = as_torch_generator(generator)
        self.eval()
        P, K = self.positions, self._block_length
        dt = self._dtype()
        sizes = [min(batch_size, n_blocks - i) for i in range(0, n_blocks, batch_size)]
        draws = []
        s1 = torch.zeros(P, 2, dtype=torch.float64)
        s2 = torch.zeros(P, 2, dtype=torch.float64)
        for b in sizes:
            bits = torch.randint(0, 2, (b, K), generator=g).to(dt)
            real = channel.sample(b, P, generator=g, dtype=dt)
            draws.append((bits, real))
            par = self._parity(self._padded(bits), real.feedback).double()
            s1 += par.sum(0)
            s2 += par.pow(2).sum(0)
        mean = s1 / n_blocks
        self.norm_mean.copy_(mean)
        self.norm_var.copy_(s2 / n_blocks - mean.pow(2))
        self.calibrated.fill_(True)
        for bn, first in ((self.decoder_bn1, True), (self.decoder_bn2, False)):
            c = bn.num_features
            m1 = torch.zeros(c, dtype=torch.float64)
            m2 = torch.zeros(c, dtype=torch.float64)
            count = 0
            for bits, real in draws:
                rec = self._codeword(self._padded(bits), real.feedback) + real.noise
                h = self.decoder_gru1(rec)
                if not first:
                    h = self.decoder_gru2(self._bn(self.decoder_bn1, h))
                h = h.reshape(-1, c).double()
                m1 += h.sum(0)
                m2 += h.pow(2).sum(0)
                count += h.shape[0]
            mu = m1 / count
            bn.running_mean.copy_(mu)
            bn.running_var.copy_((m2 / count - mu.pow(2)) * count / (count - 1))
        return self

    # ------------------------------------------------------------------ other lengths
    def with_block_length(self, block_length: int) -> Deepcode:
        """A copy of this model for blocks of ``block_length`` bits.

        The networks do not depend on the length (the encoder is a causal RNN, the decoder
        bidirectional GRUs); what does is per position: the encoder's normalisation
        statistics and the power weights. The copy keeps the first four and the last five
        positions' statistics and weights, gives every middle position the mean of the
        middle positions' statistics and weight 1, and rescales the power to 1 per symbol.
        This is how a model trained at one length is run at another (the paper's
        generalisation experiment); its accuracy there is an empirical question.
        """
        block_length = check("block_length", block_length, Interval(int, 8, 100_000))
        new = copy.deepcopy(self)
        if block_length == self._block_length:
            return new
        P_old, P_new = self.positions, block_length + 1
        if P_old <= _HEAD + _TAIL:
            raise invalid("block_length", block_length,
                          f"{self._block_length} (this model's own length): a model of "
                          f"{self._block_length} bits has no middle positions whose "
                          "statistics could fill a longer or shorter block")

        def stretch(t: torch.Tensor) -> torch.Tensor:
            mid = t[_HEAD:P_old - _TAIL].mean(0, keepdim=True)
            return torch.cat([t[:_HEAD], mid.expand(P_new - _HEAD - _TAIL, -1),
                              t[P_old - _TAIL:]]).clone()

        new._block_length = block_length
        new.norm_mean = stretch(self.norm_mean)
        new.norm_var = stretch(self.norm_var)
        return new

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        return {"block_length": self._block_length, "hidden": self.hidden,
                "decoder_hidden": self.decoder_hidden, "cell": self.cell}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save weights, statistics, configuration and training record (a torch file
        holding only tensors and plain data: ``Deepcode.load`` reads it with
        ``weights_only=True``)."""
        import json

        # plain data only (a str subclass such as torch's version string would not load
        # with weights_only=True)
        record = json.loads(json.dumps(self.training_record, default=_plain))
        torch.save({"format": "neurips18.coding.Deepcode/1", "config": self.config(),
                    "state_dict": self.state_dict(), "training_record": record}, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | io.BytesIO) -> Deepcode:
        """Load a model written by :meth:`save` (in the floating-point dtype it was saved in)."""
        where = path if isinstance(path, io.BytesIO) else os.fspath(path)
        if not isinstance(where, io.BytesIO) and not os.path.isfile(where):
            raise FileNotFoundError(f"Deepcode.load: no file at {where!r}")
        try:
            obj = torch.load(where, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged or foreign file
            raise ValueError(f"Deepcode.load: {where!r} is not a saved Deepcode model "
                             f"({type(exc).__name__}: {exc})") from None
        if not isinstance(obj, dict) or obj.get("format") != "neurips18.coding.Deepcode/1":
            raise ValueError(f"Deepcode.load: {where!r} is not a saved Deepcode model")
        # the initial weights are overwritten; a fixed generator keeps the build from
        # drawing from (and so moving) the caller's global torch generator
        model = cls(**obj["config"], generator=0)
        sd = obj["state_dict"]
        w = sd.get("encoder_out.weight") if isinstance(sd, Mapping) else None
        if isinstance(w, torch.Tensor) and w.is_floating_point():
            # load_state_dict copies into the new module's float32 tensors: a float64 model
            # would come back as float32 (its noise then drawn in float32, other digits)
            model.to(w.dtype)
        model.load_state_dict(sd)
        model.training_record = dict(obj.get("training_record") or {})
        return model.eval()

    @classmethod
    def from_official(cls, path: str | os.PathLike[str] | bytes | Mapping[str, Any]
                      ) -> Deepcode:
        """The authors' pretrained model from its ``.npz`` conversion.

        ``path``: a file, its bytes, or a mapping of arrays keyed by the Keras layer paths
        (``simple_rnn_1/kernel``, ``bidirectional_1/forward_bidirectional_1/kernel``,
        ``noload_abr/power_weight``, ..., plus ``encoder_norm/mean`` and
        ``encoder_norm/var``). The decoder uses the Keras GRU cell; batch-norm epsilon is
        Keras' 1e-3. Returns the model in eval mode.
        """
        arrays, where = _read_official(path)
        mean = _get(arrays, "encoder_norm/mean", where)
        if mean.ndim != 2 or mean.shape[1] != 2 or mean.shape[0] < 9:
            raise OfficialWeightsError(f"{where}: encoder_norm/mean has shape {mean.shape}, "
                                       "expected (K + 1, 2) with K >= 8")
        K = mean.shape[0] - 1
        rk = _get(arrays, "simple_rnn_1/kernel", where)
        if rk.ndim != 2 or rk.shape[1] < 1:
            raise OfficialWeightsError(f"{where}: simple_rnn_1/kernel has shape {rk.shape}, "
                                       "expected (4, hidden)")
        H = rk.shape[1]
        dk = _get(arrays, "bidirectional_1/forward_bidirectional_1/recurrent_kernel", where)
        if dk.ndim != 2 or dk.shape[0] < 1:
            raise OfficialWeightsError(f"{where}: bidirectional_1/forward_bidirectional_1/"
                                       f"recurrent_kernel has shape {dk.shape}, expected "
                                       "(hidden, 3 hidden)")
        Hd = dk.shape[0]
        model = cls(K, H, Hd, cell="keras", generator=0)  # weights overwritten below
        spec = _official_shapes(K, H, Hd)
        for key, shape in spec.items():
            a = _get(arrays, key, where)
            if tuple(a.shape) != shape:
                raise OfficialWeightsError(f"{where}: {key} has shape {tuple(a.shape)}, "
                                           f"expected {shape}")
            if not torch.isfinite(torch.as_tensor(a)).all():
                raise OfficialWeightsError(f"{where}: {key} holds NaN or inf")

        def t(key: str) -> torch.Tensor:
            return torch.as_tensor(arrays[key], dtype=torch.float32)

        sd: dict[str, torch.Tensor] = {
            "encoder_rnn.weight_ih_l0": t("simple_rnn_1/kernel").T,
            "encoder_rnn.weight_hh_l0": t("simple_rnn_1/recurrent_kernel").T,
            "encoder_rnn.bias_ih_l0": t("simple_rnn_1/bias"),
            "encoder_rnn.bias_hh_l0": torch.zeros(H),
            "encoder_out.weight": t("time_distributed_0/kernel").T,
            "encoder_out.bias": t("time_distributed_0/bias"),
            "norm_mean": t("encoder_norm/mean"),
            "norm_var": t("encoder_norm/var"),
            "calibrated": torch.tensor(True),
            "stream_weight": torch.cat([t("noload_abr/power_weight"),
                                        t("noload_abr/power_weight1"),
                                        t("noload_abr/power_weight2")]),
            "head_weight": torch.cat([t(f"noload_abr/g{i}") for i in range(1, 5)]),
            "tail_weight": torch.cat([t(f"noload_abr/b{i}") for i in range(1, 6)]),
            "decoder_out.weight": t("time_distributed_1/kernel").T,
            "decoder_out.bias": t("time_distributed_1/bias"),
        }
        for i in (1, 2):
            pre = f"bidirectional_{i}"
            for name, kkey in (("kernel", "kernel"), ("recurrent_kernel", "recurrent_kernel"),
                               ("bias", "bias")):
                sd[f"decoder_gru{i}.{name}"] = torch.stack(
                    [t(f"{pre}/forward_{pre}/{kkey}"), t(f"{pre}/backward_{pre}/{kkey}")])
            bn = f"batch_normalization_{i}"
            sd[f"decoder_bn{i}.weight"] = t(f"{bn}/gamma")
            sd[f"decoder_bn{i}.bias"] = t(f"{bn}/beta")
            sd[f"decoder_bn{i}.running_mean"] = t(f"{bn}/moving_mean")
            sd[f"decoder_bn{i}.running_var"] = t(f"{bn}/moving_variance")
            sd[f"decoder_bn{i}.num_batches_tracked"] = torch.tensor(0)
        if (sd["norm_var"] <= 0).any():
            raise OfficialWeightsError(f"{where}: encoder_norm/var has non-positive entries")
        for i in (1, 2):
            if (sd[f"decoder_bn{i}.running_var"] < 0).any():
                raise OfficialWeightsError(f"{where}: batch_normalization_{i}/moving_variance "
                                           "has negative entries")
        model.load_state_dict(sd)
        model.training_record = {"source": "official weights", "file": where}
        return model.eval()


def _plain(value: Any) -> Any:
    """A value JSON cannot write, as plain data: a NumPy or torch scalar as its number (it
    came back as a string, ``np.int64(5)`` as ``"5"``), an array or tensor as a list,
    anything else as its ``str``."""
    import numpy as np

    if isinstance(value, np.generic | np.ndarray) or (isinstance(value, torch.Tensor)
                                                      and not value.is_complex()):
        return value.tolist()
    return str(value)


def _official_shapes(K: int, H: int, Hd: int) -> dict[str, tuple[int, ...]]:
    P = K + 1
    out: dict[str, tuple[int, ...]] = {
        "simple_rnn_1/kernel": (4, H), "simple_rnn_1/recurrent_kernel": (H, H),
        "simple_rnn_1/bias": (H,), "time_distributed_0/kernel": (H, 2),
        "time_distributed_0/bias": (2,), "time_distributed_1/kernel": (2 * Hd, 1),
        "time_distributed_1/bias": (1,), "encoder_norm/mean": (P, 2),
        "encoder_norm/var": (P, 2),
    }
    for name in ("power_weight", "power_weight1", "power_weight2", "g1", "g2", "g3", "g4",
                 "b1", "b2", "b3", "b4", "b5"):
        out[f"noload_abr/{name}"] = (1,)
    for i, inp in ((1, 3), (2, 2 * Hd)):
        pre = f"bidirectional_{i}"
        for d in ("forward", "backward"):
            out[f"{pre}/{d}_{pre}/kernel"] = (inp, 3 * Hd)
            out[f"{pre}/{d}_{pre}/recurrent_kernel"] = (Hd, 3 * Hd)
            out[f"{pre}/{d}_{pre}/bias"] = (3 * Hd,)
        for p in ("gamma", "beta", "moving_mean", "moving_variance"):
            out[f"batch_normalization_{i}/{p}"] = (2 * Hd,)
    return out


def _read_official(path: Any) -> tuple[Mapping[str, Any], str]:
    import numpy as np

    if isinstance(path, Mapping):
        return path, "the given arrays"
    if isinstance(path, bytes | bytearray):
        src: Any = io.BytesIO(bytes(path))
        where = "the given bytes"
    elif isinstance(path, str | os.PathLike):
        where = os.fspath(path)
        if not os.path.isfile(where):
            raise FileNotFoundError(f"Deepcode.from_official: no weight file at {where!r}")
        src = where
    else:
        raise invalid("path", path, "a path to an .npz file, its bytes, or a mapping of arrays")
    try:
        with np.load(src, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}, where
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise OfficialWeightsError(f"{where} is not a readable .npz weight file "
                                   f"({type(exc).__name__}: {exc})") from None


def _get(arrays: Mapping[str, Any], key: str, where: str) -> Any:
    import numpy as np

    if key not in arrays:
        raise OfficialWeightsError(f"{where}: missing array {key!r}")
    a = np.asarray(arrays[key])
    if a.dtype.kind not in "fiu":
        raise OfficialWeightsError(f"{where}: {key} has dtype {a.dtype}, expected real numbers")
    return a
