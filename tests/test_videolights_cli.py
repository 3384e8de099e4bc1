"""VideoLights through ``vhd``: fit, validate, test and predict on tiny synthetic data, the
QVHighlights config on an official-layout folder, configs, fine-tuning and the missing-features
error."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.submission_helpers import assert_logged_match, predict_figures, score_submission
from vhd.cli import main
from vhd.lightning_cli import VHDCLI
from vhd.models import VideoLights
from vhd.models.base import VHDModule
from vhd.models.videolights import stop_score

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# The synthetic config's model at toy size, so a test epoch takes a second.
TINY = {"hidden_dim": 32, "ffn_dim": 64, "num_heads": 4, "num_encoder_layers": 1,
        "num_decoder_layers": 2, "num_queries": 5, "contrastive_dim": 8}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def run_args(config: Path, data_root: Path, run_dir: Path, tiny: bool = True) -> list[str]:
    args = [
        "--config",
        str(config),
        f"--data.init_args.data_root={data_root}",
        "--data.init_args.num_workers=0",
        "--data.init_args.pin_memory=false",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
    ]
    if tiny:
        args += [f"--model.init_args.{key}={value}" for key, value in TINY.items()]
    return args


def synthetic_args(data_root: Path, run_dir: Path) -> list[str]:
    return [
        *run_args(CONFIGS / "videolights_synthetic.yaml", data_root, run_dir),
        "--data.init_args.synthetic=null",
        "--data.init_args.batch_size=8",
        "--trainer.check_val_every_n_epoch=1",
    ]


@pytest.fixture(scope="module")
def trained(tiny_moments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("videolights_run")
    main(["fit", *synthetic_args(tiny_moments, run_dir), "--trainer.max_epochs=2"])
    return run_dir


def test_fit_selects_on_the_release_stop_score(trained: Path) -> None:
    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "BestCheckpoint" in k]
    assert state["monitor"] == "val/stop_score"
    assert checkpoint["hyper_parameters"]["hidden_dim"] == 32
    assert any(key.startswith("net.bicmf.0.") for key in checkpoint["state_dict"])
    assert not any(key.startswith("criterion.") for key in checkpoint["state_dict"])


def test_validate_and_test_report_the_release_figures(
    tiny_moments: Path, trained: Path, tmp_path: Path
) -> None:
    """``vhd validate`` / ``vhd test`` of best.ckpt log what ``vhd eval`` scores of the
    submission ``vhd predict`` writes from it for the same split (QVHighlights' figures and the
    grounding ones the release adds), and the release's stop score of those figures."""
    ckpt = f"--ckpt_path={trained / 'checkpoints' / 'best.ckpt'}"
    annotations = [tiny_moments / "annotations" / f"{split}.jsonl" for split in ("val", "test")]
    for subcommand, split in (("validate", "val"), ("test", "test")):
        cli = VHDCLI(
            VHDModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=[subcommand, *synthetic_args(tiny_moments, trained), ckpt],
        )
        metrics = {key: float(value) for key, value in cli.trainer.callback_metrics.items()}
        args = [*synthetic_args(tiny_moments, trained), ckpt]
        figures = predict_figures(args, annotations, "qvhighlights", split, tmp_path / split)
        assert {"MR-full-mAP", "MR-long-mAP", "HL-min-VeryGood-mAP"} <= set(figures)
        assert_logged_match(metrics, f"{split}/", figures, digits=2)
        charades = tmp_path / split / "charades"  # the release's R1 from IoU 0.3, and mIoU
        charades.mkdir()
        submission = tmp_path / split / f"hl_{split}_submission.jsonl"
        grounding = score_submission(submission, annotations, "charades", charades)
        assert_logged_match(metrics, f"{split}/", grounding, digits=2)
        figures |= grounding
        expected = stop_score(figures, "qvhighlights")  # from figures rounded to 0.01
        assert metrics[f"{split}/stop_score"] == pytest.approx(expected, abs=6e-3)


def test_predict_writes_the_official_submission(tiny_moments: Path, trained: Path) -> None:
    ckpt = str(trained / "checkpoints" / "best.ckpt")
    main(["predict", *synthetic_args(tiny_moments, trained), f"--ckpt_path={ckpt}"])
    rows = [json.loads(line) for line in (trained / "hl_test_submission.jsonl").open()]
    records = [json.loads(line) for line in (tiny_moments / "annotations" / "test.jsonl").open()]
    assert [row["qid"] for row in rows] == [record["qid"] for record in records]
    for row, record in zip(rows, records, strict=True):
        assert set(row) == {"qid", "vid", "query", "pred_relevant_windows", "pred_saliency_scores"}
        assert len(row["pred_saliency_scores"]) == round(record["duration"] / 2)
        windows = row["pred_relevant_windows"]
        assert len(windows) == TINY["num_queries"]  # every moment query, as released
        assert all(0 <= start <= end <= record["duration"] for start, end, _ in windows)
        assert all(start % 2 == 0 and end % 2 == 0 for start, end, _ in windows)
        scores = [score for _, _, score in windows]
        assert scores == sorted(scores, reverse=True)


