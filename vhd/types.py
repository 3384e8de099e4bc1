"""The two contracts every part of vhd speaks: ``Batch`` (datamodule -> model) and ``Prediction``
(model -> metrics and submission files).

Datamodules know files, never models; models know tensors, never files; metrics know predictions
and ground truth, never models. Keeping these as plain ``TypedDict``s means Lightning moves batches
to the device untouched and predictions serialise to the official jsonl format with ``json.dumps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from torch import Tensor


class Meta(TypedDict, total=False):
    """Per-item bookkeeping that travels with a batch but never enters a model's forward."""

    index: int  # position in its split: metrics put DDP-gathered rows back in this order
    qid: int | str  # query id (moment datasets) or video id (highlight datasets)
    vid: str
    query: str
    duration: float  # seconds
    clip_len: float  # seconds per clip (feature step)
    num_clips: int  # valid clips of this item (== video_mask[i].sum())
    domain: str  # highlight datasets: YouTube / TVSum category
    annotation: dict[str, Any]  # the raw annotation record, the metrics' ground truth
    clip_ids: list[int]  # training windows: positions of the window's clips in the full video
    window_start: int  # unlabeled windows: first step of the window in the source video
    source_steps: int  # unlabeled windows: real steps before repetition fills the window


class Batch(TypedDict, total=False):
    """A padded mini-batch. Required: ``video``, ``video_mask`` and ``meta``; the rest per dataset.

    Masks are ``bool`` with ``True`` = valid. ``windows`` holds, per item, the ground-truth moments
    as normalised ``(center, width)`` rows in ``[0, 1]`` (the DETR-family training target).
    """

    video: Tensor  # (B, L, Dv) float
    video_mask: Tensor  # (B, L) bool
    audio: Tensor  # (B, L, Da) float, aligned clip by clip with video
    query: Tensor  # (B, N, Dt) float, token-level text features
    query_mask: Tensor  # (B, N) bool
    saliency: Tensor  # (B, L) float, per-clip ground-truth saliency (0 on padding)
    saliency_pos: Tensor  # (B, P) long, clip indices of positive clips of the pairs
    saliency_neg: Tensor  # (B, P) long, clip indices of negative clips of the pairs
    windows: list[Tensor]  # per item (n_i, 2) normalised (center, width)
    labels: Tensor  # (B, L) float, per-clip highlight labels of segment datasets
    mask: Tensor  # (B, L) bool, True = step hidden for masked reconstruction (RASL)
    meta: list[Meta]


class _PredictionRequired(TypedDict):
    qid: int | str
    vid: str


class Prediction(_PredictionRequired, total=False):
    """One query (or video) in the official QVHighlights submission format.

    ``pred_relevant_windows`` rows are ``[start_s, end_s, score]`` sorted by score, descending;
    highlight-only methods leave them out. ``pred_saliency_scores`` has one float per clip.
    """

    query: str
    pred_relevant_windows: list[list[float]]
    pred_saliency_scores: list[float]


BATCH_REQUIRED_KEYS = ("video", "video_mask", "meta")


@dataclass
class VideoLightsOutput:
    """VideoLights' network output: everything the losses and predictions read. It lives here,
    below both the model and its losses, so neither imports the other. Per-layer tensors lead
    with the layer axis."""

    logits: Tensor  # (layers, B, Q, 2) class logits per decoder layer, index 0 = foreground
    spans: Tensor  # (layers, B, Q, 2) normalised (center, width)
    saliency: Tensor  # (B, Lv)
    saliency_negative: Tensor | None  # (B, Lv) with the next sample's text
    saliency_mr: Tensor | None  # (B, Lv) MR-to-HD
    proj_queries: Tensor | None  # (layers, B, Q, c) normalised contrastive projections
    proj_text: Tensor | None  # (B, Lt, c)
    proj_video: Tensor | None  # (B, Lv, c)
    text: Tensor  # T (B, Lt, d), the projected text
    video_refined: Tensor  # V1 (B, Lv, d), the FRA output
    video_mask: Tensor  # (B, Lv) bool, True = valid
    text_mask: Tensor  # (B, Lt) bool
