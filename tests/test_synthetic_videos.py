"""Generated video files: real streams, a visible and audible highlight, and usable annotations."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from vhd.datamodules import HighlightDataModule, MomentDataModule  # noqa: E402
from vhd.datamodules.annotations import read_json, read_jsonl  # noqa: E402
from vhd.datamodules.synthetic import main  # noqa: E402
from vhd.datamodules.synthetic.videos import (  # noqa: E402
    clip_labels,
    frame_rate,
    generate_video_dataset,
    write_corrupt_video,
    write_video,
)

HIGHLIGHT = (3.0, 5.0)


def decode(path: Path) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """(stream facts, grey frames (n, h, w), mono audio or None)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {
            "duration": float(stream.duration * stream.time_base),
            "rate": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "codec": stream.codec_context.name,
        }
        frames = np.stack([frame.to_ndarray(format="gray") for frame in container.decode(video=0)])
    audio = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            facts["sample_rate"] = container.streams.audio[0].sample_rate
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return facts, frames.astype(np.float32), audio


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory):
    """7.3 s at 23.976 fps, 321x239 (odd both ways), highlight at 3-5 s."""
    path = tmp_path_factory.mktemp("videos") / "odd.mp4"
    written = write_video(path, duration=7.3, fps=23.976, width=321, height=239,
                          highlight=HIGHLIGHT, seed=1)  # fmt: skip
    return written, *decode(path)


@pytest.mark.parametrize(
    ("fps", "rate", "size"),
    [(29.97, Fraction(30000, 1001), (160, 120)), (12.5, Fraction(25, 2), (97, 64)),
     ("24000/1001", Fraction(24000, 1001), (64, 48))],
)  # fmt: skip
def test_stream_matches_request(tmp_path: Path, fps, rate: Fraction, size: tuple[int, int]) -> None:
    written = write_video(tmp_path / "v.mp4", duration=5.3, fps=fps, width=size[0],
                          height=size[1], highlight=None, seed=0)  # fmt: skip
    facts, frames, audio = decode(written.path)
    assert facts["rate"] == rate == written.fps
    assert facts["size"] == size and frames.shape[1:] == (size[1], size[0])
    assert len(frames) == written.frames == round(5.3 * rate)
    assert abs(facts["duration"] - 5.3) <= 1 / rate
    assert facts["sample_rate"] == 16000 and audio is not None
    assert abs(len(audio) / 16000 - written.duration) < 0.1  # AAC pads its last 1024 samples


def test_odd_size_and_ntsc_rate(odd) -> None:
    written, facts, frames, _ = odd
    assert facts["size"] == (321, 239) and frames.shape[1:] == (239, 321)
    assert facts["rate"] == Fraction(24000, 1001)
    assert abs(facts["duration"] - 7.3) <= 1001 / 24000 and len(frames) == 175
    assert (written.codec, written.pix_fmt) == ("libx264", "yuv444p")  # 4:2:0 needs even sizes


def test_highlight_is_seen_and_heard(odd) -> None:
    written, _, frames, audio = odd
    times = np.arange(len(frames)) / float(written.fps)
    motion = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))  # change into frame i + 1
    inside = (times[1:] > HIGHLIGHT[0]) & (times[1:] < HIGHLIGHT[1])
    assert motion[inside].mean() > 5 * motion[~inside].mean()
    samples = np.arange(len(audio)) / 16000
    within = (samples > HIGHLIGHT[0] + 0.05) & (samples < HIGHLIGHT[1] - 0.05)
    outside = (samples < HIGHLIGHT[0] - 0.05) | (samples > HIGHLIGHT[1] + 0.05)
    rms = {name: float(np.sqrt(np.mean(audio[mask] ** 2))) for name, mask in
           (("in", within), ("out", outside))}  # fmt: skip
    assert rms["in"] > 10 * rms["out"]
    spectrum = np.abs(np.fft.rfft(audio[within]))
    assert np.fft.rfftfreq(int(within.sum()), 1 / 16000)[spectrum.argmax()] == pytest.approx(
        880, abs=2
    )


def test_no_audio(tmp_path: Path) -> None:
    written = write_video(tmp_path / "mute.mp4", duration=2.0, fps=10, width=64, height=48,
                          highlight=(0.5, 1.5), seed=0, audio=False)  # fmt: skip
    with av.open(str(written.path)) as container:
        assert not container.streams.audio and len(container.streams.video) == 1


def test_deterministic(tmp_path: Path) -> None:
    def make(name: str, seed: int) -> bytes:
        return write_video(tmp_path / name, duration=3.0, fps=12.5, width=80, height=60,
                           highlight=(1.0, 2.0), seed=seed).path.read_bytes()  # fmt: skip

    assert make("a.mp4", 7) == make("b.mp4", 7) != make("c.mp4", 8)
    assert not list(tmp_path.glob(".*"))  # no temporary file is left behind


