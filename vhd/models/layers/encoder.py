"""DETR's post-norm transformer encoder layer, with a pluggable FFN activation."""

from __future__ import annotations

from torch import Tensor, nn

from vhd.models.layers.attention import multihead_attention
from vhd.models.layers.dropout import Dropout
from vhd.models.layers.mlp import activate_in_place, make_activation


class EncoderLayer(nn.Module):
    """Self-attention (positions added to queries and keys) then FFN, each residual + LayerNorm."""

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, dropout: float, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = make_activation(activation)

    def forward(self, x: Tensor, padding: Tensor, pos: Tensor) -> Tensor:
        """(B, L, d) tokens, (B, L) True = padding, (B, L, d) positions."""
        query = key = x + pos
        attended = multihead_attention(self.self_attn, query, key, x, key_padding_mask=padding)
        x = self.norm1(x + self.dropout1(attended))
        hidden = activate_in_place(self.activation, self.linear1(x))
        hidden = self.linear2(self.dropout(hidden))
        return self.norm2(x + self.dropout2(hidden))
