"""``slowfast``: SlowFast 8x8 R50 (Kinetics-400) clip features, 2304-d per clip.

The released QVHighlights ``slowfast_features`` come from the HERO video feature extractor
(linjieli222/HERO_Video_Feature_Extractor, named in the Moment-DETR README), run with
``--clip_len 2``. That extractor decodes at 30 fps, scales the short side to 224 (long side
truncated), centre-crops 224x224 and, inside each 60-frame clip, takes 32 frames at
``linspace(0, 63, 32)`` truncated and clamped to frame 59 (so the last two repeat frame 59), as
its 64-frame window (32 frames x sampling rate 2) overruns a 2-s clip. The slow pathway keeps
``linspace(0, 31, 8)`` of those (alpha 4); pixels are scaled to [0, 1] and normalised with
mean 0.45, std 0.225; the feature is the global average of each pathway's last stage
(2048 slow + 256 fast) before the classifier. This recipe follows that reading, choosing the
frames as the middle of the matching 1/30-s slots so any source frame rate lands on the frame
that 30-fps decoding would keep. The offsets are fractions of the clip, so another ``clip_len``
stretches the same pattern.

Differences that remain: HERO loaded the PySlowFast Caffe2 checkpoint (SLOWFAST_8x8_R50.pkl),
here the PyTorchVideo model zoo's SLOWFAST_8x8_R50.pyth of the same architecture; HERO scaled
with ffmpeg's bicubic filter and stored float16; HERO's window also shrinks with the source's
integer frame rate (exact for 30 fps). Features are therefore close in kind to the released
ones, not bit-equal.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import functional as F

from vhd.extract.recipes.base import (
    ExtractOptions,
    Output,
    Recipe,
    WeightFile,
    load_state_dict_file,
)

FPS = 30  # HERO's decoding rate
CLIP_FRAMES = 2 * FPS  # frames in a 2-s clip at that rate
WINDOW = 64  # SlowFast 8x8: 32 frames at sampling rate 2
NUM_FRAMES = 32
ALPHA = 4  # the slow pathway sees every ALPHA-th frame
SIZE = 224  # short side and crop
MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)
DIM = 2048 + 256  # slow + fast channels of the last stage
FEATURE_BLOCKS = 5  # stem and four residual stages; then the pool and the classifier


def hero_frame_indices() -> list[int]:
    """Frame of the 60-frame clip each of the 32 inputs comes from, as HERO samples them."""
    return [min(j * (WINDOW - 1) // (NUM_FRAMES - 1), CLIP_FRAMES - 1) for j in range(NUM_FRAMES)]


def build_model() -> nn.Module:
    """The SlowFast R50 network, randomly initialised (weights come from a file)."""
    with warnings.catch_warnings():  # pytorchvideo's imports use the deprecated torch.jit.script
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        from pytorchvideo.models.hub import slowfast_r50

    return slowfast_r50(pretrained=False)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """A ``ValueError`` naming ``path`` and the first misfits, before a strict load."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{what} ({len(keys)}): {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        if keys
    ]
    if problems:
        raise ValueError(f"{path} is not a SlowFast 8x8 R50 state dict: {'; '.join(problems)}")


