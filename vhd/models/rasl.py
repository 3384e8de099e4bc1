"""RASL: Li, Sun and Xiao, "Unsupervised Modality-Transferable Video Highlight Detection with
Representation Activation Sequence Learning". No official code; the paper is the specification,
and the choices it leaves open are options of ``RASL`` (see its docstring).

Pretraining (Fig. 3, Algorithm 1), per modality m in {visual, audio}, on windows of N steps:

    rho^m ─ SA, eq. 1-2 ─> rho-bar^m ─ encoder E^m, eq. 3 ─> r^m ─ psi^m ─> z^m
    s^m = w^m . z^m (eq. 4);  decoder D^m(s^m * r^m) reconstructs rho^m (L1, eq. 5)
    top-k / bottom-k of s^m (eq. 6-7) -> k-point contrastive learning L_r (eq. 8)
    SCL between r^v and r^a (eq. 9); masked reconstruction from M * rho^m (eq. 10)
    L_total = sum_m (L_e + L_r + L_au) + L_s (eq. 11)

Inference uses the visual branch alone: s^v of each 30 s window is the highlight score.

Audio is aligned to vision without parameters (III-A, III-F): average pooling brings its steps to
the visual ones, linear interpolation each vector's length d_a to d_v (``align_audio``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from vhd.callbacks import BestCheckpoint
from vhd.errors import UserError
from vhd.losses.rasl import (
    k_point_contrastive_loss,
    reconstruction_l1,
    symmetric_contrastive_loss,
)
from vhd.models.base import VHDModule
from vhd.types import Batch, Prediction

# Additive attention mask for padded keys: large and finite, so bf16 never sees -inf or NaN.
MASKED_SCORE = -1e4
NUM_LAYERS = 3  # E and D: 3 (de)convolutions of stride 2 (III-F)

ConvAxis = Literal["feature", "time"]
Modalities = Literal["audio_visual", "visual", "audio"]
Fusion = Literal["scl", "sum", "concat"]
DecoderInput = Literal["r", "z"]
AuxActivations = Literal["main", "masked"]
TemperatureForm = Literal["log", "linear"]
SCLNegatives = Literal["window", "batch"]
ScoreNorm = Literal["video", "window", "none"]
Activation = Literal["linear", "sigmoid", "softmax"]
AudioAlignment = Literal["interpolate", "projection"]


class CheckpointMismatch(UserError, ValueError):
    """A checkpoint whose weights this model's options cannot hold; the message gives the fix."""


def align_audio(audio: Tensor, steps: int, dim: int) -> Tensor:
    """The audio FVS (B, T_a, d_a) as the paper aligns it to the visual one (B, steps, dim), with
    no parameters (III-F): temporal average pooling to the visual steps (linear interpolation if
    audio is sparser), then linear interpolation of each vector's length d_a to d_v."""
    if audio.shape[1] > steps:
        audio = F.adaptive_avg_pool1d(audio.transpose(1, 2), steps).transpose(1, 2)
    elif audio.shape[1] < steps:
        audio = F.interpolate(audio.transpose(1, 2), size=steps, mode="linear").transpose(1, 2)
    if audio.shape[-1] != dim:
        audio = F.interpolate(audio, size=dim, mode="linear")  # (B, steps, d_a) -> d_v
    return audio


