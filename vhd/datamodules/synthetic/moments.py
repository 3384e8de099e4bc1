"""The ``moments`` kind, in QVHighlights' format: queries about events, windows where they happen.

Each video plants one or two occurrences of each of its query events among filler events, with
window lengths spread over QVHighlights' short, middle and long buckets (all three in every
split). A query is a readable sentence, one noisy token vector per word; its event's verb and
noun words tie it to the video prototypes, a mapping a model has to learn (text and video spaces
differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    prototype_track,
    render_video,
)
from vhd.datamodules.synthetic.world import SUBJECTS, TAILS, World

SPLITS = ("train", "val", "test")
Progress = Callable[[Iterable[int], str, int], Iterable[int]]


GOLDEN = (np.sqrt(5) - 1) / 2


def bucket_of(position: int, config: SynthConfig) -> int:
    """Bucket (0 short <= 10 s, 1 middle <= 30 s, 2 long) of a split's ``position``-th query.

    A golden-ratio sequence instead of random draws: the first three queries of any split hit
    all three buckets, so even tiny splits evaluate every bucket, and the shares still follow
    ``window_buckets``.
    """
    share = (0.8 + position * GOLDEN) % 1.0
    return int(np.searchsorted(np.cumsum(config.window_buckets), share, side="right").clip(0, 2))


def bucket_ranges(config: SynthConfig) -> list[tuple[int, int]]:
    """(fewest, most) clips of a window in each bucket."""
    short = max(1, int(10 // config.clip_len))
    middle = max(short + 1, int(30 // config.clip_len))
    return [(1, short), (short + 1, middle), (middle + 1, max(middle + 1, config.num_clips // 2))]


def window_lengths(
    rng: np.random.Generator, config: SynthConfig, buckets: list[int]
) -> list[list[int]]:
    """Clips of each query's windows: a first one in its bucket, sometimes a second one.

    Windows take at most 70 % of the video; each first window keeps room for the later ones'
    bucket minimum, and second windows only use what is left.
    """
    ranges, budget = bucket_ranges(config), int(0.7 * config.num_clips)
    firsts = []
    for index, bucket in enumerate(buckets):
        reserve = sum(ranges[b][0] for b in buckets[index + 1 :])
        high = max(1, min(ranges[bucket][1], budget - reserve))
        firsts.append(int(rng.integers(min(ranges[bucket][0], high), high + 1)))
        budget -= firsts[-1]
    lengths = []
    for first in firsts:
        lengths.append([first])
        if rng.random() < config.second_window_rate and budget >= 1:
            low, high = ranges[int(rng.choice(3, p=config.window_buckets))]
            lengths[-1].append(int(rng.integers(min(low, budget), min(high, budget) + 1)))
            budget -= lengths[-1][-1]
    return lengths


def plant(
    rng: np.random.Generator, config: SynthConfig, events: np.ndarray, buckets: list[int]
) -> list[Segment]:
    """Segments covering the video: each query event once or twice, fillers in between."""
    planted = [
        (int(event), length)
        for event, lengths in zip(events, window_lengths(rng, config, buckets), strict=True)
        for length in lengths
    ]
    fillers = partition(rng, config.num_clips - sum(length for _, length in planted), 2, 12)
    if len(fillers) + 1 < len(planted):  # too few fillers to keep repeats apart: one each
        firsts: dict[int, int] = {}
        for event, length in planted:
            firsts.setdefault(event, length)
        planted = list(firsts.items())
        fillers = partition(rng, config.num_clips - sum(length for _, length in planted), 2, 12)
    gaps = len(fillers) + 1
    planted = [planted[i] for i in rng.permutation(len(planted))]
    slots = np.sort(rng.choice(gaps, size=len(planted), replace=gaps < len(planted)))
    others = np.setdiff1d(np.arange(config.num_events), events)
    segments: list[Segment] = []
    start, previous = 0, -1
    for gap in range(gaps):
        for slot, (event, length) in zip(slots, planted, strict=True):
            if slot == gap:
                segments.append((event, start, start + length))
                start, previous = start + length, event
        if gap < len(fillers):
            (previous,) = pick_events(rng, 1, others, previous)
            segments.append((previous, start, start + fillers[gap]))
            start += fillers[gap]
    return segments


def query_words(rng: np.random.Generator, verb: str, noun: str) -> list[str]:
    """'a young girl slices the onion in the kitchen': 4 to 11 words."""
    article = "the" if rng.random() < 0.6 else ("an" if noun[0] in "aeiou" else "a")
    subject, tail = SUBJECTS[rng.integers(len(SUBJECTS))], TAILS[rng.integers(len(TAILS))]
    return [*subject.split(), verb, article, noun, *tail.split()]


def saliency_rows(rng: np.random.Generator, windows: list[tuple[int, int]]) -> list[list[int]]:
    """Three annotators' 0-4 ratings per relevant clip, peaking mid-window, each with a bias."""
    bias = rng.normal(scale=0.4, size=3)
    rows = []
    for start, end in windows:
        mean = 1.6 + 2.4 * peak(end - start)[:, None] + bias
        ratings = np.rint(mean + rng.normal(scale=0.6, size=(end - start, 3)))
        rows += np.clip(ratings, 0, 4).astype(int).tolist()
    return rows


