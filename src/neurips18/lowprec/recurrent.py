"""Recurrent layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) with emulated FP8 GEMMs.

A recurrent layer's GEMMs, under the recipe of Wang et al. (NeurIPS 2018):

* the input projection ``x_t W_ih^T + b_ih`` of every time step is one GEMM over the
  (time x batch) rows, as in :class:`~neurips18.lowprec.Fp8Linear`: its weight gradient is a
  chunked sum over all time steps and batch rows (time-major order);
* the recurrent projection ``h_{t-1} W_hh^T + b_hh`` (and the LSTM output projection
  ``W_hr``) is a GEMM per step, with FP8 inputs and chunked FP16 accumulation in the
  forward and backward-data products; its weight gradient, which sums over every step, is
  formed once at the end of the backward pass as one chunked product over the (time x
  batch) rows of the errors and the states -- the GEMM a fused recurrent kernel computes --
  rather than as a float32 sum of per-step gradients.

The gate nonlinearities and the cell-state updates run in float32 (the recipe reduces the
precision of GEMMs and weight updates). Inputs and outputs are those of the torch layers
(``batch_first``, unbatched inputs, initial states, ``num_layers``, ``bidirectional``,
``dropout`` between layers, ``proj_size``); packed sequences are not supported.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neurips18._validation import invalid
from neurips18.lowprec.layers import (
    _bias_grad,
    _first_order,
    _Fp8Mixin,
    _LayerCfg,
    _like,
    affine,
    fp8_linear,
)


def _backward_pass() -> int:
    """An id of the running backward pass (``-1`` outside one)."""
    return int(torch._C._current_graph_task_id())


class _Store:
    """The per-step (errors, inputs) of one shared weight, collected during backward and
    tagged with the backward pass that produced them.

    A pass that does not need the weight's gradient (``torch.autograd.grad`` for the
    input only, with ``retain_graph``) still runs every step's backward but never the
    weight's, so its rows must not reach a later pass's weight gradient."""

    def __init__(self) -> None:
        self.items: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def take(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The rows of the running pass in the order the steps' backwards added them;
        every row is dropped from the store."""
        now = _backward_pass()
        items, self.items = self.items, []
        return [(gq, xq) for task, gq, xq in items if task == now]


class _SharedWeight(torch.autograd.Function):
    """A token through which a weight used at every step gets its gradient: its backward
    runs after every step's backward (each step consumes the token) and forms the weight
    (and bias) gradient as one chunked GEMM over all the steps' rows, in time order."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, b: torch.Tensor | None, cfg: _LayerCfg,
                store: _Store) -> torch.Tensor:
        ctx.cfg, ctx.store, ctx.has_bias = cfg, store, b is not None
        return w.new_zeros(())

    @staticmethod
    @_first_order
    def backward(ctx: Any, _: torch.Tensor) -> Any:
        cfg: _LayerCfg = ctx.cfg
        items = ctx.store.take()[::-1]  # backward visits the last step first
        if not items:
            return None, None, None, None
        g = torch.cat([gq for gq, _ in items])  # (steps * batch, out), time-major
        x = torch.cat([xq for _, xq in items])
        gw = cfg.unscale(cfg.mm(g.t(), x))
        gb = cfg.unscale(_bias_grad(g, cfg)) if ctx.has_bias else None
        return gw, gb, None, None


class _StepGemm(torch.autograd.Function):
    """One step's ``h @ W^T (+ b)`` with the weight rounded once per sequence (``wq``)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, token: torch.Tensor, wq: torch.Tensor,
                b: torch.Tensor | None, cfg: _LayerCfg, store: _Store) -> torch.Tensor:
        hq = cfg.q(h)
        y = affine(hq, wq, b, cfg)
        ctx.save_for_backward(hq, wq)
        ctx.cfg, ctx.store = cfg, store
        return _like(y, h)

    @staticmethod
    @_first_order
    def backward(ctx: Any, gy: torch.Tensor) -> Any:
        hq, wq = ctx.saved_tensors
        cfg: _LayerCfg = ctx.cfg
        gq = cfg.scaled_errors(gy)
        ctx.store.items.append((_backward_pass(), gq, hq))
        gh = cfg.unscale(cfg.mm(gq, wq)) if ctx.needs_input_grad[0] else None
        return gh, gq.new_zeros(()), None, None, None, None


