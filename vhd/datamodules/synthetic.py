"""Embedded synthetic data in the real benchmarks' on-disk formats, with planted structure.

A shared *world* (fixed by ``world_seed``) holds a vocabulary of events: each has a video
prototype, a few text "word" vectors and an audio prototype. Common events live in one half of the
video space and rare highlight events in the other, so highlights are visually distinct even after
L2 normalisation. Videos are sequences of event segments over clips of ``clip_len`` seconds:

- ``moments`` (QVHighlights format): each query is a few noisy word vectors of one event of its
  video plus filler words; the relevant windows are that event's segments; saliency peaks at the
  segment centres.
- ``highlights`` (YouTube Highlights or TVSum format): rare highlight events of the domain are the
  labelled clips; audio echoes them (a highlight signature, one clip late, with noise), so
  audio-visual models have extra signal.
- ``unlabeled`` (pretraining corpus): the same events and rates, no labels.

The three kinds share dimensions and prototypes, so a model pretrained on ``unlabeled`` can be
evaluated on ``highlights``. Everything is deterministic for ``(world_seed, seed)``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

FORMAT_VERSION = 1
KINDS = ("moments", "highlights", "unlabeled")
YOUTUBE_DOMAINS = ("dog", "gymnastics", "parkour", "skating", "skiing", "surfing")
TVSUM_DOMAINS = ("BK", "BT", "DS", "FM", "GA", "MS", "PK", "PR", "VT", "VU")
VERBS = ("opens", "cuts", "holds", "throws", "paints", "washes", "lifts", "drops", "cooks", "fixes")
NOUNS = ("door", "onion", "ball", "fence", "car", "dog", "box", "guitar", "window", "bike")


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator; presets in ``SIZES`` override the counts."""

    world_seed: int = 0
    video_dim: int = 256
    text_dim: int = 128
    audio_dim: int = 64
    num_events: int = 24  # common events
    highlights_per_domain: int = 2  # rare highlight events of each domain
    clip_len: float = 2.0
    noise: float = 0.9  # per-clip Gaussian noise (prototypes have unit norm per dim-scale)
    # moments
    num_videos: int = 150
    queries_per_video: int = 2
    num_clips: int = 75
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    # highlights / unlabeled
    style: str = "youtube"
    num_domains: int = 3
    videos_per_domain: int = 20
    min_clips: int = 20
    max_clips: int = 60
    highlight_rate: float = 0.15
    highlight_visual_strength: float = 0.8  # < 1: the visual highlight cue is noisy on purpose
    audio_lag: int = 1
    audio_noise: float = 0.6


SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(num_videos=12, num_clips=30, videos_per_domain=5, min_clips=12, max_clips=24),
    "quickstart": {},
    "full": dict(num_videos=5000, videos_per_domain=100, num_domains=6),
}