def conv_lengths(length: int, kernel_size: int, layers: int = NUM_LAYERS) -> list[int]:
    """Lengths along the convolved axis: the input, then after each stride-2 convolution."""
    lengths = [length]
    for _ in range(layers):
        lengths.append((lengths[-1] + 2 * (kernel_size // 2) - kernel_size) // 2 + 1)
    return lengths


class SelfAttention(nn.Module):
    """Intramodal SA with residual (III-B): rho + softmax(rho W^Q (rho W^K)^T / sqrt(d)) rho W^V
    W^O.

    The paper names four projection matrices and no bias, so the projections have none.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w_q = nn.Linear(dim, dim, bias=False)  # W^{Q,m} (eq. 1)
        self.w_k = nn.Linear(dim, dim, bias=False)  # W^{K,m} (eq. 1)
        self.w_v = nn.Linear(dim, dim, bias=False)  # W^{V,m} (eq. 1)
        self.w_o = nn.Linear(dim, dim, bias=False)  # W^{O,m} (eq. 2)

    def forward(self, features: Tensor, valid: Tensor) -> Tensor:
        bias = torch.zeros(valid.shape, dtype=features.dtype, device=features.device)
        bias = bias.masked_fill(~valid, MASKED_SCORE)[:, None, :]
        attended = F.scaled_dot_product_attention(  # eq. 1, scale 1 / sqrt(d)
            self.w_q(features), self.w_k(features), self.w_v(features), attn_mask=bias
        )
        return features + self.w_o(attended)  # eq. 2


class Encoder(nn.Module):
    """E^m: three stride-2 convolutions, each followed by ReLU (III-F)."""

    def __init__(self, channels: Sequence[int], kernel_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv1d(c_in, c_out, kernel_size, stride=2, padding=kernel_size // 2)
            for c_in, c_out in pairwise(channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = F.relu(layer(x))
        return x


class Decoder(nn.Module):
    """D^m: three stride-2 transposed convolutions with ReLU (III-F), each restoring exactly the
    length its encoder layer saw. No ReLU after the last by default: features with negative
    values could not be reconstructed otherwise (``final_relu=True`` is the literal reading)."""

    def __init__(self, channels: Sequence[int], kernel_size: int, final_relu: bool) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.final_relu = final_relu
        self.layers = nn.ModuleList(
            nn.ConvTranspose1d(c_in, c_out, kernel_size, stride=2, padding=kernel_size // 2)
            for c_in, c_out in pairwise(channels)
        )

    def forward(self, code: Tensor, length: int) -> Tensor:
        lengths = conv_lengths(length, self.kernel_size)[-2::-1]
        for index, (layer, size) in enumerate(zip(self.layers, lengths, strict=True)):
            code = layer(code, output_size=[size])
            if index < len(self.layers) - 1 or self.final_relu:
                code = F.relu(code)
        return code


@dataclass
class Activations:
    """One branch's encoding of (B, N, d) input: N' = N steps ("feature" axis) or N / 8 ("time")."""

    r: Tensor  # (B, N', D_r) representation vectors (eq. 3)
    z: Tensor  # (B, N', D_r) psi^m(r) (eq. 4)
    s: Tensor  # (B, N') representation activation sequence (eq. 4)
    valid: Tensor  # (B, N') bool


class Branch(nn.Module):
    """One modality's autoencoder with its RASL module (III-C, Fig. 4); both branches alike.

    ``conv_axis="feature"`` convolves each step's feature vector along its feature axis (one input
    channel), so r, z and s keep one entry per step, as eq. 3-8 index them (r_0 .. r_{N-1}, top-k
    over {1..N}). ``"time"`` convolves along time with the features as channels: N / 8 coarse
    activations, each scoring the 8 steps it covers.
    """

    def __init__(
        self,
        dim: int,
        channels: Sequence[int],
        kernel_size: int,
        psi_kernel_size: int,
        kpoint_dim: int,
        conv_axis: ConvAxis,
        final_relu: bool,
        activation: Activation = "linear",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.activation = activation
        self.conv_axis = conv_axis
        in_channels = 1 if conv_axis == "feature" else dim
        code_channels = channels[-1]
        self.width = (
            code_channels * conv_lengths(dim, kernel_size)[-1]
            if conv_axis == "feature"
            else code_channels
        )
        self.encoder = Encoder([in_channels, *channels], kernel_size)  # E^m (eq. 3)
        self.decoder = Decoder([*channels[::-1], in_channels], kernel_size, final_relu)  # D^m
        self.psi = nn.Conv1d(
            code_channels, code_channels, psi_kernel_size, padding=psi_kernel_size // 2
        )  # psi^m (eq. 4)
        self.w = nn.Linear(self.width, 1, bias=False)  # w^m_c: bias-free weighted sum (eq. 4)
        self.project_top = nn.Sequential(
            nn.Linear(self.width, kpoint_dim), nn.LayerNorm(kpoint_dim)
        )  # sigma(W-hat z-hat) (eq. 8)
        self.project_bottom = nn.Sequential(
            nn.Linear(self.width, kpoint_dim), nn.LayerNorm(kpoint_dim)
        )  # sigma(W-check z-check) (eq. 8)

    def stride(self) -> int:
        """Input steps per activation."""
        return 1 if self.conv_axis == "feature" else 2**NUM_LAYERS

    def _vectors(self, code: Tensor, batch: int) -> Tensor:
        """Convolution layout -> per-step vectors (B, N', D_r)."""
        if self.conv_axis == "feature":
            return code.reshape(batch, -1, self.width)
        return code.transpose(1, 2)

    def encode(self, features: Tensor, valid: Tensor) -> Activations:
        """rho-bar (B, N, d) -> r, z = psi(r), s = w . z (eq. 3-4)."""
        batch, steps, dim = features.shape
        if self.conv_axis == "feature":
            code = self.encoder(features.reshape(batch * steps, 1, dim))
        else:
            code = self.encoder(features.transpose(1, 2))
        r = self._vectors(code, batch)
        z = self._vectors(self.psi(code), batch)
        weighted_sum = self.w(z).squeeze(-1)  # eq. 4
        if self.conv_axis == "time":
            covered = (torch.arange(z.shape[1], device=valid.device) * self.stride()).clamp(
                max=steps - 1
            )
            valid = valid[:, covered]
        if self.activation == "sigmoid":
            s = torch.sigmoid(weighted_sum)
        elif self.activation == "softmax":
            probabilities = weighted_sum.masked_fill(~valid, MASKED_SCORE).softmax(-1)
            s = probabilities * valid.sum(-1, keepdim=True)  # mean weight 1: s * r keeps r's scale
        else:
            s = weighted_sum
        return Activations(r=r, z=z, s=s, valid=valid)

    def decode(self, activations: Tensor, vectors: Tensor, steps: int) -> Tensor:
        """D(s * r) (eq. 5, 10): the reconstructed (B, N, d) feature sequence."""
        weighted = activations[..., None] * vectors
        batch = weighted.shape[0]
        if self.conv_axis == "feature":
            code = weighted.reshape(batch * steps, self.psi.in_channels, -1)
            return self.decoder(code, self.dim).reshape(batch, steps, self.dim)
        return self.decoder(weighted.transpose(1, 2), steps).transpose(1, 2)

    def step_scores(self, activations: Tensor, steps: int) -> Tensor:
        """Activations (B, N') -> one score per input step (B, N)."""
        return activations.repeat_interleave(self.stride(), dim=-1)[:, :steps]


def window_steps(num_steps: int, window: int, device: torch.device | None = None) -> list[Tensor]:
    """Step indices of each inference window (III-F): consecutive windows of ``window`` steps from
    step 0; the last piece (or a short video) is repeated until it fills a window. The real part
    of window i is its first ``min(window, num_steps - i * window)`` entries."""
    windows = []
    for start in range(0, num_steps, window):
        piece = min(window, num_steps - start)
        windows.append(start + torch.arange(window, device=device) % piece)
    return windows


def min_max(scores: Tensor) -> Tensor:
    """Scores scaled to [0, 1]; a constant sequence becomes zeros."""
    low, high = scores.min(), scores.max()
    return (scores - low) / (high - low).clamp_min(1e-12)


def pool_clip_rows(scores: Tensor, rows: Sequence[Sequence[int]]) -> Tensor:
    """Per-step scores -> one per labelled clip: the mean of its [first, end) rows, placed by
    time by the datamodule (``meta["clip_rows"]``, see ``vhd.datamodules.clip_time``)."""
    bounds = torch.as_tensor(rows, dtype=torch.long)
    # float64 on the CPU (MPS has none): a long video sums thousands of steps
    sums = F.pad(scores.detach().to("cpu", torch.float64).cumsum(0), (1, 0))
    means = (sums[bounds[:, 1]] - sums[bounds[:, 0]]) / (bounds[:, 1] - bounds[:, 0])
    return means.to(scores.dtype)


def scores_to_clips(scores: Tensor, num_clips: int) -> Tensor:
    """Per-step scores -> ``num_clips`` by position, for items without ``meta["clip_rows"]``: the
    mean of the steps a clip's share of the sequence holds, or the step nearest it when fewer."""
    steps = scores.shape[0]
    if steps == num_clips:
        return scores
    if steps < num_clips:
        return scores[(torch.arange(num_clips, device=scores.device) * steps) // num_clips]
    clip_of = (torch.arange(steps, device=scores.device) * num_clips) // steps
    sums = torch.zeros(num_clips, dtype=scores.dtype, device=scores.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, clip_of, scores)
    counts.index_add_(0, clip_of, torch.ones_like(scores))
    return sums / counts


class RASL(VHDModule):
    """Unsupervised highlight detection by representation activation sequence learning.

    Pretrained on unlabelled windows of visual + audio features (``UnlabeledDataModule``: batch
    keys ``video``, ``audio``, ``video_mask`` and the reconstruction mask ``mask``); evaluated
    without training on the target benchmark (``HighlightDataModule``) from video alone.

    Paper defaults: ``window`` N = 150 (30 s at 5 fps; evaluate with ``HighlightDataModule``'s
    ``feature_step=0.2, pool_features=False``, so each labelled clip gets the mean score of the
    0.2 s steps in its span), ``k`` = 10, the temperature Gamma starts at ``temperature_init`` =
    3.1, 50% of the steps masked (``mask_ratio``, used only when a batch has no ``mask``), RMSprop
    with ``lr`` 1e-3, all loss weights 1 (eq. 11). ``video_dim`` and ``audio_dim`` default to 768
    (Swin [14] and Mockingjay [57] features).

    ``audio_alignment="interpolate"`` (the paper, III-F): the audio FVS is average-pooled to the
    visual steps and each vector linearly interpolated from d_a to d_v (``align_audio``, no
    parameters), so the audio branch is as wide as the visual one and eq. 9 pairs r^v with r^a as
    they are. ``"projection"`` (vhd before this option) keeps audio at d_a and joins the branches
    through learned projections to ``scl_dim`` (needed when d_a != d_v); checkpoints pretrained so
    load only with it.

    The encoder is vhd's reading of an underspecified paper: III-F gives "3 convolutional layers
    with a stride of 2" and nothing else, neither the axis they stride over (``conv_axis``, below)
    nor their widths. ``channels`` (16, 32, 64) with 3-wide kernels are vhd's choice, made to
    match Table VI: they put one visual branch at 0.84 G multiply-adds per 30 s window, the 0.82
    GFLOPs reported (``benchmarks/rasl_complexity.py``).

    Ablations (Tables III, IV; Fig. 6): ``k=0`` (no L_r: RASL is a plain reweighting),
    ``kpoint_contrast=False`` (eta = mean of the top-k activations), ``self_attention=False``,
    ``aux_task=False``, ``modalities="visual"`` (pretrained without audio) or ``"audio"`` (without
    vision; then the audio branch scores, and evaluation needs audio), ``fusion="sum"`` or
    ``"concat"`` (the self-attended visual and audio sequences fused into one branch that
    reconstructs the same fusion of the inputs; "sum" zero-pads the narrower modality; evaluation
    needs audio).

    Readings of ambiguous text (the alternative is the option):

    - ``conv_axis``: "feature" (default) strides over each step's feature axis so there is one
      activation per step, as eq. 3-8 index them; with "time" (stride over time, features as
      channels) a 150-step window has 19 activations and the top-10 and bottom-10 would overlap.
    - ``decoder_input``: "r" decodes s * r (eq. 5); "z" decodes s * z (Fig. 4's caption).
    - ``aux_activations``: "main" weights the masked input's r by the s of the unmasked input
      (eq. 10 writes s^m); "masked" recomputes s from the masked input ("the difference ... lies
      solely in the input").
    - L_s (eq. 9) is CLIP's symmetric InfoNCE over cosine similarities [30];
      ``temperature_form="log"`` scales logits by exp(Gamma) (CLIP's learnable "temperature",
      capped at 100; Gamma = 3.1 gives 22.2), "linear" by Gamma itself. ``scl_negatives``: the
      other steps of the window (eq. 9 indexes one sequence) or of the whole batch; repeated
      copies of a step are never its negatives. ``scl_dim`` projects r^v and r^a to a joint space
      (CLIP's projections); null uses r itself (the paper).
    - ``score_norm``: "video" min-max normalises the concatenated window scores ("concatenate and
      normalize"), "window" each window's scores before concatenation, "none" leaves them.
    """

    predicts_windows = False

    def __init__(
        self,
        video_dim: int = 768,
        audio_dim: int = 768,
        window: int = 150,
        channels: tuple[int, int, int] = (16, 32, 64),
        kernel_size: int = 3,
        psi_kernel_size: int = 3,
        conv_axis: ConvAxis = "feature",
        final_relu: bool = False,
        activation: Activation = "linear",
        decoder_input: DecoderInput = "r",
        k: int = 10,
        kpoint_dim: int = 128,
        kpoint_contrast: bool = True,
        temperature_init: float = 3.1,
        temperature_form: TemperatureForm = "log",
        scl_negatives: SCLNegatives = "window",
        scl_dim: int | None = None,
        audio_alignment: AudioAlignment = "interpolate",
        mask_ratio: float = 0.5,
        aux_activations: AuxActivations = "main",
        recon_weight: float = 1.0,
        kpoint_weight: float = 1.0,
        aux_weight: float = 1.0,
        scl_weight: float = 1.0,
        self_attention: bool = True,
        aux_task: bool = True,
        modalities: Modalities = "audio_visual",
        fusion: Fusion = "scl",
        score_norm: ScoreNorm = "video",
        inference_windows: int = 64,
        lr: float = 1e-3,
        main_metric: str | None = None,
    ) -> None:
        super().__init__(main_metric=main_metric)
        self.save_hyperparameters()
        self._check_options()
        # the branches' input widths: audio interpolated to d_v, or its own with "projection"
        dims = {"visual": video_dim, "audio": audio_dim}
        if audio_alignment == "interpolate":
            dims["audio"] = video_dim
        used = {"audio_visual": ("visual", "audio"), "visual": ("visual",), "audio": ("audio",)}
        self.modalities = used[modalities]
        self.attention = nn.ModuleDict(
            {m: SelfAttention(dims[m]) for m in self.modalities} if self_attention else {}
        )  # F^m (eq. 1-2)
        if fusion == "scl":
            branch_dims = {m: dims[m] for m in self.modalities}
        else:
            fused = max(dims.values()) if fusion == "sum" else sum(dims.values())
            branch_dims = {"fused": fused}
        shape = dict(
            channels=channels, kernel_size=kernel_size, psi_kernel_size=psi_kernel_size,
            kpoint_dim=kpoint_dim, conv_axis=conv_axis, final_relu=final_relu,
            activation=activation,
        )  # fmt: skip
        self.branches = nn.ModuleDict(
            {name: Branch(dim, **shape) for name, dim in branch_dims.items()}
        )
        if not kpoint_contrast:  # eta is then the mean of the top-k activations
            self.keep_out_of_gradient(
                projection
                for branch in self.branches.values()
                for projection in (branch.project_top, branch.project_bottom)
            )
        self.scoring_branch = "fused" if fusion != "scl" else self.modalities[0]
        self.uses_scl = fusion == "scl" and len(self.modalities) == 2
        self.scl_projections = nn.ModuleDict()
        if self.uses_scl:
            widths = {m: self.branches[m].width for m in self.modalities}
            if scl_dim is not None:
                self.scl_projections = nn.ModuleDict(
                    {m: nn.Linear(width, scl_dim, bias=False) for m, width in widths.items()}
                )  # CLIP's W_i, W_t [30]
            elif widths["visual"] != widths["audio"]:
                raise ValueError(
                    f"SCL pairs r^v (width {widths['visual']}) with r^a (width {widths['audio']}); "
                    "they differ because video_dim != audio_dim: set scl_dim to project both to "
                    "a joint space, or audio_alignment='interpolate' (the paper)"
                )
            self.temperature = nn.Parameter(torch.tensor(float(temperature_init)))  # Gamma (eq. 9)
        steps = window if conv_axis == "feature" else conv_lengths(window, kernel_size)[-1]
        if 2 * k > steps:
            raise ValueError(
                f"k={k} top plus k bottom activations exceed the {steps} activations of a "
                f"{window}-step window (conv_axis={conv_axis!r}); lower k (paper: 10 of 150)"
            )

    def _check_options(self) -> None:
        hp = self.hparams
        if hp.fusion != "scl" and hp.modalities != "audio_visual":
            raise ValueError(f"fusion={hp.fusion!r} fuses both modalities; use audio_visual")
        if hp.kernel_size % 2 == 0 or hp.psi_kernel_size % 2 == 0:
            raise ValueError("kernel_size and psi_kernel_size must be odd (same padding)")
        if len(hp.channels) != NUM_LAYERS:
            raise ValueError(f"channels lists the {NUM_LAYERS} encoder widths, got {hp.channels}")
        if hp.audio_alignment not in ("interpolate", "projection"):
            raise ValueError(
                f"audio_alignment is 'interpolate' (the paper) or 'projection', got "
                f"{hp.audio_alignment!r}"
            )
        if hp.k < 0 or not 0.0 <= hp.mask_ratio < 1.0:
            raise ValueError(f"need k >= 0 and 0 <= mask_ratio < 1, got {hp.k}, {hp.mask_ratio}")

    def input_dims(self) -> dict[str, int]:
        """Training reads every used modality; evaluation only what the scoring branch needs."""
        needed = self.modalities if self.training or self.scoring_branch == "fused" else ()
        needed = needed or (self.scoring_branch,)
        keys = {
            "visual": ("video", self.hparams.video_dim),
            "audio": ("audio", self.hparams.audio_dim),
        }
        return dict(keys[m] for m in needed)

    # -- shared forward pieces -------------------------------------------------------------------
    def _inputs(self, batch: Batch, modalities: Sequence[str]) -> dict[str, Tensor]:
        inputs = {}
        for m in modalities:
            key = "video" if m == "visual" else "audio"
            if key not in batch:
                raise ValueError(
                    f"RASL (modalities={self.hparams.modalities!r}, fusion="
                    f"{self.hparams.fusion!r}) needs batch['{key}']: give the datamodule "
                    f"{key}_feature_dirs, or use modalities='visual' (the 'w/o audio' ablation)"
                )
            inputs[m] = batch[key]
        if "audio" in inputs and self.hparams.audio_alignment == "interpolate":
            steps = batch["video"].shape[1] if "video" in batch else inputs["audio"].shape[1]
            inputs["audio"] = align_audio(inputs["audio"], steps, self.hparams.video_dim)
        return inputs

    def _fuse(self, features: dict[str, Tensor]) -> Tensor:
        """Table IV's fusion of visual and audio sequences (the narrower zero-padded for "sum")."""
        visual, audio = features["visual"], features["audio"]
        if self.hparams.fusion == "concat":
            return torch.cat([visual, audio], dim=-1)
        width = max(visual.shape[-1], audio.shape[-1])
        return F.pad(visual, (0, width - visual.shape[-1])) + F.pad(
            audio, (0, width - audio.shape[-1])
        )

    def branch_inputs(
        self, raw: dict[str, Tensor], valid: Tensor
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """(rho-bar, rho) per branch: the self-attended input and the reconstruction target."""
        attended = {
            m: self.attention[m](x, valid) if self.hparams.self_attention else x
            for m, x in raw.items()
        }
        if self.hparams.fusion == "scl":
            return {m: (attended[m], raw[m]) for m in raw}
        return {"fused": (self._fuse(attended), self._fuse(raw))}

    def logit_scale(self) -> Tensor:
        if self.hparams.temperature_form == "log":
            return self.temperature.exp().clamp(max=100.0)
        return self.temperature

    def _decoder_vectors(self, activations: Activations) -> Tensor:
        return activations.r if self.hparams.decoder_input == "r" else activations.z

    # -- pretraining -----------------------------------------------------------------------------
    def _hidden_steps(self, batch: Batch) -> Tensor:
        """M: the batch's reconstruction mask (True = hidden), or a fresh one of ``mask_ratio``."""
        if "mask" in batch:
            return batch["mask"]
        valid = batch["video_mask"]
        order = torch.rand(valid.shape, device=valid.device).argsort(dim=1)
        ranks = order.argsort(dim=1)
        return ranks < round(self.hparams.mask_ratio * valid.shape[1])

    def _same_content(self, batch: Batch, steps: int) -> Tensor | None:
        """(B, N, N) pairs of steps holding the same input: a short piece repeated in its window."""
        if self.hparams.conv_axis != "feature" or any(
            "source_steps" not in meta for meta in batch["meta"]
        ):
            return None
        position = torch.arange(steps, device=batch["video"].device)
        pieces = torch.tensor(
            [meta["source_steps"] for meta in batch["meta"]], device=position.device
        )
        phase = position[None, :] % pieces[:, None]
        return phase[:, :, None] == phase[:, None, :]

    def pretraining_losses(self, batch: Batch) -> dict[str, Tensor]:
        """The terms of eq. 11 by name: ``recon_*`` L_e, ``kpoint_*`` L_r, ``aux_*`` L_au, ``scl``
        L_s (``*`` = the branch)."""
        hp = self.hparams
        valid = batch["video_mask"]
        raw = self._inputs(batch, self.modalities)
        main = self.branch_inputs(raw, valid)
        encoded = {name: self.branches[name].encode(x, valid) for name, (x, _) in main.items()}
        losses: dict[str, Tensor] = {}
        for name, out in encoded.items():
            branch, target = self.branches[name], main[name][1]
            reconstruction = branch.decode(out.s, self._decoder_vectors(out), target.shape[1])
            losses[f"recon_{name}"] = reconstruction_l1(reconstruction, target, valid)  # eq. 5
            if hp.k > 0:
                losses[f"kpoint_{name}"] = k_point_contrastive_loss(  # eq. 6-8
                    out.s, out.z, out.valid, hp.k, branch.project_top, branch.project_bottom,
                    contrast=hp.kpoint_contrast,
                )  # fmt: skip
        if hp.aux_task:
            hidden = self._hidden_steps(batch)
            masked = {m: x.masked_fill(hidden[..., None], 0.0) for m, x in raw.items()}  # M * rho
            for name, (x, _) in self.branch_inputs(masked, valid).items():
                branch, target = self.branches[name], main[name][1]
                out = branch.encode(x, valid)
                s = encoded[name].s if hp.aux_activations == "main" else out.s
                reconstruction = branch.decode(s, self._decoder_vectors(out), target.shape[1])
                losses[f"aux_{name}"] = reconstruction_l1(reconstruction, target, valid)  # eq. 10
        if self.uses_scl:
            r = {m: encoded[m].r for m in self.modalities}
            if self.scl_projections:
                r = {m: self.scl_projections[m](vectors) for m, vectors in r.items()}
            losses["scl"] = symmetric_contrastive_loss(  # eq. 9
                r["visual"], r["audio"], encoded["visual"].valid, self.logit_scale(),
                hp.scl_negatives, self._same_content(batch, r["visual"].shape[1]),
            )  # fmt: skip
        return losses

    def total_loss(self, losses: dict[str, Tensor]) -> Tensor:
        """Eq. 11 with a weight per term (all 1 in the paper)."""
        hp = self.hparams
        weights = {"recon": hp.recon_weight, "kpoint": hp.kpoint_weight, "aux": hp.aux_weight}
        weights["scl"] = hp.scl_weight
        return sum(weights[name.split("_")[0]] * value for name, value in losses.items())

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        losses = self.pretraining_losses(batch)
        loss = self.total_loss(losses)
        size = len(batch["meta"])
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=size)
        logged = {f"train/{name}": value.detach() for name, value in losses.items()}
        if self.uses_scl:
            logged["train/scl_scale"] = self.logit_scale().detach()
        self.log_dict(logged, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(self.parameters(), lr=self.hparams.lr)

    def configure_callbacks(self) -> list[Callback]:
        """Pretraining has no labels to select on: keep the lowest training loss (and last)."""
        callbacks = super().configure_callbacks()
        if getattr(self.trainer.datamodule, "protocol", None) is not None:
            return callbacks
        return [
            BestCheckpoint(monitor="train/loss", mode="min")
            if isinstance(callback, BestCheckpoint)
            else callback
            for callback in callbacks
        ]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before ``audio_alignment`` hold a d_a-wide audio branch (the learned
        projection); with d_a != d_v they need ``audio_alignment="projection"``."""
        saved = checkpoint.get("hyper_parameters", {})
        if "audio_alignment" in saved or self.hparams.audio_alignment == "projection":
            return
        uses_audio = saved.get("modalities", "audio_visual") != "visual"
        if uses_audio and saved.get("audio_dim", 768) != saved.get("video_dim", 768):
            raise CheckpointMismatch(
                "this RASL checkpoint was pretrained before audio_alignment existed, with "
                f"audio_dim={saved.get('audio_dim')} != video_dim={saved.get('video_dim')}: its "
                "audio branch is d_a wide and meets vision through learned projections; load it "
                "with --model.init_args.audio_alignment=projection (RASL.load_from_checkpoint(..., "
                "audio_alignment='projection'))"
            )

    # -- inference -------------------------------------------------------------------------------
    def score_windows(self, windows: dict[str, Tensor]) -> Tensor:
        """Per-step highlight scores (W, N) of full windows: s of the scoring branch."""
        first = next(iter(windows.values()))
        valid = torch.ones(first.shape[:2], dtype=torch.bool, device=first.device)
        (name, (features, _)), *_ = self.branch_inputs(windows, valid).items()
        branch = self.branches[name]
        return branch.step_scores(branch.encode(features, valid).s, first.shape[1]).float()

    @torch.no_grad()
    def highlight_scores(self, batch: Batch) -> list[Tensor]:
        """Step scores of each whole video (III-F): windows of N steps, the last piece or a short
        video repeated to fill one, scored, the real parts concatenated and normalised."""
        hp = self.hparams
        needed = self.modalities if self.scoring_branch == "fused" else (self.scoring_branch,)
        inputs = self._inputs(batch, needed)
        lengths = batch["video_mask"].sum(1).tolist()
        device = batch["video_mask"].device
        windows: dict[str, list[Tensor]] = {m: [] for m in inputs}
        pieces: list[tuple[int, int]] = []  # (video row, real steps) per window
        for row, length in enumerate(lengths):
            for steps in window_steps(int(length), hp.window, device):
                for m, features in inputs.items():
                    windows[m].append(features[row, steps])
                pieces.append((row, min(hp.window, int(length) - int(steps[0]))))
        stacked = {m: torch.stack(items) for m, items in windows.items()}
        scores = torch.cat(
            [
                self.score_windows(
                    {m: x[start : start + hp.inference_windows] for m, x in stacked.items()}
                )
                for start in range(0, len(pieces), hp.inference_windows)
            ]
        )
        per_video: list[list[Tensor]] = [[] for _ in lengths]
        for window_scores, (row, real) in zip(scores, pieces, strict=True):
            part = window_scores[:real]
            per_video[row].append(min_max(part) if hp.score_norm == "window" else part)
        videos = [torch.cat(parts) for parts in per_video]
        return [min_max(v) if hp.score_norm == "video" else v for v in videos]

    @torch.no_grad()
    def predict_batch(self, batch: Batch) -> list[Prediction]:
        predictions: list[Prediction] = []
        for scores, meta in zip(self.highlight_scores(batch), batch["meta"], strict=True):
            clips = (
                pool_clip_rows(scores, meta["clip_rows"])
                if "clip_rows" in meta
                else scores_to_clips(scores, int(meta.get("num_clips", len(scores))))
            )
            predictions.append(
                {
                    "qid": meta["qid"],
                    "vid": meta["vid"],
                    "query": meta.get("query", ""),
                    "pred_saliency_scores": [round(value, 6) for value in clips.tolist()],
                }
            )
        return predictions
