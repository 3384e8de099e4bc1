"""The trivial baseline every method must beat: query-to-clip cosine similarity.

Saliency is the cosine between each projected clip and the pooled projected query (a learned
query vector for query-less highlight datasets). Moments are the runs of clips whose min-max
normalised saliency exceeds a threshold, for several thresholds, scored by how much they stand
out from the rest of the video. It trains in seconds and proves the plumbing end to end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vhd.models.base import VHDModule
from vhd.types import Batch, Prediction


def threshold_windows(
    saliency: Tensor, clip_len: float, duration: float, thresholds: Sequence[float], top_k: int
) -> list[list[float]]:
    """Runs of clips above each threshold of the min-max normalised saliency, best first.

    A window's score is its mean normalised saliency minus the mean outside it, so short peaks
    and long plateaus compete on contrast rather than on length.
    """
    scores = saliency.float()
    normalized = (scores - scores.min()) / (scores.max() - scores.min()).clamp_min(1e-6)
    total, count = normalized.sum(), normalized.numel()
    windows: dict[tuple[int, int], float] = {}
    for threshold in thresholds:
        above = [*(normalized >= threshold).tolist(), False]
        start = None
        for index, flag in enumerate(above):
            if flag and start is None:
                start = index
            elif not flag and start is not None:
                inside = normalized[start:index]
                outside_count = count - inside.numel()
                outside_mean = (total - inside.sum()) / outside_count if outside_count else 0.0
                windows[(start, index)] = float(inside.mean() - outside_mean)
                start = None
    ranked = sorted(windows.items(), key=lambda item: item[1], reverse=True)[:top_k]
    return [
        [start * clip_len, min(end * clip_len, duration), round(score, 4)]
        for (start, end), score in ranked
    ]


class SimilarityBaseline(VHDModule):
    """Cosine similarity of linearly projected clips and query; trained with a saliency BCE."""

    def __init__(
        self,
        video_dim: int = 258,
        text_dim: int = 128,
        hidden_dim: int = 128,
        temperature: float = 0.1,
        window_thresholds: Sequence[float] = (0.4, 0.5, 0.6, 0.7, 0.8),
        top_k_windows: int = 10,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        main_metric: str | None = None,
    ) -> None:
        super().__init__(main_metric=main_metric)
        self.save_hyperparameters()
        self.video_proj = nn.Linear(video_dim, hidden_dim)
        self.text_proj = nn.Linear(text_dim, hidden_dim)
        self.default_query = nn.Parameter(torch.randn(hidden_dim) / hidden_dim**0.5)

    def input_dims(self) -> dict[str, int]:
        return {"video": self.hparams.video_dim, "query": self.hparams.text_dim}

    def setup(self, stage: str) -> None:
        """The data decides which query side trains: its text features (moment datasets, and
        highlight datasets given ``text_feature_dir``) or the learned query vector."""
        super().setup(stage)
        hparams = getattr(getattr(self.trainer, "datamodule", None), "hparams", {})
        with_text = hparams.get("text_feature_dir") is not None
        self.keep_out_of_gradient([self.default_query] if with_text else [self.text_proj])

    def forward(self, batch: Batch) -> Tensor:
        """Per-clip saliency logits (B, L); padded clips get -inf-like scores."""
        clips = F.normalize(self.video_proj(batch["video"]), dim=-1)
        if "query" in batch:
            tokens = self.text_proj(batch["query"]) * batch["query_mask"].unsqueeze(-1)
            pooled = tokens.sum(1) / batch["query_mask"].sum(1, keepdim=True).clamp_min(1)
        else:
            pooled = self.default_query.expand(clips.shape[0], -1)
        similarity = torch.einsum("bld,bd->bl", clips, F.normalize(pooled, dim=-1))
        logits = similarity / self.hparams.temperature
        return logits.masked_fill(~batch["video_mask"], -1e4)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits = self(batch)
        target = batch["labels"] if "labels" in batch else (batch["saliency"] > 0).float()
        mask = batch["video_mask"].float()
        loss = F.binary_cross_entropy_with_logits(
            logits, target.float(), weight=mask, reduction="sum"
        )
        loss = loss / mask.sum()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["meta"]))
        return loss

    @torch.no_grad()
    def predict_batch(self, batch: Batch) -> list[Prediction]:
        logits = self(batch)
        predictions: list[Prediction] = []
        for row, meta in enumerate(batch["meta"]):
            scores = logits[row, : meta["num_clips"]]
            prediction: Prediction = {
                "qid": meta["qid"],
                "vid": meta["vid"],
                "query": meta.get("query", ""),
                "pred_saliency_scores": [round(value, 4) for value in scores.tolist()],
            }
            if self.protocol in (None, "qvhighlights", "charades", "tacos"):
                prediction["pred_relevant_windows"] = threshold_windows(
                    scores,
                    meta["clip_len"],
                    meta["duration"],
                    self.hparams.window_thresholds,
                    self.hparams.top_k_windows,
                )
            predictions.append(prediction)
        return predictions

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
