"""Multi-head attention with emulated FP8 GEMMs (Wang et al., NeurIPS 2018 recipe).

PyTorch's ``nn.MultiheadAttention`` reads its projection weights directly (and, in eval mode
without gradients, runs a fused kernel), so swapping its ``out_proj`` for an FP8 linear layer
would change nothing. :class:`Fp8MultiheadAttention` computes attention itself, with every
GEMM under the recipe: the query, key and value projections and the output projection
(FP8 inputs, chunked FP16 accumulation, FP16 bias addition, as in
:class:`~neurips18.lowprec.Fp8Linear`) and the two batched products of each head, the
scores ``Q K^T`` and the weighted values ``P V`` (the softmax probabilities ``P`` enter the
second product rounded to FP8, like every GEMM input). Scaling by ``1/sqrt(head_dim)``, the
masks and the softmax are done in float32 on the scores (the recipe keeps non-GEMM
operations in higher precision). Its inputs, outputs and options are those of
``nn.MultiheadAttention`` (masks of both kinds, ``is_causal``, ``batch_first``,
``add_bias_kv``, ``add_zero_attn``, ``kdim``/``vdim``, dropout on the attention weights,
unbatched inputs); there is no fused fast path.

``nn.TransformerEncoderLayer`` also has a fused path that reads every weight directly, and
``nn.TransformerEncoder`` may turn its input into a nested tensor in eval mode;
:func:`~neurips18.lowprec.convert_to_fp8` turns a layer whose attention it converts into
:class:`Fp8TransformerEncoderLayer` (the same module, computing through its submodules
only) and switches the encoder's nested-tensor path off.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neurips18.lowprec.layers import _Fp8Mixin, fp8_bmm, fp8_linear


def _float_mask(mask: torch.Tensor | None, dtype: torch.dtype, name: str
                ) -> torch.Tensor | None:
    """A boolean mask (True = not allowed) as an additive float mask; float masks as given."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros_like(mask, dtype=dtype).masked_fill_(mask, float("-inf"))
    if not torch.is_floating_point(mask):
        raise TypeError(f"only bool and floating-point {name} are supported, got {mask.dtype}")
    return mask.to(dtype)


class Fp8MultiheadAttention(_Fp8Mixin, nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose GEMMs run in emulated FP8 (see the module docstring).

    Made by :func:`~neurips18.lowprec.convert_to_fp8` from an ``nn.MultiheadAttention``
    (the same module object; its ``out_proj`` stays an ``nn.Linear`` holding the output
    projection's parameters, computed here under the recipe)."""

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.cfg
        batched = query.dim() == 3
        if not batched:  # (L, E): a batch of one, in the (L, N, E) layout
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        tgt_len, bsz, embed = query.shape
        if embed != self.embed_dim:
            raise ValueError(f"query has embedding dimension {embed}, expected {self.embed_dim}")
        if is_causal and attn_mask is None:
            raise RuntimeError("is_causal is a hint for attn_mask: pass the causal mask "
                               "as attn_mask as well")
        heads, hd = self.num_heads, self.head_dim
        dtype = query.dtype
        kpm = _float_mask(key_padding_mask, dtype, "key_padding_mask")
        mask = _float_mask(attn_mask, dtype, "attn_mask")

        # projections
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight[:e], self.in_proj_weight[e:2 * e], \
                self.in_proj_weight[2 * e:]
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias[:e], self.in_proj_bias[e:2 * e], \
                self.in_proj_bias[2 * e:]
        q = fp8_linear(query, w_q, b_q, cfg)
        k = fp8_linear(key, w_k, b_k, cfg)
        v = fp8_linear(value, w_v, b_v, cfg)
        if self.bias_k is not None and self.bias_v is not None:
            k = torch.cat([k, self.bias_k.repeat(1, bsz, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, bsz, 1)])
            mask = None if mask is None else F.pad(mask, (0, 1))
            kpm = None if kpm is None else F.pad(kpm, (0, 1))

        # heads: (N * H, L, head_dim)
        q = q.reshape(tgt_len, bsz * heads, hd).transpose(0, 1)
        k = k.reshape(k.shape[0], bsz * heads, hd).transpose(0, 1)
        v = v.reshape(v.shape[0], bsz * heads, hd).transpose(0, 1)
        if self.add_zero_attn:
            zeros = q.new_zeros((bsz * heads, 1, hd))
            k = torch.cat([k, zeros], dim=1)
            v = torch.cat([v, zeros], dim=1)
            mask = None if mask is None else F.pad(mask, (0, 1))
            kpm = None if kpm is None else F.pad(kpm, (0, 1))
        src_len = k.shape[1]

        if mask is not None:
            if mask.dim() == 2:
                if mask.shape != (tgt_len, src_len):
                    raise RuntimeError(f"2-D attn_mask has shape {tuple(mask.shape)}, "
                                       f"expected {(tgt_len, src_len)}")
                mask = mask.unsqueeze(0)
            elif mask.dim() != 3 or mask.shape != (bsz * heads, tgt_len, src_len):
                raise RuntimeError(f"attn_mask has shape {tuple(mask.shape)}, expected "
                                   f"{(tgt_len, src_len)} or {(bsz * heads, tgt_len, src_len)}")
        if kpm is not None:
            if kpm.shape != (bsz, src_len):
                raise RuntimeError(f"key_padding_mask has shape {tuple(kpm.shape)}, expected "
                                   f"{(bsz, src_len)}")
            kpm = kpm.view(bsz, 1, 1, src_len).expand(-1, heads, -1, -1).reshape(
                bsz * heads, 1, src_len)
            mask = kpm if mask is None else mask + kpm

        scores = fp8_bmm(q, k.transpose(1, 2), cfg) * (1.0 / math.sqrt(hd))
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        if self.training and self.dropout > 0.0:
            probs = F.dropout(probs, p=self.dropout)
        out = fp8_bmm(probs, v, cfg)  # (N * H, L, head_dim)
        out = out.transpose(0, 1).reshape(tgt_len, bsz, e)
        out = fp8_linear(out, self.out_proj.weight, self.out_proj.bias, cfg)

        weights = None
        if need_weights:
            weights = probs.view(bsz, heads, tgt_len, src_len)
            if average_attn_weights:
                weights = weights.mean(dim=1)
            if not batched:
                weights = weights.squeeze(0)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return self._fp8_repr()


class Fp8TransformerEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` that always computes through its submodules (its
    attention and linear layers, converted to FP8), never through PyTorch's fused kernel."""

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None,
                is_causal: bool = False) -> torch.Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask,
                                   is_causal=is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask,
                                              is_causal=is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x