def query_record(
    rng: np.random.Generator, world: World, config: SynthConfig, qid: int, vid: str,
    event: int, windows: list[tuple[int, int]],
) -> tuple[dict[str, Any], np.ndarray]:  # fmt: skip
    """The QVHighlights line of one query, and its token features (num_words, text_dim)."""
    words = query_words(rng, *world.event_words[event])
    tokens = np.stack([world.word_vectors[word] for word in words])
    tokens += rng.normal(scale=config.text_noise, size=tokens.shape)
    clip_len = config.clip_len
    record = {
        "qid": qid,
        "query": " ".join(words),
        "duration": seconds(config.num_clips * clip_len),
        "vid": vid,
        "relevant_clip_ids": [clip for start, end in windows for clip in range(start, end)],
        "saliency_scores": saliency_rows(rng, windows),
        "relevant_windows": [[seconds(s * clip_len), seconds(e * clip_len)] for s, e in windows],
    }
    return record, tokens


def split_names(rng: np.random.Generator, count: int, fractions: tuple[float, ...]) -> list[str]:
    """A shuffled split per video: a video and all its queries sit in one split."""
    train, val = round(count * fractions[0]), round(count * fractions[1])
    names = ["train"] * train + ["val"] * min(val, count - train)
    names += ["test"] * (count - len(names))
    return [names[i] for i in rng.permutation(count)]


def write_moments(out: Path, config: SynthConfig, seed: int, progress: Progress) -> None:
    """``annotations/{train,val,test}.jsonl``, ``video_features/``, ``text_features/``."""
    world = World(config)
    for folder in ("annotations", "video_features", "text_features"):
        (out / folder).mkdir(parents=True)
    split_of = split_names(np.random.default_rng([seed, 1, 0]), config.num_videos,
                           config.split_fractions)  # fmt: skip
    records: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    queries = config.queries_per_video
    qid = 0
    for index in progress(range(config.num_videos), "moments", config.num_videos):
        rng = np.random.default_rng([seed, 1, 1, index])
        vid = f"synth_{index:05d}_0.0_{config.num_clips * config.clip_len:.1f}"
        events = rng.choice(config.num_events, size=queries, replace=False)
        position = len(records[split_of[index]])
        segments = plant(
            rng, config, events, [bucket_of(position + j, config) for j in range(queries)]
        )
        track = prototype_track(world, segments, config.num_clips)
        save_arrays(
            out / "video_features" / f"{vid}.npz", features=render_video(rng, world, track, config)
        )
        for event in events:
            windows = [(start, end) for ev, start, end in segments if ev == event]
            record, tokens = query_record(rng, world, config, qid, vid, int(event), windows)
            save_arrays(
                out / "text_features" / f"qid{qid}.npz",
                last_hidden_state=tokens,
                pooler_output=tokens.mean(axis=0),
            )
            records[split_of[index]].append(record)
            qid += 1
    for split, lines in records.items():
        write_jsonl(out / "annotations" / f"{split}.jsonl", lines)
