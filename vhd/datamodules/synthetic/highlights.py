"""The ``highlights`` (YouTube Highlights / TVSum format) and ``unlabeled`` kinds.

Videos are filler events with rare highlight segments of their domain's highlight events
(``highlight_rate`` of the clips). The visual cue is strong but deliberately unreliable: a share
of highlight segments shows no highlight event (``hidden_rate``) and decoy segments show one
without being highlights (``decoy_rate``). The audio carries a highlight signature on every true
highlight clip, ``audio_lag`` clips late and noisy, so fusing audio with video beats video alone,
while a label-free model still finds the rare, outlying highlight-looking clips well above chance.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vhd.datamodules.synthetic.config import SynthConfig
from vhd.datamodules.synthetic.io import save_arrays, seconds, write_jsonl
from vhd.datamodules.synthetic.signals import (
    Segment,
    partition,
    peak,
    pick_events,
    place,
    prototype_track,
    render_video,
    smooth_noise,
)
from vhd.datamodules.synthetic.world import World

YOUTUBE_DOMAINS = ("dog", "gymnastics", "parkour", "skating", "skiing", "surfing")
TVSUM_TOPICS = {
    "BK": "beekeeping", "BT": "bike tricks", "DS": "dog show", "FM": "flash mob",
    "GA": "grooming an animal", "MS": "making a sandwich", "PK": "parkour", "PR": "parade",
    "VT": "changing a vehicle tire", "VU": "getting a vehicle unstuck",
}  # fmt: skip
TITLES = (
    "{Topic} part {n}", "How to: {topic}", "{Topic} compilation", "My first time {topic}",
    "{Topic} - the best moments", "Weekend vlog #{n}: {topic}",
)  # fmt: skip
ECHO = {-1: 0.5, 0: 1.0, 1: 0.5}  # the signature's response around the lag, by clip offset
Progress = Callable[[Iterable[int], str, int], Iterable[int]]


@dataclass
class HighlightVideo:
    video: np.ndarray  # (num_clips, video_dim) float32
    audio: np.ndarray  # (num_clips, audio_dim) float32
    labels: np.ndarray  # (num_clips,) bool


def highlight_video(
    rng: np.random.Generator, world: World, config: SynthConfig, highlights: np.ndarray
) -> HighlightVideo:
    """One video with highlight segments drawn from the prototypes ``highlights`` (k, dim)."""
    num_clips = int(rng.integers(config.min_clips, config.max_clips + 1))
    lengths = partition(rng, num_clips, 2, 10)
    events = pick_events(rng, len(lengths), np.arange(config.num_events))
    starts = np.cumsum([0, *lengths[:-1]])
    segments: list[Segment] = [
        (event, int(start), int(start + length))
        for event, start, length in zip(events, starts, lengths, strict=True)
    ]
    track = prototype_track(world, segments, num_clips)
    labels, free = np.zeros(num_clips, bool), np.ones(num_clips, bool)
    target = max(1, round(config.highlight_rate * rng.uniform(0.6, 1.4) * num_clips))
    shown = []  # runs that look like a highlight: visible highlights and decoys
    while labels.sum() < target:
        length = min(int(rng.integers(2, 7)), target - int(labels.sum()) + 1, num_clips // 2)
        start = place(rng, free, length)
        if start is None:
            break
        labels[start : start + length], free[start : start + length] = True, False
        if rng.random() >= config.hidden_rate:
            shown.append((start, start + length))
    runs = int((np.diff(np.r_[0, labels.astype(int)]) == 1).sum())
    for _ in range(rng.binomial(runs, config.decoy_rate)):
        length = int(rng.integers(2, 5))
        start = place(rng, free, length)
        if start is not None:
            free[start : start + length] = False
            shown.append((start, start + length))
    for start, end in shown:
        prototype = highlights[rng.integers(len(highlights))]
        track[start:end] = prototype * (0.7 + 0.3 * peak(end - start))[:, None]
    video = render_video(rng, world, track, config)
    return HighlightVideo(video, render_audio(rng, world, config, segments, labels), labels)


def render_audio(
    rng: np.random.Generator, world: World, config: SynthConfig, segments: list[Segment],
    labels: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Audio features: weak event sounds, the highlight signature peaking ``audio_lag`` clips late
    (a crowd cheers after the moment), noisy."""
    num_clips, lag = len(labels), config.audio_lag
    audio = np.zeros((num_clips, world.audio_dim))
    for event, start, end in segments:
        audio[start:end] = world.event_audio[event]
    echo = sum(weight * shifted(labels, lag + offset) for offset, weight in ECHO.items())
    audio += echo[:, None] * (config.audio_strength * world.highlight_audio)
    audio += smooth_noise(rng, num_clips, world.audio_dim, 0.3)
    audio += rng.normal(scale=config.audio_noise, size=audio.shape)
    return audio.astype(np.float32)


def shifted(values: np.ndarray, by: int) -> np.ndarray:
    """``values`` delayed by ``by`` clips (advanced when negative), zero-filled."""
    out = np.zeros(len(values))
    if by >= 0:
        out[by:] = values[: max(0, len(values) - by)]
    else:
        out[:by] = values[-by:]
    return out


def domain_names(config: SynthConfig) -> list[str]:
    """The domains: named in the config, else the real benchmark's (extended if asked for more)."""
    if config.domains is not None:
        return list(config.domains)
    names = list(TVSUM_TOPICS if config.style == "tvsum" else YOUTUBE_DOMAINS)
    count = len(names) if config.num_domains is None else config.num_domains
    return (names + [f"domain{i}" for i in range(len(names), count)])[:count]


