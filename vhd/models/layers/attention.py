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
    dropout on the weights) and applies the output projection (bias initialised to 0). The
    decoder's cross-attention computes the same in memory space (``AnchorDecoderLayer``) and
    uses only this module's output projection and dropout rate.
    """

    def __init__(self, qk_dim: int, value_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if qk_dim % num_heads or value_dim % num_heads:
            raise ValueError(f"qk_dim {qk_dim} and value_dim {value_dim} must divide by heads")
        self.num_heads = num_heads
        self.dropout = dropout
        self.out_proj = nn.Linear(value_dim, value_dim)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """(B, Lq, qk), (B, Lk, qk), (B, Lk, v); ``key_padding_mask`` (B, Lk) True = padding."""
        allowed = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            _heads(query, self.num_heads),
            _heads(key, self.num_heads),
            _heads(value, self.num_heads),
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
    if blocking(query_pad) is None or blocking(key_pad) is None:
        return None  # no pair of padded positions (checked on the CPU only)
    pairs = query_pad[:, :, None] & key_pad[:, None, :]
    return blocking(pairs.repeat(num_heads, 1, 1))


def blocking(mask: Tensor | None) -> Tensor | None:
    """``mask`` (True = blocked), or None when it blocks nothing: masking is then a no-op pass
    over the scores. Checked on the CPU only (on a GPU the check would wait for the device)."""
    if mask is not None and mask.device.type == "cpu" and not mask.any():
        return None
    return mask


def multihead_attention(
    module: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None = None,
    attn_mask: Tensor | None = None,
) -> Tensor:
    """``module(query, key, value, ...)[0]`` for a batch-first ``nn.MultiheadAttention`` (same
    parameters, same function). On the CPU ``attention_math``: its attention weights are dropped
    by the fast ``dropout`` (torch draws them with the slow ``bernoulli_``), and torch's fused CPU
    kernel costs about a millisecond per call whatever the size (small models, tests). Elsewhere
    ``attention_fused``."""
    key_padding_mask, attn_mask = blocking(key_padding_mask), blocking(attn_mask)
    dropout_p = module.dropout if module.training else 0.0
    if query.device.type == "cpu":
        return attention_math(module, query, key, value, key_padding_mask, attn_mask, dropout_p)
    return attention_fused(module, query, key, value, key_padding_mask, attn_mask, dropout_p)


def in_projections(
    module: nn.MultiheadAttention, query: Tensor, key: Tensor, value: Tensor
) -> tuple[Tensor, ...]:
    """q, k, v through the module's packed input projection, inputs that are the same tensor in
    one matrix product (self-attention's query and key, cross-attention's key and value)."""
    dim = module.embed_dim
    weight, bias = module.in_proj_weight, module.in_proj_bias
    if query is key:
        q, k = F.linear(query, weight[: 2 * dim], bias[: 2 * dim]).split(dim, dim=-1)
        return q, k, F.linear(value, weight[2 * dim :], bias[2 * dim :])
    if key is value:
        k, v = F.linear(key, weight[dim:], bias[dim:]).split(dim, dim=-1)
        return F.linear(query, weight[:dim], bias[:dim]), k, v
    inputs = (query, key, value)
    return tuple(map(F.linear, inputs, weight.chunk(3), bias.chunk(3)))


def _blocked_pairs(
    key_padding_mask: Tensor | None, attn_mask: Tensor | None, heads: int
) -> Tensor | None:
    """One (B, h, Lq, Lk) or broadcastable boolean mask, True = blocked, from ``attn_mask``
    ((B * heads, Lq, Lk) or (Lq, Lk)) and ``key_padding_mask`` (B, Lk)."""
    blocked = None
    if attn_mask is not None:
        blocked = (
            attn_mask.view(-1, heads, *attn_mask.shape[-2:]) if attn_mask.dim() == 3 else attn_mask
        )
    if key_padding_mask is not None:
        padding = key_padding_mask[:, None, None, :]
        blocked = padding if blocked is None else blocked | padding
    return blocked


def _heads(x: Tensor, heads: int) -> Tensor:
    """(B, L, d) -> (B, heads, L, d / heads), a view."""
    batch, length, dim = x.shape
    return x.view(batch, length, heads, dim // heads).transpose(1, 2)


def attention_fused(
    module: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None,
    attn_mask: Tensor | None,
    dropout_p: float,
) -> Tensor:
    """``nn.MultiheadAttention``'s computation batch first throughout: the module transposes to
    sequence first and back, and the projections of the transposed views copy them. The same
    numbers (its fused ``scaled_dot_product_attention``), a fully blocked query gets zeros."""
    heads = module.num_heads
    q, k, v = (_heads(x, heads) for x in in_projections(module, query, key, value))
    blocked = _blocked_pairs(key_padding_mask, attn_mask, heads)
    attended = F.scaled_dot_product_attention(
        q, k, v, attn_mask=None if blocked is None else ~blocked, dropout_p=dropout_p
    )
    return module.out_proj(attended.transpose(1, 2).flatten(2))


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
    heads = module.num_heads
    q, k, v = (_heads(x, heads) for x in in_projections(module, query, key, value))
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)  # (B, h, Lq, Lk)
    weights = masked_softmax(scores, _blocked_pairs(key_padding_mask, attn_mask, heads))
    attended = fast_dropout(weights, dropout_p) @ v  # (B, h, Lq, d_head)
    return module.out_proj(attended.transpose(1, 2).flatten(2))


def masked_softmax(scores: Tensor, blocked: Tensor | None) -> Tensor:
    """Softmax over the last dim of ``scores`` without the ``blocked`` entries (True, broadcast);
    a row with every entry blocked gets zeros (as torch's safe softmax), not NaN. ``blocked``
    of (B, Lk) key padding is read as (B, 1, 1, Lk)."""
    if blocked is None:
        return scores.softmax(dim=-1)
    if blocked.dim() == 2:
        blocked = blocked[:, None, None, :]
    weights = scores.masked_fill(blocked, float("-inf")).softmax(dim=-1)
    return weights.masked_fill(blocked.all(dim=-1, keepdim=True), 0.0)
