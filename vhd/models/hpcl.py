"""HPCL: Li et al., "Probing Visual-Audio Representation for Video Highlight Detection via
Hard-Pairs Guided Contrastive Learning" (arXiv 2206.10157). No official code; the paper is the
specification, and the choices it leaves open are options of ``HPCL`` (see its docstring).

Data flow (Figure 2), per video of T segments:

    video, audio ─ linear projection to d (3.1) ─> F^v, F^a
    ─ Intra-Modality Encoding: n self-attention layers (eq. 1-3) ─> F^v_n, F^a_n
    ─ global-context decoder: G = decoder(G_init; F_n), F-hat = F_n + G (3.2)
    ─ Co-occurrence Encoding: F^v_n (resp. F^a_n) attends over [F^v_n; F^a_n] (eq. 4-5) ─> F-tilde
    ─ heads on concat(F-tilde^v, F-tilde^a), F-hat^v, F-hat^a; score = weighted sum (3.4)
    losses: CE on the three heads (eq. 10) + HPCL on concat(F-hat^v + F-tilde^v, F-hat^a +
    F-tilde^a) (eq. 7-8) + hard-pairs ranking (eq. 9), weighted by lambda_1..3 (eq. 11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vhd.errors import ConfigError
from vhd.losses.hpcl import hard_pair_ranking_loss, segment_contrastive_loss, segment_cross_entropy
from vhd.models.base import VHDModule
from vhd.types import Batch, Prediction

# Additive attention mask for padded keys: large and finite, so bf16/fp16 never see -inf or NaN.
MASKED_SCORE = -1e4

Architecture = Literal["co_av", "cr_av", "av", "v_only", "a_only"]
AttentionResidual = Literal["values", "input"]
AttentionScale = Literal["head", "d_k"]
GlobalInit = Literal["mean", "random"]
PositionEncoding = Literal["none", "sinusoidal"]


class MultiHeadAttention(nn.Module):
    """softmax(Q K^T / sqrt(width)) S with query/key width ``d_k`` and value width ``d_v`` split
    over heads (eq. 1-2 and 4-5); returns the attended values and the values ``S`` themselves.
    ``scale="head"``: width = d_k / num_heads, each head's own width as in [53]; ``"d_k"``: width
    = d_k, the full query width eq. 2 prints."""

    def __init__(
        self, d_model: int, d_k: int, d_v: int, num_heads: int, scale: AttentionScale = "head"
    ) -> None:
        super().__init__()
        if d_k % num_heads or d_v % num_heads:
            raise ValueError(f"d_k={d_k} and d_v={d_v} must be multiples of num_heads={num_heads}")
        self.num_heads = num_heads
        self.scale = None if scale == "head" else d_k**-0.5  # None: SDPA's 1/sqrt(head width)
        self.w_q = nn.Linear(d_model, d_k)  # W^q
        self.w_k = nn.Linear(d_model, d_k)  # W^k
        self.w_s = nn.Linear(d_model, d_v)  # W^s (values S)

    def _split(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(
        self, queries: Tensor, memory: Tensor, memory_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        values = self.w_s(memory)
        bias = torch.zeros(memory_mask.shape, dtype=queries.dtype, device=queries.device)
        bias = bias.masked_fill(~memory_mask, MASKED_SCORE)[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            self._split(self.w_q(queries)),
            self._split(self.w_k(memory)),
            self._split(values),
            attn_mask=bias.to(values.dtype),
            scale=self.scale,
        )
        batch, _, length, _ = attended.shape
        return attended.transpose(1, 2).reshape(batch, length, -1), values


def feed_forward(d_in: int, d_ff: int, d_out: int, dropout: float) -> nn.Sequential:
    """The FFN of a transformer layer (eq. 3)."""
    return nn.Sequential(
        nn.Linear(d_in, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_out)
    )


class IntraModalityLayer(nn.Module):
    """One layer of the Intra-Modality Encoding (section 3.2, eq. 1-3).

    ``residual="values"`` is eq. 2 as printed: the attended values plus the values ``S`` (width
    ``d_v``), then the FFN (eq. 3) maps back to ``d``. ``residual="input"`` is the standard
    post-norm transformer encoder layer [53] (output projection ``d_v -> d``, residual on the input,
    residual FFN). LayerNorms keep both variants trainable; the paper does not mention them.
    """

    def __init__(
        self,
        d_model: int,
        d_k: int,
        d_v: int,
        num_heads: int,
        d_ff: int,
        dropout: float,
        residual: AttentionResidual,
        attention_scale: AttentionScale = "head",
    ) -> None:
        super().__init__()
        self.residual = residual
        self.attention = MultiHeadAttention(d_model, d_k, d_v, num_heads, attention_scale)
        self.dropout = nn.Dropout(dropout)
        if residual == "values":
            self.attention_norm = nn.LayerNorm(d_v)
            self.ffn = feed_forward(d_v, d_ff, d_model, dropout)
        else:
            self.output = nn.Linear(d_v, d_model)
            self.attention_norm = nn.LayerNorm(d_model)
            self.ffn = feed_forward(d_model, d_ff, d_model, dropout)
        self.ffn_norm = nn.LayerNorm(d_model)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        attended, values = self.attention(features, features, mask)
        if self.residual == "values":
            hidden = self.attention_norm(self.dropout(attended) + values)  # eq. 2
            return self.ffn_norm(self.ffn(hidden))  # eq. 3
        hidden = self.attention_norm(features + self.dropout(self.output(attended)))
        return self.ffn_norm(hidden + self.dropout(self.ffn(hidden)))


class DecoderLayer(nn.Module):
    """A transformer decoder layer of cross-attention and FFN, both residual and post-normed.

    Used by the global-context decoder (3.2) and the co-occurrence encoding (3.3, eq. 4-5). There
    is no self-attention sub-layer: the global query is a single token, and the co-occurrence
    queries were already self-attended by the intra-modality encoding.
    """

    def __init__(
        self,
        d_model: int,
        d_k: int,
        d_v: int,
        num_heads: int,
        d_ff: int,
        dropout: float,
        attention_scale: AttentionScale = "head",
    ) -> None:
        super().__init__()
        self.cross_attention = MultiHeadAttention(d_model, d_k, d_v, num_heads, attention_scale)
        self.output = nn.Linear(d_v, d_model)
        self.attention_norm = nn.LayerNorm(d_model)
        self.ffn = feed_forward(d_model, d_ff, d_model, dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        attended, _ = self.cross_attention(queries, memory, memory_mask)
        hidden = self.attention_norm(queries + self.dropout(self.output(attended)))
        return self.ffn_norm(hidden + self.dropout(self.ffn(hidden)))


class IntraModalityEncoding(nn.Module):
    """n stacked intra-modality layers over one modality's segments (section 3.2)."""

    def __init__(self, num_layers: int, **layer_args: object) -> None:
        super().__init__()
        self.layers = nn.ModuleList(IntraModalityLayer(**layer_args) for _ in range(num_layers))

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        for layer in self.layers:
            features = layer(features, mask)
        return features


