"""VAE and HVAE: the ELBO estimators and importance-sampled log-likelihoods.

The contract for user models:

* an **encoder** is any module with ``encoder(x) -> (mu, sigma)``, both of shape
  ``(n, l)``, ``sigma > 0`` (the standard deviation of q(z | x) = N(mu, diag sigma^2));
* a **decoder** is any module with ``decoder.log_prob(x, z) -> (n,)``, log p(x | z) summed
  over the data dimensions, differentiable in ``z``, each row depending on its own row only
  (a decoder with batch normalisation using batch statistics is refused by the HVAE's ELBO
  and by ``nll``; the VAE's ELBO, one decoder call, allows it as in ordinary training);
* either may expose ``latent_dim``; when both (and the flow) do, they must agree.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from neurips18._validation import (
    InstanceOf,
    Interval,
    ValidationError,
    as_torch_generator,
    check,
    invalid,
)
from neurips18.hvae._flow import HamiltonianFlow

_LOG2PI = math.log(2 * math.pi)


def _normal(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None
            ) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    out = torch.randn(shape, dtype=like.dtype, generator=generator, device=generator.device)
    return out.to(like.device)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run with every submodule in evaluation mode, then give each its own mode back
    (``module.train(was)`` would also switch on submodules the user had put in eval)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


def _check_x(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise invalid("x", x, "a torch.Tensor of shape (n, ...)")
    if not torch.is_floating_point(x):
        raise invalid("x", x, "a floating-point tensor")
    if x.dim() < 2 or x.shape[0] == 0:
        raise invalid("x", x, "a non-empty batch of shape (n, ...)")
    lo, hi = torch.aminmax(x)  # one pass; NaN propagates to both, inf shows in one
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        bad = int((~torch.isfinite(x)).sum())
        raise invalid("x", x, f"finite values; found {bad} NaN or inf")
    return x


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)  # lazy: not subclasses


def _check_rows_independent(decoder: nn.Module) -> None:
    """Refuse a decoder that normalises with batch statistics in its current mode (batch
    normalisation in training mode, or built with ``track_running_stats=False``): each
    example's log p(x | z) would then depend on the other rows' latent samples, so the
    flow's gradient of the summed likelihood mixes rows, and an importance-sampling chunk
    mixes one example's samples with the others'."""
    for name, m in decoder.named_modules():
        if isinstance(m, _BATCH_NORMS) and (m.training or m.running_mean is None):
            where = f"decoder.{name}" if name else "decoder"
            raise invalid(where, m, "a decoder whose rows are independent; this batch "
                          "normalisation uses batch statistics (training mode or "
                          "track_running_stats=False), so log p(x | z) of one example would "
                          "depend on the other rows: put it in eval mode or use a "
                          "per-example normalisation (LayerNorm, GroupNorm)")


def _decoder_failed(exc: Exception, z: torch.Tensor) -> ValidationError:
    return ValidationError(
        f"Invalid decoder: log_prob(x, z) raised {type(exc).__name__} for z of shape "
        f"{tuple(z.shape)} and dtype {z.dtype} (expected a decoder of latent size "
        f"{z.shape[-1]}, the encoder's, in the encoder's dtype; mismatched latent sizes?): "
        f"{exc}")


def _log_prob(decoder: Any, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    try:
        return decoder.log_prob(x, z)
    except (RuntimeError, IndexError) as exc:
        if isinstance(exc, torch.OutOfMemoryError):
            raise
        raise _decoder_failed(exc, z) from exc


def _defined_in(cls: type, name: str) -> type | None:
    for c in cls.__mro__:
        if name in vars(c):
            return c
    return None


def _fused_matches_log_prob(decoder: Any) -> bool:
    """Whether ``decoder.log_prob_and_grad`` computes the decoder's own ``log_prob``: not
    when a subclass (or the instance) overrides ``log_prob`` or ``logits`` below the class
    that defines the fused method, which would otherwise be used with the base class's
    likelihood, silently; nor when the decoder says its fused gradient does not fit its
    current layers."""
    if not callable(getattr(decoder, "log_prob_and_grad", None)):
        return False
    inst = getattr(decoder, "__dict__", {})
    if any(name in inst for name in ("log_prob", "logits", "log_prob_and_grad")):
        return False
    cls = type(decoder)
    owner = _defined_in(cls, "log_prob_and_grad")
    if owner is None:
        return False
    for name in ("log_prob", "logits"):
        c = _defined_in(cls, name)
        if c is not None and c is not owner and issubclass(c, owner):
            return False
    exact = getattr(decoder, "_fused_is_exact", None)  # e.g. its layers swapped or hooked
    return not callable(exact) or bool(exact())


def _checked_log_prob(decoder: Any, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``decoder.log_prob(x, z)``, refused unless it has one value per example (a value
    summed over the batch as well would otherwise broadcast against the prior terms)."""
    ll = _log_prob(decoder, x, z)
    if not isinstance(ll, torch.Tensor) or ll.shape != (x.shape[0],):
        raise invalid("decoder.log_prob output", ll,
                      f"shape ({x.shape[0]},): one log-likelihood per example, summed over "
                      "the data dimensions")
    return ll


