"""VideoLights: Paul et al., "VideoLights: Feature Refinement and Cross-Task Alignment Transformer
for Joint Video Highlight Detection and Moment Retrieval" (arXiv 2412.01558), reproduced from the
paper and the official release (github.com/dpaul06/VideoLights @ 76308bb).

Data flow (Figure 1), per (video, query) pair:

    video (B, Lv, Dv), text (B, Lt, Dt)
    ─ convolutional projections (3.1) ─> V0 (B, Lv, d), T (B, Lt, d)
    ─ FRA: feature refinement and alignment (3.2) ─> V1
    ─ Bi-CMF: text->video, video->text, fused attention (3.3) ─> V''
    ─ encoder on [global token; V''] ─> global token g, clip memory M
    ─ saliency s = <P1 M, P2 g> / sqrt(d) (the "trainable saliency vector" of Figure 1)
    ─ DAB decoder with learnable anchors on M ─> class and span heads per layer (aux outputs)
    ─ negative pair: each video with the next sample's text ─> s_neg (3.1, after QD-DETR)
    ─ MR-to-HD: GRU over the clips of the top moment ─> s_mr (Uni-JFM task-coupled path, 3.5)
    losses: ``vhd.losses.videolights.VideoLightsCriterion`` (section 3, eq. 3-4).

Where paper and release differ the release is the default and the paper's form an option
(``bicmf_mask``, ``num_bicmf_layers`` (paper 2), ``alignment_loss``, ``hard_loss_form``);
``shared/docs/videolights_reference.md`` sections 3.6 and 6 list every difference and quirk.
"""

from __future__ import annotations

import argparse
import inspect
import math
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch import Tensor, nn

from vhd.checkpoints import CheckpointError, read_checkpoint
from vhd.errors import ConfigError, FeatureError
from vhd.losses.spans import span_cxw_to_xx
from vhd.losses.videolights import AlignmentLoss, HardLossForm, VideoLightsCriterion
from vhd.metrics import MomentRetrievalMetric
from vhd.models.base import VHDModule
from vhd.models.layers.attention import PairMaskMode, multihead_attention, padded_pair_mask
from vhd.models.layers.decoder import AnchorDecoder, inverse_sigmoid
from vhd.models.layers.dropout import Dropout
from vhd.models.layers.encoder import EncoderLayer
from vhd.models.layers.mlp import (
    MLP,
    activate_in_place,
    input_projection,
    make_activation,
    pointwise,
    xavier_init_matrices,
)
from vhd.models.layers.position import TextPositionEmbedding, video_sine_positions
from vhd.types import Batch, Prediction, VideoLightsOutput

FRACorrelation = Literal["release", "per-pair"]
WindowClamp = Literal["release", "duration"]
RELEASE_MAX_END = {"qvhighlights": 150.0, "charades": 150.0}  # s; other protocols: no clamp
RELEASE_MAX_END_VGG = 360.0  # Charades-STA with the 4096-d VGG features (+ 2 TEF columns)
LOG_TINY = -103.27893  # float32 log(0 + 1e-45): the release's log-mask value for padded clips
MOMENT_PROTOCOLS = ("qvhighlights", "charades", "tacos")
# Model selection of the release (train.py calculate_stop_score): weighted mean of brief metrics.
STOP_SCORE_WEIGHTS = {
    "qvhighlights": {
        "MR-full-R1@0.3": 0.3, "MR-full-R1@0.5": 0.5, "MR-full-R1@0.7": 0.7,
        "MR-full-mAP@0.5": 0.5, "MR-full-mAP@0.75": 0.75, "MR-full-mAP": 0.25,
        "MR-long-mAP": 0.25, "MR-middle-mAP": 0.25, "MR-short-mAP": 0.25,
    },
    "grounding": {
        "MR-full-R1@0.3": 0.3, "MR-full-R1@0.5": 0.5, "MR-full-R1@0.7": 0.7, "MR-full-mIoU": 0.5,
    },
}  # fmt: skip