def test_bf16_mixed_trains(tiny_moments: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            *synthetic_args(tiny_moments, tmp_path),
            "--trainer.fast_dev_run=true",
            "--trainer.precision=bf16-mixed",
        ]
    )


def test_fine_tuning_loads_weights_only(trained: Path) -> None:
    ckpt = trained / "checkpoints" / "best.ckpt"
    model = VideoLights(video_dim=258, text_dim=128, pretrained_checkpoint=str(ckpt), **TINY)
    model._trainer = SimpleNamespace(datamodule=None)  # setup as the Trainer calls it
    model.setup("test")  # evaluation restores a checkpoint itself: nothing loaded
    before = {name: value.clone() for name, value in model.net.state_dict().items()}
    model.setup("fit")
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    for name, value in model.net.state_dict().items():
        assert torch.equal(value, state[f"net.{name}"]), name
    assert any(not torch.equal(before[name], state[f"net.{name}"]) for name in before)


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("videolights_qv.yaml", 10_796_263),
        ("videolights_qv_finetune.yaml", 10_796_263),
        ("videolights_charades.yaml", 10_796_263),
        ("videolights_pretrain.yaml", 10_796_263),
        ("videolights_tvsum.yaml", 10_201_831),
        ("videolights_synthetic.yaml", None),
    ],
)
def test_configs_build_the_release_model(name: str, parameters: int | None) -> None:
    cli = VHDCLI(VHDModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                 args=["--config", str(CONFIGS / name)])  # fmt: skip
    assert isinstance(cli.model, VideoLights)
    assert cli.config["seed_everything"] == 2018
    assert cli.trainer.gradient_clip_val == 0.1
    if parameters is not None:
        assert sum(p.numel() for p in cli.model.parameters()) == parameters


# -- the official feature layout -------------------------------------------------------------------
QV_VIDEO = {"slowfast_features": 2304, "clip_features": 512, "blip_video_features": 768}
QV_TEXT = {"clip_text_features": 512, "blip_aug_text_features_openai": 768}


def official_layout(root: Path, records: list[dict]) -> Path:
    """A QVHighlights folder as the release's feature archive lays it out, random features."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        lines = "".join(json.dumps(record) + "\n" for record in records)
        (root / f"highlight_{split}_release.jsonl").write_text(lines)
    for folder, dim in QV_VIDEO.items():
        (root / folder).mkdir()
        for record in records:
            clips = int(record["duration"] // 2)
            features = rng.standard_normal((clips, dim)).astype(np.float32)
            np.savez(root / folder / f"{record['vid']}.npz", features=features)
    for folder, dim in QV_TEXT.items():
        (root / folder).mkdir()
        for record in records:
            tokens = len(record["query"].split()) + 2 + (dim == 768)  # tokenisers differ
            features = rng.standard_normal((tokens, dim)).astype(np.float32)
            np.savez(root / folder / f"qid{record['qid']}.npz", last_hidden_state=features)
    return root


def test_qv_config_trains_on_an_official_layout(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / "qvhighlights" / "highlight_val_release.jsonl").open()
    records = [json.loads(next(lines)) for _ in range(3)]
    root = tmp_path / "qvhighlights"
    root.mkdir()
    official_layout(root, records)
    run_dir = tmp_path / "run"
    main(
        [
            "fit",
            *run_args(CONFIGS / "videolights_qv.yaml", root, run_dir, tiny=False),
            "--trainer.max_epochs=1",
            "--trainer.check_val_every_n_epoch=1",
            "--data.init_args.batch_size=3",
        ]
    )
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    weights = checkpoint["state_dict"]
    assert sum(value.numel() for name, value in weights.items() if name.startswith("net.")) == (
        10_796_263
    )
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "BestCheckpoint" in k]
    assert state["monitor"] == "val/stop_score"


def test_missing_features_show_both_ways_forward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *run_args(CONFIGS / "videolights_qv.yaml", tmp_path, tmp_path, tiny=False)]
    assert main(args) == 2  # a user error: one line, no traceback
    (message,) = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")
    ]
    for folder in (*QV_VIDEO, *QV_TEXT):
        assert f"{tmp_path.resolve() / folder} (MISSING)" in message
    assert "qvhighlights_features.tar.gz" in message
    assert "slowfast_features/{vid}.npz (SlowFast, 2304 per row)" in message
    assert "vhd fit --config configs/videolights_synthetic.yaml" in message
    assert (REPO / "configs" / "videolights_synthetic.yaml").is_file()
