"""Generated video files with one planted highlight, for ``vhd extract`` tests, demos, benchmarks.

A video is a few coloured shapes drifting over a gradient with faint background noise as sound.
Inside the planted highlight ``[start, end)`` a large bright shape flashes and darts across the
picture and a loud 880 Hz tone plays, so frame differences and audio energy both jump: any
reasonable feature extractor separates highlight clips from the rest.

Encoding: H.264 (libx264) yuv420p. 4:2:0 chroma cannot hold an odd width or height, so odd
sizes are encoded H.264 yuv444p at the exact size (no rounding); without libx264, MPEG-4 Part 2
yuv420p (any size). Audio: AAC, mono. The bytes are a function of the arguments (single-threaded
encoders, no timestamps in the container), given the same FFmpeg build.

``generate_video_dataset`` writes a folder of such videos with annotations in the YouTube
Highlights and QVHighlights formats, ready for training once ``vhd extract`` has run.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from vhd.atomic import atomic_path, write_text_atomic
from vhd.datamodules.synthetic.io import seconds

Rate = float | Fraction | str
Progress = Callable[[Iterable[int], str, int], Iterable[int]]
TONE_HZ = 880.0
FLASH_HZ = 4.0  # on/off cycles of the highlight shape per second
QUERIES = (
    "a bright shape flashes while a tone plays",
    "a large bright shape darts around as a loud beep sounds",
    "the screen flashes with a big bright shape and a tone",
)
DOMAIN = "synthetic"


@dataclass(frozen=True)
class VideoFile:
    """What was written: the real duration is ``frames / fps`` (the request rounded to frames)."""

    path: Path
    duration: float
    fps: Fraction
    frames: int
    width: int
    height: int
    codec: str
    pix_fmt: str
    audio: bool


def frame_rate(fps: Rate) -> Fraction:
    """An exact rate: "24000/1001" and NTSC floats (23.976, 29.97, 59.94) -> x/1001 fractions."""
    if isinstance(fps, Fraction | str):
        rate = Fraction(fps)
    else:
        ntsc = float(fps) * 1.001
        if abs(ntsc - round(ntsc)) < 5e-3 and abs(fps - round(fps)) > 1e-3:
            rate = Fraction(round(ntsc) * 1000, 1001)
        else:
            rate = Fraction(str(float(fps))).limit_denominator(10000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def choose_codec(width: int, height: int, codec: str = "auto") -> tuple[str, str]:
    """(encoder, pixel format): H.264 4:2:0, 4:4:4 for odd sizes, MPEG-4 without libx264."""
    if codec == "auto":
        codec = "h264" if "libx264" in av.codecs_available else "mpeg4"
    if codec == "h264":
        return "libx264", "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    if codec == "mpeg4":
        return "mpeg4", "yuv420p"
    raise ValueError(f"unknown codec {codec!r}; use auto, h264 or mpeg4")


# -- pictures --------------------------------------------------------------------------------------
def disc(radius: int) -> np.ndarray:
    """Boolean (2r+1, 2r+1) mask of a filled circle."""
    span = np.arange(-radius, radius + 1)
    return span[:, None] ** 2 + span[None, :] ** 2 <= radius**2


def stamp(frame: np.ndarray, mask: np.ndarray, x: int, y: int, colour: np.ndarray) -> None:
    """Paint ``mask`` centred at (x, y) in ``colour``, clipped at the borders."""
    height, width = frame.shape[:2]
    radius = mask.shape[0] // 2
    top, left = y - radius, x - radius
    y0, y1 = max(top, 0), min(top + mask.shape[0], height)
    x0, x1 = max(left, 0), min(left + mask.shape[1], width)
    if y0 < y1 and x0 < x1:
        region = frame[y0:y1, x0:x1]
        region[mask[y0 - top : y1 - top, x0 - left : x1 - left]] = colour


def square(radius: int) -> np.ndarray:
    return np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)


def gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A dark diagonal gradient between two random colours, (height, width, 3) uint8."""
    low, high = rng.uniform(15, 60, size=3), rng.uniform(60, 110, size=3)
    ramp = (np.linspace(0, 1, height)[:, None] + np.linspace(0, 1, width)[None, :]) / 2
    return (low + ramp[..., None] * (high - low)).astype(np.uint8)


@dataclass(frozen=True)
class Shape:
    mask: np.ndarray
    colour: np.ndarray
    xs: np.ndarray  # per frame
    ys: np.ndarray


