"""The target-informed Hamiltonian flow: K leapfrog steps on U(z) = -log p(x | z) + |z|^2/2,
each followed by a tempering (cooling) of the momentum.

Notation (Caterini, Doucet, Sejdinovic, NeurIPS 2018): the flow starts at
``(z_0, rho_0 = gamma / sqrt(beta_0))`` with ``gamma ~ N(0, I)``; step ``k`` is

    rho~ = rho - (e/2) * grad U(z);  z = z + e * rho~;  rho' = rho~ - (e/2) * grad U(z)
    rho  = alpha_k * rho',   alpha_k = sqrt(beta_{k-1} / beta_k),   beta_K = 1.

Leapfrog has Jacobian 1 and tempering multiplies the volume by ``alpha_k^l``, so the map
``(z_0, rho_0) -> (z_K, rho_K)`` has log-Jacobian ``l * sum_k log alpha_k = (l/2) log beta_0``
and the map ``(z_0, gamma) -> (z_K, rho_K)`` has Jacobian exactly 1.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from neurips18._validation import Interval, Options, check, invalid

LogLikelihood = Callable[[torch.Tensor], torch.Tensor]

TEMPERINGS = ("none", "fixed", "free")


class FlowOutput(NamedTuple):
    """The end of the flow: position ``z`` (= z_K), momentum ``rho`` (= rho_K), and
    ``log_likelihood`` = log p(x | z_K), computed on the way (the gradient at z_K needs it),
    so that the ELBO costs no further decoder evaluation."""

    z: torch.Tensor
    rho: torch.Tensor
    log_likelihood: torch.Tensor


def _logit_of_exp(log_p: float) -> float:
    """``logit(exp(log_p))`` for ``log_p < 0`` without forming ``1 - exp(log_p)``, which is
    0 in float64 when ``p`` rounds to 1 (a beta_0 a hair below 1)."""
    return log_p - math.log(-math.expm1(log_p))


class HamiltonianFlow(nn.Module):
    """K leapfrog steps with tempering, differentiable end to end.

    Parameters
    ----------
    latent_dim : int >= 1
        Dimension ``l`` of z.
    n_leapfrog : int >= 1
        Number of steps ``K``.
    tempering : ``"none"``, ``"fixed"`` or ``"free"``
        ``"none"``: beta_k = 1 (plain leapfrog). ``"fixed"``: one learned ``beta_0`` and the
        schedule of the paper's Gaussian-model code, ``1/sqrt(beta_k) = 1 + (1/sqrt(beta_0) -
        1) * (1 - k^2/K^2)``. ``"free"``: one learned ``alpha_k = sigmoid(a_k)`` per step,
        so ``beta_0 = prod_k alpha_k^2``. (The paper's MNIST code uses a schedule quadratic
        in the temperature ``1/beta_k`` instead; both end at beta_K = 1.)
    step_size_init : float or tensor
        Initial leapfrog step size, one per latent dimension (a float is broadcast; a tensor
        of shape ``(l,)``, or ``(K, l)`` with ``per_step_step_sizes``). Must lie in
        ``(0, max_step_size)``. Default 0.2 (the paper's MNIST setting).
    max_step_size : float > 0
        Step sizes are ``max_step_size * sigmoid(eta)``: learned, positive and never above
        this bound. Default 0.5 (the paper's setting).
    per_step_step_sizes : bool
        One step-size vector per leapfrog step (``(K, l)``) instead of one shared ``(l,)``.
    beta0_init : float in (0, 1) or None
        Initial inverse temperature. ``None``: 2/3 for ``"fixed"`` (initial temperature 1.5)
        and ``0.9^(2K)`` for ``"free"`` (every alpha_k = 0.9), the paper's MNIST settings.
        Must be None for ``"none"`` (an error otherwise: it would have no effect).
    learn_step_sizes, learn_tempering : bool
        Whether the step sizes / tempering parameters are trained (default: both).
    grad_clip : float > 0 or None
        Each coordinate of grad U is clamped to ``[-grad_clip, grad_clip]`` (default 1e6).
        A leapfrog step with any gradient field that depends on z only is still a
        volume-preserving, reversible shear, so the ELBO stays an unbiased lower bound; the
        clamp only acts when a trajectory diverges (step sizes too large for the
        curvature) and keeps every value finite instead of overflowing to inf/NaN. ``None``
        disables it (the paper's code has no clamp).
    cache_gradients : bool
        Reuse the gradient at the end of a step as the gradient at the start of the next:
        K + 1 gradient evaluations per flow instead of 2K. ``False`` recomputes it (same
        result, up to rounding; kept as the reference for tests and benchmarks).

    Calling the flow: ``flow(z0, gamma, log_likelihood)`` with ``z0`` and ``gamma`` of shape
    ``(n, l)`` and ``log_likelihood(z)`` returning log p(x | z) of shape ``(n,)``, one value
    per row of ``z``. The rows must be independent (no batch statistics across rows, e.g.
    batch normalisation in training mode): grad U is taken of the sum over rows.

    The state dict holds ``eta``, the tempering parameters and a ``settings`` buffer
    (``latent_dim``, ``n_leapfrog``, ``tempering``, ``max_step_size``,
    ``per_step_step_sizes``): loading it into a flow built with other settings raises
    instead of silently rescaling the step sizes or reading the schedule for another K.
    """

    def __init__(
        self,
        latent_dim: int,
        n_leapfrog: int,
        *,
        tempering: str = "fixed",
        step_size_init: float | torch.Tensor = 0.2,
        max_step_size: float = 0.5,
        per_step_step_sizes: bool = False,
        beta0_init: float | None = None,
        learn_step_sizes: bool = True,
        learn_tempering: bool = True,
        grad_clip: float | None = 1e6,
        cache_gradients: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim = check("latent_dim", latent_dim, Interval(int, 1, None))
        self.n_leapfrog = check("n_leapfrog", n_leapfrog, Interval(int, 1, None))
        self.tempering = check("tempering", tempering, Options(set(TEMPERINGS)))
        self.max_step_size = check("max_step_size", max_step_size,
                                   Interval(float, 0, None, closed="neither"))
        self.per_step_step_sizes = check("per_step_step_sizes", per_step_step_sizes,
                                         Options({True, False}))
        self.grad_clip = check("grad_clip", grad_clip,
                               Interval(float, 0, None, closed="neither"), None)
        self.cache_gradients = check("cache_gradients", cache_gradients, Options({True, False}))
        learn_step_sizes = check("learn_step_sizes", learn_step_sizes, Options({True, False}))
        learn_tempering = check("learn_tempering", learn_tempering, Options({True, False}))
        K, l = self.n_leapfrog, self.latent_dim

        shape = (K, l) if self.per_step_step_sizes else (l,)
        if isinstance(step_size_init, torch.Tensor):
            init = step_size_init.detach().to(torch.float32).clone()
            if init.dim() == 0:
                init = init.expand(shape).clone()
            if tuple(init.shape) not in {shape, (l,)}:
                raise invalid("step_size_init", step_size_init, f"a float or a tensor of shape "
                              f"{shape}")
            init = init.expand(shape).clone()
        else:
            s = check("step_size_init", step_size_init, Interval(float, 0, None,
                                                                 closed="neither"))
            init = torch.full(shape, s)
        if not bool(torch.isfinite(init).all()) or not bool(
                ((init > 0) & (init < self.max_step_size)).all()):
            tiny = " and above float32's smallest normal number" if bool(
                (init == 0).any()) and not isinstance(step_size_init, torch.Tensor) else ""
            raise invalid("step_size_init", step_size_init,
                          f"values in (0, max_step_size) = (0, {self.max_step_size:g}){tiny}")
        ratio = (init / self.max_step_size).double()
        self.step_logit = nn.Parameter((ratio.log() - (-ratio).log1p()).float(),
                                       requires_grad=learn_step_sizes)

        if self.tempering == "none":
            if beta0_init is not None:  # checked and refused rather than dropped silently
                raise invalid("beta0_init", beta0_init,
                              "None with tempering='none' (no tempering: beta_0 = 1)")
            self.beta0_init = 1.0
        else:
            default = 2.0 / 3.0 if self.tempering == "fixed" else 0.81 ** K
            b0 = default if beta0_init is None else beta0_init
            self.beta0_init = check("beta0_init", b0,
                                    Interval(float, 0, 1, closed="neither"))
        if self.tempering == "fixed":
            # 1/sqrt(beta_0) = 1 + exp(a), so beta_0 stays in (0, 1); exp(a) from expm1, as
            # 1/sqrt(beta_0) - 1 is 0 in float64 for a beta_0 within ~1e-16 of 1
            a = math.log(math.expm1(-0.5 * math.log(self.beta0_init)))
            self.tempering_param = nn.Parameter(torch.tensor(a, dtype=torch.float32),
                                                requires_grad=learn_tempering)
        elif self.tempering == "free":
            # alpha_k = beta_0^(1/(2K)), through its logarithm
            log_alpha = math.log(self.beta0_init) / (2 * K)
            self.tempering_param = nn.Parameter(torch.full((K,), _logit_of_exp(log_alpha)),
                                                requires_grad=learn_tempering)
        else:
            self.register_parameter("tempering_param", None)
        with torch.no_grad():  # the schedule as the float32 parameters hold it
            schedule_ok = bool(torch.isfinite(self.log_alphas()).all())
        if not schedule_ok:
            # 1/sqrt(beta_0) - 1 overflows float32 below beta_0 ~ 1e-76 ("fixed"), which
            # made every alpha_k NaN and the whole flow NaN
            raise invalid("beta0_init", beta0_init, "a beta_0 whose tempering schedule is "
                          "finite in float32 (beta_0 above ~1e-76)")

        self.register_buffer("settings", torch.tensor(
            [self.latent_dim, self.n_leapfrog, TEMPERINGS.index(self.tempering),
             self.max_step_size, float(self.per_step_step_sizes)], dtype=torch.float64))

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        theirs = state_dict.get(prefix + "settings")
        if isinstance(theirs, torch.Tensor):
            t, m = theirs.detach().double().cpu(), self.settings.detach().double().cpu()
            # rtol: a flow cast to float32 or half keeps max_step_size to that precision.
            # The counts and switches are held to the precision of the buffers themselves
            # (exact in float32/float64): with 1e-3, n_leapfrog = 1000 passed for 1001.
            rtol = torch.full_like(m, 1e-3)
            if m.shape == (5,):
                rtol[[0, 1, 2, 4]] = max(torch.finfo(theirs.dtype).eps if theirs.is_floating_point()
                                         else 0.0, torch.finfo(self.settings.dtype).eps)
            if t.shape != m.shape or not bool(((t - m).abs() <= rtol * m.abs()).all()):
                args[-1].append(  # error_msgs: load_state_dict raises with it
                    f"the state dict of {prefix.rstrip('.') or 'the flow'!r} was saved by a "
                    f"flow with {_describe(t)}; this one has {_describe(m)}: build the flow "
                    "with the saved settings before loading")
        super()._load_from_state_dict(state_dict, prefix, *args)

    # ------------------------------------------------------------------ schedule
    @property
    def step_sizes(self) -> torch.Tensor:
        """Leapfrog step sizes, shape ``(K, l)`` (rows equal unless ``per_step_step_sizes``)."""
        e = self.max_step_size * torch.sigmoid(self.step_logit)
        return e if self.per_step_step_sizes else e.expand(self.n_leapfrog, self.latent_dim)

    def log_alphas(self) -> torch.Tensor:
        """``log alpha_k`` for k = 1..K (the momentum is multiplied by alpha_k after step k)."""
        K = self.n_leapfrog
        if self.tempering == "none":
            return torch.zeros(K, device=self.step_logit.device)
        if self.tempering == "free":
            return nn.functional.logsigmoid(self.tempering_param)
        # fixed: s_k = 1/sqrt(beta_k) = 1 + (s_0 - 1)(1 - k^2/K^2), alpha_k = s_k / s_{k-1}
        k = torch.arange(0, K + 1, dtype=self.tempering_param.dtype,
                         device=self.tempering_param.device)
        s = 1.0 + torch.exp(self.tempering_param) * (1.0 - k ** 2 / K ** 2)
        return torch.log(s[1:]) - torch.log(s[:-1])

    @property
    def beta0(self) -> torch.Tensor:
        """The initial inverse temperature ``beta_0 = prod_k alpha_k^2`` (1 without
        tempering), detached from the graph (for inspection)."""
        with torch.no_grad():
            return torch.exp(2.0 * self.log_alphas().sum())

    def log_jacobian(self) -> torch.Tensor:
        """Closed-form log |det| of ``(z_0, rho_0) -> (z_K, rho_K)``: ``l * sum_k log alpha_k``
        (leapfrog preserves volume; tempering scales the momentum)."""
        return self.latent_dim * self.log_alphas().sum()

    # ------------------------------------------------------------------ dynamics
    def _grad_u(self, z: torch.Tensor, log_likelihood: LogLikelihood, differentiable: bool,
                need_value: bool, first: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """grad U(z) = z - grad log p(x | z) (clamped), and log p(x | z) when ``need_value``
        or when autograd computes it anyway."""
        fused = getattr(log_likelihood, "value_and_grad", None)
        if fused is not None:
            ll, g = fused(z, with_value=need_value)
            if first and g.shape != z.shape:
                raise invalid("log_prob_and_grad gradient", g, f"shape {tuple(z.shape)}")
        else:
            # under torch.inference_mode autograd is off even inside enable_grad: leave it
            # for the gradient (z cloned out of inference mode; nothing differentiable
            # escapes, since grad mode is off there)
            inference = torch.is_inference_mode_enabled()
            with torch.inference_mode(False) if inference else contextlib.nullcontext(), \
                    torch.enable_grad():
                if inference:
                    zz = z.clone().requires_grad_()
                else:
                    zz = z if (differentiable and z.requires_grad) else \
                        z.detach().requires_grad_()
                ll = log_likelihood(zz)
                if first:
                    _check_log_likelihood(ll, z)
                if not ll.requires_grad:
                    raise invalid("log_likelihood", ll, "a value that depends on z through "
                                  "differentiable operations")
                (g,) = torch.autograd.grad(ll.sum(), zz, create_graph=differentiable)
            if not differentiable:
                ll, g = ll.detach(), g.detach()
        if fused is not None and need_value:
            _check_log_likelihood(ll, z)
        grad = z - g
        if self.grad_clip is not None:
            grad = grad.clamp(-self.grad_clip, self.grad_clip)
        return grad, ll

    def _check_state(self, zname: str, z: Any, rname: str, rho: Any) -> None:
        if not isinstance(z, torch.Tensor) or not isinstance(rho, torch.Tensor):
            bad, value = (zname, z) if not isinstance(z, torch.Tensor) else (rname, rho)
            raise invalid(bad, value, f"a tensor of shape (n, {self.latent_dim})")
        if z.shape != rho.shape or z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise invalid(zname, z, f"shape (n, {self.latent_dim}) equal to {rname}'s "
                          f"{tuple(rho.shape)}")

    def forward(self, z0: torch.Tensor, gamma: torch.Tensor,
                log_likelihood: LogLikelihood) -> FlowOutput:
        """Run the flow from ``z0`` with initial momentum ``gamma / sqrt(beta_0)``."""
        self._check_state("z0", z0, "gamma", gamma)
        differentiable = torch.is_grad_enabled()
        dtype = z0.dtype  # the schedule in the model's precision (a float64 flow on a
        log_alpha = self.log_alphas()  # float32 model would otherwise promote z to float64)
        alphas = torch.exp(log_alpha).to(dtype).unbind(0)
        eps = self.step_sizes
        steps, half = eps.to(dtype).unbind(0), (0.5 * eps).to(dtype).unbind(0)
        K = self.n_leapfrog
        z = z0
        rho = gamma * torch.exp(-log_alpha.sum()).to(dtype)  # gamma / sqrt(beta_0)
        grad, ll = self._grad_u(z, log_likelihood, differentiable, False, first=True)
        for k in range(K):
            if k > 0 and not self.cache_gradients:
                grad, ll = self._grad_u(z, log_likelihood, differentiable, False, first=False)
            rho = torch.addcmul(rho, half[k], grad, value=-1.0)
            z = torch.addcmul(z, steps[k], rho)
            grad, ll = self._grad_u(z, log_likelihood, differentiable, k == K - 1, first=False)
            rho = torch.addcmul(rho, half[k], grad, value=-1.0) * alphas[k]
        assert ll is not None
        return FlowOutput(z, rho, ll)

    def inverse(self, z: torch.Tensor, rho: torch.Tensor,
                log_likelihood: LogLikelihood) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact inverse: ``(z_0, gamma)`` from ``(z_K, rho_K)`` (undo the tempering,
        leapfrog backwards, rescale the momentum by ``sqrt(beta_0)``)."""
        # checked as forward's input is: a momentum of another shape (one row, a 1-D
        # vector) broadcast against z and gave an (n, l) answer of the wrong rows silently
        self._check_state("z", z, "rho", rho)
        differentiable = torch.is_grad_enabled()
        log_alpha = self.log_alphas()
        eps = self.step_sizes
        grad, _ = self._grad_u(z, log_likelihood, differentiable, False, first=True)
        for k in reversed(range(self.n_leapfrog)):
            e = eps[k].to(z.dtype)
            rho = rho * torch.exp(-log_alpha[k]).to(z.dtype) + 0.5 * e * grad
            z = z - e * rho
            grad, _ = self._grad_u(z, log_likelihood, differentiable, False, first=False)
            rho = rho + 0.5 * e * grad
        return z, rho * torch.exp(log_alpha.sum()).to(z.dtype)

    def extra_repr(self) -> str:
        return (f"latent_dim={self.latent_dim}, n_leapfrog={self.n_leapfrog}, "
                f"tempering={self.tempering!r}, max_step_size={self.max_step_size:g}, "
                f"per_step_step_sizes={self.per_step_step_sizes}, "
                f"learn_step_sizes={self.step_logit.requires_grad}, learn_tempering="
                f"{self.tempering_param is not None and self.tempering_param.requires_grad}, "
                f"grad_clip={self.grad_clip!r}, cache_gradients={self.cache_gradients}")


def _describe(settings: torch.Tensor) -> str:
    if settings.shape != (5,):
        return f"settings {settings.tolist()}"
    l, K, t, m, per = settings.tolist()
    tempering = TEMPERINGS[int(t)] if int(t) in range(len(TEMPERINGS)) else t
    return (f"latent_dim={int(l)}, n_leapfrog={int(K)}, tempering={tempering!r}, "
            f"max_step_size={m:g}, per_step_step_sizes={bool(per)}")


def _check_log_likelihood(ll: torch.Tensor, z: torch.Tensor) -> None:
    if not isinstance(ll, torch.Tensor):
        raise invalid("log_likelihood", ll, "a tensor of shape (n,)")
    if ll.shape != (z.shape[0],):
        raise invalid("decoder.log_prob output", ll,
                      f"shape ({z.shape[0]},): one log-likelihood per example, summed over "
                      "the data dimensions")
