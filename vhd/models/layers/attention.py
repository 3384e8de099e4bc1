"""Attention pieces of the DETR family that ``nn.MultiheadAttention`` does not cover."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

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