class World:
    """Event prototypes shared by all kinds: the planted, learnable structure."""

    def __init__(self, config: SynthConfig, num_domains: int) -> None:
        rng = np.random.default_rng(config.world_seed)
        half = config.video_dim // 2
        num_highlights = config.highlights_per_domain * max(num_domains, len(TVSUM_DOMAINS))
        self.common_video = self._unit(rng, config.num_events, config.video_dim, slice(0, half))
        self.highlight_video = self._unit(
            rng, num_highlights, config.video_dim, slice(half, config.video_dim)
        )
        self.words = self._unit(rng, config.num_events * 3, config.text_dim).reshape(
            config.num_events, 3, config.text_dim
        )
        self.filler_words = self._unit(rng, 12, config.text_dim)
        self.common_audio = self._unit(rng, config.num_events, config.audio_dim)
        self.highlight_audio = self._unit(rng, 1, config.audio_dim)[0] * 2.0
        self.names = [
            (VERBS[i % len(VERBS)], NOUNS[(i * 7 + i // len(VERBS)) % len(NOUNS)])
            for i in range(config.num_events)
        ]

    @staticmethod
    def _unit(rng: np.random.Generator, count: int, dim: int, span: slice | None = None):
        """Random directions scaled so each coordinate has unit variance, like noisy features."""
        vectors = np.zeros((count, dim))
        span = span or slice(0, dim)
        block = rng.normal(size=(count, span.stop - span.start))
        vectors[:, span] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return vectors * np.sqrt(dim)


def _segments(rng: np.random.Generator, num_clips: int, events: int, lo: int, hi: int):
    """Consecutive (event, start, end) segments covering the video, no event twice in a row."""
    segments, start, previous = [], 0, -1
    while start < num_clips:
        event = int(rng.integers(events))
        if event == previous:
            continue
        end = min(num_clips, start + int(rng.integers(lo, hi + 1)))
        segments.append((event, start, end))
        start, previous = end, event
    return segments


def _smooth_noise(rng: np.random.Generator, length: int, dim: int, scale: float) -> np.ndarray:
    """Noise with some temporal correlation, so neighbouring clips look alike."""
    white = rng.normal(size=(length + 2, dim))
    return scale * (white[:-2] + white[1:-1] + white[2:]) / np.sqrt(3)


def _save(path: Path, **arrays: np.ndarray) -> None:
    np.savez(path, **{key: value.astype(np.float32) for key, value in arrays.items()})


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def _split_names(count: int, fractions: tuple[float, float, float]) -> list[str]:
    train = round(count * fractions[0])
    val = round(count * fractions[1])
    return ["train"] * train + ["val"] * val + ["test"] * (count - train - val)


# -- moments ---------------------------------------------------------------------------------------
def _saliency_rows(rng: np.random.Generator, start: int, end: int) -> list[list[int]]:
    """Three annotators' 0-4 ratings peaking at the segment centre."""
    centre, half = (start + end - 1) / 2, max((end - start) / 2, 1.0)
    rows = []
    for clip in range(start, end):
        peak = 1.0 - abs(clip - centre) / (half + 0.5)
        ratings = np.rint(1.5 + 2.5 * peak + rng.normal(scale=0.7, size=3))
        rows.append(np.clip(ratings, 0, 4).astype(int).tolist())
    return rows


def _query_tokens(rng: np.random.Generator, world: World, event: int, noise: float) -> np.ndarray:
    words = world.words[event][rng.permutation(3)[: int(rng.integers(2, 4))]]
    fillers = world.filler_words[
        rng.integers(len(world.filler_words), size=int(rng.integers(2, 9)))
    ]
    tokens = np.concatenate([fillers[:1], words, fillers[1:]])
    return tokens + rng.normal(scale=noise * 0.5, size=tokens.shape)


def generate_moments(out: Path, config: SynthConfig, rng: np.random.Generator) -> None:
    world = World(config, config.num_domains)
    for folder in ("annotations", "video_features", "text_features"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    split_of = _split_names(config.num_videos, config.split_fractions)
    rng.shuffle(split_of)
    qid = 0
    for index in track(range(config.num_videos), description="moments"):
        vid = f"synth_{index:05d}_0.0_{config.num_clips * config.clip_len:.1f}"
        segments = _segments(rng, config.num_clips, config.num_events, 2, 20)
        features = _smooth_noise(rng, config.num_clips, config.video_dim, config.noise)
        for event, start, end in segments:
            features[start:end] += world.common_video[event]
        _save(out / "video_features" / f"{vid}.npz", features=features)
        present = sorted({event for event, _, _ in segments})
        for event in rng.choice(
            present, size=min(config.queries_per_video, len(present)), replace=False
        ):
            occurrences = [(s, e) for ev, s, e in segments if ev == event][:3]
            clip_ids = [clip for s, e in occurrences for clip in range(s, e)]
            verb, noun = world.names[event]
            tokens = _query_tokens(rng, world, int(event), config.noise)
            _save(
                out / "text_features" / f"qid{qid}.npz",
                last_hidden_state=tokens,
                pooler_output=tokens.mean(axis=0),
            )
            splits[split_of[index]].append(
                {
                    "qid": qid,
                    "query": f"a person {verb} the {noun}",
                    "duration": config.num_clips * config.clip_len,
                    "vid": vid,
                    "relevant_windows": [
                        [s * config.clip_len, e * config.clip_len] for s, e in occurrences
                    ],
                    "relevant_clip_ids": clip_ids,
                    "saliency_scores": [
                        row for s, e in occurrences for row in _saliency_rows(rng, s, e)
                    ],
                }
            )
            qid += 1
    for split, records in splits.items():
        _write_jsonl(out / "annotations" / f"{split}.jsonl", records)


# -- highlights and unlabeled ---------------------------------------------------------------------
def _highlight_video(
    rng: np.random.Generator, world: World, config: SynthConfig, highlight_events: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(video, audio, binary labels) of one video with rare highlight segments."""
    num_clips = int(rng.integers(config.min_clips, config.max_clips + 1))
    segments = _segments(rng, num_clips, config.num_events, 3, 12)
    labels = np.zeros(num_clips)
    video = _smooth_noise(rng, num_clips, config.video_dim, config.noise)
    audio = _smooth_noise(rng, num_clips, config.audio_dim, config.audio_noise)
    for event, start, end in segments:
        video[start:end] += world.common_video[event]
        audio[start:end] += world.common_audio[event]
    target = max(1, round(config.highlight_rate * num_clips))
    while labels.sum() < target:
        length = int(rng.integers(2, 6))
        start = int(rng.integers(0, max(1, num_clips - length)))
        event = int(rng.choice(highlight_events))
        end = min(num_clips, start + length)
        labels[start:end] = 1
        video[start:end] = (
            _smooth_noise(rng, end - start, config.video_dim, config.noise)
            + config.highlight_visual_strength * world.highlight_video[event]
        )
    echo = np.roll(labels, config.audio_lag)
    echo[: config.audio_lag] = 0
    audio += echo[:, None] * world.highlight_audio
    return video, audio, labels


def _tvsum_scores(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """(clips, 20) importance ratings 1-5: high on highlights, with annotator disagreement."""
    base = 1.5 + 2.5 * labels[:, None] + rng.normal(scale=0.8, size=(len(labels), 20))
    return np.clip(np.rint(base), 1, 5)


def generate_highlights(out: Path, config: SynthConfig, rng: np.random.Generator) -> None:
    world = World(config, config.num_domains)
    tvsum = config.style == "tvsum"
    if config.style not in ("youtube", "tvsum"):
        raise ValueError(f"unknown highlights style {config.style!r}; use youtube or tvsum")
    domains = (TVSUM_DOMAINS if tvsum else YOUTUBE_DOMAINS)[: config.num_domains]
    (out / "video_features").mkdir(parents=True, exist_ok=True)
    (out / "audio_features").mkdir(exist_ok=True)
    splits: dict[str, dict[str, list[str]]] = {}
    records: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    per_domain = 5 if tvsum else config.videos_per_domain
    for domain_index, domain in enumerate(track(domains, description="highlights")):
        own = np.arange(config.highlights_per_domain) + domain_index * config.highlights_per_domain
        train_count = 4 if tvsum else round(per_domain * 0.6)
        splits[domain] = {"train": [], "val": []}
        for index in range(per_domain):
            vid = f"{domain}_{index:04d}"
            video, audio, labels = _highlight_video(rng, world, config, own)
            _save(out / "video_features" / f"{vid}.npz", features=video)
            _save(out / "audio_features" / f"{vid}.npz", features=audio)
            split = "train" if index < train_count else "val"
            splits[domain][split].append(vid)
            duration = len(labels) * config.clip_len
            record: dict[str, Any] = {"qid": vid, "query": domain, "duration": duration, "vid": vid}
            if tvsum:
                record.update(domain=domain, label=_tvsum_scores(rng, labels).tolist())
            else:
                record.update(
                    relevant_clip_ids=None,
                    relevant_windows=None,
                    label=[[int(value)] for value in labels],
                    domain=domain,
                )
            records[split].append(record)
    prefix, val_name = ("tvsum", "val") if tvsum else ("youtube", "valid")
    _write_jsonl(out / f"{prefix}_train.jsonl", records["train"])
    _write_jsonl(out / f"{prefix}_{val_name}.jsonl", records["val"])
    (out / "splits.json").write_text(json.dumps(splits, indent=1))


def generate_unlabeled(out: Path, config: SynthConfig, rng: np.random.Generator) -> None:
    world = World(config, config.num_domains)
    (out / "video_features").mkdir(parents=True, exist_ok=True)
    (out / "audio_features").mkdir(exist_ok=True)
    highlight_events = np.arange(config.highlights_per_domain * config.num_domains)
    rows = []
    count = config.videos_per_domain * config.num_domains
    for index in track(range(count), description="unlabeled"):
        vid = f"unlabeled_{index:05d}"
        video, audio, _ = _highlight_video(rng, world, config, highlight_events)
        _save(out / "video_features" / f"{vid}.npz", features=video)
        _save(out / "audio_features" / f"{vid}.npz", features=audio)
        rows.append({"vid": vid, "duration": len(video) * config.clip_len})
    _write_jsonl(out / "videos.jsonl", rows)


GENERATORS = {
    "moments": generate_moments,
    "highlights": generate_highlights,
    "unlabeled": generate_unlabeled,
}


# -- entry points --------------------------------------------------------------------------------
def resolve_config(size: str, **overrides: Any) -> SynthConfig:
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; choose one of {list(SIZES)}")
    known = {f.name for f in fields(SynthConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown synthetic parameters {sorted(unknown)}; known: {sorted(known)}")
    values = {**SIZES[size], **overrides}
    if "split_fractions" in values:
        values["split_fractions"] = tuple(values["split_fractions"])
    return replace(SynthConfig(), **values)


def _manifest(kind: str, seed: int, size: str, config: SynthConfig) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "seed": seed,
        "size": size,
        "config": json.loads(json.dumps(asdict(config))),
    }


def generate(kind: str, out: str | Path, seed: int = 0, size: str = "quickstart", **overrides):
    """Write a dataset of ``kind`` into ``out`` (replacing it) and return ``out``.

    Files are written into a temporary sibling folder that is renamed at the end, so readers never
    see half a dataset and concurrent callers cannot interleave.
    """
    if kind not in GENERATORS:
        raise ValueError(f"unknown synthetic kind {kind!r}; choose one of {list(KINDS)}")
    config = resolve_config(size, **overrides)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        GENERATORS[kind](staging, config, np.random.default_rng([seed, FORMAT_VERSION]))
        (staging / "synth.json").write_text(json.dumps(_manifest(kind, seed, size, config)))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def ensure_synthetic(
    kind: str, out: str | Path, seed: int = 0, size: str = "quickstart", **overrides
):
    """Generate only when ``out`` lacks a dataset made with exactly these parameters."""
    out = Path(out)
    wanted = _manifest(kind, seed, size, resolve_config(size, **overrides))
    manifest = out / "synth.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == wanted:
        return out
    return generate(kind, out, seed=seed, size=size, **overrides)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vhd synth", description="Write embedded synthetic data in a benchmark's format."
    )
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=list(SIZES), default="quickstart")
    parser.add_argument("--style", choices=("youtube", "tvsum"), default=None)
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="override any SynthConfig field"
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _parse_value(value)
    if args.style:
        overrides["style"] = args.style
    try:
        out = generate(args.kind, args.out, seed=args.seed, size=args.size, **overrides)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {args.kind} data to {out}")
    return 0
