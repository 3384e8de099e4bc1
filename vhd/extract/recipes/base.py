"""What a feature recipe is: which frames and audio it needs, and what it writes.

The runner (``vhd.extract.run``) decodes each video once, hands the recipe the frames of a batch
of clips and then the video's audio cut per clip, and writes one ``(num_clips, dim)`` array per
output folder. A recipe never opens files; it turns pixels and samples into features.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

Modality = Literal["video", "audio", "text"]


@dataclass(frozen=True)
class Output:
    """One feature folder a recipe writes: ``{folder}/{vid}.npz`` holding ``key`` (rows, dim)."""

    folder: str
    dim: int
    modality: Modality
    key: str = "features"


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file a recipe loads: where it comes from and what it is called."""

    filename: str  # name in the cache folder
    url: str  # downloaded from here when the machine has internet
    description: str  # e.g. "open_clip ViT-B-32, OpenAI weights"


@dataclass
class ExtractOptions:
    """What the user chose on the command line, common to every recipe."""

    clip_len: float = 2.0
    device: str = "cpu"
    batch_size: int = 32  # clips per forward pass
    weights: dict[str, Path] = field(default_factory=dict)  # name -> resolved file


class Recipe(ABC):
    """Base of every recipe; subclasses are registered by ``name`` in ``vhd.extract.recipes``.

    Video: ``frame_offsets`` are the sampling instants inside each clip as fractions of
    ``clip_len`` (one decoded frame per offset per clip), each frame resized by ``frame_size``.
    Audio: mono at ``sample_rate`` (None: the recipe uses no audio), zero-padded to whole clips.
    """

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for ``vhd extract --list``
    weight_files: ClassVar[dict[str, WeightFile]] = {}  # name -> file; keys of --weights
    frame_offsets: ClassVar[tuple[float, ...]] = ()  # empty: no video frames
    # swscale filter for ``frame_size``: ffmpeg's ``scale`` default (what the released features
    # were made with) is bicubic; "AREA" averages, right for strong downsampling
    interpolation: ClassVar[str] = "BICUBIC"
    sample_rate: ClassVar[int | None] = None

    def __init__(self, options: ExtractOptions) -> None:
        self.options = options
        self.clip_len = options.clip_len
        self.device = torch.device(options.device)

    # -- what to decode ----------------------------------------------------------------------
    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) each decoded frame is scaled to (with ``interpolation``) before
        ``video_features``."""
        return width, height

    # -- what it writes ----------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def outputs(cls) -> list[Output]:
        """Every folder written, video/audio first, then the text folder (if any); a class
        method, so a checkpoint's folders can be checked before any weights are loaded."""

    def video_features(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        """(clips, frames_per_clip, H, W, 3) uint8 RGB -> {folder: (clips, dim) float32}."""
        return {}

    def audio_features(self, clips: np.ndarray, has_audio: bool) -> dict[str, np.ndarray]:
        """(clips, samples_per_clip) float32 mono -> {folder: (clips, dim) float32}.

        ``has_audio`` is False for a file without an audio stream (then ``clips`` is zeros).
        """
        return {}

    def text_features(self, query: str) -> np.ndarray | None:
        """(tokens, dim) float32 for one query; None for recipes without a text encoder."""
        return None

    def describe(self) -> dict[str, Any]:
        """Model names and settings for the manifest (weights are added by the runner)."""
        return {}

    @classmethod
    def random_weights(cls, folder: Path) -> dict[str, Path]:
        """Weight files of the right layout with random values, for tests and benchmarks (the
        real loading code then runs without any download). Recipes without weights: ``{}``."""
        return {}

    # -- helpers ----------------------------------------------------------------------------
    @property
    def frames_per_clip(self) -> int:
        return len(self.frame_offsets)

    @property
    def text_output(self) -> Output | None:
        return next((out for out in self.outputs() if out.modality == "text"), None)

    def samples_per_clip(self) -> int:
        assert self.sample_rate is not None
        return round(self.clip_len * self.sample_rate)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A weight file as a state dict: safetensors, or a torch file loaded with weights_only.

    A torch checkpoint that wraps the state dict under ``state_dict`` / ``model`` /
    ``model_state`` (common for released weights) is unwrapped.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
