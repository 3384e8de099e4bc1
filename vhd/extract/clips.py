"""Cutting a video into clips the way the benchmark features do.

A video of duration d gives ceil(d / clip_len) clips (QVHighlights: a 150 s video has 75 clips
of 2 s). The last clip reaches past the end: its frames repeat the last frame and its audio is
zeros, so every row of every feature covers the same ``clip_len`` seconds.
"""

from __future__ import annotations

import math

import numpy as np

# a duration this close above a whole number of clips is container rounding, not a new clip
DURATION_TOLERANCE_S = 1e-3


def count_clips(duration: float, clip_len: float) -> int:
    return max(1, math.ceil((duration - DURATION_TOLERANCE_S) / clip_len))


def frame_times(num_clips: int, clip_len: float, offsets: tuple[float, ...]) -> np.ndarray:
    """Instants (s) of the frames of every clip: clip i, offset f -> (i + f) x clip_len."""
    starts = np.arange(num_clips, dtype=np.float64)[:, None]
    return ((starts + np.asarray(offsets, dtype=np.float64)[None]) * clip_len).reshape(-1)


def audio_clips(audio: np.ndarray, num_clips: int, samples_per_clip: int) -> np.ndarray:
    """(num_clips, samples_per_clip): the track cut into clips, zero-padded (or cut) to fit."""
    total = num_clips * samples_per_clip
    padded = np.zeros(total, dtype=np.float32)
    padded[: min(total, len(audio))] = audio[:total]
    return padded.reshape(num_clips, samples_per_clip)
