"""What the VideoLights golden fixture and its producer share: weights and features rebuilt from
seeds, dropout with shared masks, and gradient sketches.

The release's decoder is hard-wired to d = 256 (its sine embedding of the anchors has 128
frequencies per coordinate), so the fixture's networks are 4.6 M parameters or more: far too
many to commit. The fixture therefore stores each weight and feature tensor as a seeded recipe
(seed, shape, scale, offset) with a checksum, which rebuilds it bit for bit on the pinned torch,
and each gradient and large output as a sketch: ``SKETCH_ROWS`` random projections, which differ
whenever the tensors differ. Everything else (masks, labels, small outputs, loss terms) is stored
as is; dropout masks are seeded per call (``SeededMasks``). Producer:
``benchmarks/videolights_golden.py``; test:
``tests/test_videolights_golden.py``.
"""

from __future__ import annotations

import math
import sys
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "videolights_golden"
RELEASE_SHAPES = FIXTURES / "release_state_dicts.json"  # release key -> shape, per dataset
CASES = ("qvhighlights", "charades", "tvsum")
SKETCH_ROWS = 8
FULL_OUTPUT_MAX = 2048  # outputs of at most this many numbers are stored whole

Recipe = tuple[list[int], int, float, float]  # shape, seed, scale, offset
MaskSource = Callable[[Tensor, float], Tensor]  # (input, p) -> boolean keep mask


def name_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def seeded_normal(seed: int, shape: list[int] | tuple[int, ...]) -> Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


def build(recipe: Recipe) -> Tensor:
    shape, seed, scale, offset = recipe
    return offset + scale * seeded_normal(seed, shape)


def checksum(tensor: Tensor) -> Tensor:
    """Sum and sum of magnitudes in float64: a changed generator or recipe shows up here."""
    values = tensor.detach().double()
    return torch.stack([values.sum(), values.abs().sum()])


def weight_recipes(state: dict[str, Tensor]) -> dict[str, Recipe]:
    """Seeded weights for every parameter of a (release) state dict: matrices N(0, 1/fan_in),
    LayerNorm gains 1 + N(0, 0.01), everything else N(0, 0.01)."""
    recipes = {}
    for name, value in state.items():
        shape = list(value.shape)
        if value.dim() > 1:
            recipes[name] = (shape, name_seed(name), 1.0 / math.sqrt(value[0].numel()), 0.0)
        elif "norm" in name.lower() and name.endswith("weight"):
            recipes[name] = (shape, name_seed(name), 0.1, 1.0)
        else:
            recipes[name] = (shape, name_seed(name), 0.1, 0.0)
    return recipes


def features(seed: int, mask: Tensor, dim: int, tef: bool) -> Tensor:
    """(B, L, dim) features, zero on padding; with ``tef`` the last two columns are the
    release's temporal endpoint features (i / n, (i + 1) / n) over each sample's n clips."""
    batch, length = mask.shape
    raw = dim - 2 if tef else dim
    values = seeded_normal(seed, (batch, length, raw)) / math.sqrt(raw)
    if tef:
        valid = mask.sum(1, keepdim=True).float()  # (B, 1)
        index = torch.arange(length, dtype=torch.float32)[None]
        ends = torch.stack([index / valid, (index + 1) / valid], dim=-1)
        values = torch.cat([values, ends], dim=-1)
    return values * mask[..., None]


def vhd_batch(fixture: dict) -> dict:
    """The fixture's inputs as a vhd ``Batch`` (features rebuilt from their seeds)."""
    batch = {"video_mask": fixture["video_mask"], "query_mask": fixture["query_mask"]}
    for key, mask in (("video", fixture["video_mask"]), ("query", fixture["query_mask"])):
        seed, dim, tef = fixture["features"][key]
        batch[key] = features(seed, mask, dim, tef)
    return {**batch, **fixture["labels"], "meta": fixture["meta"]}


def sketch(values: Tensor, seed: int) -> Tensor:
    """``SKETCH_ROWS`` projections of the flattened tensor on seeded N(0, 1) directions; each
    differs from another tensor's by N(0, |difference|^2)."""
    directions = seeded_normal(seed, (SKETCH_ROWS, values.numel()))
    return directions @ values.detach().reshape(-1).float()


def record(name: str, values: Tensor) -> Tensor:
    """The stored form of an output: whole when small, else its sketch."""
    if values.numel() <= FULL_OUTPUT_MAX:
        return values.detach().clone()
    return sketch(values, name_seed(name))


def sketch_table(tensors: dict[str, Tensor]) -> Tensor:
    """(n, SKETCH_ROWS + 1): each tensor's sketch and norm, in the order given."""
    return torch.stack(
        [torch.cat([sketch(t, name_seed(n)), t.detach().float().norm()[None]])
         for n, t in tensors.items()]
    )  # fmt: skip


# -- dropout with masks from outside ---------------------------------------------------------------
def _masked(source: MaskSource) -> Callable[..., Tensor]:
    def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
        if not training or p == 0.0:
            return x
        keep = source(x, p)
        return x * keep.to(x.dtype) * (1.0 / (1.0 - p))

    return dropout


def _attention(dropout: Callable[..., Tensor]) -> Callable[..., Tensor]:
    original = F.scaled_dot_product_attention

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                  **kwargs):  # fmt: skip
        if dropout_p == 0.0:
            return original(query, key, value, attn_mask, 0.0, is_causal, scale=scale, **kwargs)
        if is_causal or kwargs:
            raise NotImplementedError("shared dropout masks: plain attention only")
        scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
        scores = (query * scale) @ key.transpose(-2, -1)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask
        return dropout(scores.softmax(dim=-1), dropout_p) @ value

    return attention


@contextmanager
def shared_dropout(source: MaskSource, modules: tuple[str, ...] = ("vhd.",)) -> Iterator[None]:
    """Every dropout in torch and in the loaded modules under ``modules`` (vhd's own fast
    dropout, imported by name) multiplies by ``source``'s mask; fused attention with dropout
    is written out so that its weights go through the same dropout."""
    from vhd.models.layers import dropout as vhd_dropout

    replacement = _masked(source)
    patches = [
        mock.patch.object(F, "dropout", replacement),
        mock.patch.object(F, "scaled_dot_product_attention", _attention(replacement)),
    ]
    originals = (vhd_dropout.dropout, F.dropout)
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(modules):
            continue
        for attribute, value in list(vars(module).items()):
            if any(value is original for original in originals):
                patches.append(mock.patch.object(module, attribute, replacement))
    for patch in patches:
        patch.start()
    try:
        yield
    finally:
        for patch in reversed(patches):
            patch.stop()


class SeededMasks:
    """vhd's masks: the k-th dropout call with a given shape and rate draws its mask from a
    generator seeded by (seed, shape, rate, k), so the masks depend on neither the order of
    calls of other shapes nor the global random state. ``calls`` lists (shape, rate) in call
    order."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.counts: dict[tuple, int] = defaultdict(int)
        self.calls: list[tuple[list[int], float]] = []

    def __call__(self, x: Tensor, p: float) -> Tensor:
        key = (tuple(x.shape), p)
        index = self.counts[key]
        self.counts[key] += 1
        self.calls.append((list(x.shape), p))
        generator = torch.Generator().manual_seed(name_seed(f"{self.seed}:{key}:{index}"))
        return torch.rand(x.shape, generator=generator) >= p
