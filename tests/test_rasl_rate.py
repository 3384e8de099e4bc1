"""RASL at the paper's rate: features every 0.2 s (150 steps per 30 s window), pretrained through
``vhd fit`` and evaluated through ``vhd test`` / ``vhd predict`` on a benchmark of 2 s clips. The
whole video is scored and each clip's score comes from the steps of its own time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_rasl_cli import write_corpus
from vhd.cli import main
from vhd.datamodules import HighlightDataModule
from vhd.errors import FeatureError
from vhd.lightning_cli import VHDCLI
from vhd.models import RASL, VHDModule
from vhd.models.rasl import pool_clip_rows

REPO = Path(__file__).resolve().parents[1]
STEP, CLIP, WINDOW = 0.2, 2.0, 150  # the paper: 5 fps, 30 s windows; benchmark clips of 2 s
ROWS_PER_CLIP = round(CLIP / STEP)
VIDEO_DIM, AUDIO_DIM = 16, 8
# val videos: clips and feature rows (one stops a step short of its last clip's end)
VAL = {"long": (47, 470), "short": (9, 89), "middle": (20, 200)}
# (video, first row, end row) of the planted pattern: clips 18, 31 and the last of "long" (rows
# beyond the first three windows), the first half of clip 25, and clip 3 of "short"
PLANTED = [("long", 180, 190), ("long", 310, 320), ("long", 460, 470), ("long", 250, 255)]
PLANTED += [("short", 30, 40)]


def write_benchmark(root: Path, val: dict[str, tuple[int, int]] = VAL) -> dict[str, dict]:
    """YouTube-style annotations (2 s clips) and video features every 0.2 s: noise, except that
    column 0 is 0 everywhere and 1 on the planted rows."""
    (root / "video_features").mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = {}
    for vid, (clips, rows) in {"train_0": (12, 120), **val}.items():
        features = rng.normal(size=(rows, VIDEO_DIM)).astype(np.float32)
        features[:, 0] = 0.0
        for name, first, end in PLANTED:
            if name == vid:
                features[first:end, 0] = 1.0
        np.savez(root / "video_features" / f"{vid}.npz", features=features)
        labels = [
            [int(any(n == vid and f <= i * ROWS_PER_CLIP < e for n, f, e in PLANTED))]
            for i in range(clips)
        ]
        labels[0] = [1]  # every video has a positive clip
        records[vid] = {
            "qid": vid, "vid": vid, "query": "dog", "domain": "dog", "duration": clips * CLIP,
            "label": labels,
        }  # fmt: skip
    (root / "youtube_train.jsonl").write_text(json.dumps(records["train_0"]) + "\n")
    (root / "youtube_valid.jsonl").write_text(
        "".join(json.dumps(records[vid]) + "\n" for vid in val)
    )
    (root / "splits.json").write_text(json.dumps({"dog": {"train": ["train_0"], "val": [*val]}}))
    return records


def run_args(config: str, data_root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "--config", str(REPO / "configs" / config), f"--data.init_args.data_root={data_root}",
        "--data.init_args.synthetic=null", f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}", *extra,
    ]  # fmt: skip


def benchmark(root: Path, **kwargs: object) -> HighlightDataModule:
    settings = dict(data_root=str(root), feature_step=STEP, pool_features=False, eval_batch_size=3)
    return HighlightDataModule(**{**settings, **kwargs})


class ColumnZero(RASL):
    """RASL whose step score is the feature's column 0: shows where each clip's score comes from."""

    def score_windows(self, windows: dict[str, torch.Tensor]) -> torch.Tensor:
        assert windows["visual"].shape[1] == WINDOW  # 150 steps per window, as the paper
        return windows["visual"][..., 0]


def test_planted_pattern_lands_on_its_own_clips(tmp_path: Path) -> None:
    write_benchmark(tmp_path)
    data = benchmark(tmp_path)
    data.setup("test")
    model = ColumnZero(video_dim=VIDEO_DIM, audio_dim=AUDIO_DIM, modalities="visual")
    model.hparams.score_norm = "none"
    predictions = {
        p["vid"]: p["pred_saliency_scores"]
        for p in model.eval().predict_batch(next(iter(data.test_dataloader())))
    }
    expected = {vid: np.zeros(clips) for vid, (clips, _) in VAL.items()}
    expected["long"][[18, 31, 46]] = 1.0
    expected["long"][25] = 0.5  # half of its rows
    expected["short"][3] = 1.0
    for vid, scores in predictions.items():
        np.testing.assert_allclose(scores, expected[vid], atol=1e-6)


def test_pretrain_and_evaluate_at_150_steps_per_window(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", VIDEO_DIM, AUDIO_DIM, steps=(200, 150, 320, 90), step_s=STEP)
    records = write_benchmark(tmp_path / "bench")
    model_args = (
        "--data.init_args.fps=5", f"--model.init_args.video_dim={VIDEO_DIM}",
        f"--model.init_args.audio_dim={AUDIO_DIM}", f"--model.init_args.window={WINDOW}",
        "--model.init_args.k=10", "--model.init_args.channels=[4, 8, 8]",
        "--trainer.max_epochs=1",
    )  # fmt: skip
    pretrain = run_args("rasl_pretrain.yaml", tmp_path / "corpus", tmp_path / "pre", *model_args)
    assert main(["fit", *pretrain]) == 0
    ckpt = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    eval_args = run_args(
        "rasl_eval_youtube.yaml", tmp_path / "bench", tmp_path / "eval",
        f"--data.init_args.feature_step={STEP}", f"--ckpt_path={ckpt}",
    )  # fmt: skip
    cli = VHDCLI(
        VHDModule, subclass_mode_model=True, subclass_mode_data=True, args=["test", *eval_args]
    )
    assert "test/mAP" in cli.trainer.callback_metrics
    assert main(["predict", *eval_args]) == 0
    rows = [json.loads(line) for line in (tmp_path / "eval" / "hl_val_submission.jsonl").open()]
    assert sorted(row["vid"] for row in rows) == sorted(VAL)
    # every labelled clip is scored, from the mean of the model's scores over its own 10 steps
    model = RASL.load_from_checkpoint(ckpt).eval()
    assert model.hparams.window == WINDOW and model.hparams.audio_alignment == "interpolate"
    data = benchmark(tmp_path / "bench")
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    steps = dict(zip([m["vid"] for m in batch["meta"]], model.highlight_scores(batch), strict=True))
    for row in rows:
        clips, feature_rows = VAL[row["vid"]]
        assert len(row["pred_saliency_scores"]) == clips == len(records[row["vid"]]["label"])
        assert len(steps[row["vid"]]) == feature_rows  # the whole video, not its first clips
        blocks = [[i * 10, min(i * 10 + 10, feature_rows)] for i in range(clips)]
        expected = pool_clip_rows(steps[row["vid"]], blocks)
        np.testing.assert_allclose(row["pred_saliency_scores"], expected.tolist(), atol=2e-6)
        assert not np.allclose(row["pred_saliency_scores"], row["pred_saliency_scores"][0])


def test_features_short_of_the_video_are_an_error(tmp_path: Path) -> None:
    write_benchmark(tmp_path, val={"cut": (20, 150)})  # 30 s of features for a 40 s video
    with pytest.raises(FeatureError) as error:
        benchmark(tmp_path).setup("test")
    message = str(error.value)
    assert str(tmp_path / "video_features" / "cut.npz") in message
    assert "cover 30.0 s" in message and "span 40.0 s" in message
    assert "data.feature_step" in message and "on_short_features='truncate'" in message
    data = benchmark(tmp_path, on_short_features="truncate")
    data.setup("test")
    item = data.datasets["val"][0]
    assert item["meta"]["num_clips"] == len(item["labels"]) == 15  # the clips 30 s reach
    assert item["video"].shape[0] == 150
