"""Padding of per-item dicts into a ``Batch``; shared by every datamodule."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vhd.types import Batch

# Sequences padded along time to the longest item; their masks are named "<key>_mask".
SEQUENCE_KEYS = ("video", "audio", "query")
# Per-clip targets (and the reconstruction mask) padded with zeros/False to the video length.
PER_CLIP_KEYS = ("saliency", "labels", "mask")
# Fixed-size per-item tensors, stacked.
STACKED_KEYS = ("saliency_pos", "saliency_neg")


def pad_sequences(sequences: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Zero-pad (T_i, D) tensors to (B, T_max, D) and return the bool validity mask (B, T_max)."""
    longest = max(sequence.shape[0] for sequence in sequences)
    padded = sequences[0].new_zeros((len(sequences), longest, *sequences[0].shape[1:]))
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        padded[row, : sequence.shape[0]] = sequence
        mask[row, : sequence.shape[0]] = True
    return padded, mask


def collate_items(items: list[dict[str, Any]]) -> Batch:
    """Items are dicts of tensors plus ``meta``; keys absent from any item are left out."""
    batch: dict[str, Any] = {"meta": [item["meta"] for item in items]}
    present = set.intersection(*(set(item) for item in items))
    for key in SEQUENCE_KEYS:
        if key in present:
            batch[key], batch[f"{key}_mask"] = pad_sequences([item[key] for item in items])
    for key in PER_CLIP_KEYS:
        if key in present:
            batch[key], _ = pad_sequences([item[key] for item in items])
    for key in STACKED_KEYS:
        if key in present:
            batch[key] = torch.stack([item[key] for item in items])
    if "windows" in present:
        batch["windows"] = [item["windows"] for item in items]
    return batch  # type: ignore[return-value]