class GlobalContextDecoder(nn.Module):
    """G = decoder(G_init; F_n) and F-hat = F_n + G (section 3.2, Table 5).

    ``init="random"``: G_init is a learned vector, randomly initialised (the DETR-style learned
    query). ``init="mean"``: G_init is the masked mean of the video's segment embeddings F_n plus a
    learned vector initialised to zero, so it starts at the mean and stays learnable.
    """

    def __init__(self, num_layers: int, d_model: int, init: GlobalInit, **layer_args: object):
        super().__init__()
        self.init = init
        start = torch.zeros(d_model) if init == "mean" else torch.randn(d_model)
        self.g_init = nn.Parameter(start)  # G_init
        self.layers = nn.ModuleList(
            DecoderLayer(d_model=d_model, **layer_args) for _ in range(num_layers)
        )

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        query = self.g_init.expand(features.shape[0], 1, -1)
        if self.init == "mean":
            weights = mask.unsqueeze(-1).to(features.dtype)
            mean = (features * weights).sum(1, keepdim=True) / weights.sum(
                1, keepdim=True
            ).clamp_min(1)
            query = query + mean
        for layer in self.layers:
            query = layer(query, features, mask)
        return features + query  # F-hat = F_n + G


class CoOccurrenceEncoding(nn.Module):
    """Section 3.3: each modality's segments attend over the concatenated visual + audio sequence
    F^va (eq. 4-5), one decoder per modality. ``memory="other"`` is the CR-AV ablation (Table 3):
    cross-attention to the other modality only, as in Joint-VA [2]."""

    def __init__(self, num_layers: int, memory: Literal["joint", "other"], **layer_args: object):
        super().__init__()
        self.memory = memory
        self.visual_layers = nn.ModuleList(DecoderLayer(**layer_args) for _ in range(num_layers))
        self.audio_layers = nn.ModuleList(DecoderLayer(**layer_args) for _ in range(num_layers))

    def forward(self, visual: Tensor, audio: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.memory == "joint":
            joint = torch.cat([visual, audio], dim=1)  # F^va, 2T segments
            joint_mask = torch.cat([mask, mask], dim=1)
            visual_memory, audio_memory, memory_mask = joint, joint, joint_mask
        else:
            visual_memory, audio_memory, memory_mask = audio, visual, mask
        for visual_layer, audio_layer in zip(self.visual_layers, self.audio_layers, strict=True):
            visual, audio = (
                visual_layer(visual, visual_memory, memory_mask),
                audio_layer(audio, audio_memory, memory_mask),
            )
        return visual, audio


def score_head(d_in: int, d_hidden: int, dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout -> Linear to one highlight logit per segment (section 3.4)."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_hidden, 1)
    )


def sinusoidal_positions(length: int, d_model: int, device: torch.device) -> Tensor:
    """The sinusoidal position encodings of [53], (length, d_model)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / d_model)
    )
    encoding = torch.zeros(length, d_model, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding


@dataclass
class HPCLOutput:
    """Per-head highlight logits (B, T) by head name, and the HPCL embeddings (B, T, D) of eq. 7."""

    logits: dict[str, Tensor]
    embeddings: Tensor


class HPCL(VHDModule):
    """HPCL for highlight detection (YouTube Highlights, TVSum); one score per valid segment.

    Every paper hyperparameter is an argument with the paper's default: ``d_model`` (d = 256),
    ``num_layers`` (n = 2), ``num_heads`` (8), ``d_k`` = ``d_v`` = 512, ``dropout`` (0.5),
    ``ce_weight`` / ``hpcl_weight`` / ``rank_weight`` (lambda_1..3 = 1, 0.3, 0.1), ``tau``,
    ``hard_pair_region`` (L = 3), ``rank_margin`` (0.7), ``lr`` (Adam, 1e-4). Epochs (20) are the
    trainer's; T = 20 (``train_window``), the class ratio (``min_positive_ratio``) and the windows
    per video and epoch (``windows_per_video``) the datamodule's (see ``configs/hpcl_*.yaml``).

    Ablations (section 4.4) are configuration:

    - ``architecture`` (Table 3): ``"co_av"`` (full: co-occurrence encoding), ``"cr_av"``
      (cross-attention to the other modality only), ``"av"`` (video and audio features
      concatenated, then one intra-modality stream), ``"v_only"``/``"a_only"`` (one stream, no
      co-occurrence encoding).
    - learning scheme (Table 4): ``hpcl_weight=0`` and/or ``rank_weight=0`` (CE only, CE + HPCL).
    - ``global_decoder`` (Table 5) on/off, ``global_init`` ``"mean"`` (default, Table 5's best)
      or ``"random"``.

    Where the paper is ambiguous or silent, what vhd reads (there is no official code to settle
    it), with the other reading as an option where one is plausible:

    - Training windows, "the ratio is not less than 1:2" (4.2): read as positives:negatives
      >= 1:2, i.e. at least T/3 positives (7 of 20), any number of negatives >= 1
      (``min_positive_ratio=0.5`` of the datamodule). The paper motivates the rule by class
      imbalance, highlights being the minority (42% of YouTube Highlights clips, 50% of TVSum's by
      construction), so it is read as a floor on positives only; a window of mostly positives
      passes. The symmetric reading (either class at least a third of the window) is not
      offered. "Re-sample additional samples in the same video" (when no consecutive window
      qualifies): clips of the over-represented class are swapped for clips of the missing class
      from elsewhere, kept in temporal order (``vhd.datamodules.targets.sample_training_window``).
    - Windows per epoch: the paper samples "a video sequence" per video; how many per epoch it
      does not say. One per video gives TVSum's per-domain models (two training videos) one
      optimizer step per epoch, 20 in all; ``windows_per_video`` sets it, and the HPCL configs
      give the learning curve behind their value.
    - ``attention_scale``: eq. 2 divides by sqrt(d_k) with d_k = 512 the full query width, eq. 4
      by an undefined sqrt(d_L), yet the attention is multi-head. ``"head"`` (default) scales each
      head by the square root of its own width, d_k / num_heads = 64, as the multi-head attention
      of [53] the text names; ``"d_k"`` divides by sqrt(512), which makes every head's softmax
      sqrt(8) ~ 2.8 times flatter.
    - ``attention_residual``: ``"values"`` follows eq. 2 (``softmax(QK^T)S + S``); ``"input"``
      is the standard encoder layer [53] the text names.
    - Final score (3.4: "a weighted sum of these scores", weights not given): the heads' sigmoid
      probabilities weighted by ``co_score_weight``, ``visual_score_weight``,
      ``audio_score_weight`` (1 each) and divided by the weights' total, so it stays in [0, 1];
      the ranking, and so every metric, is that of the plain weighted sum. The CE terms of eq. 10
      are summed with weight 1 each, as printed; each is the binary cross-entropy of a head's
      logit (one score per segment).
    - ``tau`` (eq. 6 and 8: "temperature coefficient", no value): 0.1, SimCLR's [8]. Eq. 8
      prints the positive's denominator term without /tau; read as a typo (see
      ``vhd.losses.hpcl.segment_contrastive_loss``).
    - ``normalize_embeddings``: the contrastive logits and the ranking distances use L2-normalised
      embeddings (eq. 8 writes ``q . k``; with raw 512-d features margin 0.7 would be meaningless).
    - Hard pairs: watershed = last segment before a label change; pairs of one label dropped
      (``hard_pairs_mixed_only``), see ``vhd.losses.hpcl.hard_pair_indices``.
    - ``d_ff`` (FFN width, not given): 1024 = 4 d as in [53]. ``global_decoder_layers`` (not
      given): 1. Dropout (0.5) acts in the FFNs, after attention, and in the heads; attention
      weights are not dropped. LayerNorms are added (not mentioned) to keep the layers trainable.
    - ``position_encoding``: the equations feed features without positions, so ``"none"``;
      ``"sinusoidal"`` [53] is available (absolute positions seen only up to T - 1 in training
      while evaluation runs on whole videos, hence not the default).
    """

    predicts_windows = False

    def __init__(
        self,
        video_dim: int = 512,
        audio_dim: int = 2048,
        architecture: Architecture = "co_av",
        d_model: int = 256,
        num_layers: int = 2,
        num_heads: int = 8,
        d_k: int = 512,
        d_v: int = 512,
        d_ff: int = 1024,
        dropout: float = 0.5,
        attention_residual: AttentionResidual = "values",
        attention_scale: AttentionScale = "head",
        global_decoder: bool = True,
        global_init: GlobalInit = "mean",
        global_decoder_layers: int = 1,
        position_encoding: PositionEncoding = "none",
        head_hidden_dim: int = 256,
        co_score_weight: float = 1.0,
        visual_score_weight: float = 1.0,
        audio_score_weight: float = 1.0,
        ce_weight: float = 1.0,
        hpcl_weight: float = 0.3,
        rank_weight: float = 0.1,
        tau: float = 0.1,
        hard_pair_region: int = 3,
        rank_margin: float = 0.7,
        hard_pairs_mixed_only: bool = True,
        normalize_embeddings: bool = True,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        main_metric: str | None = None,
    ) -> None:
        super().__init__(main_metric=main_metric)
        self.save_hyperparameters()
        self.architecture = architecture
        self.streams = {
            "co_av": ("visual", "audio"),
            "cr_av": ("visual", "audio"),
            "av": ("fused",),
            "v_only": ("visual",),
            "a_only": ("audio",),
        }[architecture]
        input_dim = {"visual": video_dim, "audio": audio_dim, "fused": video_dim + audio_dim}
        attention = {
            "d_k": d_k,
            "d_v": d_v,
            "num_heads": num_heads,
            "d_ff": d_ff,
            "dropout": dropout,
            "attention_scale": attention_scale,
        }

        # 3.1: per-segment features -> d (AV: the concatenated features, Table 3)
        self.projection = nn.ModuleDict(
            {name: nn.Linear(input_dim[name], d_model) for name in self.streams}
        )
        # 3.2: Intra-Modality Encoding, eq. 1-3
        self.intra_encoding = nn.ModuleDict(
            {
                name: IntraModalityEncoding(
                    num_layers, d_model=d_model, residual=attention_residual, **attention
                )
                for name in self.streams
            }
        )
        # 3.2: global-context decoder, F-hat = F_n + G
        self.global_context = nn.ModuleDict(
            {
                name: GlobalContextDecoder(global_decoder_layers, d_model, global_init, **attention)
                for name in (self.streams if global_decoder else ())
            }
        )
        # 3.3: Co-occurrence Encoding, eq. 4-5 (CR-AV: cross-attention)
        self.co_occurrence = (
            CoOccurrenceEncoding(
                num_layers,
                memory="joint" if architecture == "co_av" else "other",
                d_model=d_model,
                **attention,
            )
            if architecture in ("co_av", "cr_av")
            else None
        )
        # 3.4: Highlight Estimation heads on concat(F-tilde^v, F-tilde^a), F-hat^v, F-hat^a
        head_inputs = {name: d_model for name in self.streams}
        if self.co_occurrence is not None:
            head_inputs = {"co": 2 * d_model, **head_inputs}
        self.heads = nn.ModuleDict(
            {
                name: score_head(width, head_hidden_dim, dropout)
                for name, width in head_inputs.items()
            }
        )
        self.score_weights = {
            "co": co_score_weight,
            "visual": visual_score_weight,
            "audio": audio_score_weight,
            "fused": 1.0,
        }

    def input_dims(self) -> dict[str, int]:
        dims: dict[str, int] = {}
        if set(self.streams) & {"visual", "fused"}:
            dims["video"] = self.hparams.video_dim
        if set(self.streams) & {"audio", "fused"}:
            dims["audio"] = self.hparams.audio_dim
        return dims

    def _inputs(self, batch: Batch) -> dict[str, Tensor]:
        if "audio" in self.input_dims() and "audio" not in batch:
            raise ConfigError(
                f"HPCL architecture {self.architecture!r} needs audio features, but the batch has "
                "none; configure the datamodule's audio feature folder or use architecture: v_only"
            )
        sources = {
            "visual": lambda: batch["video"],
            "audio": lambda: batch["audio"],
            "fused": lambda: torch.cat([batch["video"], batch["audio"]], dim=-1),
        }
        return {name: sources[name]() for name in self.streams}

    def forward(self, batch: Batch) -> HPCLOutput:
        mask = batch["video_mask"]
        encoded: dict[str, Tensor] = {}  # F_n per stream
        refined: dict[str, Tensor] = {}  # F-hat per stream
        for name, features in self._inputs(batch).items():
            features = self.projection[name](features)
            if self.hparams.position_encoding == "sinusoidal":
                positions = sinusoidal_positions(
                    features.shape[1], features.shape[2], features.device
                )
                features = features + positions.to(features.dtype)
            encoded[name] = self.intra_encoding[name](features, mask)
            refined[name] = (
                self.global_context[name](encoded[name], mask)
                if name in self.global_context
                else encoded[name]
            )
        logits = {name: self.heads[name](refined[name]).squeeze(-1) for name in self.streams}
        if self.co_occurrence is None:
            (name,) = self.streams
            return HPCLOutput(logits, refined[name])
        visual_co, audio_co = self.co_occurrence(encoded["visual"], encoded["audio"], mask)
        logits["co"] = self.heads["co"](torch.cat([visual_co, audio_co], dim=-1)).squeeze(-1)
        embeddings = torch.cat(  # eq. 7
            [refined["visual"] + visual_co, refined["audio"] + audio_co], dim=-1
        )
        return HPCLOutput(logits, embeddings)

    def scores(self, output: HPCLOutput) -> Tensor:
        """Final highlight score (B, T): weighted sum of the heads' probabilities over the weights'
        total (3.4)."""
        weights = {name: self.score_weights[name] for name in output.logits}
        total = sum(weights.values())
        if total <= 0:
            raise ValueError(f"score weights of the heads {list(weights)} must sum to > 0")
        return (
            sum(
                weight * torch.sigmoid(output.logits[name].float())
                for name, weight in weights.items()
            )
            / total
        )

    def losses(self, output: HPCLOutput, labels: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Eq. 10-11: ``loss = lambda_1 CE + lambda_2 HPCL + lambda_3 rank``, with the parts."""
        hp = self.hparams
        parts = {
            "ce": sum(
                segment_cross_entropy(logit, labels, mask) for logit in output.logits.values()
            )
        }
        if hp.hpcl_weight:
            parts["hpcl"] = segment_contrastive_loss(
                output.embeddings, labels, mask, hp.tau, hp.normalize_embeddings
            )
        if hp.rank_weight:
            parts["rank"] = hard_pair_ranking_loss(
                output.embeddings,
                labels,
                mask,
                hp.hard_pair_region,
                hp.rank_margin,
                hp.normalize_embeddings,
                hp.hard_pairs_mixed_only,
            )
        weights = {"ce": hp.ce_weight, "hpcl": hp.hpcl_weight, "rank": hp.rank_weight}
        parts["loss"] = sum(weights[name] * value for name, value in parts.items())
        return parts

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if "labels" not in batch:
            raise ConfigError(
                "HPCL trains on per-segment binary highlight labels (batch key 'labels'); use a "
                "highlight datamodule (YouTube Highlights labels, TVSum top-50% labels)"
            )
        parts = self.losses(self(batch), batch["labels"], batch["video_mask"])
        loss = parts.pop("loss")
        batch_size = len(batch["meta"])
        self.log_dict(
            {f"train/{name}": value.detach() for name, value in parts.items()},
            batch_size=batch_size,
        )
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size)
        return loss

    @torch.no_grad()
    def predict_batch(self, batch: Batch) -> list[Prediction]:
        scores = self.scores(self(batch))
        predictions: list[Prediction] = []
        for row, meta in enumerate(batch["meta"]):
            num_clips = meta.get("num_clips", int(batch["video_mask"][row].sum()))
            predictions.append(
                {
                    "qid": meta["qid"],
                    "vid": meta["vid"],
                    "query": meta.get("query", ""),
                    "pred_saliency_scores": [round(s, 6) for s in scores[row, :num_clips].tolist()],
                }
            )
        return predictions

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
