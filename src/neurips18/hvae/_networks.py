"""Encoders and Bernoulli decoders for binarised MNIST (28 x 28 images, pixels in [0, 1]).

* :class:`ConvEncoder` / :class:`ConvDecoder`: the paper's networks (from its official code):
  three 5 x 5 stride-2 convolutions (16, 32, 32 maps, 28 -> 14 -> 7 -> 4), a 450-unit
  layer, softplus activations, mu linear and sigma = softplus; the decoder mirrors it with
  transposed convolutions and returns Bernoulli logits.
* :class:`MLPEncoder` / :class:`MLPDecoder`: fully connected, softplus hidden layers.

Encoders return ``(mu, sigma)``; decoders expose ``log_prob(x, z)`` (log p(x | z) summed
over pixels) and ``logits(z)``. ``generator=`` (a ``torch.Generator`` or int seed) makes
the initial weights reproducible without touching torch's global generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from neurips18._validation import Interval, as_torch_generator, check, invalid, torch_seeded

_SIGMA_FLOOR = 1e-6


@contextlib.contextmanager
def _seeded(generator: Any) -> Iterator[None]:
    """Initialise layers from ``generator`` (if given) without changing the global RNG."""
    gen = as_torch_generator(generator, allow_none=True)
    if gen is None:
        yield
        return
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen))
    with torch_seeded(seed):  # only the CPU generator (see torch_seeded)
        yield


def _hidden(name: str, hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, int) or not isinstance(hidden, Sequence) or not hidden:
        raise invalid(name, hidden, "a non-empty sequence of positive ints")
    return tuple(check(f"{name}[{i}]", h, Interval(int, 1, None)) for i, h in enumerate(hidden))


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


class BernoulliDecoder(nn.Module):
    """Base of the Bernoulli decoders: ``log_prob(x, z) = sum_j x_j log s_j + (1 - x_j)
    log(1 - s_j)`` with ``s = sigmoid(logits(z))``; subclasses define ``logits``."""

    latent_dim: int
    output_dim: int

    def logits(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` flattened to ``(n, output_dim)``; raises unless its values lie in [0, 1]."""
        xf = _flat(x)
        if xf.shape[1] != self.output_dim:
            raise invalid("x", x, f"{self.output_dim} values per example")
        lo, hi = torch.aminmax(xf)
        if not (float(lo) >= 0.0 and float(hi) <= 1.0):
            raise invalid("x", x, "values in [0, 1] for a Bernoulli decoder (binarise or scale "
                          "the data first)")
        return xf

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z), shape ``(n,)``; ``x`` of shape ``(n, ...)`` with values in [0, 1]
        (binary for a likelihood; grey levels give the cross-entropy)."""
        xf = self.check_input(x)
        logits = self.logits(z)
        # x * l - softplus(l): exact for binary x, twice differentiable in z
        return (xf * logits - F.softplus(logits)).sum(1)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, *, generator: Any = None) -> torch.Tensor:
        """Binary images drawn from p(x | z)."""
        gen = as_torch_generator(generator, allow_none=True)
        p = torch.sigmoid(self.logits(z))
        return torch.bernoulli(p, generator=gen)


def _output_bias(output_bias: Any, n: int) -> torch.Tensor | None:
    if output_bias is None:
        return None
    if isinstance(output_bias, int | float) and not isinstance(output_bias, bool):
        b = torch.full((n,), float(output_bias))
    elif isinstance(output_bias, torch.Tensor):
        b = output_bias.detach().float().reshape(-1).clone()
    else:
        raise invalid("output_bias", output_bias, "None, a float or a tensor of logits")
    if b.numel() not in (1, n) or not bool(torch.isfinite(b).all()):
        raise invalid("output_bias", output_bias, f"finite logits, 1 or {n} of them")
    return b.expand(n).clone()


def mean_logit(x: torch.Tensor) -> float:
    """The mean over images of the logit of each image's mean intensity (the paper's
    initial value for the decoder's output bias). ``x``: a batch of images ``(n, ...)``,
    intensities in [0, 1]."""
    # checked: a single image given as (784,) was read as 784 one-pixel images (the mean
    # of the clamped pixel logits, -6.7 for an image whose own value is -1.8), and NaN or
    # intensities outside [0, 1] gave NaN or the clamp's bound without a word
    if not isinstance(x, torch.Tensor):
        raise invalid("x", x, "a torch.Tensor of images, shape (n, ...)")
    if x.dim() < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise invalid("x", x, "a non-empty batch of images of shape (n, ...); one image "
                      "is x[None]")
    xf = _flat(x).float()
    lo, hi = torch.aminmax(xf)
    if not (float(lo) >= 0.0 and float(hi) <= 1.0):  # NaN fails both
        raise invalid("x", x, "intensities in [0, 1] (finite)")
    m = xf.mean(1).clamp(1e-4, 1 - 1e-4)
    return float(torch.log(m / (1 - m)).mean())


class MLPEncoder(nn.Module):
    """``x -> (mu, sigma)`` through fully connected softplus layers (default 784-200-200-l)."""

    def __init__(self, latent_dim: int = 64, input_dim: int = 784,
                 hidden: Sequence[int] = (200, 200), *, generator: Any = None) -> None:
        super().__init__()
        self.latent_dim = check("latent_dim", latent_dim, Interval(int, 1, None))
        self.input_dim = check("input_dim", input_dim, Interval(int, 1, None))
        sizes = (self.input_dim, *_hidden("hidden", hidden))
        with _seeded(generator):
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:],
                                                                         strict=False))
            self.mu = nn.Linear(sizes[-1], self.latent_dim)
            self.sigma = nn.Linear(sizes[-1], self.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = _flat(x)
        if h.shape[1] != self.input_dim:
            raise invalid("x", x, f"{self.input_dim} values per example (the encoder's "
                          "input_dim)")
        for layer in self.layers:
            h = F.softplus(layer(h))
        return self.mu(h), F.softplus(self.sigma(h)) + _SIGMA_FLOOR


class MLPDecoder(BernoulliDecoder):
    """``z -> Bernoulli logits`` through fully connected softplus layers (l-200-200-784).
    ``output_bias``: initial logits of the last layer (see :func:`mean_logit`)."""

    def __init__(self, latent_dim: int = 64, output_dim: int = 784,
                 hidden: Sequence[int] = (200, 200), *, output_bias: Any = None,
                 generator: Any = None) -> None:
        super().__init__()
        self.latent_dim = check("latent_dim", latent_dim, Interval(int, 1, None))
        self.output_dim = check("output_dim", output_dim, Interval(int, 1, None))
        sizes = (self.latent_dim, *_hidden("hidden", hidden))
        bias = _output_bias(output_bias, self.output_dim)
        with _seeded(generator):
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:],
                                                                         strict=False))
            self.out = nn.Linear(sizes[-1], self.output_dim)
        if bias is not None:
            with torch.no_grad():
                self.out.bias.copy_(bias)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for layer in self.layers:
            h = F.softplus(layer(h))
        return self.out(h)

    def _fused_is_exact(self) -> bool:
        """Whether :meth:`log_prob_and_grad` computes the gradient of :meth:`logits`' own
        likelihood: it back-propagates through each layer's ``weight`` as a plain linear
        map, which is wrong for a layer swapped for one with another forward (a low-rank
        update, a noisy or masked weight) or carrying forward hooks. Parametrised weights
        (weight normalisation, ...) keep nn.Linear's forward and are fine."""
        for m in (*self.layers, self.out):
            if not (isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward
                    and "forward" not in vars(m) and not m._forward_hooks
                    and not m._forward_pre_hooks):
                return False
        return True

    def log_prob_and_grad(self, x: torch.Tensor, z: torch.Tensor, *, with_value: bool = True
                          ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(log p(x | z) or None, d log p(x | z) / dz)`` by explicit back-propagation,
        built from differentiable operations (so the result can itself be differentiated,
        as the HVAE's ELBO needs). Equal to ``log_prob`` and its autograd gradient; the
        flow uses it because it skips the likelihood's value where only the gradient is
        needed and reuses each layer's sigmoid as the softplus derivative. ``x`` is not
        checked here (see :meth:`check_input`)."""
        xf = _flat(x)
        h = z
        slopes = []
        for layer in self.layers:
            h, s = _SoftplusWithSlope.apply(layer(h))
            slopes.append(s)
        logits = self.out(h)
        g = (xf - torch.sigmoid(logits)) @ self.out.weight
        for layer, s in zip(reversed(self.layers), reversed(slopes), strict=True):
            g = (g * s) @ layer.weight
        value = (xf * logits - F.softplus(logits)).sum(1) if with_value else None
        return value, g


class _SoftplusWithSlope(torch.autograd.Function):
    """``(softplus(a), sigmoid(a))``: the activation and its derivative in one pass, with a
    backward that reuses the saved sigmoid (softplus' = sigmoid, sigmoid' = s (1 - s))."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.sigmoid(a)
        ctx.save_for_backward(s)
        return F.softplus(a), s

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gh: torch.Tensor | None, gs: torch.Tensor | None) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        out = torch.zeros_like(s) if gh is None else gh * s
        if gs is not None:
            out = out + gs * s * (1 - s)
        return out


class ConvEncoder(nn.Module):
    """The paper's inference network for 28 x 28 images: conv 5x5/2 (16, 32, 32 maps),
    a 450-unit layer, softplus; ``mu`` linear, ``sigma = softplus``."""

    def __init__(self, latent_dim: int = 64, *, generator: Any = None) -> None:
        super().__init__()
        self.latent_dim = check("latent_dim", latent_dim, Interval(int, 1, None))
        with _seeded(generator):
            self.conv = nn.ModuleList([
                nn.Conv2d(1, 16, 5, stride=2, padding=2),   # 28 -> 14
                nn.Conv2d(16, 32, 5, stride=2, padding=2),  # 14 -> 7
                nn.Conv2d(32, 32, 5, stride=2, padding=2),  # 7 -> 4
            ])
            self.fc = nn.Linear(32 * 4 * 4, 450)
            self.mu = nn.Linear(450, self.latent_dim)
            self.sigma = nn.Linear(450, self.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x[0].numel() != 784:
            raise invalid("x", x, "28 x 28 images (784 values per example)")
        h = x.reshape(x.shape[0], 1, 28, 28)
        for conv in self.conv:
            h = F.softplus(conv(h))
        h = F.softplus(self.fc(h.flatten(1)))
        return self.mu(h), F.softplus(self.sigma(h)) + _SIGMA_FLOOR


class ConvDecoder(BernoulliDecoder):
    """The paper's generative network: l -> 450 -> 512 (= 32 x 4 x 4), then transposed
    convolutions 5x5/2 to 7 x 7 (32), 14 x 14 (16) and 28 x 28 (1 map of logits)."""

    output_dim = 784

    def __init__(self, latent_dim: int = 64, *, output_bias: Any = None,
                 generator: Any = None) -> None:
        super().__init__()
        self.latent_dim = check("latent_dim", latent_dim, Interval(int, 1, None))
        bias = _output_bias(output_bias, 1) if isinstance(output_bias, int | float) else None
        if output_bias is not None and bias is None:
            raise invalid("output_bias", output_bias, "None or a float (one logit shared by "
                          "every pixel)")
        with _seeded(generator):
            self.fc1 = nn.Linear(self.latent_dim, 450)
            self.fc2 = nn.Linear(450, 512)
            self.deconv = nn.ModuleList([
                nn.ConvTranspose2d(32, 32, 5, stride=2, padding=2),                    # 4 -> 7
                nn.ConvTranspose2d(32, 16, 5, stride=2, padding=2, output_padding=1),  # -> 14
                nn.ConvTranspose2d(16, 1, 5, stride=2, padding=2, output_padding=1),   # -> 28
            ])
        last = self.deconv[-1]
        if bias is not None and isinstance(last, nn.ConvTranspose2d) and last.bias is not None:
            with torch.no_grad():
                last.bias.fill_(float(bias[0]))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = F.softplus(self.fc2(F.softplus(self.fc1(z)))).view(-1, 32, 4, 4)
        h = F.softplus(self.deconv[0](h))
        h = F.softplus(self.deconv[1](h))
        return self.deconv[2](h).flatten(1)
