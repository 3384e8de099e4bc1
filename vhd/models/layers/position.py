"""Position encodings of the DETR family: sine over valid clips, sine of anchor spans, learned text.

Frequencies follow DETR: feature pair j of a ``dim``-wide embedding uses
``temperature ** (2j / dim)``, and sines and cosines are interleaved (sin, cos, sin, cos, ...).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vhd.models.layers.dropout import Dropout


def _interleaved_sine(angles: Tensor, dim: int, temperature: float) -> Tensor:
    """``angles (...)`` -> ``(..., dim)``: sin/cos of ``angle / temperature ** (2j / dim)``."""
    index = torch.arange(dim, dtype=torch.float32, device=angles.device)
    frequencies = temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / dim)
    scaled = angles.float()[..., None] / frequencies
    return torch.stack((scaled[..., 0::2].sin(), scaled[..., 1::2].cos()), dim=-1).flatten(-2)


def video_sine_positions(mask: Tensor, dim: int = 256, temperature: float = 10000.0) -> Tensor:
    """(B, L) validity mask -> (B, L, dim) sine positions of the valid clips.

    Position i is ``2 pi c_i / n`` with ``c_i`` the count of valid clips up to i and ``n`` the
    count of all of them, so a video spans one period whatever its length; padded clips (at the
    end) repeat the last valid position (Moment-DETR's ``PositionEmbeddingSine(normalize=True)``).
    """
    count = mask.float().cumsum(dim=1)
    angles = count / (count[:, -1:] + 1e-6) * (2 * math.pi)
    return _interleaved_sine(angles, dim, temperature)


def span_sine_embedding(
    spans: Tensor, dim_per_coordinate: int = 128, temperature: float = 10000.0
) -> Tensor:
    """(..., 2) normalised (center, width) -> (..., 2 * dim_per_coordinate) [center | width].

    DAB-DETR's embedding of an anchor: each coordinate x in [0, 1] becomes the sine code of
    ``2 pi x``.
    """
    angles = spans * (2 * math.pi)
    return torch.cat(
        [_interleaved_sine(angles[..., i], dim_per_coordinate, temperature) for i in range(2)],
        dim=-1,
    )


class TextPositionEmbedding(nn.Module):
    """Learned text positions, ``LayerNorm(x + E[position])`` then dropout (Moment-DETR).

    The VideoLights release builds it but gives text zero positions (``use_text_positions``
    off); it is kept so the parameter count and checkpoints match the release.
    """

    def __init__(self, max_len: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)

    def forward(self, tokens: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.dropout(self.norm(tokens + self.embedding(positions)))
