"""``vhd highlight`` and ``Highlighter`` end to end on generated videos, with checkpoints trained
here on ``pixel_mel`` features: moments, plot, reel, long videos in windows, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vhd import Highlighter
from vhd.cli import main as vhd
from vhd.datamodules.synthetic.videos import (
    generate_video_dataset,
    write_corrupt_video,
    write_video,
)
from vhd.extract.recipes import recipe_class
from vhd.highlight.windows import (
    average_saliency,
    moments_from_saliency,
    temporal_nms,
    window_starts,
)
from vhd.lightning_cli import make_cli

pytestmark = pytest.mark.usefixtures("two_threads")

REPO = Path(__file__).resolve().parents[1]
WINDOW = 20  # clips the HPCL checkpoint is trained on (max_v_l): longer videos go in windows


def overlap(moment: tuple[float, float, float] | list[float], truth: list[float]) -> float:
    """Temporal IoU of a moment and the planted interval."""
    start, end = moment[0], moment[1]
    inter = max(0.0, min(end, truth[1]) - max(start, truth[0]))
    return inter / (max(end, truth[1]) - min(start, truth[0]))


def fit(config: str, root: Path, run: Path, *extra: str) -> Path:
    make_cli(
        [
            "fit", "--config", str(REPO / "configs" / config),
            f"--data.init_args.data_root={root}", "--data.init_args.synthetic=null",
            f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
            *extra,
        ]
    )  # fmt: skip
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("highlight_data")
    generate_video_dataset(
        root, count=24, seed=3, durations=(20.0, 36.0), size=(160, 120), progress=None
    )
    assert vhd(["extract", str(root / "videos"), "--out", str(root), "--recipe", "pixel_mel"]) == 0
    return root


@pytest.fixture(scope="module")
def hpcl(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("hpcl_run")
    return fit(
        "hpcl_youtube.yaml", data, run, "--data.init_args.domain=synthetic",
        "--data.init_args.video_feature_dirs=[pixel_features]",
        "--data.init_args.audio_feature_dirs=[mel_features]",
        f"--data.init_args.max_v_l={WINDOW}", "--model.init_args.video_dim=1024",
        "--model.init_args.audio_dim=128", "--trainer.max_epochs=5",
    )  # fmt: skip


@pytest.fixture(scope="module")
def new_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[float]]:
    """Videos the model never saw, at other sizes and rates: {path: planted interval}."""
    folder = tmp_path_factory.mktemp("new_videos")
    planted = {"a": (24.0, 30.0, 25.0, 200, 150), "b": (10.0, 16.0, 12.5, 160, 120)}
    videos = {}
    for seed, (name, (start, end, fps, width, height)) in enumerate(planted.items()):
        path = folder / f"{name}.mp4"
        write_video(path, duration=40.0, fps=fps, width=width, height=height,
                    highlight=(start, end), seed=100 + seed)  # fmt: skip
        videos[str(path)] = [start, end]
    return videos


def test_checkpoints_record_the_features_they_were_trained_on(hpcl: Path) -> None:
    checkpoint = torch.load(hpcl, map_location="cpu", weights_only=True)
    provenance = checkpoint["HighlightDataModule"]["feature_manifest"]
    assert provenance["clip_len"] == 2.0 and list(provenance["recipes"]) == ["pixel_mel"]
    assert provenance["recipes"]["pixel_mel"]["features"]["pixel_features"]["dim"] == 1024


def test_highlight_command_finds_the_planted_moment_and_writes_plot_and_reel(
    hpcl: Path, new_videos: dict[str, list[float]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "out"
    code = vhd(["highlight", *new_videos, "--ckpt", str(hpcl), "--out", str(out), "--top", "3",
                "--reel", "--query", "ignored by HPCL"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    for video, truth in new_videos.items():
        vid = Path(video).stem
        result = json.loads((out / f"{vid}.json").read_text())
        assert result["method"] == "HPCL" and result["recipes"] == ["pixel_mel"]
        assert result["query"] is None and "ignored" in result["notes"][0]
        moments = result["moments"]
        assert moments == sorted(moments, key=lambda m: -m[2])
        assert max(overlap(m, truth) for m in moments[:2]) >= 0.5, (moments, truth)
        assert len(result["saliency"]) == 20 and result["saliency"][-1]["end"] == 40.0
        assert (out / f"{vid}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with av.open(str(out / f"{vid}_reel.mp4")) as reel:
            stream = reel.streams.video[0]
            frames = sum(1 for _ in reel.decode(stream))
            rate = float(stream.average_rate)
        merged = merge_intervals([(s, e) for s, e, _ in moments[:3]])
        assert abs(frames / rate - sum(e - s for s, e in merged)) <= 1 / rate + 1e-6
        assert vid in printed
    assert (out / ".features" / "pixel_features").is_dir()  # cached next to the outputs


def merge_intervals(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def test_a_ten_minute_video_is_scored_in_windows(hpcl: Path, tmp_path: Path) -> None:
    """The event at 400-406 s lies far past the first window of 20 clips (40 s)."""
    video = tmp_path / "long.mp4"
    write_video(video, duration=600.0, fps=12.5, width=160, height=120,
                highlight=(400.0, 406.0), seed=7)  # fmt: skip
    highlighter = Highlighter.from_checkpoint(hpcl, cache_dir=tmp_path / "cache")
    assert highlighter.window == WINDOW and len(window_starts(300, WINDOW)) == 29
    result = highlighter(video)
    assert len(result.saliency) == len(result.times) == 300 and result.times[-1] == 598.0
    assert overlap(result.moments[0], [400.0, 406.0]) >= 0.5, result.moments[:3]
    peak = int(np.argmax(result.saliency))
    assert 400 <= result.times[peak] < 406
    result.plot(tmp_path / "long.png")
    assert (tmp_path / "long.png").stat().st_size > 0


def test_bad_input_gets_one_line_and_the_other_videos_go_on(
    hpcl: Path, new_videos: dict[str, list[float]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    broken, short = tmp_path / "broken.mp4", tmp_path / "short.mp4"
    write_corrupt_video(broken)
    write_video(short, duration=1.5, fps=12.5, width=160, height=120, highlight=None, seed=1)
    good = next(iter(new_videos))
    out = tmp_path / "out"
    code = vhd(["highlight", str(broken), str(short), good, "--ckpt", str(hpcl), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 2 and "broken.mp4" in lines[0] and "less than one 2 s clip" in lines[1]
    assert (out / f"{Path(good).stem}.json").is_file()


def test_checkpoint_errors_name_the_fix(
    hpcl: Path, new_videos: dict[str, list[float]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    video = next(iter(new_videos))
    old = torch.load(hpcl, map_location="cpu", weights_only=True)
    del old["HighlightDataModule"]
    old["datamodule_hyper_parameters"]["feature_recipe"] = None
    torch.save(old, tmp_path / "old.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    for ckpt, message in [
        (tmp_path / "old.ckpt", "without a vhd extract manifest"),
        (junk, "cannot be read as a checkpoint"),
        (tmp_path / "absent.ckpt", "no such file"),
    ]:
        assert vhd(["highlight", video, "--ckpt", str(ckpt), "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    # the older checkpoint works once the recipe is named
    args = ["highlight", video, "--ckpt", str(tmp_path / "old.ckpt"), "--recipe", "pixel_mel"]
    assert vhd([*args, "--out", str(tmp_path / "named")]) == 0


def test_videolights_needs_a_query_and_merges_windows_in_absolute_time(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Random CLIP weights and one epoch: this checks the query path and the window merge, not
    what is learnt (the learning is tested with HPCL above)."""
    weights = recipe_class("clip").random_weights(tmp_path / "weights")["clip"]
    queries = ["--queries", str(data / "queries.jsonl"), "--weights", f"clip={weights}"]
    assert vhd(["extract", "--out", str(data), "--recipe", "clip", *queries]) == 0
    ckpt = fit(
        "videolights_qv.yaml", data, tmp_path / "run",
        "--data.init_args.video_feature_dirs=[pixel_features]",
        "--data.init_args.text_feature_dir=[clip_text_features]",
        "--data.init_args.num_workers=0", "--data.init_args.pin_memory=false",
        "--model.init_args.video_dim=1026", "--model.init_args.text_dim=512",
        "--trainer.max_epochs=1",
    )  # fmt: skip
    video = tmp_path / "long.mp4"
    write_video(video, duration=201.0, fps=12.5, width=160, height=120,
                highlight=(170.0, 176.0), seed=5)  # fmt: skip
    highlighter = Highlighter.from_checkpoint(
        ckpt, weights={"clip": weights}, cache_dir=tmp_path / "cache"
    )
    assert highlighter.needs_query and highlighter.window == 75
    result = highlighter(video, query="a bright shape flashes while a tone plays")
    assert len(result.saliency) == 101 and result.query.startswith("a bright")
    assert result.moments and all(0 <= s < e <= 201.0 for s, e, _ in result.moments)
    scores = [score for _, _, score in result.moments]
    assert scores == sorted(scores, reverse=True)

    # the merge, with a stand-in model: every window sees a moment 10-20 s after its start and
    # scores its clips by their window's first clip
    def predict(batch: dict) -> list[dict]:
        return [
            {"pred_relevant_windows": [[10.0, 20.0, 0.5 + meta["window_start"] / 100]],
             "pred_saliency_scores": [float(meta["window_start"])] * meta["num_clips"]}
            for meta in batch["meta"]
        ]  # fmt: skip

    highlighter.model.predict_batch = predict
    merged = highlighter(video, query="anything")
    assert merged.moments == [(62.0, 72.0, 0.76), (10.0, 20.0, 0.5)]  # windows start at 0, 26
    assert (
        merged.saliency[:26].tolist() == [0.0] * 26 and merged.saliency[75:].tolist() == [26.0] * 26
    )
    assert merged.saliency[26:75].tolist() == [13.0] * 49  # the overlap: the mean of the two
    args = ["highlight", str(video), "--ckpt", str(ckpt), "--weights", f"clip={weights}"]
    for query in ([], ["--query", "  "]):
        assert vhd([*args, *query, "--out", str(tmp_path / "out")]) == 1
        assert "finds moments for a text query: pass --query" in capsys.readouterr().err