class _DecoderLikelihood:
    """``z -> log p(x | z)`` for the flow; when the decoder has ``log_prob_and_grad`` (the
    MLP decoder does) and no subclass overrides its ``log_prob`` or ``logits``, the flow
    takes the value and gradient from it instead of autograd. The data are checked once
    here, not at every leapfrog step."""

    def __init__(self, decoder: Any, x: torch.Tensor) -> None:
        self.decoder, self.x = decoder, x
        self._x_copy: torch.Tensor | None = None
        if _fused_matches_log_prob(decoder):
            check_input = getattr(decoder, "check_input", None)
            if callable(check_input):
                check_input(x)
            self.value_and_grad = self._fused

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        x = self.x
        if x.is_inference() and not torch.is_inference_mode_enabled():
            # the flow differentiates outside torch.inference_mode; an inference tensor
            # cannot be saved for that backward pass, a copy of it can
            if self._x_copy is None:
                self._x_copy = x.clone()
            x = self._x_copy
        return _log_prob(self.decoder, x, z)

    def _fused(self, z: torch.Tensor, *, with_value: bool):
        try:
            return self.decoder.log_prob_and_grad(self.x, z, with_value=with_value)
        except (RuntimeError, IndexError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            raise _decoder_failed(exc, z) from exc


class _LatentModel(nn.Module):
    """What VAE and HVAE share: the encoder/decoder contract and its checks."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        check("encoder", encoder, InstanceOf(nn.Module))
        check("decoder", decoder, InstanceOf(nn.Module))
        if not callable(getattr(decoder, "log_prob", None)):
            raise invalid("decoder", decoder, "a module with a log_prob(x, z) method")
        enc_l, dec_l = getattr(encoder, "latent_dim", None), getattr(decoder, "latent_dim", None)
        if enc_l is not None and dec_l is not None and enc_l != dec_l:
            raise invalid("decoder.latent_dim", dec_l,
                          f"the encoder's latent_dim ({enc_l}): mismatched latent sizes")
        self.encoder = encoder
        self.decoder: Any = decoder

    @property
    def latent_dim(self) -> int | None:
        for part in (self.encoder, self.decoder):
            lat = getattr(part, "latent_dim", None)
            if lat is not None:
                return lat
        return None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of q(z | x), checked against the contract."""
        out = self.encoder(x)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise invalid("encoder output", out, "a pair (mu, sigma)")
        mu, sigma = out
        n = x.shape[0]
        l = self._expected_latent()
        if not (isinstance(mu, torch.Tensor) and isinstance(sigma, torch.Tensor)):
            raise invalid("encoder output", out, "two tensors (mu, sigma)")
        if mu.dim() != 2 or mu.shape[0] != n or mu.shape != sigma.shape:
            raise invalid("encoder output", mu, f"mu and sigma of equal shape (n, l) with "
                          f"n = {n}; got {tuple(mu.shape)} and {tuple(sigma.shape)}")
        if l is not None and mu.shape[1] != l:
            raise invalid("encoder output", mu, f"latent size {l} (the declared latent_dim); got "
                          f"{mu.shape[1]}: mismatched latent sizes")
        if not bool(torch.isfinite(mu).all()):  # named apart: it was reported as sigma's
            bad = int((~torch.isfinite(mu)).sum())
            raise invalid("encoder mu", mu, f"finite values; found {bad} NaN or inf")
        if not bool((sigma > 0).all()) or not bool(torch.isfinite(sigma).all()):
            raise invalid("encoder sigma", sigma, "finite, positive standard deviations: the "
                          "encoder returns (mu, sigma), not a log-variance")
        return mu, sigma

    def _expected_latent(self) -> int | None:
        return self.latent_dim  # the encoder's or the decoder's (equal when both declare it)

    def _log_likelihood(self, x: torch.Tensor) -> _DecoderLikelihood:
        return _DecoderLikelihood(self.decoder, x)

    @staticmethod
    def _generator(generator: Any) -> torch.Generator | None:
        return as_torch_generator(generator, allow_none=True)

    def elbo(self, x: torch.Tensor, *, generator: Any = None) -> torch.Tensor:
        """The per-example ELBO estimate (defined by VAE and HVAE)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, *, generator: Any = None) -> torch.Tensor:
        """The per-example ELBO estimate (``elbo``)."""
        return self.elbo(x, generator=generator)

    def _log_weights(self, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                     generator: torch.Generator | None) -> torch.Tensor:
        """One importance log-weight per row (rows of ``x`` with their q parameters)."""
        raise NotImplementedError

    def nll(self, x: torch.Tensor, n_samples: int = 1000, batch_size: int = 10000, *,
            generator: Any = None) -> torch.Tensor:
        """Negative log-likelihood ``-log p(x)`` per example, estimated by importance sampling
        with ``n_samples`` draws of the model's own variational distribution (for the HVAE,
        the flow's joint law of ``(z_K, rho_K)``, whose density is that of ``(z_0, gamma)``).

        ``batch_size`` bounds the number of latent samples evaluated at once (examples x
        samples); the draws are taken chunk by chunk, so another ``batch_size`` gives other
        draws with the same generator (an estimate as good, not the same digits).
        ``generator``: a ``torch.Generator`` or int seed (``None``: torch's global
        generator). Runs without building a graph, every submodule in eval mode; each
        submodule's training mode is restored.
        """
        x = _check_x(x)
        n_samples = check("n_samples", n_samples, Interval(int, 1, None))
        batch_size = check("batch_size", batch_size, Interval(int, 1, None))
        check_input = getattr(self.decoder, "check_input", None)
        if callable(check_input):  # once, on the examples as given (not their repetitions)
            check_input(x)
        gen = self._generator(generator)
        out = []
        with eval_mode(self):
            _check_rows_independent(self.decoder)
            with torch.no_grad():
                per_chunk = max(1, batch_size // n_samples)
                for i in range(0, x.shape[0], per_chunk):
                    xb = x[i:i + per_chunk]
                    m = xb.shape[0]
                    mu, sigma = self.encode(xb)
                    reps = max(1, min(n_samples, batch_size // m))
                    acc = None
                    done = 0
                    while done < n_samples:
                        r = min(reps, n_samples - done)
                        lw = self._log_weights(xb.repeat_interleave(r, dim=0),
                                               mu.repeat_interleave(r, dim=0),
                                               sigma.repeat_interleave(r, dim=0),
                                               gen).view(m, r)
                        lse = torch.logsumexp(lw, dim=1)
                        acc = lse if acc is None else torch.logaddexp(acc, lse)
                        done += r
                    assert acc is not None
                    out.append(math.log(n_samples) - acc)
        return torch.cat(out)


class VAE(_LatentModel):
    """The variational auto-encoder with q(z | x) = N(mu, diag sigma^2), prior N(0, I).

    ``elbo(x)``: ``log p(x | z) - KL(q(z | x) || p(z))`` per example, one reparameterised
    sample z and the KL in closed form. ``nll(x, n_samples, batch_size)``: importance
    sampling with q as the proposal.
    """

    def elbo(self, x: torch.Tensor, *, generator: Any = None) -> torch.Tensor:
        x = _check_x(x)
        gen = self._generator(generator)
        mu, sigma = self.encode(x)
        z = mu + sigma * _normal(tuple(mu.shape), mu, gen)
        ll = _checked_log_prob(self.decoder, x, z)
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0).sum(1) - torch.log(sigma).sum(1)
        return ll - kl

    def _log_weights(self, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                     generator: torch.Generator | None) -> torch.Tensor:
        eps = _normal(tuple(mu.shape), mu, generator)
        z = mu + sigma * eps
        ll = _checked_log_prob(self.decoder, x, z)
        # log p(z) - log q(z | x); the 2 pi terms cancel
        return ll - 0.5 * z.pow(2).sum(1) + torch.log(sigma).sum(1) + 0.5 * eps.pow(2).sum(1)


class HVAE(_LatentModel):
    """The Hamiltonian VAE: z_0 ~ q(z | x), gamma ~ N(0, I), then the flow to (z_K, rho_K).

    ``elbo(x)`` is the paper's unbiased estimator, one value per example::

        log p(x | z_K) - |z_K|^2/2 - |rho_K|^2/2 + sum log sigma + l

    (``log p(x, z_K) + log N(rho_K; 0, I) - log q(z_0 | x) - log N(gamma; 0, I)`` with the
    terms that depend on the base draws only replaced by their expectation, l; the
    tempering's Jacobian cancels the momentum normaliser). It is differentiable in the
    encoder, the decoder and the flow's step sizes and tempering.

    ``nll(x, n_samples, batch_size)``: importance sampling with the flow as the proposal;
    each log-weight is ``log p(x, z_K) + log N(rho_K) - log q(z_0 | x) - log N(gamma)``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, flow: HamiltonianFlow) -> None:
        super().__init__(encoder, decoder)
        check("flow", flow, InstanceOf(HamiltonianFlow))
        for who in (encoder, decoder):
            lat = getattr(who, "latent_dim", None)
            if lat is not None and lat != flow.latent_dim:
                raise invalid("flow.latent_dim", flow.latent_dim,
                              f"the {'encoder' if who is encoder else 'decoder'}'s latent_dim "
                              f"({lat}): mismatched latent sizes")
        self.flow = flow

    def _expected_latent(self) -> int | None:
        return self.flow.latent_dim

    def _run(self, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
             generator: torch.Generator | None):
        eps = _normal(tuple(mu.shape), mu, generator)
        gamma = _normal(tuple(mu.shape), mu, generator)
        out = self.flow(mu + sigma * eps, gamma, self._log_likelihood(x))
        return out, sigma, eps, gamma

    def elbo(self, x: torch.Tensor, *, generator: Any = None) -> torch.Tensor:
        x = _check_x(x)
        _check_rows_independent(self.decoder)
        mu, sigma = self.encode(x)
        out, sigma, _, _ = self._run(x, mu, sigma, self._generator(generator))
        l = out.z.shape[1]
        return (out.log_likelihood - 0.5 * out.z.pow(2).sum(1) - 0.5 * out.rho.pow(2).sum(1)
                + torch.log(sigma).sum(1) + l)

    def _log_weights(self, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                     generator: torch.Generator | None) -> torch.Tensor:
        out, sigma, eps, gamma = self._run(x, mu, sigma, generator)
        return (out.log_likelihood - 0.5 * out.z.pow(2).sum(1) - 0.5 * out.rho.pow(2).sum(1)
                + torch.log(sigma).sum(1) + 0.5 * eps.pow(2).sum(1)
                + 0.5 * gamma.pow(2).sum(1))
