"""The highlight reel: moments cut from the source video with their audio, joined in time order.

Moments are merged first (overlapping ones, and ones less than a frame apart), so a reel never
shows a frame twice. Each merged interval is reached by a seek (a 10-minute video with a few
short moments decodes only those moments) and its frames are picked by timestamp.

The reel runs on one output clock at the source frame rate: interval i covers output seconds
``[C_i, C_i + L_i)`` where ``C_i`` sums the lengths before it, and gets
``round(C_{i+1} * fps) - round(C_i * fps)`` frames (the consecutive source frames from the first
at or after its start) and as many audio samples as the clock gives at the audio rate. Rounding
errors do not add up across intervals: the reel lasts the merged moments' total to half a frame,
and its audio starts with each interval's first frame, so sound and picture stay in sync.

Encoding: H.264 (yuv420p, yuv444p for odd sizes; MPEG-4 Part 2 without libx264, as the
synthetic videos), AAC at the source's sample rate in mono or stereo.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from vhd.atomic import atomic_path
from vhd.datamodules.synthetic.videos import choose_codec
from vhd.extract.decode import VideoError, probe

Moment = tuple[float, float, float]
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
PREROLL = 0.25  # seconds seeked before a moment, so the audio decoder has warmed up by its start
OVERRUN = 2.0  # seconds of video decoded past a moment while waiting for its audio, at most


@dataclass(frozen=True)
class Cut:
    """A merged interval: source seconds [start, end) and the frames and samples it gets."""

    start: float
    end: float
    frames: int
    samples: int


def merge_moments(
    moments: list[Moment] | list[tuple[float, float]], duration: float, gap: float = 0.0
) -> list[tuple[float, float]]:
    """Time-ordered disjoint [start, end) within [0, duration]; intervals overlapping or closer
    than ``gap`` become one."""
    spans = sorted(
        (max(0.0, float(m[0])), min(duration, float(m[1])))
        for m in moments
        if min(duration, float(m[1])) > max(0.0, float(m[0]))
    )
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start < merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def plan_cuts(spans: list[tuple[float, float]], fps: float, sample_rate: int) -> list[Cut]:
    """Frames and samples per interval from the shared output clock (see the module doc)."""
    cuts, clock = [], 0.0
    for start, end in spans:
        after = clock + (end - start)
        frames = round(after * fps) - round(clock * fps)
        samples = round(after * sample_rate) - round(clock * sample_rate)
        cuts.append(Cut(start, end, frames, samples))
        clock = after
    return cuts


def write_reel(source: Path, moments: list[Moment], path: Path) -> Path:
    """Write the reel of ``moments`` (start_s, end_s, score) from ``source`` to ``path``."""
    source, path = Path(source), Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"source video not found: {source}")
    container_format = FORMATS.get(path.suffix.lower())
    if container_format is None:
        raise ValueError(f"reel must end in one of {', '.join(FORMATS)}: {path}")
    info = probe(source)
    if not info.fps > 0:
        raise VideoError(f"{source}: the video stream states no frame rate")
    spans = merge_moments(moments, info.duration, gap=1 / info.fps - 1e-6)
    if not spans:
        raise ValueError(f"no moment lies inside the video ({info.duration:.2f} s): {moments}")
    with (
        atomic_path(path) as temporary,
        av.open(str(source)) as reader,
        av.open(str(temporary), "w", container_format) as out,
    ):
        _Cutter(reader, out, spans).run()
    return path


class _Cutter:
    """Seeks to each interval, picks its frames and samples, encodes them on the output clock."""

    def __init__(self, reader: Any, out: Any, spans: list[tuple[float, float]]) -> None:
        self.reader, self.out = reader, out
        self.video = reader.streams.video[0]
        self.video.thread_type = "AUTO"
        self.audio = reader.streams.audio[0] if reader.streams.audio else None
        rate: Fraction = self.video.average_rate or self.video.guessed_rate
        width, height = self.video.codec_context.width, self.video.codec_context.height
        encoder, self.pix_fmt = choose_codec(width, height)
        self.video_out = out.add_stream(encoder, rate=rate)
        self.video_out.width, self.video_out.height = width, height
        self.video_out.pix_fmt = self.pix_fmt
        self.video_out.codec_context.time_base = 1 / rate
        if encoder == "libx264":
            self.video_out.options = {"preset": "veryfast", "crf": "20"}
        else:
            self.video_out.bit_rate = 2_000_000
        self.sample_rate, self.channels = 0, 1
        if self.audio is not None:
            self.sample_rate = self.audio.codec_context.sample_rate
            if self.sample_rate not in (av.Codec("aac", "w").audio_rates or ()):
                self.sample_rate = 48000  # AAC takes 13 rates; resample odd (or unknown) ones
            mono = self.audio.codec_context.layout.nb_channels == 1
            self.layout, self.channels = ("mono", 1) if mono else ("stereo", 2)
            self.audio_out = out.add_stream("aac", rate=self.sample_rate, layout=self.layout)
        start = self.video.start_time
        self.origin = float(start * self.video.time_base) if start is not None else 0.0
        self.cuts = plan_cuts(spans, float(rate), self.sample_rate)
        self.frames_written = self.samples_written = 0
        self.pending = np.zeros((self.channels, 0), np.float32)  # less than one AAC frame

    def run(self) -> None:
        for cut in self.cuts:
            self._cut(cut)
        self.out.mux(self.video_out.encode(None))
        if self.audio is not None:
            self._encode_samples(np.zeros((self.channels, 0), np.float32), final=True)
            self.out.mux(self.audio_out.encode(None))

    def _cut(self, cut: Cut) -> None:
        target = self.origin + max(0.0, cut.start - PREROLL)
        self.reader.seek(int(target / self.video.time_base), stream=self.video)
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        frames, first, time = 0, None, 0.0
        sound: list[tuple[int, np.ndarray]] = []  # (first sample's index from origin, samples)
        # a fresh resampler per cut: one that converts rates holds samples from before the seek
        if self.audio is not None:
            self.resampler = av.AudioResampler("fltp", self.layout, self.sample_rate)
        for packet in self.reader.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.AudioFrame):
                    sound.extend(self._resampled(frame))
                    continue
                if frame.time is None:
                    raise VideoError("the video stream has frames without timestamps")
                time = float(frame.time) - self.origin
                if frames < cut.frames and time >= cut.start - 1e-6:
                    first = time if first is None else first
                    self._encode_frame(frame)
                    frames += 1
            # the audio may end early: then stop a little past the moment, not at the file's end
            if frames >= cut.frames and (
                self._heard(sound, first, cut) or time > cut.end + OVERRUN
            ):
                break
        if self.audio is not None:
            anchor = first if first is not None else cut.start
            start = round(anchor * self.sample_rate)
            self._encode_samples(_slice(sound, start, cut.samples, self.channels))

    def _heard(self, sound: list[tuple[int, np.ndarray]], first: float | None, cut: Cut) -> bool:
        """Whether the decoded audio reaches the interval's last sample (no audio: always)."""
        if self.audio is None:
            return True
        anchor = first if first is not None else cut.start
        needed = round(anchor * self.sample_rate) + cut.samples
        return bool(sound) and sound[-1][0] + sound[-1][1].shape[1] >= needed

    def _resampled(self, frame: av.AudioFrame) -> list[tuple[int, np.ndarray]]:
        if frame.pts is None:
            return []
        start = round((float(frame.time) - self.origin) * self.sample_rate)
        frame.pts = None  # the resampler then counts samples; placement comes from ``start``
        parts, offset = [], start
        for out in self.resampler.resample(frame):
            samples = out.to_ndarray()
            parts.append((offset, samples))
            offset += samples.shape[1]
        return parts

    def _encode_frame(self, frame: av.VideoFrame) -> None:
        picture = frame.reformat(format=self.pix_fmt)
        picture.pts, picture.time_base = self.frames_written, self.video_out.codec_context.time_base
        picture.pict_type = PictureType.NONE  # let the encoder choose; keep no source frame types
        self.out.mux(self.video_out.encode(picture))
        self.frames_written += 1

    def _encode_samples(self, samples: np.ndarray, final: bool = False) -> None:
        """AAC takes whole frames (1024 samples) but the last: the rest waits for the next cut."""
        samples = np.concatenate([self.pending, samples], axis=1)
        step = self.audio_out.codec_context.frame_size or 1024
        whole = samples.shape[1] if final else samples.shape[1] // step * step
        self.pending = samples[:, whole:]
        for begin in range(0, whole, step):
            chunk = np.ascontiguousarray(samples[:, begin : min(begin + step, whole)])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.layout)
            frame.sample_rate, frame.pts = self.sample_rate, self.samples_written
            self.out.mux(self.audio_out.encode(frame))
            self.samples_written += chunk.shape[1]


def _slice(
    sound: list[tuple[int, np.ndarray]], start: int, count: int, channels: int
) -> np.ndarray:
    """Samples [start, start + count) from placed pieces (later pieces win); silence where none."""
    out = np.zeros((channels, count), dtype=np.float32)
    for offset, samples in sound:
        lo, hi = max(start, offset), min(start + count, offset + samples.shape[1])
        if lo < hi:
            out[:, lo - start : hi - start] = samples[:, lo - offset : hi - offset]
    return out
