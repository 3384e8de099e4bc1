"""The extraction loop: every video once, resumable, one bad file never stops the others.

A video is done when every output folder has its file; files are written atomically, so a killed
run leaves whole files only and a rerun skips what is done. Failures of this run go to
``DIR/errors.jsonl`` (rewritten per run, so it always describes the last run).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vhd.atomic import save_npz_atomic, write_text_atomic
from vhd.extract.clips import audio_clips, count_clips, frame_times
from vhd.extract.decode import Decoded, VideoError, VideoInfo, probe
from vhd.extract.manifest import write_manifest
from vhd.extract.recipes.base import Recipe

log = logging.getLogger("vhd.extract")
ERRORS = "errors.jsonl"


@dataclass
class VideoJob:
    vid: str
    path: Path


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    no_audio: list[str] = field(default_factory=list)
    seconds_of_video: float = 0.0


class ClipBatches:
    """The decoded input of one video: batches of clip frames, then the audio track.

    With ``background``, decoding runs in a thread feeding a bounded queue, so the next video
    decodes while the model works on this one (PyAV releases the GIL while decoding).
    """

    def __init__(self, job: VideoJob, recipe: Recipe, batch_size: int) -> None:
        self.job = job
        self.recipe = recipe
        self.batch_size = batch_size
        self.info: VideoInfo | None = None
        self.num_clips = 0
        self.decoded: Decoded | None = None
        self.error: Exception | None = None

    def open(self) -> None:
        self.info = probe(self.job.path)
        self.num_clips = count_clips(self.info.duration, self.recipe.clip_len)
        offsets = self.recipe.frame_offsets
        times = frame_times(self.num_clips, self.recipe.clip_len, offsets)
        size = self.recipe.frame_size(self.info.width, self.info.height)
        self.decoded = Decoded(
            self.info, times, size, self.recipe.sample_rate, self.recipe.interpolation
        )

    def batches(self) -> Iterator[np.ndarray]:
        """(clips, frames_per_clip, H, W, 3) uint8, ``batch_size`` clips at a time."""
        assert self.decoded is not None
        per_clip = self.recipe.frames_per_clip
        frames: list[np.ndarray] = []
        for frame in self.decoded.frames():
            frames.append(frame)
            if len(frames) == per_clip * self.batch_size:
                yield _stack(frames, per_clip)
                frames = []
        if frames:
            yield _stack(frames, per_clip)


def _stack(frames: list[np.ndarray], per_clip: int) -> np.ndarray:
    batch = np.stack(frames)
    return batch.reshape(len(frames) // per_clip, per_clip, *batch.shape[1:])


def _fill(source: ClipBatches, out: queue.Queue, stop: threading.Event) -> None:
    """Thread body: decode one video into ``out``; an error is passed on, not raised here."""

    def put(event: tuple[str, Any]) -> None:
        while not stop.is_set():
            try:
                out.put(event, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    try:
        source.open()
        for batch in source.batches():
            put(("batch", batch))
        put(("end", None))
    except _Stopped:
        return
    except Exception as err:  # handed to the consumer, which records it for this video
        put(("error", err))


class _Stopped(Exception):
    """The consumer gave up (an error elsewhere); the decoder thread ends quietly."""


def _events(source: ClipBatches) -> Iterator[tuple[str, Any]]:
    """The events of ``_fill``, produced lazily in the calling thread (``workers=0``)."""
    try:
        source.open()
        for batch in source.batches():
            yield "batch", batch
    except Exception as err:
        yield "error", err
        return
    yield "end", None


def _drain(stream: queue.Queue) -> Iterator[tuple[str, Any]]:
    while True:
        kind, value = stream.get()
        yield kind, value
        if kind in ("end", "error"):
            return


class Extractor:
    """Runs one recipe over videos into ``out``; ``progress(vid)`` after each video.

    ``manifest`` (``vhd.extract.manifest.open_manifest``) gets each finished video and is
    rewritten after it, so the manifest always lists exactly the videos on disk.
    """

    def __init__(
        self,
        recipe: Recipe,
        out: Path,
        manifest: dict[str, Any],
        *,
        workers: int = 1,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.recipe = recipe
        self.out = out
        self.manifest = manifest
        self.workers = workers
        self.progress = progress or (lambda vid: None)
        self.media_outputs = [o for o in recipe.outputs() if o.modality != "text"]

    def paths(self, vid: str) -> list[Path]:
        return [self.out / output.folder / f"{vid}.npz" for output in self.media_outputs]

    def is_done(self, vid: str) -> bool:
        return all(path.is_file() for path in self.paths(vid))

    def run(self, jobs: list[VideoJob]) -> RunSummary:
        summary = RunSummary()
        todo = []
        for job in jobs:
            if self.is_done(job.vid):
                summary.skipped.append(job.vid)
                self.progress(job.vid)
            else:
                todo.append(job)
        sources = [ClipBatches(job, self.recipe, self.recipe.options.batch_size) for job in todo]
        if self.workers > 0:
            self._run_threaded(sources, summary)
        else:
            for source in sources:
                self._one(source, _events(source), summary)
        self._write_errors(summary.failed)
        return summary

    def _run_threaded(self, sources: list[ClipBatches], summary: RunSummary) -> None:
        # bounded queues: each decoder runs at most two batches ahead of the model
        streams: list[queue.Queue] = [queue.Queue(maxsize=2) for _ in sources]
        stop = threading.Event()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="vhd-decode") as pool:
            futures = [
                pool.submit(_fill, source, stream, stop)
                for source, stream in zip(sources, streams, strict=True)
            ]
            try:
                for source, stream in zip(sources, streams, strict=True):
                    self._one(source, _drain(stream), summary)
            finally:  # on an exception (or Ctrl-C): queued decoders never start, running stop
                stop.set()
                for future in futures:
                    future.cancel()

    def _one(
        self, source: ClipBatches, events: Iterator[tuple[str, Any]], summary: RunSummary
    ) -> None:
        job = source.job
        started = time.perf_counter()
        rows: dict[str, list[np.ndarray]] = {}
        try:
            for kind, value in events:
                if kind == "error":
                    raise value
                if kind == "batch":
                    for folder, array in self.recipe.video_features(value).items():
                        rows.setdefault(folder, []).append(array)
            arrays = self._finish(source, rows)
        except (VideoError, OSError, ValueError) as err:
            reason = f"{type(err).__name__}: {err}" if not isinstance(err, VideoError) else str(err)
            summary.failed.append({"video": str(job.path), "vid": job.vid, "error": reason})
            log.warning("vhd extract: %s failed: %s", job.path, reason)
            self.progress(job.vid)
            return
        for folder, array in arrays.items():
            save_npz_atomic(self.out / folder / f"{job.vid}.npz", features=array)
        assert source.info is not None
        if not source.info.has_audio and self.recipe.sample_rate is not None:
            summary.no_audio.append(job.vid)
        self.manifest["recipes"][self.recipe.name]["videos"][job.vid] = {
            "source": str(job.path),
            "duration": round(source.info.duration, 6),
            "num_clips": source.num_clips,
            "has_audio": source.info.has_audio,
        }
        write_manifest(self.out, self.manifest)
        summary.done.append(job.vid)
        summary.seconds_of_video += source.info.duration
        elapsed = time.perf_counter() - started
        log.debug("%s: %d clips in %.2f s", job.vid, source.num_clips, elapsed)
        self.progress(job.vid)

    def _finish(self, source: ClipBatches, rows: dict[str, list[np.ndarray]]) -> dict[str, Any]:
        """Video rows joined, audio rows computed, every array checked against the clip count."""
        arrays = {folder: np.concatenate(parts) for folder, parts in rows.items()}
        if self.recipe.sample_rate is not None:
            assert source.decoded is not None and source.info is not None
            track = source.decoded.audio if source.info.has_audio else None
            if track is None:
                track = np.zeros(0, dtype=np.float32)
            clips = audio_clips(track, source.num_clips, self.recipe.samples_per_clip())
            arrays.update(self.recipe.audio_features(clips, source.info.has_audio))
        for output in self.media_outputs:
            array = arrays.get(output.folder)
            if array is None or array.shape != (source.num_clips, output.dim):
                shape = None if array is None else array.shape
                raise RuntimeError(
                    f"recipe {self.recipe.name} made {output.folder} of shape {shape}, expected "
                    f"({source.num_clips}, {output.dim}) for {source.job.path}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"{output.folder} has non-finite values; the input is damaged")
            arrays[output.folder] = array.astype(np.float32, copy=False)
        return arrays

    def _write_errors(self, failed: list[dict[str, str]]) -> None:
        path = self.out / ERRORS
        if failed:
            write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in failed))
        else:
            path.unlink(missing_ok=True)