def drifting_shapes(
    rng: np.random.Generator, times: np.ndarray, width: int, height: int
) -> list[Shape]:
    """3-5 mid-bright circles and squares on slow sinusoidal paths (0.03-0.12 Hz)."""
    side, shapes = min(width, height), []
    for _ in range(int(rng.integers(3, 6))):
        radius = max(1, round(side * rng.uniform(0.04, 0.1)))
        mask = disc(radius) if rng.random() < 0.6 else square(radius)
        paths = []
        for extent in (width, height):
            freq, phase = rng.uniform(0.03, 0.12), rng.uniform(0, 2 * np.pi)
            centre, amplitude = extent * rng.uniform(0.3, 0.7), extent * rng.uniform(0.1, 0.35)
            paths.append(np.rint(centre + amplitude * np.sin(2 * np.pi * freq * times + phase)))
        colour = rng.uniform(70, 200, size=3).astype(np.uint8)
        shapes.append(Shape(mask, colour, paths[0].astype(int), paths[1].astype(int)))
    return shapes


def flashing_shape(times: np.ndarray, width: int, height: int) -> Shape:
    """The highlight: a large disc darting about (1.3-1.7 Hz), white and magenta by turns."""
    xs = width / 2 + 0.3 * width * np.sin(2 * np.pi * 1.3 * times)
    ys = height / 2 + 0.25 * height * np.sin(2 * np.pi * 1.7 * times + 1.0)
    radius = max(2, round(0.28 * min(width, height)))
    return Shape(
        disc(radius), np.zeros(3, np.uint8), np.rint(xs).astype(int), np.rint(ys).astype(int)
    )


def render_frames(
    rng: np.random.Generator, times: np.ndarray, width: int, height: int,
    highlight: tuple[float, float] | None,
) -> Iterator[np.ndarray]:  # fmt: skip
    """RGB frames (height, width, 3) uint8 at ``times``; the highlight shape inside the interval."""
    background = gradient(rng, width, height)
    shapes = drifting_shapes(rng, times, width, height)
    flash = flashing_shape(times, width, height)
    bright = np.array([[255, 255, 255], [255, 40, 220]], dtype=np.uint8)
    frame = np.empty_like(background)
    for index, time in enumerate(times):
        np.copyto(frame, background)
        for shape in shapes:
            stamp(frame, shape.mask, shape.xs[index], shape.ys[index], shape.colour)
        if highlight is not None and highlight[0] <= time < highlight[1]:
            colour = bright[int(time * 2 * FLASH_HZ) % 2]
            stamp(frame, flash.mask, flash.xs[index], flash.ys[index], colour)
        yield frame


# -- sound -----------------------------------------------------------------------------------------
def render_audio(
    rng: np.random.Generator, samples: int, sample_rate: int, highlight: tuple[float, float] | None
) -> np.ndarray:
    """Mono float32: noise at about -40 dBFS, an 880 Hz tone at -6 dBFS in the highlight."""
    audio = rng.normal(scale=0.01, size=samples)
    if highlight is not None:
        first = max(0, math.ceil(highlight[0] * sample_rate))
        last = min(samples, math.ceil(highlight[1] * sample_rate))
        if last > first:
            times = np.arange(first, last) / sample_rate
            envelope = np.minimum(1.0, np.minimum(times - times[0], times[-1] - times) / 0.01)
            audio[first:last] += 0.5 * envelope * np.sin(2 * np.pi * TONE_HZ * times)
    return audio.astype(np.float32)


# -- files -----------------------------------------------------------------------------------------
def write_video(
    path: str | Path,
    *,
    duration: float,
    fps: Rate,
    width: int,
    height: int,
    highlight: tuple[float, float] | None,
    seed: int,
    audio: bool = True,
    sample_rate: int = 16000,
    codec: Literal["auto", "h264", "mpeg4"] = "auto",
) -> VideoFile:
    """Write an mp4 of ``round(duration x fps)`` frames (and as much AAC audio), atomically.

    ``fps`` may be a float (NTSC rates become x/1001), a Fraction or "24000/1001". Deterministic
    for the arguments.
    """
    path, rate = Path(path), frame_rate(fps)
    frames = round(duration * rate)
    if frames < 1 or width < 2 or height < 2:
        raise ValueError(f"need at least one frame and 2x2 pixels: {duration} s, {width}x{height}")
    encoder, pix_fmt = choose_codec(width, height, codec)
    rng = np.random.default_rng([seed, 5])
    times = np.arange(frames) / float(rate)
    with atomic_path(path) as temporary, av.open(str(temporary), "w", format="mp4") as container:
        video = _video_stream(container, encoder, pix_fmt, rate, width, height)
        sound = _audio_stream(container, sample_rate) if audio else None
        for index, picture in enumerate(render_frames(rng, times, width, height, highlight)):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = round(frames / rate * sample_rate)
            _encode_audio(container, sound, render_audio(rng, samples, sample_rate, highlight))
    return VideoFile(
        path, float(frames / rate), rate, frames, width, height, encoder, pix_fmt, audio
    )


