"""Building clip features: event segments over time, rendered into noisy feature sequences."""

from __future__ import annotations

import numpy as np

from vhd.datamodules.synthetic.config import SynthConfig
from vhd.datamodules.synthetic.world import World

Segment = tuple[int, int, int]  # (event, first clip, end clip exclusive)


def partition(rng: np.random.Generator, total: int, low: int, high: int) -> list[int]:
    """Random lengths in [low, high] summing to ``total`` (short remainder merged)."""
    lengths: list[int] = []
    while sum(lengths) < total:
        lengths.append(min(int(rng.integers(low, high + 1)), total - sum(lengths)))
    if len(lengths) > 1 and lengths[-1] < low:
        remainder = lengths.pop()
        lengths[-1] += remainder
    return lengths


def pick_events(
    rng: np.random.Generator, count: int, choices: np.ndarray, previous: int = -1
) -> list[int]:
    """``count`` events from ``choices``, never the same twice in a row (that would merge them)."""
    events = []
    for _ in range(count):
        options = choices[choices != previous] if len(choices) > 1 else choices
        previous = int(rng.choice(options))
        events.append(previous)
    return events


def peak(length: int) -> np.ndarray:
    """1 at the centre of a run of ``length`` clips, falling linearly towards its ends."""
    centre, half = (length - 1) / 2, length / 2
    return 1.0 - np.abs(np.arange(length) - centre) / (half + 0.5)


def place(rng: np.random.Generator, free: np.ndarray, length: int, tries: int = 30) -> int | None:
    """Start of a run of ``length`` free clips with a free clip either side, or None."""
    num_clips = len(free)
    if length > num_clips:
        return None
    for _ in range(tries):
        start = int(rng.integers(0, num_clips - length + 1))
        if free[max(0, start - 1) : start + length + 1].all():
            return start
    return None


def prototype_track(
    world: World, segments: list[Segment], num_clips: int, prototypes: np.ndarray | None = None
) -> np.ndarray:
    """(num_clips, video_dim): each segment's prototype, strongest mid-segment (saliency peaks)."""
    prototypes = world.event_video if prototypes is None else prototypes
    track = np.zeros((num_clips, prototypes.shape[1]))
    for event, start, end in segments:
        track[start:end] = prototypes[event] * (0.7 + 0.3 * peak(end - start))[:, None]
    return track


def smooth_noise(rng: np.random.Generator, length: int, dim: int, scale: float, width: int = 5):
    """Noise correlated over ``width`` clips: slow drift within a segment."""
    white = rng.normal(size=(length + width - 1, dim))
    return scale * sum(white[i : i + length] for i in range(width)) / np.sqrt(width)


def blend(track: np.ndarray) -> np.ndarray:
    """Cross-fade neighbouring clips so segment boundaries are soft, as in real video."""
    padded = np.concatenate([track[:1], track, track[-1:]])
    return 0.2 * padded[:-2] + 0.6 * padded[1:-1] + 0.2 * padded[2:]


def render_video(
    rng: np.random.Generator, world: World, track: np.ndarray, config: SynthConfig
) -> np.ndarray:
    """Video features (num_clips, video_dim) float32 from a prototype track."""
    num_clips = len(track)
    features = (
        blend(track)
        + config.scene * world.scene(rng)
        + smooth_noise(rng, num_clips, world.video_dim, config.variation)
        + rng.normal(scale=config.noise, size=track.shape)
    )
    return features.astype(np.float32)