# -- 3.2 FRA ---------------------------------------------------------------------------------------
class FRA(nn.Module):
    """Feature Refinement and Alignment (section 3.2) in the release's form.

    Mixes, per clip, [V | S | s | C] with a kernel-1 convolution: the clip itself, its cosine
    similarity with the pooled sentence s times a learned vector (V_S), the sentence (S_v) and
    the word-clip correspondence (V_Q). In the release V_Q is a softmax over words of T V^T
    applied to the constant c_q w_v; the softmax sums to one, so V_Q *is* c_q w_v for every clip
    (reference 2.2): it is computed directly here (same values and gradients). Without dropout
    (evaluation) the mixer is applied part by part: the sentence, similarity and correspondence
    columns are constant or rank one over the clips, so only the clip part costs a per-clip
    matrix product (the same function, a quarter of the mixer's work).

    ``correlation="per-pair"`` is the corrected form: each clip attends over the valid words
    with the release's softmax of T V^T, and V_Q is the attended words scaled by c_q w_v, so it
    depends on the video-text pair (same parameters, so release checkpoints load either way).
    """

    def __init__(self, dim: int, dropout: float = 0.1, correlation: FRACorrelation = "release"):
        super().__init__()
        if correlation not in ("release", "per-pair"):
            raise ConfigError(
                f"fra_correlation must be 'release' or 'per-pair', not {correlation!r}"
            )
        self.correlation = correlation
        self.w_sim = nn.Parameter(torch.empty(dim))  # similarity feature vector
        self.w_v = nn.Parameter(torch.empty(dim))  # correspondence: clip-side vector
        self.c_q = nn.Parameter(torch.empty(1))  # correspondence: word-side scalar
        self.w_p = nn.Parameter(torch.empty(dim))  # word -> sentence attention pooling
        for parameter, shape in ((self.w_sim, (dim, 1)), (self.w_v, (1, dim)),
                                 (self.c_q, (1, 1)), (self.w_p, (dim, 1))):  # fmt: skip
            nn.init.xavier_uniform_(parameter.data.view(shape))
        self.mixer = nn.Conv1d(4 * dim, dim, kernel_size=1)
        self.dropout = Dropout(dropout)

    def sentence(self, text: Tensor, text_mask: Tensor) -> Tensor:
        """S = pool(T): attention pooling over the valid words, (B, d)."""
        scores = (text @ self.w_p.to(text.dtype)).float()
        weights = scores.masked_fill(~text_mask, torch.finfo(scores.dtype).min).softmax(dim=1)
        return (weights.to(text.dtype)[..., None] * text).sum(dim=1)

    def correspondence(self, video: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        """V_Q: the constant c_q w_v, (d,), as released; per pair (B, Lv, d) when corrected."""
        constant = (self.c_q * self.w_v).to(video.dtype)
        if self.correlation == "release":
            return constant
        scores = (text @ video.transpose(1, 2)).float()  # (B, Lt, Lv), unscaled as released
        scores = scores.masked_fill(~text_mask[..., None], torch.finfo(scores.dtype).min)
        attended = scores.softmax(dim=1).to(text.dtype).transpose(1, 2) @ text  # (B, Lv, d)
        return attended * constant

    def forward(self, video: Tensor, text: Tensor, video_mask: Tensor, text_mask: Tensor) -> Tensor:
        batch, length, dim = video.shape
        sentence = self.sentence(text, text_mask)
        similarity = F.cosine_similarity(video, sentence[:, None], dim=-1)  # V_S
        similarity = similarity + torch.where(video_mask, 0.0, LOG_TINY).to(similarity.dtype)
        correspondence = self.correspondence(video, text, text_mask)
        if self.training and self.dropout.p > 0:
            features = torch.cat(
                [
                    self.dropout(video),
                    self.dropout(similarity[..., None] * self.w_sim.to(video.dtype)),
                    self.dropout(sentence[:, None].expand(batch, length, dim)),  # S_v
                    self.dropout(correspondence.expand(batch, length, dim)),
                ],
                dim=-1,
            )
            mixed = pointwise(self.mixer, features)  # the kernel-1 convolution
        else:  # without dropout three of the four parts are rank one: mix them once, not per clip
            weight = self.mixer.weight.squeeze(-1).to(video.dtype)  # (d, 4d)
            w_video, w_similarity, w_sentence, w_correspondence = weight.split(dim, dim=1)
            bias = self.mixer.bias.to(video.dtype)
            if correspondence.dim() == 1:  # the release's constant: part of the bias
                bias = w_correspondence @ correspondence + bias
            mixed = (
                F.linear(video, w_video)
                + similarity[..., None] * (w_similarity @ self.w_sim.to(video.dtype))
                + F.linear(sentence, w_sentence, bias)[:, None]
            )
            if correspondence.dim() > 1:
                mixed = mixed + F.linear(correspondence, w_correspondence)
        return self.dropout(F.relu(mixed))


# -- 3.3 Bi-CMF ------------------------------------------------------------------------------------
class BiCMFLayer(nn.Module):
    """Bi-Directional Cross-Modal Fusion (section 3.3, Algorithm 2) in the release's form.

    1. V' = LN(V + L1(attn(q = V + pos, k = T, v = T)))         video attends to text
    2. T' = T + L2(attn(q = T, k = V + pos, v = V))             text attends to video (no norm)
    3. C = LN(V' + L3(attn(q = V', k = T', v = T')))            fused video-text attention
    4. F = FFN(C); output LN(F + dropout(F))                    no residual from C (release)
    The paper's self-attention stage and learnable positions are not in the release; the text
    passed on is the original T. ``norm2`` exists in the release but is unused (kept for the
    parameter count). ``mask_mode``: see ``padded_pair_mask``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        activation: str = "prelu",
        mask_mode: PairMaskMode = "release",
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.mask_mode = mask_mode
        self.video_to_text = nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)
        self.text_to_video = nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)
        self.fusion = nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, dim)
        self.linear2 = nn.Linear(dim, dim)
        self.linear3 = nn.Linear(dim, dim)
        self.linear4 = nn.Linear(dim, ffn_dim)
        self.linear5 = nn.Linear(ffn_dim, dim)
        self.dropout = Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)  # unused in the release
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.activation = make_activation(activation)

    def forward(
        self,
        video: Tensor,
        text: Tensor,
        video_pos: Tensor,
        text_pos: Tensor | None,
        video_pad: Tensor,
        text_pad: Tensor,
    ) -> Tensor:
        """(B, Lv, d) video, (B, Lt, d) text, positions, padding (True = pad) -> (B, Lv, d)."""
        video_key = video + video_pos
        text_key = text if text_pos is None else text + text_pos  # None: zero positions
        video_text_mask = padded_pair_mask(video_pad, text_pad, self.num_heads, self.mask_mode)
        text_video_mask = padded_pair_mask(text_pad, video_pad, self.num_heads, self.mask_mode)
        attended = multihead_attention(
            self.video_to_text, video_key, text_key, text, text_pad, video_text_mask
        )
        video_t = self.norm1(video + self.linear1(self.dropout(attended)))
        attended = multihead_attention(
            self.text_to_video, text_key, video_key, video, video_pad, text_video_mask
        )
        text_v = text + self.linear2(self.dropout(attended))
        attended = multihead_attention(
            self.fusion, video_t, text_v, text_v, text_pad, video_text_mask
        )
        fused = self.norm3(video_t + self.linear3(self.dropout(attended)))
        hidden = activate_in_place(self.activation, self.linear4(fused))
        hidden = self.linear5(self.dropout(hidden))
        return self.norm4(hidden + self.dropout(hidden))


# -- 3.5 Uni-JFM task-coupled path -----------------------------------------------------------------
class MRToHD(nn.Module):
    """Saliency from the top predicted moment (TR-DETR's MR2HD, Uni-JFM's task-coupled path).

    The most confident query's span selects clips of the projected video V0 (Python slicing of
    the padded length, as released: a span starting before 0 selects nothing); a GRU reads them
    (zero-padded to the full length) into h; clips are re-weighted by <h, V0_i> and a linear
    read-out of M (1 + w) gives s_mr. The top-1 choice and the indices carry no gradient.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(dim, dim, num_layers=1, batch_first=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, projected: Tensor, memory: Tensor, logits: Tensor, spans: Tensor) -> Tensor:
        batch, length, dim = projected.shape
        top = logits.float().softmax(-1)[..., 0].argmax(dim=-1)
        chosen = spans[torch.arange(batch, device=spans.device), top].float()
        bounds = torch.floor(span_cxw_to_xx(chosen) * length).long().tolist()
        selected = []
        for row, (start, end) in enumerate(bounds):
            clips = projected[row, start : end + 1]
            selected.append(F.pad(clips, (0, 0, 0, length - clips.shape[0])))
        with torch.autocast(projected.device.type, enabled=False):
            _, hidden = self.gru(torch.stack(selected).float())
            weight = torch.einsum("bd,bld->bl", hidden[-1], projected.float())
            boosted = memory.float() * weight[..., None] + memory.float()
            return self.proj(boosted).sum(dim=-1) / math.sqrt(dim)