def split_sizes(config: SynthConfig) -> tuple[int, int]:
    """(train, val) videos per domain: TVSum 4 / 1, YouTube 60 % / 40 % like the real ones."""
    if config.style == "tvsum":
        default = (4, 1)
    else:
        train = round(0.6 * config.videos_per_domain)
        default = (train, config.videos_per_domain - train)
    return (
        default[0] if config.train_per_domain is None else config.train_per_domain,
        default[1] if config.val_per_domain is None else config.val_per_domain,
    )


def youtube_record(
    rng: np.random.Generator, vid: str, domain: str, labels: np.ndarray, clip_len: float
) -> dict[str, Any]:
    """A YouTube Highlights line: 0/1 label per clip, frame ranges of overlapping clips, match."""
    fps = float(rng.choice([24.0, 25.0, 30.0]))
    stride, num_clips = fps * clip_len, len(labels)
    frames = num_clips * stride
    near = (
        np.convolve(labels.astype(float), np.ones(3), "same") > 0
    )  # next to a highlight: ambiguous (0)
    match = np.where(labels, 1, np.where(near & (rng.random(num_clips) < 0.5), 0, -1))
    return {
        "qid": vid,
        "query": domain,
        "duration": frames / fps,
        "vid": vid,
        "relevant_clip_ids": None,
        "relevant_windows": None,
        "label": [[int(value)] for value in labels],
        "domain": domain,
        "frames": frames,
        "fps": fps,
        "clip": [[i * stride, min(i * stride + 2 * stride, frames)] for i in range(num_clips)],
        "match": match.tolist(),
    }


def tvsum_record(
    rng: np.random.Generator, vid: str, domain: str, labels: np.ndarray, config: SynthConfig,
    index: int,
) -> dict[str, Any]:  # fmt: skip
    """A TVSum line: a title and (num_clips, 20) 1-5 scores, high on highlights, annotators
    disagreeing (own bias, own sensitivity, noise)."""
    topic = TVSUM_TOPICS.get(domain, domain)
    title = TITLES[rng.integers(len(TITLES))].format(
        topic=topic, Topic=topic.capitalize(), n=index + 1
    )
    bias, gain = rng.normal(scale=0.3, size=20), rng.uniform(0.5, 1.2, size=20)
    raw = 1.3 + bias + 2.5 * gain * labels[:, None] + rng.normal(scale=0.7, size=(len(labels), 20))
    return {
        "qid": vid,
        "query": title,
        "duration": seconds(len(labels) * config.clip_len),
        "vid": vid,
        "relevant_clip_ids": None,
        "relevant_windows": None,
        "label": np.clip(np.rint(raw), 1, 5).tolist(),
        "domain": domain,
    }


def save_video(out: Path, vid: str, clip: HighlightVideo) -> None:
    save_arrays(out / "video_features" / f"{vid}.npz", features=clip.video)
    save_arrays(out / "audio_features" / f"{vid}.npz", features=clip.audio)


def write_highlights(out: Path, config: SynthConfig, seed: int, progress: Progress) -> None:
    """``{youtube_train,youtube_valid}.jsonl`` or ``{tvsum_train,tvsum_val}.jsonl``,
    ``splits.json``, ``video_features/``, ``audio_features/``."""
    world = World(config)
    (out / "video_features").mkdir(parents=True)
    (out / "audio_features").mkdir()
    tvsum = config.style == "tvsum"
    domains, (train, val) = domain_names(config), split_sizes(config)
    splits: dict[str, dict[str, list[str]]] = {}
    records: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for slot in progress(range(len(domains)), f"highlights ({config.style})", len(domains)):
        domain, highlights = domains[slot], world.highlight_video(slot)
        splits[domain] = {"train": [], "val": []}
        for index in range(train + val):
            rng = np.random.default_rng([seed, 2, slot, index])
            vid, split = f"{domain}_{index:04d}", "train" if index < train else "val"
            clip = highlight_video(rng, world, config, highlights)
            save_video(out, vid, clip)
            record = (
                tvsum_record(rng, vid, domain, clip.labels, config, index)
                if tvsum
                else youtube_record(rng, vid, domain, clip.labels, config.clip_len)
            )
            records[split].append(record)
            splits[domain][split].append(vid)
    prefix, val_name = ("tvsum", "val") if tvsum else ("youtube", "valid")
    write_jsonl(out / f"{prefix}_train.jsonl", records["train"])
    write_jsonl(out / f"{prefix}_{val_name}.jsonl", records["val"])
    (out / "splits.json").write_text(json.dumps(splits, indent=1))


def write_unlabeled(out: Path, config: SynthConfig, seed: int, progress: Progress) -> None:
    """``videos.jsonl``, ``video_features/``, ``audio_features/``: highlights of every domain
    slot at the same rates, no labels."""
    world = World(config)
    (out / "video_features").mkdir(parents=True)
    (out / "audio_features").mkdir()
    slots = config.num_domains or len(TVSUM_TOPICS)
    highlights = np.concatenate([world.highlight_video(slot) for slot in range(slots)])
    rows = []
    for index in progress(range(config.num_videos), "unlabeled", config.num_videos):
        vid = f"unlabeled_{index:05d}"
        clip = highlight_video(np.random.default_rng([seed, 3, index]), world, config, highlights)
        save_video(out, vid, clip)
        rows.append({"vid": vid, "duration": seconds(len(clip.labels) * config.clip_len)})
    write_jsonl(out / "videos.jsonl", rows)
