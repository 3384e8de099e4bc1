"""Attention pieces of the DETR family that ``nn.MultiheadAttention`` does not cover."""

from __future__ import annotations

import math
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from vhd.models.layers.dropout import dropout as fast_dropout

PairMaskMode = Literal["release", "per-sample"]


class ProjectedAttention(nn.Module):
    """Multi-head attention on queries, keys and values that are already projected.

    DAB-DETR's decoder builds its queries and keys itself (content plus position, and in
    cross-attention the per-head concatenation [content | position], so ``qk_dim`` may be twice
    ``value_dim``); this module only splits heads, attends (scale ``(qk_dim / heads) ** -0.5``,
    dropout on the weights) and applies the output projection (bias initialised to 0).
    """

    def __init__(self, qk_dim: int, value_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if qk_dim % num_heads or value_dim % num_heads:
            raise ValueError(f"qk_dim {qk_dim} and value_dim {value_dim} must divide by heads")
        self.num_heads = num_heads
        self.dropout = dropout
        self.out_proj = nn.Linear(value_dim, value_dim)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """(B, Lq, qk), (B, Lk, qk), (B, Lk, v); ``key_padding_mask`` (B, Lk) True = padding."""
        allowed = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            self._heads(query),
            self._heads(key),
            self._heads(value),
            attn_mask=allowed,
            dropout_p=self.dropout if self.training else 0.0,
        )
        batch, _, length, _ = attended.shape
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, -1))


def padded_pair_mask(
    query_pad: Tensor, key_pad: Tensor, num_heads: int, mode: PairMaskMode
) -> Tensor | None:
    """The extra boolean attention mask of the VideoLights Bi-CMF attentions (True = blocked).

    Per sample it blocks (query, key) pairs that are both padding. The release tiles the
    (B, Lq, Lk) block ``num_heads`` times with ``repeat`` (index i holds sample i mod B) while
    ``nn.MultiheadAttention`` reads index i as sample i // heads, head i % heads: head h of
    sample b gets the mask of sample (b * heads + h) mod B. With unequal lengths in a batch this
    changes valid outputs and makes them depend on batch composition (reference section 6.1).
    ``"release"`` reproduces that; ``"per-sample"`` is the intended mask, which key padding
    already implies, so it returns None.
    """
    if mode == "per-sample":
        return None
    if mode != "release":
        raise ValueError(f"unknown Bi-CMF mask mode {mode!r}; use 'release' or 'per-sample'")
    pairs = query_pad[:, :, None] & key_pad[:, None, :]
    return pairs.repeat(num_heads, 1, 1)


def multihead_attention(
    module: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None = None,
    attn_mask: Tensor | None = None,
) -> Tensor:
    """``module(query, key, value, ...)[0]`` for a batch-first ``nn.MultiheadAttention`` (same
    parameters). When training on the CPU with dropout, the attention weights are dropped by the
    fast ``dropout`` (``nn.MultiheadAttention`` draws them with the slow ``bernoulli_``);
    otherwise the module itself runs (its fused kernels)."""
    if not (module.training and module.dropout > 0 and query.device.type == "cpu"):
        return module(
            query, key, value, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
            need_weights=False,
        )[0]  # fmt: skip
    return attention_math(module, query, key, value, key_padding_mask, attn_mask, module.dropout)


def attention_math(
    module: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None,
    attn_mask: Tensor | None,
    dropout_p: float,
) -> Tensor:
    """The computation of ``nn.MultiheadAttention`` (batch first, packed input projection, no
    bias_k / zero attention), written out: softmax(q k^T / sqrt(d_head) + mask), dropout, times v,
    output projection. ``attn_mask`` (B * heads, Lq, Lk) or (Lq, Lk) and ``key_padding_mask``
    (B, Lk) are boolean, True = blocked; a query whose keys are all blocked gets zero weights (as
    torch's safe softmax)."""
    batch, length_q, dim = query.shape
    heads = module.num_heads
    w_q, w_k, w_v = module.in_proj_weight.chunk(3)
    b_q, b_k, b_v = module.in_proj_bias.chunk(3)

    def split(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        projected = F.linear(x, weight, bias)
        return projected.view(batch, x.shape[1], heads, dim // heads).transpose(1, 2)

    q, k, v = split(query, w_q, b_q), split(key, w_k, b_k), split(value, w_v, b_v)
    scores = (q * (1.0 / math.sqrt(dim // heads))) @ k.transpose(-2, -1)  # (B, h, Lq, Lk)
    blocked = None
    if attn_mask is not None:
        blocked = (
            attn_mask.view(-1, heads, *attn_mask.shape[-2:]) if attn_mask.dim() == 3 else attn_mask
        )
    if key_padding_mask is not None:
        padding = key_padding_mask[:, None, None, :]
        blocked = padding if blocked is None else blocked | padding
    if blocked is not None:
        scores = scores.masked_fill(blocked, float("-inf"))
    weights = scores.softmax(dim=-1)
    if blocked is not None:
        weights = weights.masked_fill(blocked.all(dim=-1, keepdim=True), 0.0)
    attended = fast_dropout(weights, dropout_p) @ v  # (B, h, Lq, d_head)
    return module.out_proj(attended.transpose(1, 2).reshape(batch, length_q, dim))