def test_window_arithmetic() -> None:
    assert window_starts(50, 75) == [0] and window_starts(300, None) == [0]
    assert window_starts(100, 75) == [0, 25] and window_starts(160, 75) == [0, 37, 74, 85]
    parts = [(0, np.array([1.0, 1.0, 3.0])), (2, np.array([5.0, 2.0]))]
    assert average_saliency(parts, 4).tolist() == [1.0, 1.0, 4.0, 2.0]
    kept = temporal_nms([(0, 10, 0.5), (1, 10, 0.9), (20, 30, 0.7), (0, 4, 0.8)])
    assert kept == [(1, 10, 0.9), (0, 4, 0.8), (20, 30, 0.7)]  # (0, 10) overlaps (1, 10): 0.9
    saliency = np.array([0.1, 0.1, 0.9, 0.8, 0.1, 0.1, 0.6, 0.1])
    moments = moments_from_saliency(saliency, 2.0, 15.0)
    assert [(s, e) for s, e, _ in moments] == [(4.0, 8.0), (12.0, 14.0)]
    assert moments_from_saliency(np.array([0.3, 0.3]), 2.0, 3.5) == [(0.0, 3.5, 0.3)]


def test_rasl_scores_from_visual_features_alone(data: Path, tmp_path: Path) -> None:
    """A RASL pretraining checkpoint (no labels) scores a video that has no audio track: its
    inference reads the visual branch only (III-F)."""
    ckpt = fit(
        "rasl_pretrain.yaml", data, tmp_path / "run",
        "--data.init_args.video_feature_dirs=[pixel_features]",
        "--data.init_args.audio_feature_dirs=[mel_features]",
        "--model.init_args.video_dim=1024", "--model.init_args.audio_dim=128",
        "--trainer.max_epochs=1",
    )  # fmt: skip
    video = tmp_path / "silent.mp4"
    write_video(video, duration=75.0, fps=12.5, width=160, height=120,
                highlight=(40.0, 46.0), seed=9, audio=False)  # fmt: skip
    highlighter = Highlighter.from_checkpoint(ckpt, cache_dir=tmp_path / "cache")
    assert highlighter.method == "RASL" and not highlighter.uses_audio
    assert highlighter.window is None and highlighter.clip_len == 2.0  # 1 / fps of pretraining
    result = highlighter(video)
    assert len(result.saliency) == 38 and 0 <= result.saliency.min() <= result.saliency.max() <= 1
    assert result.moments and all(0 <= s < e <= result.duration for s, e, _ in result.moments)