def pack_pathways(frames: torch.Tensor) -> list[torch.Tensor]:
    """(B, C, T, H, W) -> [slow, fast]: the slow pathway keeps T // ALPHA evenly spread frames."""
    count = frames.shape[2]
    index = torch.linspace(0, count - 1, count // ALPHA, device=frames.device).long()
    return [frames.index_select(2, index), frames]


class SlowFast(Recipe):
    name = "slowfast"
    summary = "SlowFast 8x8 R50 Kinetics-400 pooled features (2304-d), as the released QVH ones"
    weight_files: ClassVar[dict[str, WeightFile]] = {
        "slowfast": WeightFile(
            filename="SLOWFAST_8x8_R50.pyth",
            url="https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth",
            description="SlowFast 8x8 R50 Kinetics-400 weights from the PyTorchVideo model zoo "
            "(SLOWFAST_8x8_R50.pyth)",
        )
    }
    frame_offsets: ClassVar[tuple[float, ...]] = tuple(
        (index + 0.5) / CLIP_FRAMES for index in hero_frame_indices()
    )

    def __init__(self, options: ExtractOptions) -> None:
        super().__init__(options)
        if "slowfast" not in options.weights:
            raise ValueError(
                "the slowfast recipe needs weights['slowfast'] (SLOWFAST_8x8_R50.pyth)"
            )
        self.model = self._load(Path(options.weights["slowfast"])).to(self.device).eval()

    @staticmethod
    def _load(path: Path) -> nn.Module:
        try:
            state = load_state_dict_file(path)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
            raise ValueError(f"{path} is not a readable torch weight file: {err}") from err
        model = build_model()
        check_state_dict(model, state, path)
        model.load_state_dict(state, strict=True)
        return model

    @classmethod
    def random_weights(cls, folder: Path) -> dict[str, Path]:
        path = Path(folder) / "slowfast_random.pyth"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = build_model().state_dict()
        # laid out as the model zoo file ({"model_state": ...}); half precision: a smaller file
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        torch.save({"model_state": half}, path)
        return {"slowfast": path}

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """Short side SIZE, the long side scaled and truncated (as HERO's ffmpeg command)."""
        if height >= width:
            return SIZE, int(height * SIZE / width)
        return int(width * SIZE / height), SIZE

    @classmethod
    def outputs(cls) -> list[Output]:
        return [Output("slowfast_features", DIM, "video")]

    def _inputs(self, clips: np.ndarray) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> (B, 3, T, SIZE, SIZE) normalised, centre crop as HERO's."""
        frames = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        frames = frames.permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W)
        height, width = frames.shape[-2:]
        if min(height, width) < SIZE:
            raise ValueError(f"frames of {width}x{height} are smaller than the {SIZE} crop")
        frames = F.crop(frames, (height - SIZE) // 2, (width - SIZE) // 2, SIZE, SIZE)
        frames = F.normalize(F.to_dtype(frames, torch.float32, scale=True), MEAN, STD)
        return frames.permute(0, 2, 1, 3, 4)

    @torch.inference_mode()
    def pooled(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, T, H, W) -> (B, DIM): each pathway averaged over T, H, W, joined."""
        x = pack_pathways(inputs)
        for block in self.model.blocks[:FEATURE_BLOCKS]:
            x = block(x)
        return torch.cat([pathway.mean(dim=(2, 3, 4)) for pathway in x], dim=1)

    def video_features(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        if clips.shape[1] != NUM_FRAMES:
            raise ValueError(f"expected {NUM_FRAMES} frames per clip, got {clips.shape[1]}")
        step = max(1, self.options.batch_size)
        parts = [
            self.pooled(self._inputs(clips[start : start + step])).float().cpu()
            for start in range(0, len(clips), step)
        ]
        features = torch.cat(parts) if parts else torch.zeros(0, DIM)
        return {"slowfast_features": features.numpy()}

    def describe(self) -> dict[str, Any]:
        return {
            "model": "SlowFast 8x8 R50, Kinetics-400 (pytorchvideo slowfast_r50)",
            "feature": "global average of each pathway's last stage, slow 2048 + fast 256",
            "frames_per_clip": NUM_FRAMES,
            "frame_offsets": list(self.frame_offsets),
            "sampling": f"HERO: {FPS} fps grid, linspace(0, {WINDOW - 1}, {NUM_FRAMES}) clamped",
            "alpha": ALPHA,
            "resize": f"short side {SIZE}, long side truncated",
            "crop": f"centre {SIZE}x{SIZE}",
            "normalisation": {"scale": "1/255", "mean": list(MEAN), "std": list(STD)},
        }
