"""The VideoLights training objective (SetCriterion of the release), term by term.

Total = sum of weight x term over: span L1, span gIoU, query class (section 3, eq. 3), saliency
(margin ranking + rank contrastive + negative pair + Uni-JFM task-specific and task-coupled
cosine losses + adaptive hard positive/negative losses, eq. 4) and the alignment loss, plus the
moment and alignment terms again for every intermediate decoder layer (auxiliary losses, suffix
``_0``, ``_1``, ...). Datasets without windows (TVSum) use no matcher: only saliency is trained.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from vhd.losses.contrastive import (
    clip_sentence_alignment,
    query_text_nce,
    symmetric_alignment_loss,
)
from vhd.losses.labels import class_error, label_loss
from vhd.losses.matching import HungarianMatcher, Indices
from vhd.losses.saliency import (
    cosine_loss,
    hard_losses,
    hard_losses_paper,
    margin_ranking_loss,
    negative_pair_loss,
    normalized_rows,
    rank_contrastive_loss,
)
from vhd.losses.spans import span_losses
from vhd.types import Batch, VideoLightsOutput

AlignmentLoss = Literal["release", "paper"]
HardLossForm = Literal["release", "paper"]


class VideoLightsCriterion(nn.Module):
    """Matches queries to windows and computes every weighted loss term of VideoLights.

    Weights and defaults are the release's QVHighlights values (reference section 3.5).
    ``hard_pos_neg_loss_coef`` is scaled by ``epoch + 1`` (W_j grows linearly, section 3.4);
    ``hard_pos_neg_weight_max`` caps W_j (None: no cap, as released).
    ``alignment_loss="paper"`` replaces the release's NCE + clip-sentence alignment by the paper's
    symmetric CLIP loss on the video and text projections (last layer only).
    ``hard_loss_form="paper"`` uses section 3.4's L1 / squared-error sums instead of the
    release's masked MSE. ``use_matcher=None`` matches whenever the batch has windows (the
    release matches on every dataset but TVSum and YouTube Highlights, which have none).
    Without negative-pair scores (``VideoLights(use_negative_pairs=False)``) the negative-pair
    term is absent and the rank contrastive loss ranks the pair's own clips only.
    """

    def __init__(
        self,
        span_loss_coef: float = 10.0,
        giou_loss_coef: float = 1.0,
        label_loss_coef: float = 4.0,
        eos_coef: float = 0.1,
        set_cost_span: float = 10.0,
        set_cost_giou: float = 1.0,
        set_cost_class: float = 4.0,
        saliency_loss_coef: float = 1.0,
        saliency_margin: float = 0.2,
        rank_contrastive_tau: float = 0.5,
        cos_sim_loss_coef: float = 1.0,
        mr_to_hd_loss_coef: float = 1.0,
        hard_pos_neg_loss: bool = True,
        hard_pos_neg_loss_coef: float = 10.0,
        hard_pos_neg_weight_max: float | None = None,
        hard_loss_form: HardLossForm = "release",
        contrastive_align_loss: bool = True,
        contrastive_align_loss_coef: float = 0.2,
        temperature: float = 0.07,
        alignment_loss: AlignmentLoss = "release",
        use_matcher: bool | None = None,
        aux_loss: bool = True,
    ) -> None:
        super().__init__()
        if alignment_loss not in ("release", "paper"):
            raise ValueError(f"alignment_loss must be 'release' or 'paper', not {alignment_loss!r}")
        if hard_loss_form not in ("release", "paper"):
            raise ValueError(f"hard_loss_form must be 'release' or 'paper', not {hard_loss_form!r}")
        self.matcher = HungarianMatcher(set_cost_span, set_cost_giou, set_cost_class)
        self.eos_coef = eos_coef
        self.saliency_margin = saliency_margin
        self.rank_contrastive_tau = rank_contrastive_tau
        self.cos_sim_loss_coef = cos_sim_loss_coef
        self.mr_to_hd_loss_coef = mr_to_hd_loss_coef
        self.hard_pos_neg_loss = hard_pos_neg_loss
        self.hard_pos_neg_loss_coef = hard_pos_neg_loss_coef
        self.hard_pos_neg_weight_max = hard_pos_neg_weight_max
        self.hard_loss_form = hard_loss_form
        self.contrastive_align_loss = contrastive_align_loss
        self.temperature = temperature
        self.alignment_loss = alignment_loss
        self.use_matcher = use_matcher
        self.aux_loss = aux_loss
        self.weights = {
            "loss_span": span_loss_coef,
            "loss_giou": giou_loss_coef,
            "loss_label": label_loss_coef,
            "loss_saliency": saliency_loss_coef,
        }
        if contrastive_align_loss:
            self.weights["loss_contrastive_align"] = contrastive_align_loss_coef

    # -- moment retrieval (DETR set prediction) ---------------------------------------------------
    def moment_losses(
        self, output: VideoLightsOutput, batch: Batch, layer: int, indices: Indices
    ) -> dict[str, Tensor]:
        """Span L1, gIoU and class losses of one decoder layer, plus its alignment loss."""
        logits, spans = output.logits[layer], output.spans[layer]
        span_l1, span_giou = span_losses(spans, batch["windows"], indices)
        losses = {
            "loss_span": span_l1,
            "loss_giou": span_giou,
            "loss_label": label_loss(logits, indices, self.eos_coef),
        }
        if self.contrastive_align_loss:
            losses["loss_contrastive_align"] = self.align(output, batch, layer, indices)
        return losses

    def align(
        self, output: VideoLightsOutput, batch: Batch, layer: int, indices: Indices
    ) -> Tensor:
        """The alignment loss (L_sym, section 3.2) of one decoder layer."""
        last = layer == len(output.logits) - 1
        if self.alignment_loss == "paper":
            if not last:
                return output.logits.new_zeros(())
            return symmetric_alignment_loss(
                output.proj_video.float(), output.video_mask,
                output.proj_text.float(), output.text_mask, self.temperature,
            )  # fmt: skip
        nce = query_text_nce(
            output.proj_queries[layer].float(), output.proj_text.float(), indices, self.temperature
        )
        if not last:  # the release adds the clip-sentence term to the last layer only
            return nce
        labels = batch["saliency"].float()
        return nce + clip_sentence_alignment(
            output.text.float(), output.video_refined.float(), labels
        )

    # -- highlight detection --------------------------------------------------------------------
    def hard_weight(self, epoch: int) -> float:
        """W_j = (epoch + 1) x coef (section 3.4), capped at ``hard_pos_neg_weight_max``."""
        weight = (epoch + 1) * self.hard_pos_neg_loss_coef
        cap = self.hard_pos_neg_weight_max
        return weight if cap is None else min(weight, cap)

    def saliency_loss(self, output: VideoLightsOutput, batch: Batch, epoch: int) -> Tensor:
        """Eq. 4: L_rank + L_cont + negative pair + Uni-JFM (L_ts + L_tc) + hard losses."""
        scores = output.saliency.float()
        negative = None if output.saliency_negative is None else output.saliency_negative.float()
        labels, mask = batch["saliency"].float(), output.video_mask
        loss = margin_ranking_loss(
            scores, batch["saliency_pos"], batch["saliency_neg"], self.saliency_margin
        ) + rank_contrastive_loss(scores, negative, labels, mask, self.rank_contrastive_tau)
        if negative is not None:
            loss = loss + negative_pair_loss(negative, mask)
        u, v = normalized_rows(scores, labels)
        loss = loss + self.cos_sim_loss_coef * cosine_loss(u, v)  # Uni-JFM task-specific L_ts
        if output.saliency_mr is not None:  # Uni-JFM task-coupled L_tc (MR-to-HD)
            u_mr, _ = normalized_rows(output.saliency_mr.float(), labels)
            loss = loss + self.mr_to_hd_loss_coef * cosine_loss(u_mr, v)
        if self.hard_pos_neg_loss:
            weight = self.hard_weight(epoch)  # W_j
            positive = labels > 0
            if self.hard_loss_form == "release":
                hard_negative, hard_positive = hard_losses(u, v, positive, weight)
            else:
                hard_negative, hard_positive = hard_losses_paper(u, v, positive, mask, weight)
            loss = loss + hard_negative + hard_positive
        return loss

    # -- total ----------------------------------------------------------------------------------
    def forward(
        self, output: VideoLightsOutput, batch: Batch, epoch: int = 0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(weighted total, weighted terms by release name, plus the unweighted class_error)."""
        saliency = self.saliency_loss(output, batch, epoch)
        weighted = {"loss_saliency": self.weights["loss_saliency"] * saliency}
        logs: dict[str, Tensor] = {}
        use_matcher = "windows" in batch if self.use_matcher is None else self.use_matcher
        if use_matcher:
            if "windows" not in batch:
                raise ValueError(
                    "VideoLights' moment losses need ground-truth windows (batch key 'windows'); "
                    "set use_matcher=False to train saliency only (TVSum, YouTube Highlights)"
                )
            last = len(output.logits) - 1
            for layer in range(last + 1) if self.aux_loss else [last]:
                indices = self.matcher(output.logits[layer], output.spans[layer], batch["windows"])
                suffix = "" if layer == last else f"_{layer}"
                for name, value in self.moment_losses(output, batch, layer, indices).items():
                    weighted[name + suffix] = self.weights[name] * value
                if layer == last:
                    logs["class_error"] = class_error(output.logits[layer].detach(), indices)
        total = torch.stack(list(weighted.values())).sum()
        return total, {**weighted, **logs}
