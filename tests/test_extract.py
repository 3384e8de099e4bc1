"""``vhd extract`` end to end on generated videos: clip counts and dims for every recipe, resume
after a kill, bad files, user errors, and the datamodules' manifest check."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vhd.cli import main as vhd
from vhd.datamodules import HighlightDataModule, UnlabeledDataModule
from vhd.datamodules.synthetic.videos import write_corrupt_video, write_video
from vhd.extract.manifest import (
    ManifestError,
    open_manifest,
    read_manifest,
    recipe_entry,
    write_manifest,
)
from vhd.extract.recipes import RECIPES, recipe_class

# (duration s, fps, width, height, audio): odd sizes, rates and lengths
VIDEOS = {
    "odd": (7.3, 24000 / 1001, 321, 239, True),
    "pal": (4.0, 12.5, 160, 120, True),
    "silent": (3.1, 29.97, 200, 112, False),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for seed, (vid, (duration, fps, width, height, audio)) in enumerate(VIDEOS.items()):
        write_video(
            folder / f"{vid}.mp4", duration=duration, fps=fps, width=width, height=height,
            highlight=(1.0, 2.5), seed=seed, audio=audio,
        )  # fmt: skip
    return folder


def load(path: Path, key: str = "features") -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return archive[key]


def run_extract(*args: str | Path) -> int:
    return vhd(["extract", *map(str, args)])


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_writes_one_row_per_clip(
    name: str, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cls = recipe_class(name)
    weights = [f"{key}={path}" for key, path in cls.random_weights(tmp_path / "w").items()]
    out = tmp_path / "out"
    clip_len = 2.0
    args = [videos, "--out", out, "--recipe", name, "--clip_len", clip_len, "--batch_size", 4]
    if weights:
        args += ["--weights", *weights]
    assert run_extract(*args) == 0, capsys.readouterr().err
    manifest = read_manifest(out)
    assert manifest is not None and list(manifest["recipes"]) == [name]
    assert manifest["clip_len"] == clip_len and manifest["fps"] == 1 / clip_len
    entry = manifest["recipes"][name]
    media = {f: spec for f, spec in entry["features"].items() if spec["modality"] != "text"}
    assert media, manifest
    for vid, (duration, *_rest, audio) in VIDEOS.items():
        clips = math.ceil(duration / clip_len)
        assert entry["videos"][vid]["num_clips"] == clips
        assert entry["videos"][vid]["has_audio"] is audio
        for folder, spec in media.items():
            features = load(out / folder / f"{vid}.npz")
            assert features.shape == (clips, spec["dim"]) and features.dtype == np.float32
            assert np.isfinite(features).all()
    for name_, spec in entry["weights"].items():
        assert len(spec["sha256"]) == 64 and Path(spec["file"]).is_file(), name_


def test_pixel_mel_sees_the_planted_highlight(videos: Path, tmp_path: Path) -> None:
    """The flash and the tone of 1.0-2.5 s land in clip 0-1 of 1 s clips: motion and loudness."""
    assert run_extract(videos / "pal.mp4", "--out", tmp_path, "--recipe", "pixel_mel",
                       "--clip_len", 1.0) == 0  # fmt: skip
    pixels = load(tmp_path / "pixel_features" / "pal.npz")
    mel = load(tmp_path / "mel_features" / "pal.npz")
    motion = pixels[:, 768:].mean(axis=1)
    loudness = mel[:, :64].max(axis=1)  # the tone fills a few of the 64 bands
    assert motion[1] > motion[3] and loudness[1] > loudness[3] + 1.0


def test_a_killed_run_resumes_to_identical_files(tmp_path: Path) -> None:
    source = tmp_path / "videos"
    for seed in range(6):
        write_video(source / f"v{seed}.mp4", duration=12.0, fps=25, width=320, height=240,
                    highlight=(2.0, 6.0), seed=seed)  # fmt: skip
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run_extract(source, "--out", clean, "--recipe", "pixel_mel") == 0
    command = [sys.executable, "-m", "vhd.cli", "extract", str(source), "--out", str(killed),
               "--recipe", "pixel_mel", "--workers", "0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((killed / "mel_features").glob("*.npz"))) < 2:
        assert process.poll() is None and time.monotonic() < deadline, "finished before the kill"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = set(path.name for path in (killed / "mel_features").glob("*.npz"))
    assert 2 <= len(partial) < 6
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    for folder in ("pixel_features", "mel_features"):
        names = sorted(path.name for path in (clean / folder).glob("*.npz"))
        assert names == sorted(path.name for path in (killed / folder).glob("*.npz"))
        for name in names:
            assert (clean / folder / name).read_bytes() == (killed / folder / name).read_bytes()
    videos = [read_manifest(out)["recipes"]["pixel_mel"]["videos"] for out in (clean, killed)]
    assert videos[0] == videos[1] and len(videos[0]) == 6


def test_bad_files_are_listed_and_the_others_go_on(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "videos"
    source.mkdir()
    (source / "good.mp4").write_bytes((videos / "pal.mp4").read_bytes())
    write_corrupt_video(source / "broken.mp4")
    (source / "notes.txt").write_text("not a video: ignored, not listed")
    out = tmp_path / "out"
    assert run_extract(source, "--out", out, "--recipe", "pixel_mel") == 1
    err = capsys.readouterr().err
    assert "error: 1 videos could not be extracted" in err and "Traceback" not in err
    (row,) = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert row["vid"] == "broken" and row["video"].endswith("broken.mp4") and row["error"]
    assert (out / "pixel_features" / "good.npz").is_file()
    assert not (out / "pixel_features" / "broken.npz").exists()
    # a rerun without the broken file finishes the folder and clears errors.jsonl
    (source / "broken.mp4").unlink()
    assert run_extract(source, "--out", out, "--recipe", "pixel_mel") == 0
    assert not (out / "errors.jsonl").exists()
    assert "1 already done" in capsys.readouterr().out


def test_a_video_without_audio_gets_the_features_of_silence(videos: Path, tmp_path: Path) -> None:
    assert run_extract(videos / "silent.mp4", "--out", tmp_path, "--recipe", "pixel_mel") == 0
    assert read_manifest(tmp_path)["recipes"]["pixel_mel"]["videos"]["silent"]["has_audio"] is False
    mel = load(tmp_path / "mel_features" / "silent.npz")
    assert np.allclose(mel, mel[0]) and np.allclose(mel[:, 64:], 0)  # log of the floor, no spread


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--recipe", "pixel_mel", "--clip_len", "1.0"], "clip_len=2.0, this run has clip_len=1.0"),
        (
            ["--recipe", "audio", "--weights", "pann=WEIGHTS"],
            "is not a readable torch weight file",
        ),
        (["--recipe", "pixel_mel", "--weights", "clip=x.pt"], "has no weights called 'clip'"),
        (["--recipe", "pixel_mel", "--queries", "QUERIES"], "has no text encoder"),
        (["--recipe", "clip"], "needs open_clip ViT-B-32"),
        (["--recipe", "clip", "--weights", "clip=/no/such.safetensors"], "no such file"),
        (["--recipe", "pixel_mel", "--device", "cuda"], "no CUDA device"),
    ],
)
def test_user_errors_are_one_line(
    args: list[str],
    message: str,
    videos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VHD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VHD_OFFLINE", "1")
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"qid": 1, "query": "a flash"}\n')
    out = tmp_path / "out"
    assert run_extract(videos / "pal.mp4", "--out", out, "--recipe", "pixel_mel") == 0
    capsys.readouterr()
    (tmp_path / "weights.pth").write_bytes(b"not a checkpoint")
    replace = {"QUERIES": str(queries)}
    args = [replace.get(arg, arg).replace("WEIGHTS", str(tmp_path / "weights.pth")) for arg in args]
    assert run_extract(videos / "pal.mp4", "--out", out, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    if "needs open_clip" in message:
        assert str(tmp_path / "cache" / "weights") in err and "--weights clip=PATH" in err


def test_missing_input_and_duplicate_vids(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_extract(tmp_path / "absent.mp4", "--out", tmp_path, "--recipe", "pixel_mel") == 2
    assert "no such file or folder" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "pal.mkv").write_bytes((videos / "pal.mp4").read_bytes())
    assert run_extract(videos / "pal.mp4", other, "--out", tmp_path, "--recipe", "pixel_mel") == 2
    assert "both be written as vid 'pal'" in capsys.readouterr().err


def test_datamodules_refuse_features_of_another_clip_len_or_recipe(
    videos: Path, tmp_path: Path
) -> None:
    assert run_extract(videos, "--out", tmp_path, "--recipe", "pixel_mel") == 0
    common = dict(data_root=str(tmp_path), video_feature_dirs=["pixel_features"])
    with pytest.raises(ManifestError, match=r"clip_len=2 s .* reads 1 s per feature row"):
        HighlightDataModule(**common, clip_len=1.0).setup("fit")
    with pytest.raises(ManifestError, match=r"recipe\(s\) \['pixel_mel'\] but the config names"):
        HighlightDataModule(**common, feature_recipe=["pixel_mel", "clip"]).setup("fit")
    with pytest.raises(ManifestError, match=r"1 / data.fps \(fps=5\)"):
        UnlabeledDataModule(**common, audio_feature_dirs=["mel_features"], fps=5.0).setup("fit")
    pretraining = UnlabeledDataModule(
        **common, audio_feature_dirs=["mel_features"], fps=0.5, window_seconds=4.0,
        feature_recipe="pixel_mel",
    )  # fmt: skip
    pretraining.setup("fit")
    assert len(pretraining.datasets["train"]) == 2 + 1 + 1  # windows of 2 clips: odd, pal, silent


def test_one_folder_holds_several_recipes_of_one_clip_len(tmp_path: Path) -> None:
    """slowfast + clip in one folder is the VideoLights input; another clip_len is refused."""
    slowfast = recipe_entry({"slowfast_features": {"dim": 2304}}, {}, {"slowfast": {"sha256": "a"}})
    clip = recipe_entry({"clip_features": {"dim": 512}}, {}, {"clip": {"sha256": "b"}})
    write_manifest(tmp_path, open_manifest(tmp_path, 2.0, "slowfast", slowfast))
    write_manifest(tmp_path, open_manifest(tmp_path, 2.0, "clip", clip))
    assert sorted(read_manifest(tmp_path)["recipes"]) == ["clip", "slowfast"]
    with pytest.raises(ManifestError, match=r"clip_len=2\.0, this run has clip_len=1\.0"):
        open_manifest(tmp_path, 1.0, "pixel_mel", recipe_entry({}, {}, {}))
    other_weights = recipe_entry(clip["features"], {}, {"clip": {"sha256": "c"}})
    with pytest.raises(ManifestError, match="has recipe 'clip' with weights="):
        open_manifest(tmp_path, 2.0, "clip", other_weights)