# -- the network -----------------------------------------------------------------------------------
class VideoLightsNet(nn.Module):
    """The VideoLights network (tensors in, ``VideoLightsOutput`` out); see the module docstring.

    With the QVHighlights defaults (video 3586, text 1280) it has 10,796,263 parameters, as the
    release. ``use_fra=False`` is the release's ablation (linear projections, no refinement).
    ``fra_correlation``: see ``FRA``. ``use_negative_pairs=False`` skips the mismatched-text
    pass (release: always run; about half the cost of a training step).
    """

    def __init__(
        self,
        video_dim: int = 3586,
        text_dim: int = 1280,
        hidden_dim: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        num_bicmf_layers: int = 1,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        num_queries: int = 10,
        input_dropout: float = 0.5,
        dropout: float = 0.1,
        num_input_proj: int = 2,
        contrastive_dim: int = 64,
        max_q_l: int = 32,
        activation: str = "prelu",
        use_fra: bool = True,
        use_mr_to_hd: bool = True,
        use_contrastive_align: bool = True,
        use_text_positions: bool = False,
        bicmf_mask: PairMaskMode = "release",
        fra_correlation: FRACorrelation = "release",
        use_negative_pairs: bool = True,
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.use_negative_pairs = use_negative_pairs
        self.use_text_positions = use_text_positions
        # 3.1 projection and alignment: convolutional projections (linear without FRA)
        self.video_projection = input_projection(
            video_dim, hidden_dim, num_input_proj, input_dropout, conv=use_fra
        )
        self.text_projection = input_projection(
            text_dim, hidden_dim, num_input_proj, input_dropout, conv=use_fra
        )
        self.fra = FRA(hidden_dim, correlation=fra_correlation) if use_fra else None  # 3.2
        self.global_token = nn.Parameter(torch.randn(hidden_dim))
        self.global_position = nn.Parameter(torch.randn(hidden_dim))
        self.text_positions = TextPositionEmbedding(max_q_l, hidden_dim, input_dropout)
        self.bicmf = nn.ModuleList(
            BiCMFLayer(hidden_dim, num_heads, ffn_dim, dropout, activation, bicmf_mask)
            for _ in range(num_bicmf_layers)
        )  # 3.3
        self.encoder = nn.ModuleList(
            EncoderLayer(hidden_dim, num_heads, ffn_dim, dropout, activation)
            for _ in range(num_encoder_layers)
        )
        self.decoder = AnchorDecoder(
            hidden_dim, num_heads, ffn_dim, dropout, num_decoder_layers, activation
        )
        for module in (self.bicmf, self.encoder, self.decoder):  # the release's transformer init
            xavier_init_matrices(module)
        self.query_anchors = nn.Embedding(num_queries, 2)  # learnable (center, width) queries
        nn.init.normal_(self.query_anchors.weight)
        self.class_head = nn.Linear(hidden_dim, 2)
        self.span_head = MLP(hidden_dim, hidden_dim, 2, 3)
        self.saliency_clip_proj = nn.Linear(hidden_dim, hidden_dim)  # P1
        self.saliency_global_proj = nn.Linear(hidden_dim, hidden_dim)  # P2
        self.mr_to_hd = MRToHD(hidden_dim) if use_mr_to_hd else None
        self.contrastive = None
        if use_contrastive_align:
            self.contrastive = nn.ModuleDict(
                {
                    "query": nn.Linear(hidden_dim, contrastive_dim),
                    "text": nn.Linear(hidden_dim, contrastive_dim),
                    "video": nn.Linear(hidden_dim, contrastive_dim),  # feeds no release loss
                }
            )

    def encode(
        self,
        video: Tensor,
        video_mask: Tensor,
        video_pos: Tensor,
        text: Tensor,
        text_mask: Tensor,
        text_pos: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Bi-CMF then the encoder on [global token; clips] -> clip memory M, global token g."""
        for layer in self.bicmf:
            video = layer(video, text, video_pos, text_pos, ~video_mask, ~text_mask)
        batch = video.shape[0]
        tokens = torch.cat([self.global_token.to(video.dtype).expand(batch, 1, -1), video], 1)
        pos = torch.cat([self.global_position.to(video.dtype).expand(batch, 1, -1), video_pos], 1)
        padding = torch.cat([video_mask.new_zeros(batch, 1), ~video_mask], dim=1)
        for layer in self.encoder:
            tokens = layer(tokens, padding, pos)
        return tokens[:, 1:], tokens[:, 0]

    def saliency(self, memory: Tensor, global_token: Tensor) -> Tensor:
        """s_i = <P1 M_i, P2 g> / sqrt(d); padded clips are not masked (release).

        Computed as ``M_i . (W1^T q) + b1 . q`` with q = P2 g: one d-vector per video instead of
        projecting every clip (the same function, summed in another order)."""
        clip_proj = self.saliency_clip_proj
        query = self.saliency_global_proj(global_token)  # (B, d)
        direction = query @ clip_proj.weight.to(query.dtype)  # W1^T q, (B, d)
        offset = query @ clip_proj.bias.to(query.dtype)  # b1 . q, (B,)
        scores = (memory @ direction[..., None])[..., 0] + offset[:, None]
        return scores / math.sqrt(self.hidden_dim)

    def forward(
        self,
        video: Tensor,
        video_mask: Tensor,
        text: Tensor,
        text_mask: Tensor,
        for_loss: bool = True,
    ) -> VideoLightsOutput:
        """``for_loss=False`` skips what only the losses read (negative pass, MR-to-HD,
        contrastive projections, the heads of all but the last decoder layer: ``logits`` and
        ``spans`` then hold one layer); predictions are the same either way."""
        video_mask, text_mask = video_mask.bool(), text_mask.bool()
        projected = self.video_projection(video)  # V0
        text = self.text_projection(text)  # T
        refined = (
            projected if self.fra is None else self.fra(projected, text, video_mask, text_mask)
        )
        video_pos = video_sine_positions(video_mask, self.hidden_dim).to(refined.dtype)
        text_pos = self.text_positions(text) if self.use_text_positions else None  # zeros
        memory, global_token = self.encode(
            refined, video_mask, video_pos, text, text_mask, text_pos
        )
        saliency = self.saliency(memory, global_token)
        hidden, references = self.decoder(self.query_anchors.weight, memory, ~video_mask, video_pos)
        if not for_loss:  # predictions read the last layer only
            hidden, references = hidden[-1:], references[-1:]
        logits = self.class_head(hidden)
        spans = (self.span_head(hidden) + inverse_sigmoid(references).to(hidden.dtype)).sigmoid()
        output = VideoLightsOutput(
            logits, spans, saliency, None, None, None, None, None, text, refined,
            video_mask, text_mask,
        )  # fmt: skip
        if not for_loss:
            return output
        if self.use_negative_pairs:  # every video with the next sample's text, the same V1
            memory_negative, global_negative = self.encode(
                refined, video_mask, video_pos,
                text.roll(-1, dims=0), text_mask.roll(-1, dims=0), text_pos,
            )  # fmt: skip
            output.saliency_negative = self.saliency(memory_negative, global_negative)
        if self.mr_to_hd is not None:
            output.saliency_mr = self.mr_to_hd(projected, memory, logits[-1], spans[-1])
        if self.contrastive is not None:
            output.proj_queries = F.normalize(self.contrastive["query"](hidden), dim=-1)
            output.proj_text = F.normalize(self.contrastive["text"](text), dim=-1)
            output.proj_video = F.normalize(self.contrastive["video"](memory), dim=-1)
        return output

    def unused_modules(self, alignment_loss: str) -> list[nn.Module]:
        """Modules no loss reaches in this configuration; the release has them too, so they stay
        in the state dict. The release's alignment loss reads the query and text projections,
        the paper's L_sym the video and text ones."""
        unused: list[nn.Module] = [layer.norm2 for layer in self.bicmf]
        if not self.use_text_positions:
            unused.append(self.text_positions)
        if self.contrastive is not None:
            unused.append(self.contrastive["video" if alignment_loss == "release" else "query"])
        return unused


# -- official checkpoints --------------------------------------------------------------------------
OFFICIAL_RENAMES = (  # (release prefix, ours), first match wins
    ("transformer.t2v_encoder.layers.", "bicmf."),
    ("transformer.encoder.layers.", "encoder."),
    ("transformer.decoder.bbox_embed.", "decoder.span_refine."),
    ("transformer.decoder.", "decoder."),
    ("global_rep_token", "global_token"),
    ("global_rep_pos", "global_position"),
    ("txt_position_embed.position_embeddings.", "text_positions.embedding."),
    ("txt_position_embed.LayerNorm.", "text_positions.norm."),
    ("span_embed.", "span_head."),
    ("class_embed.", "class_head."),
    ("query_embed.", "query_anchors."),
    ("input_txt_proj.", "text_projection."),
    ("input_vid_proj.", "video_projection."),
    ("contrastive_align_projection_query.", "contrastive.query."),
    ("contrastive_align_projection_txt.", "contrastive.text."),
    ("contrastive_align_projection_vid.", "contrastive.video."),
    ("feature_refinement.sim_w", "fra.w_sim"),
    ("feature_refinement.cor_v_w", "fra.w_v"),
    ("feature_refinement.cor_q_w", "fra.c_q"),
    ("feature_refinement.word_to_sentence_pool.weight", "fra.w_p"),
    ("feature_refinement.mixer.conv1d.", "fra.mixer."),
    ("saliency_proj1.", "saliency_clip_proj."),
    ("saliency_proj2.", "saliency_global_proj."),
    ("gru_extractor.gru.", "mr_to_hd.gru."),
    ("saliency_proj_mr.", "mr_to_hd.proj."),
)
OFFICIAL_INNER_RENAMES = (  # inside renamed modules
    (".cross_attn_1.", ".video_to_text."),
    (".cross_attn_2.", ".text_to_video."),
    (".cross_attn_3.", ".fusion."),
    (".LayerNorm.", ".norm."),
    (".net.1.conv1d.", ".proj."),
    (".net.1.", ".proj."),
)


def convert_official_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A release checkpoint's ``model`` state dict -> ``VideoLightsNet`` names and shapes."""
    converted = {}
    for name, value in state.items():
        new = next(
            (
                ours + name[len(theirs) :]
                for theirs, ours in OFFICIAL_RENAMES
                if name.startswith(theirs)
            ),
            None,
        )
        if new is None:
            raise KeyError(f"unexpected parameter {name!r} in the VideoLights release checkpoint")
        for theirs, ours in OFFICIAL_INNER_RENAMES:
            new = new.replace(theirs, ours)
        if new.startswith("fra.") and new != "fra.mixer.weight" and new != "fra.mixer.bias":
            value = value.reshape(-1)
        converted[new] = value
    return converted


def load_checkpoint_weights(path: str | Path) -> dict[str, Tensor]:
    """``VideoLightsNet`` weights from a vhd (Lightning) or a release checkpoint, weights only.

    Only tensors are unpickled (``weights_only=True``); the release's option namespace is the one
    non-tensor object allowed. Optimizer states are ignored.
    """
    checkpoint = read_checkpoint(
        path, flag="--model.init_args.pretrained_checkpoint", allowed=[argparse.Namespace]
    )
    if "state_dict" in checkpoint:  # vhd / Lightning
        prefix = "net."
        return {
            name[len(prefix) :]: value
            for name, value in checkpoint["state_dict"].items()
            if name.startswith(prefix)
        }
    if "model" in checkpoint:  # release: {"model", "optimizer", "epoch", "opt", ...}
        return convert_official_state_dict(checkpoint["model"])
    raise CheckpointError(
        f"{path}: neither a vhd checkpoint (key 'state_dict') nor a VideoLights release checkpoint "
        f"(key 'model'); found keys {sorted(checkpoint)[:8]}; pass a pretraining run's best.ckpt"
    )


# -- post-processing and model selection -----------------------------------------------------------
def postprocess_windows(
    spans: Tensor,
    scores: Tensor,
    duration: float,
    clip_len: float,
    max_end: float | Literal["duration"] | None = "duration",
) -> list[list[float]]:
    """One query's (Q, 2) normalised (center, width) spans -> ``[[start_s, end_s, score], ...]``.

    As released: spans x ``duration``, rows sorted by score, numbers rounded to 4 decimals, ends
    rounded to multiples of ``clip_len`` (round half to even). ``max_end``: the release's clamp,
    [0, max_end] s before rounding (150 on QVHighlights and Charades-STA), or None for rounding
    only (the release on other datasets); "duration" clamps to the video before and after
    rounding, so no window ends after it. Zero-length windows can result (release).
    """
    return postprocess_windows_batch(
        spans[None],
        scores[None],
        [duration],
        [clip_len],
        None if max_end == "duration" else [max_end],
    )[0]


def postprocess_windows_batch(
    spans: Tensor,
    scores: Tensor,
    durations: list[float],
    clip_lens: list[float],
    max_ends: list[float | None] | None = None,
) -> list[list[list[float]]]:
    """``postprocess_windows`` for a batch, (B, Q, 2) spans and (B, Q) scores: the tensor steps
    once for all queries (the same float32 operations, so the same numbers). ``max_ends``: one
    ``max_end`` per query; None clamps every query to its duration."""
    duration = torch.tensor(durations, dtype=torch.float32)[:, None, None]
    seconds = span_cxw_to_xx(spans.float()) * duration
    scores = scores.float()
    order = scores.argsort(dim=1, descending=True, stable=True)  # ties keep their order
    rows = torch.cat([seconds, scores[..., None]], dim=2)
    rows = rows.gather(1, order[..., None].expand(-1, -1, 3)).tolist()
    rounded = [[[float(f"{value:.4f}") for value in row] for row in query] for query in rows]
    bounds = torch.tensor([[row[:2] for row in query] for query in rounded], dtype=torch.float32)
    if max_ends is None:
        bounds = bounds.clamp(min=0).minimum(duration)
    else:  # the release's clamp per query (torch.clamp(windows, 0, max_end)); None: none
        bounds = torch.stack(
            [b if end is None else b.clamp(0, end) for b, end in zip(bounds, max_ends, strict=True)]
        )
    if len(set(clip_lens)) == 1:  # a scalar divisor, as one query at a time divides
        bounds = torch.round(bounds / clip_lens[0]) * clip_lens[0]
    else:
        bounds = torch.stack(
            [torch.round(b / c) * c for b, c in zip(bounds, clip_lens, strict=True)]
        )
    if max_ends is None:  # rounding may pass the end of a video that is no multiple of clip_len
        bounds = bounds.clamp(min=0).minimum(duration)
    bounds = bounds.tolist()
    return [
        [[*bound, float(f"{row[2]:.4f}")] for bound, row in zip(query_bounds, query, strict=True)]
        for query_bounds, query in zip(bounds, rounded, strict=True)
    ]


def stop_score(results: dict[str, float], protocol: str) -> float | None:
    """The release's model-selection score: a weighted mean of brief metrics (train.py).

    Weights are normalised over the full list; a missing metric contributes 0 (as released), and
    so does a NaN one: vhd's metrics give NaN for a length bucket without moments (as Moment-DETR's
    evaluator), where the release's evaluator gives 0, and a NaN score would stop model selection.
    None when no moment metric is present.
    """
    weights = STOP_SCORE_WEIGHTS["qvhighlights" if protocol == "qvhighlights" else "grounding"]
    if not any(name in results for name in weights):
        return None
    total = sum(weights.values())
    return sum(
        results[name] * weight / total
        for name, weight in weights.items()
        if name in results and not math.isnan(results[name])
    )


# -- missing features ------------------------------------------------------------------------------
FEATURE_DIMS = {  # official folder -> what it holds (reference section 1.1)
    "slowfast_features": "SlowFast, 2304",
    "clip_features": "CLIP image, 512",
    "blip_video_features": "BLIP-2 Q-Former, 768",
    "clip_text_features": "CLIP text tokens, 512",
    "blip_aug_text_features_openai": "BLIP-2 text tokens, 768",
    "blip_text_features": "BLIP-2 text tokens, 768",
    "video_features": "I3D rgb+flow, 2048",
    "query_features": "CLIP text tokens, 512",
}


def feature_files(datamodule: Any) -> list[tuple[Path, str]]:
    """(folder, file pattern) of every feature type a vhd datamodule reads, folders absolute."""
    root = Path(getattr(datamodule, "data_root", "."))
    hparams = getattr(datamodule, "hparams", {})
    text = getattr(datamodule, "text_feature_dirs", None) or [hparams.get("text_feature_dir")]
    video = [
        *(getattr(datamodule, "video_feature_dirs", None) or []),
        *(hparams.get("audio_feature_dirs") or []),
    ]
    text_pattern = f"{hparams.get('text_file_prefix', '')}{{qid}}.npz"
    return [((root / name).resolve(), "{vid}.npz") for name in video] + [
        ((root / name).resolve(), text_pattern) for name in text if name
    ]


def missing_features_message(files: list[tuple[Path, str]], synthetic_config: str) -> str:
    """Which folders were searched, and the two ways forward."""
    searched = "\n".join(
        f"  {folder}  ({'found' if folder.is_dir() else 'MISSING'})" for folder, _ in files
    )
    layout = "\n".join(
        f"     {folder.name}/{pattern}"
        + (f"  ({FEATURE_DIMS[folder.name]} per row)" if folder.name in FEATURE_DIMS else "")
        for folder, pattern in files
    )
    return (
        f"VideoLights cannot find its input features. Folders searched:\n{searched}\n"
        "Two ways forward:\n"
        "1. Get the benchmark features. QVHighlights: qvhighlights_features.tar.gz of the "
        "VideoLights release (SlowFast and CLIP features of Moment-DETR, BLIP-2 features of "
        "VideoLights; download links in https://github.com/dpaul06/VideoLights#prerequisites); "
        "Charades-STA and TVSum: the release's charades-features and tvsum_features archives. "
        "Extract them so that data_root holds the annotation files and\n"
        f"{layout}\n"
        "   (video files: key 'features', shape (clips, dim); text files: key "
        "'last_hidden_state' ('token' for TVSum), shape (tokens, dim)), then pass "
        "--data.init_args.data_root DIR.\n"
        "2. Run the same model on the embedded synthetic data (written on first use; a few "
        f"minutes on a CPU):\n   vhd fit --config {synthetic_config}"
    )


# -- early stopping --------------------------------------------------------------------------------
class ReleaseEarlyStopping(EarlyStopping):
    """The release's early stopping: stop once the main metric has not improved for more than
    ``max_es_cnt`` evaluations in a row (train.py: ``es_cnt > max_es_cnt``), checked after every
    evaluation. The metric is the model's ``main_metric``, known once the datamodule's protocol
    is (setup), the one ``BestCheckpoint`` selects on; non-finite values count as no
    improvement, as in the release."""

    def __init__(self, max_es_cnt: int) -> None:
        super().__init__(
            monitor="",  # set in setup
            mode="max",
            patience=max_es_cnt + 1,
            check_finite=False,
            check_on_train_epoch_end=False,
        )

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self.monitor:
            self.monitor = getattr(pl_module, "main_metric", "")
        super().setup(trainer, pl_module, stage)


# -- the LightningModule ---------------------------------------------------------------------------
class VideoLights(VHDModule):
    """VideoLights for moment retrieval and highlight detection; defaults = the release on
    QVHighlights (video SlowFast+CLIP+BLIP-2+TEF 3586, text CLIP+BLIP-2 1280; 10,796,263
    parameters).

    Architecture (``VideoLightsNet``): ``hidden_dim`` d, ``num_heads``, ``ffn_dim``, layer counts
    of Bi-CMF (paper: 2, release scripts: 1), encoder and decoder, ``num_queries`` moment
    queries, ``input_dropout`` of the projections, ``dropout`` in the transformer,
    ``num_input_proj`` projection blocks, ``contrastive_dim``, ``max_q_l`` (size of the unused
    learned text positions), ``activation`` of every FFN (release: PReLU), switches ``use_fra``,
    ``use_mr_to_hd`` (Uni-JFM task-coupled path), ``use_contrastive_align``,
    ``use_text_positions``, ``bicmf_mask`` ("release": the tiled mask quirk, default;
    "per-sample": plain key padding), ``fra_correlation`` ("release": FRA's word-clip
    correspondence is a learned constant; "per-pair": the corrected, input-dependent form) and
    ``use_negative_pairs`` (release: True, the mismatched-text pass and its losses).

    Losses (``VideoLightsCriterion``, section 3 / eq. 3-4): λ_L1 ``span_loss_coef``, λ_gIoU
    ``giou_loss_coef``, λ_cls ``label_loss_coef`` with ``eos_coef``; matcher costs
    ``set_cost_*``; λ_sal ``saliency_loss_coef``; Δ ``saliency_margin``; ``rank_contrastive_tau``;
    Uni-JFM L_ts ``cos_sim_loss_coef`` (scsl) and L_tc ``mr_to_hd_loss_coef`` (tcl); hard losses
    ``hard_pos_neg_loss`` with ``hard_pos_neg_loss_coef`` (hl; W_j = (epoch + 1) x coef),
    ``hard_pos_neg_weight_max`` (a cap on W_j; None: unbounded, as released) and
    ``hard_loss_form``; alignment ``contrastive_align_loss_coef`` (al; release 0.2, paper Table 6
    0.1), ``temperature``, ``alignment_loss``; ``aux_loss`` per decoder layer; ``use_matcher``
    (None: whenever the batch has windows; TVSum trains saliency only, as released).

    Optimisation (release): AdamW ``lr`` / ``weight_decay`` on every parameter, StepLR every
    ``lr_drop`` epochs (x0.1); gradient clipping 0.1 is the trainer's ``gradient_clip_val``.
    ``pretrained_checkpoint``: weights (only) of a vhd or release checkpoint, loaded when fitting
    starts (fine-tuning after pretraining). Model selection: the release's stop score
    (``val/stop_score``) on moment datasets, top-5 mAP on TVSum. ``max_es_cnt``: the release's
    early stopping, after more than that many evaluations without a better main metric
    (release 200, pretraining 100; -1 never stops).

    Predicted windows (``window_clamp``): "release" clamps them to [0, 150] s on QVHighlights
    and Charades-STA ([0, 360] s for Charades' 4096-d VGG features) and only rounds them on
    other datasets, as the release's post-processor does; "duration" clamps them to the video.
    Without a benchmark protocol (own videos) windows are clamped to the video either way.
    """

    predicts_windows = True
    synthetic_config = "configs/videolights_synthetic.yaml"

    def __init__(
        self,
        video_dim: int = 3586,
        text_dim: int = 1280,
        hidden_dim: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        num_bicmf_layers: int = 1,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        num_queries: int = 10,
        input_dropout: float = 0.5,
        dropout: float = 0.1,
        num_input_proj: int = 2,
        contrastive_dim: int = 64,
        max_q_l: int = 32,
        activation: str = "prelu",
        use_fra: bool = True,
        use_mr_to_hd: bool = True,
        use_contrastive_align: bool = True,
        use_text_positions: bool = False,
        bicmf_mask: PairMaskMode = "release",
        fra_correlation: FRACorrelation = "release",
        use_negative_pairs: bool = True,
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
        contrastive_align_loss_coef: float = 0.2,
        temperature: float = 0.07,
        alignment_loss: AlignmentLoss = "release",
        aux_loss: bool = True,
        use_matcher: bool | None = None,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        lr_drop: int = 400,
        pretrained_checkpoint: str | None = None,
        main_metric: str | None = None,
        max_es_cnt: int = 200,
        window_clamp: WindowClamp = "release",
    ) -> None:
        super().__init__(main_metric=main_metric)
        if window_clamp not in ("release", "duration"):
            raise ConfigError(f"window_clamp must be 'release' or 'duration', not {window_clamp!r}")
        if max_es_cnt < -1:
            raise ConfigError(
                f"max_es_cnt must be -1 (no early stopping) or >= 0, not {max_es_cnt}"
            )
        self.save_hyperparameters()
        hp = dict(self.hparams)
        self.net = VideoLightsNet(
            **{name: hp[name] for name in inspect.signature(VideoLightsNet).parameters}
        )
        self.criterion = VideoLightsCriterion(
            contrastive_align_loss=use_contrastive_align,
            **{
                name: hp[name]
                for name in inspect.signature(VideoLightsCriterion).parameters
                if name in hp
            },
        )
        self.keep_out_of_gradient(self.net.unused_modules(alignment_loss))

    def input_dims(self) -> dict[str, int]:
        return {"video": self.hparams.video_dim, "query": self.hparams.text_dim}

    # -- setup -----------------------------------------------------------------------------------
    @property
    def main_metric(self) -> str:
        if self._main_metric is None and (self.protocol or "qvhighlights") in MOMENT_PROTOCOLS:
            return "val/stop_score"
        return super().main_metric

    def prepare_data(self) -> None:
        """Fail early, with the ways forward, when the configured feature folders are absent."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is None:
            return
        files = feature_files(datamodule)
        if any(not folder.is_dir() for folder, _ in files):
            raise FeatureError(missing_features_message(files, self.synthetic_config))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        metrics = self.metrics
        if self.protocol == "qvhighlights" and metrics is not None and "r1_from_0_3" not in metrics:
            # the release's evaluator reports R1 from IoU 0.3, which its stop score weighs
            metrics["r1_from_0_3"] = MomentRetrievalMetric("charades")
        if stage == "fit" and self.hparams.pretrained_checkpoint:
            self.load_pretrained(self.hparams.pretrained_checkpoint)

    def load_pretrained(self, path: str | Path) -> None:
        """Initialise every weight from a pretraining checkpoint (no optimizer state)."""
        self.net.load_state_dict(load_checkpoint_weights(path))

    # -- training --------------------------------------------------------------------------------
    def forward(self, batch: Batch, for_loss: bool = True) -> VideoLightsOutput:
        if "query" not in batch:
            raise ValueError(
                "VideoLights needs query features (batch key 'query'); for highlight datasets "
                "set the datamodule's text_feature_dir (TVSum: query_features, key 'token')"
            )
        return self.net(
            batch["video"], batch["video_mask"], batch["query"], batch["query_mask"], for_loss
        )

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, terms = self.criterion(self(batch), batch, epoch=self.current_epoch)
        batch_size = len(batch["meta"])
        self.log_dict(
            {f"train/{name}": value.detach() for name, value in terms.items()},
            batch_size=batch_size,
        )
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.parameters(),
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            fused=self._fused_optimizer(),
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, self.hparams.lr_drop, gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}

    def _fused_optimizer(self) -> bool | None:
        """The fused AdamW kernel on the CPU in full precision: the same update in one pass over
        all parameters (about 3 times faster than the per-parameter loop torch uses on the CPU).
        Lightning refuses gradient clipping with fused optimizers under mixed precision, and
        CUDA already defaults to the fast multi-tensor form, so None (torch's choice) there."""
        precision = str(self._trainer.precision) if self._trainer is not None else "32-true"
        return True if self.device.type == "cpu" and "mixed" not in precision else None

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_batch(self, batch: Batch) -> list[Prediction]:
        output = self(batch, for_loss=False)
        foreground = output.logits[-1].float().softmax(-1)[..., 0]
        spans = output.spans[-1].float()
        saliency = output.saliency.half().float()  # the release writes float16 scores
        windows = self.protocol in (None, *MOMENT_PROTOCOLS)
        scores = self.protocol not in ("charades", "tacos")  # the release drops them there
        predictions: list[Prediction] = []
        if windows:
            metas = batch["meta"]
            max_end = self.release_max_end()
            all_windows = postprocess_windows_batch(
                spans, foreground, [float(m["duration"]) for m in metas],
                [float(m["clip_len"]) for m in metas],
                None if max_end == "duration" else [max_end] * len(metas),
            )  # fmt: skip
        for row, meta in enumerate(batch["meta"]):
            prediction: Prediction = {
                "qid": meta["qid"],
                "vid": meta["vid"],
                "query": meta.get("query", ""),
            }
            if windows:
                prediction["pred_relevant_windows"] = all_windows[row]
            if scores:
                prediction["pred_saliency_scores"] = saliency[row, : meta["num_clips"]].tolist()
            predictions.append(prediction)
        return predictions

    def release_max_end(self) -> float | Literal["duration"] | None:
        """The upper clamp of predicted windows (see ``window_clamp``); "duration": the video."""
        if self.hparams.window_clamp == "duration" or self.protocol is None:
            return "duration"
        if self.protocol == "charades" and self.hparams.video_dim in (4096, 4098):
            return RELEASE_MAX_END_VGG
        return RELEASE_MAX_END.get(self.protocol)

    def configure_callbacks(self) -> list[Callback]:
        """The base callbacks plus the release's early stopping (``max_es_cnt``), unless the
        config has an EarlyStopping of its own."""
        callbacks = super().configure_callbacks()
        existing = self.trainer.callbacks if self._trainer is not None else []
        if self.hparams.max_es_cnt >= 0 and not any(
            isinstance(cb, EarlyStopping) for cb in existing
        ):
            callbacks.append(ReleaseEarlyStopping(self.hparams.max_es_cnt))
        return callbacks

    def derived_metrics(self, results: dict[str, float]) -> dict[str, float]:
        score = stop_score(results, self.protocol or "qvhighlights")
        return {} if score is None else {"stop_score": score}