class _Shared:
    """A weight (and bias) applied at every step, with its deferred gradient."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor | None, cfg: _LayerCfg) -> None:
        self.store = _Store()
        self.cfg = cfg
        self.token = _SharedWeight.apply(w, b, cfg, self.store)
        self.wq = cfg.q(w)
        self.b = b

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        y = _StepGemm.apply(h, self.token, self.wq, self.b, self.cfg, self.store)
        return y.to(h.dtype)  # type: ignore[union-attr]


def _cell(mode: str, xg: torch.Tensor, hh: torch.Tensor, h: torch.Tensor,
          c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of the cell from the input part ``xg`` and the recurrent part ``hh`` of
    the gates (PyTorch's gate order)."""
    if mode == "RNN_TANH":
        return torch.tanh(xg + hh), None
    if mode == "RNN_RELU":
        return torch.relu(xg + hh), None
    if mode == "LSTM":
        assert c is not None
        i, f, g, o = (xg + hh).chunk(4, -1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c2), c2
    xr, xz, xn = xg.chunk(3, -1)  # GRU
    hr, hz, hn = hh.chunk(3, -1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h, None


class _Fp8RNNMixin(_Fp8Mixin):
    """The forward of every converted recurrent layer."""

    mode: str
    num_layers: int
    bidirectional: bool
    batch_first: bool
    hidden_size: int
    proj_size: int
    dropout: float
    bias: bool
    training: bool

    def forward(self, x: Any, hx: Any = None) -> Any:
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise invalid("input", x, "a tensor (packed sequences are not emulated)")
        lstm = self.mode == "LSTM"
        batched = x.dim() == 3
        if hx is not None:
            self._check_state(hx, x, batched)
        if not batched:
            x = x.unsqueeze(1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        steps, bsz, _ = x.shape
        dirs = 2 if self.bidirectional else 1
        out_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        if hx is None:
            h0 = x.new_zeros((self.num_layers * dirs, bsz, out_size))
            c0 = x.new_zeros((self.num_layers * dirs, bsz, self.hidden_size)) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
        layer_in = x
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
                b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
                b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
                xg = fp8_linear(layer_in, w_ih, b_ih, self.cfg)  # all steps: one GEMM
                rec = _Shared(w_hh, b_hh, self.cfg)
                proj = _Shared(getattr(self, "weight_hr" + sfx), None, self.cfg) \
                    if self.proj_size > 0 else None
                idx = layer * dirs + d
                h, c = h0[idx], (c0[idx] if c0 is not None else None)
                seq = []
                for t in (range(steps - 1, -1, -1) if d else range(steps)):
                    h, c = _cell(self.mode, xg[t], rec(h), h, c)
                    if proj is not None:
                        h = proj(h)
                    seq.append(h)
                if d:
                    seq.reverse()
                outs.append(torch.stack(seq))
                h_n.append(h)
                if c is not None:
                    c_n.append(c)
            layer_in = outs[0] if dirs == 1 else torch.cat(outs, -1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout)
        out = layer_in
        hn = torch.stack(h_n)
        state: Any = (hn, torch.stack(c_n)) if lstm else hn
        if not batched:
            out = out.squeeze(1)
            state = tuple(s.squeeze(1) for s in state) if lstm else state.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, state


    def _check_state(self, hx: Any, x: torch.Tensor, batched: bool) -> None:
        """Refuse initial states that torch refuses: indexing by layer and broadcasting
        over the batch would otherwise take a state with extra layers or directions, or
        one of batch size 1, silently."""
        lstm = self.mode == "LSTM"
        if lstm and not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise invalid("hx", hx, "a tuple (h_0, c_0) for an LSTM")
        dirs = 2 if self.bidirectional else 1
        out_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        lead = (self.num_layers * dirs,) + ((x.shape[0 if self.batch_first else 1],)
                                           if batched else ())
        states = [("h_0", hx[0] if lstm else hx, (*lead, out_size))]
        if lstm:
            states.append(("c_0", hx[1], (*lead, self.hidden_size)))
        for name, t, shape in states:
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                kind = "a batched" if batched else "an unbatched"
                raise invalid(name, t, f"shape {shape} for {kind} input of shape "
                              f"{tuple(x.shape)}")


class Fp8RNN(_Fp8RNNMixin, nn.RNN):
    """``nn.RNN`` with emulated FP8 GEMMs (see the module docstring)."""

    def extra_repr(self) -> str:
        return f"{nn.RNN.extra_repr(self)}, {self._fp8_repr()}"


class Fp8LSTM(_Fp8RNNMixin, nn.LSTM):
    """``nn.LSTM`` with emulated FP8 GEMMs (see the module docstring)."""

    def extra_repr(self) -> str:
        return f"{nn.LSTM.extra_repr(self)}, {self._fp8_repr()}"


class Fp8GRU(_Fp8RNNMixin, nn.GRU):
    """``nn.GRU`` with emulated FP8 GEMMs (see the module docstring)."""

    def extra_repr(self) -> str:
        return f"{nn.GRU.extra_repr(self)}, {self._fp8_repr()}"