@pytest.mark.parametrize("mode", ["truncated", "garbage"])
def test_corrupt_video_does_not_decode(tmp_path: Path, mode: str) -> None:
    path = write_corrupt_video(tmp_path / "broken.mp4", mode)
    assert path.stat().st_size > 0
    with pytest.raises(av.FFmpegError), av.open(str(path)) as container:
        for _ in container.decode(video=0):
            pass


def test_rates_and_labels() -> None:
    assert frame_rate(23.976) == Fraction(24000, 1001) and frame_rate(59.94) == Fraction(
        60000, 1001
    )
    assert frame_rate(25) == 25 and frame_rate(12.5) == Fraction(25, 2)
    assert clip_labels(9.5, (2.0, 6.0)) == [0, 1, 1, 0, 0]  # ceil(9.5 / 2) clips
    assert clip_labels(8.0, (3.0, 5.2)) == [0, 1, 1, 0]  # half a clip counts, less does not
    assert clip_labels(8.0, (3.1, 4.9)) == [0, 0, 0, 0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("video_dataset")
    return generate_video_dataset(out, count=4, seed=0, durations=(6.0, 9.0),
                                  highlight_seconds=(2.0, 4.0), size=(64, 48),
                                  fps=(12.5, 23.976), progress=None)  # fmt: skip


def test_dataset_annotations(dataset: Path) -> None:
    truth = read_json(dataset / "highlights.json")
    listing = {row["vid"]: row["duration"] for row in read_jsonl(dataset / "videos.jsonl")}
    assert sorted(truth) == sorted(listing) == sorted(p.stem for p in dataset.glob("videos/*.mp4"))
    youtube = read_jsonl(dataset / "youtube_train.jsonl") + read_jsonl(
        dataset / "youtube_valid.jsonl"
    )
    splits = read_json(dataset / "splits.json")["synthetic"]
    assert sorted(splits["train"] + splits["val"]) == sorted(truth) and splits["val"]
    for record in youtube:
        facts, _, _ = decode(dataset / "videos" / f"{record['vid']}.mp4")
        assert abs(facts["duration"] - record["duration"]) < 1e-3
        assert listing[record["vid"]] == pytest.approx(record["duration"])
        assert len(record["label"]) == math.ceil(record["duration"] / 2)
        start, end = truth[record["vid"]]
        assert [row[0] for row in record["label"]] == clip_labels(record["duration"], (start, end))
        assert 2 <= end - start <= 4 and start % 2 == 0
    moments = {split: read_jsonl(dataset / f"highlight_{split}_release.jsonl")
               for split in ("train", "val", "test")}  # fmt: skip
    assert [r["vid"] for r in moments["train"]] == splits["train"]
    assert moments["test"] == [{**r, "_source": r["_source"].replace("val", "test")}
                               for r in moments["val"]]  # fmt: skip
    queries = {row["qid"]: row["query"] for row in read_jsonl(dataset / "queries.jsonl")}
    for record in moments["train"] + moments["val"]:
        assert queries[record["qid"]] == record["query"]
        assert record["relevant_windows"] == [truth[record["vid"]]]
        start, end = record["relevant_windows"][0]
        assert record["relevant_clip_ids"] == list(range(start // 2, end // 2))
        assert len(record["saliency_scores"]) == len(record["relevant_clip_ids"])


def fake_features(root: Path) -> None:
    """What ``vhd extract`` would write: one row per 2 s clip, one text file per query."""
    rng = np.random.default_rng(0)
    for row in read_jsonl(root / "videos.jsonl"):
        clips = math.ceil(row["duration"] / 2)
        for folder in ("video_features", "audio_features"):
            (root / folder).mkdir(exist_ok=True)
            np.savez(root / folder / f"{row['vid']}.npz", features=rng.normal(size=(clips, 8)))
    (root / "text_features").mkdir(exist_ok=True)
    for row in read_jsonl(root / "queries.jsonl"):
        np.savez(root / "text_features" / f"qid{row['qid']}.npz",
                 last_hidden_state=rng.normal(size=(6, 4)))  # fmt: skip


def test_dataset_trains_after_extraction(dataset: Path) -> None:
    fake_features(dataset)
    highlights = HighlightDataModule(data_root=str(dataset), audio_feature_dirs=["audio_features"])
    highlights.setup("fit")
    item = highlights.datasets["train"][0]
    assert item["labels"].sum() > 0 and len(item["labels"]) == len(item["video"])
    moments = MomentDataModule(data_root=str(dataset), video_feature_dirs=["video_features"],
                               text_feature_dir="text_features")  # fmt: skip
    moments.setup("fit")
    assert len(moments.datasets["train"]) + len(moments.datasets["val"]) == 4
    assert moments.datasets["val"][0]["saliency"].max() > 0


def test_synth_command(tmp_path: Path) -> None:
    out = tmp_path / "videos"
    assert main(["--kind", "videos", "--out", str(out), "--seed", "0", "--count", "1"]) == 0
    assert len(list(out.glob("videos/*.mp4"))) == 1
    assert json.loads((out / "synth.json").read_text())["params"]["num_videos"] == 1
