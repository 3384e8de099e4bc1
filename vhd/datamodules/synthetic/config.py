"""Every knob of the generator, the size presets, and their resolution and validation."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

KINDS = ("moments", "highlights", "unlabeled", "videos")
STYLES = ("youtube", "tvsum")


@dataclass(frozen=True)
class SynthConfig:
    """All parameters of one synthetic dataset; the first block fixes the shared world."""

    # The world: same values -> the same feature space in every kind.
    world_seed: int = 0
    video_dim: int = 256
    text_dim: int = 128
    audio_dim: int = 64
    num_events: int = 24  # common events, each a (verb, noun) pair
    highlights_per_domain: int = 2  # rare highlight events of each domain
    highlight_subspace: float = 0.25  # share of video dims only highlight events use
    highlight_scale: float = 1.5  # highlight prototypes are this much larger than common ones
    # Every clip: prototype + per-video scene + smooth variation + white noise.
    clip_len: float = 2.0
    noise: float = 1.2
    variation: float = 0.5
    scene: float = 0.6
    # moments
    num_videos: int = 180  # videos of the moments, unlabeled or videos kind
    queries_per_video: int = 2
    num_clips: int = 75
    split_fractions: tuple[float, ...] = (2 / 3, 1 / 6, 1 / 6)  # train, val, test videos
    second_window_rate: float = 0.25  # queries whose event happens twice
    window_buckets: tuple[float, ...] = (0.35, 0.4, 0.25)  # short <=10 s, middle, long > 30 s
    text_noise: float = 0.5
    # highlights and unlabeled
    style: str = "youtube"
    num_domains: int | None = None  # None: the real count (youtube 6, tvsum 10, unlabeled 10)
    domains: tuple[str, ...] | None = None  # None: the real benchmark's names
    train_per_domain: int | None = None  # None: 4 (tvsum) or 60 % of videos_per_domain
    val_per_domain: int | None = None  # None: 1 (tvsum) or the rest
    videos_per_domain: int = 40  # youtube style only (the real one: 64 on average)
    min_clips: int = 20
    max_clips: int = 60
    highlight_rate: float = 0.17  # mean share of highlight clips per video
    hidden_rate: float = 0.25  # highlight segments with no visual cue (only audio tells)
    decoy_rate: float = 0.35  # highlight-looking segments per highlight segment, not labelled
    audio_lag: int = 1  # the audio highlight signature trails the clip by this many clips
    audio_noise: float = 1.0
    audio_strength: float = 0.3  # norm of the signature per sqrt(audio_dim)


SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "moments": dict(num_videos=12, num_clips=40),
        "highlights": {
            "youtube": dict(num_domains=3, videos_per_domain=5, min_clips=12, max_clips=24),
            "tvsum": dict(num_domains=3, min_clips=12, max_clips=24),
        },
        "unlabeled": dict(num_videos=8, num_domains=10, min_clips=12, max_clips=24),
        "videos": dict(num_videos=4),
    },
    "quickstart": {
        "moments": {},
        "highlights": {
            "youtube": {},
            "tvsum": dict(min_clips=40, max_clips=120),
        },
        "unlabeled": dict(num_videos=300, num_domains=10),
        "videos": dict(num_videos=20),
    },
    "full": {
        "moments": dict(num_videos=10000, queries_per_video=1, split_fractions=(0.7, 0.15, 0.15)),
        "highlights": {
            "youtube": dict(videos_per_domain=64, min_clips=10, max_clips=90),
            "tvsum": dict(min_clips=60, max_clips=300),
        },
        "unlabeled": dict(num_videos=5000, num_domains=10, min_clips=30, max_clips=150),
        "videos": dict(num_videos=200),
    },
}


def resolve_config(kind: str, size: str = "quickstart", **overrides: Any) -> SynthConfig:
    """The preset of ``size`` for ``kind`` (and style), then ``overrides``, checked."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; choose one of {list(KINDS)}")
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; choose one of {list(SIZES)}")
    known = {field.name: field for field in fields(SynthConfig)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown synthetic parameters {unknown}; known: {sorted(known)}")
    preset = SIZES[size][kind]
    if kind == "highlights":
        style = overrides.get("style", SynthConfig.style)
        if style not in STYLES:
            raise ValueError(f"unknown highlights style {style!r}; use one of {list(STYLES)}")
        preset = preset[style]
    values = {name: _coerce(name, value, known[name].default) for name, value in overrides.items()}
    if values.get("domains") is not None:  # named domains decide their count over the preset's
        values.setdefault("num_domains", len(values["domains"]))
    config = replace(SynthConfig(), **{**preset, **values})
    _check(config)
    return config


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Command-line and YAML values to the field's type (lists to tuples, ints to floats)."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if value is not None and default is not None and not isinstance(value, type(default)):
        raise ValueError(f"synthetic parameter {name} expects {type(default).__name__}: {value!r}")
    return value


def _check(config: SynthConfig) -> None:
    problems = []
    if min(config.video_dim, config.text_dim, config.audio_dim) < 4:
        problems.append("video_dim, text_dim and audio_dim must be at least 4")
    if not 0 < config.highlight_subspace < 1:
        problems.append("highlight_subspace must be in (0, 1)")
    if config.num_events < config.queries_per_video + 2:
        problems.append("num_events must exceed queries_per_video by 2 (filler events)")
    if config.min_clips < 4 or config.min_clips > config.max_clips:
        problems.append("need 4 <= min_clips <= max_clips")
    if config.num_clips < 4 or config.clip_len <= 0:
        problems.append("need num_clips >= 4 and clip_len > 0")
    if len(config.split_fractions) != 3 or abs(sum(config.split_fractions) - 1) > 1e-6:
        problems.append("split_fractions must be three shares (train, val, test) summing to 1")
    if len(config.window_buckets) != 3 or abs(sum(config.window_buckets) - 1) > 1e-6:
        problems.append("window_buckets must be three probabilities summing to 1")
    if config.domains is not None and config.num_domains not in (None, len(config.domains)):
        problems.append("num_domains disagrees with the number of domains named")
    if problems:
        raise ValueError("invalid synthetic parameters: " + "; ".join(problems))
