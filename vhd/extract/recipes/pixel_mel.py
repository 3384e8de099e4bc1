"""``pixel_mel``: downsampled pixels and log-mel audio, no weights, fast on any machine.

RASL's Table V trains on raw pixel input; HPCL and the tests need audio-visual features that a
CPU can extract at many times real time. Per clip:

- ``pixel_features`` (1024): the mean RGB of ``FRAMES_PER_CLIP`` frames (evenly spaced in the
  clip) scaled to 16x16 by area averaging (768 values in [0, 1]), then the mean absolute
  difference between consecutive frames in grey (256 values): what the picture shows and how
  much it moves.
- ``mel_features`` (128): a 64-band log-mel spectrogram (25 ms windows, 10 ms hop, 16 kHz, as
  common audio front ends use), its mean and its standard deviation over the clip.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torchaudio

from vhd.extract.recipes.base import ExtractOptions, Output, Recipe

FRAMES_PER_CLIP = 4
GRID = 16  # frames are scaled to GRID x GRID
N_MELS = 64
LOG_FLOOR = 1e-6
GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma


class PixelMel(Recipe):
    name = "pixel_mel"
    summary = "16x16 pixels + motion (1024-d) and 64-band log-mel (128-d); no weights"
    frame_offsets: ClassVar[tuple[float, ...]] = tuple(
        (j + 0.5) / FRAMES_PER_CLIP for j in range(FRAMES_PER_CLIP)
    )
    sample_rate = 16000
    interpolation = "AREA"  # each of the 16x16 cells is the mean of its pixels

    def __init__(self, options: ExtractOptions) -> None:
        super().__init__(options)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=400, hop_length=160, n_mels=N_MELS
        ).to(self.device)

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return GRID, GRID

    @classmethod
    def outputs(cls) -> list[Output]:
        return [
            Output("pixel_features", 3 * GRID * GRID + GRID * GRID, "video"),
            Output("mel_features", 2 * N_MELS, "audio"),
        ]

    def video_features(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        frames = clips.astype(np.float32) / 255.0  # (clips, frames, H, W, 3)
        appearance = frames.mean(axis=1).reshape(len(clips), -1)
        grey = frames @ GREY  # (clips, frames, H, W)
        motion = np.abs(np.diff(grey, axis=1)).mean(axis=1).reshape(len(clips), -1)
        return {"pixel_features": np.concatenate([appearance, motion], axis=1)}

    @torch.inference_mode()
    def audio_features(self, clips: np.ndarray, has_audio: bool) -> dict[str, np.ndarray]:
        waves = torch.from_numpy(clips).to(self.device)
        log_mel = torch.log(self.mel(waves) + LOG_FLOOR)  # (clips, mels, frames)
        stats = torch.cat([log_mel.mean(dim=-1), log_mel.std(dim=-1, correction=0)], dim=1)
        return {"mel_features": stats.float().cpu().numpy()}

    def describe(self) -> dict[str, Any]:
        return {
            "pixels": f"mean RGB of {FRAMES_PER_CLIP} frames at {GRID}x{GRID} + grey motion",
            "frame_offsets": list(self.frame_offsets),
            "mel": {"sample_rate": self.sample_rate, "n_fft": 400, "hop": 160, "n_mels": N_MELS},
        }