def _video_stream(
    container: Any, encoder: str, pix_fmt: str, rate: Fraction, width: int, height: int
) -> Any:
    stream = container.add_stream(encoder, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.codec_context.time_base = 1 / rate
    stream.thread_count = 1  # the bitstream must not depend on the machine's cores
    if encoder == "libx264":
        stream.options = {"preset": "veryfast", "crf": "23"}
    else:
        stream.bit_rate = 400_000
    return stream


def _audio_stream(container: Any, sample_rate: int) -> Any:
    stream = container.add_stream("aac", rate=sample_rate, layout="mono")
    stream.bit_rate = 32_000
    stream.options = {"aac_coder": "fast"}  # twice as fast as the default; quality is moot here
    return stream


def _encode_audio(container: Any, stream: Any, audio: np.ndarray) -> None:
    """AAC takes 1024-sample frames; the last one may be shorter."""
    step = stream.codec_context.frame_size or 1024
    for start in range(0, len(audio), step):
        chunk = audio[None, start : start + step]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = stream.codec_context.sample_rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_corrupt_video(
    path: str | Path, mode: Literal["truncated", "garbage"] = "truncated"
) -> Path:
    """An ``.mp4`` no decoder can open: a real file cut mid-stream (its index, written last, is
    lost, as in an interrupted download) or seeded random bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "garbage":
        data = np.random.default_rng(0).bytes(4096)
    elif mode == "truncated":
        with tempfile.TemporaryDirectory() as folder:
            whole = write_video(
                Path(folder) / "whole.mp4", duration=1.0, fps=10, width=64, height=48,
                highlight=None, seed=0, audio=False,
            )  # fmt: skip
            data = whole.path.read_bytes()
        data = data[: len(data) // 2]
    else:
        raise ValueError(f"unknown mode {mode!r}; use truncated or garbage")
    path.write_bytes(data)
    return path


# -- datasets --------------------------------------------------------------------------------------
def clip_labels(duration: float, interval: tuple[float, float], clip_len: float = 2.0) -> list[int]:
    """1 per clip that overlaps ``interval`` by at least half a clip; ceil(duration / clip_len)."""
    count = max(1, math.ceil(round(duration / clip_len, 6)))
    starts = np.arange(count) * clip_len
    overlap = np.minimum(starts + clip_len, interval[1]) - np.maximum(starts, interval[0])
    return (overlap >= clip_len / 2 - 1e-9).astype(int).tolist()


def youtube_record(clip: VideoFile, vid: str, labels: list[int], clip_len: float) -> dict[str, Any]:
    """A YouTube Highlights line (the fields of the real ``youtube_train.jsonl``)."""
    fps, stride = float(clip.fps), float(clip.fps) * clip_len
    return {
        "qid": vid, "query": DOMAIN, "duration": clip.duration, "vid": vid,
        "relevant_clip_ids": None, "relevant_windows": None,
        "label": [[value] for value in labels], "domain": DOMAIN,
        "frames": float(clip.frames), "fps": fps,
        "clip": [[i * stride, min((i + 2) * stride, clip.frames)] for i in range(len(labels))],
        "match": [1 if value else -1 for value in labels],
    }  # fmt: skip


def moment_record(
    qid: int, query: str, clip: VideoFile, vid: str, labels: list[int], clip_len: float
) -> dict[str, Any]:
    """A QVHighlights line: the window is the run of highlight clips, on the clip grid; ratings
    are 4 inside it and 3 on its edge clips (the centre is the best moment)."""
    ids = [index for index, value in enumerate(labels) if value]
    edge = {ids[0], ids[-1]} if len(ids) > 2 else set()
    return {
        "qid": qid, "query": query, "duration": seconds(clip.duration), "vid": vid,
        "relevant_clip_ids": ids,
        "saliency_scores": [[3, 3, 3] if index in edge else [4, 4, 4] for index in ids],
        "relevant_windows": [[seconds(ids[0] * clip_len),
                              seconds(min((ids[-1] + 1) * clip_len, clip.duration))]],
    }  # fmt: skip


def print_progress(items: Iterable[int], description: str, total: int) -> Iterator[int]:
    """A rich bar on a terminal, else a line per tenth (logs of batch jobs stay short)."""
    if sys.stderr.isatty():
        from rich.progress import track

        yield from track(items, description=f"synth {description}", total=total)
        return
    every = max(1, total // 10)
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == total:
            print(f"synth {description}: {done}/{total}", file=sys.stderr, flush=True)


def generate_video_dataset(
    out: str | Path,
    count: int = 20,
    seed: int = 0,
    *,
    durations: tuple[float, float] = (20.0, 40.0),
    highlight_seconds: tuple[float, float] = (4.0, 8.0),
    fps: Rate | Sequence[Rate] = 12.5,
    size: tuple[int, int] = (320, 240),
    clip_len: float = 2.0,
    train_fraction: float = 0.75,
    progress: Progress | None = print_progress,
) -> Path:
    """``out/videos/{vid}.mp4``, each with one highlight on the ``clip_len`` grid, and
    annotations: YouTube Highlights (``youtube_{train,valid}.jsonl``, ``splits.json``),
    QVHighlights (``highlight_{train,val,test}_release.jsonl``; test = val, labelled),
    ``queries.jsonl`` (for ``vhd extract --queries``), ``videos.jsonl`` (RASL ``video_list``)
    and ``highlights.json`` ({vid: [start, end]} s, the planted truth).

    ``fps`` may list rates to draw from per video. Deterministic for ``seed``.
    """
    out = Path(out)
    if count < 1 or not 0 < durations[0] <= durations[1]:
        raise ValueError(f"need count >= 1 and 0 < min <= max duration: {count}, {durations}")
    rates = [fps] if isinstance(fps, float | int | Fraction | str) else list(fps)
    order = np.random.default_rng([seed, 4, 0]).permutation(count)
    train = {int(i) for i in order[: max(1, round(train_fraction * count))]} if count > 1 else {0}
    records: dict[str, list[dict[str, Any]]] = {"youtube": [], "train": [], "val": []}
    splits: dict[str, list[str]] = {"train": [], "val": []}
    listing, truth = [], {}
    steps = range(count) if progress is None else progress(range(count), "videos", count)
    for index in steps:
        rng = np.random.default_rng([seed, 4, 1, index])
        vid = f"video_{index:04d}"
        duration = float(np.round(rng.uniform(*durations), 1))
        interval = plant_highlight(rng, duration, highlight_seconds, clip_len)
        clip = write_video(
            out / "videos" / f"{vid}.mp4", duration=duration, fps=rates[rng.integers(len(rates))],
            width=size[0], height=size[1], highlight=interval, seed=int(rng.integers(2**31)),
        )  # fmt: skip
        labels = clip_labels(clip.duration, interval, clip_len)
        split = "train" if index in train else "val"
        query = QUERIES[rng.integers(len(QUERIES))]
        records["youtube"].append(youtube_record(clip, vid, labels, clip_len))
        records[split].append(moment_record(index, query, clip, vid, labels, clip_len))
        splits[split].append(vid)
        listing.append({"vid": vid, "duration": seconds(clip.duration)})
        truth[vid] = [seconds(interval[0]), seconds(interval[1])]
    _write_annotations(out, records, splits, listing, truth)
    return out


def plant_highlight(
    rng: np.random.Generator, duration: float, lengths: tuple[float, float], clip_len: float
) -> tuple[float, float]:
    """[start, end) on the clip grid, a whole number of clips long, away from the video's ends
    when there is room (so both classes occur)."""
    full = max(1, math.floor(duration / clip_len + 1e-9))
    low = max(1, math.ceil(lengths[0] / clip_len - 1e-9))
    high = max(low, math.floor(lengths[1] / clip_len + 1e-9))
    clips = min(int(rng.integers(low, high + 1)), max(1, full - 2))
    first = int(rng.integers(1, full - clips)) if full - clips > 1 else 0
    return first * clip_len, (first + clips) * clip_len


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def _write_annotations(
    out: Path, records: dict[str, list[dict[str, Any]]], splits: dict[str, list[str]],
    listing: list[dict[str, Any]], truth: dict[str, list[float]],
) -> None:  # fmt: skip
    by_vid = {record["vid"]: record for record in records["youtube"]}
    write_text_atomic(out / "youtube_train.jsonl", _jsonl([by_vid[v] for v in splits["train"]]))
    write_text_atomic(out / "youtube_valid.jsonl", _jsonl([by_vid[v] for v in splits["val"]]))
    write_text_atomic(out / "splits.json", json.dumps({DOMAIN: splits}, indent=1) + "\n")
    for split, name in (("train", "train"), ("val", "val"), ("val", "test")):
        write_text_atomic(out / f"highlight_{name}_release.jsonl", _jsonl(records[split]))
    queries = sorted(records["train"] + records["val"], key=lambda record: record["qid"])
    lines = [{"qid": record["qid"], "query": record["query"]} for record in queries]
    write_text_atomic(out / "queries.jsonl", _jsonl(lines))
    write_text_atomic(out / "videos.jsonl", _jsonl(listing))
    write_text_atomic(out / "highlights.json", json.dumps(truth, indent=1) + "\n")
