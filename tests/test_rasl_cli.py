"""RASL end to end through ``vhd``: pretrain on an unlabelled corpus, then evaluate on a highlight
benchmark without training on it; on synthetic data (a learning test) and on real-layout files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.submission_helpers import assert_logged_match, score_submission
from vhd.cli import main
from vhd.datamodules import HighlightDataModule, UnlabeledDataModule
from vhd.datamodules.synthetic import generate
from vhd.lightning_cli import VHDCLI
from vhd.metrics import functional
from vhd.models import RASL, VHDModule

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = REPO / "configs" / "rasl_pretrain.yaml"
EVAL = {"youtube": REPO / "configs" / "rasl_eval_youtube.yaml"}
EVAL["tvsum"] = REPO / "configs" / "rasl_eval_tvsum.yaml"


def run_args(config: Path, data_root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "--config",
        str(config),
        f"--data.init_args.data_root={data_root}",
        "--data.init_args.synthetic=null",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
        *extra,
    ]


def pretrain(corpus: Path, run_dir: Path, *extra: str) -> Path:
    main(["fit", *run_args(PRETRAIN, corpus, run_dir, *extra)])
    return run_dir / "checkpoints" / "last.ckpt"


def evaluate(protocol: str, data_root: Path, run_dir: Path, ckpt: Path) -> dict[str, float]:
    cli = VHDCLI(
        VHDModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=["test", *run_args(EVAL[protocol], data_root, run_dir), f"--ckpt_path={ckpt}"],
    )
    return {key: float(value) for key, value in cli.trainer.callback_metrics.items()}


def predict_and_score(
    protocol: str, data_root: Path, run_dir: Path, ckpt: Path
) -> dict[str, float]:
    """``vhd predict`` on the evaluated split, then ``vhd eval`` on the submission it writes."""
    main(["predict", *run_args(EVAL[protocol], data_root, run_dir), f"--ckpt_path={ckpt}"])
    files = sorted(data_root.glob(f"{protocol}_*.jsonl"))  # train and val annotation files
    return score_submission(run_dir / "hl_val_submission.jsonl", files, protocol, run_dir)


def expected_random_map(data_root: Path, draws: int = 200) -> float:
    """mAP of a random scorer on the evaluated (val) videos, averaged over many draws."""
    records = [json.loads(line) for line in (data_root / "youtube_valid.jsonl").open()]
    rng = np.random.default_rng(0)
    return 100 * float(
        np.mean(
            [
                functional.youtube_video_ap(rng.random(len(record["label"])), record)
                for record in records
                for _ in range(draws)
            ]
        )
    )


def test_configs_are_complete_and_share_the_model() -> None:
    parsed = {}
    for name, config in {"pretrain": PRETRAIN, **EVAL}.items():
        cli = VHDCLI(
            VHDModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
            args=["--config", str(config)],
        )  # fmt: skip
        assert isinstance(cli.model, RASL)
        parsed[name] = cli
    assert isinstance(parsed["pretrain"].datamodule, UnlabeledDataModule)
    assert parsed["pretrain"].datamodule.window == parsed["pretrain"].model.hparams.window == 15
    for protocol in EVAL:
        assert isinstance(parsed[protocol].datamodule, HighlightDataModule)
        assert parsed[protocol].datamodule.protocol == protocol
        assert parsed[protocol].datamodule.hparams.audio_feature_dirs is None  # vision only
        assert dict(parsed[protocol].model.hparams) == dict(parsed["pretrain"].model.hparams)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rasl_synthetic")
    generate("unlabeled", root / "unlabeled", seed=0, size="tiny")
    generate(
        "highlights", root / "youtube", seed=1, size="quickstart", style="youtube", num_domains=3
    )
    generate("highlights", root / "tvsum", seed=1, size="tiny", style="tvsum")
    return root


@pytest.fixture(scope="module")
def pretrained(synthetic: Path) -> Path:
    return pretrain(synthetic / "unlabeled", synthetic / "run", "--trainer.max_epochs=25")


def test_pretrained_rasl_detects_synthetic_highlights(synthetic: Path, pretrained: Path) -> None:
    """Pretrained without labels, RASL ranks held-out highlight clips (rare, visually distinct
    events) clearly above a random scorer, from video alone."""
    checkpoint = torch.load(pretrained, weights_only=True)
    assert checkpoint["hyper_parameters"]["window"] == 15
    assert (pretrained.parent / "best.ckpt").is_file()
    metrics = evaluate("youtube", synthetic / "youtube", synthetic / "eval_youtube", pretrained)
    domains = {key for key in metrics if key.startswith("test/mAP/")}
    assert domains == {"test/mAP/dog", "test/mAP/gymnastics", "test/mAP/parkour"}
    chance = expected_random_map(synthetic / "youtube")
    assert metrics["test/mAP"] > chance + 8, (metrics["test/mAP"], chance)


def test_tvsum_evaluation(synthetic: Path, pretrained: Path) -> None:
    """``vhd test`` scores the val videos' predictions as ``vhd eval`` scores them, per domain."""
    run_dir = synthetic / "eval_tvsum"
    metrics = evaluate("tvsum", synthetic / "tvsum", run_dir, pretrained)
    figures = predict_and_score("tvsum", synthetic / "tvsum", run_dir, pretrained)
    assert {"top5-mAP", "top5-mAP-domain-avg"} < set(figures)
    assert_logged_match(metrics, "test/", figures)


def test_bf16_mixed_pretraining(synthetic: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            *run_args(PRETRAIN, synthetic / "unlabeled", tmp_path),
            "--trainer.fast_dev_run=true",
            "--trainer.precision=bf16-mixed",
        ]
    )


def write_real_layout(source: Path, root: Path, video_dim: int) -> None:
    """A few annotated videos of the real YouTube Highlights files, with random features."""
    splits = json.loads((source / "splits.json").read_text())
    chosen = {
        domain: {"train": entry["train"][:1], "val": entry["val"][:2]}
        for domain, entry in list(splits.items())[:2]
    }
    keep = {vid for entry in chosen.values() for vids in entry.values() for vid in vids}
    (root / "video_features").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("youtube_train.jsonl", "youtube_valid.jsonl"):
        lines = [
            line
            for line in (source / name).read_text().splitlines()
            if json.loads(line)["vid"] in keep
        ]
        (root / name).write_text("\n".join(lines) + "\n")
        for line in lines:
            record = json.loads(line)
            features = rng.normal(size=(len(record["label"]), video_dim)).astype(np.float32)
            np.savez(root / "video_features" / f"{record['vid']}.npz", features=features)
    (root / "splits.json").write_text(json.dumps(chosen))


def write_corpus(
    root: Path,
    video_dim: int,
    audio_dim: int,
    steps: tuple[int, ...] = (9, 15, 31, 40),
    step_s: float = 2.0,
) -> None:
    """An unlabelled corpus as the real one: per-video files of ``steps`` rows every ``step_s``
    seconds, audio 4x denser than video."""
    (root / "video_features").mkdir(parents=True)
    (root / "audio_features").mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for index, length in enumerate(steps):
        vid = f"corpus_{index}"
        video = rng.normal(size=(length, video_dim)).astype(np.float32)
        np.savez(root / "video_features" / f"{vid}.npz", features=video)
        audio = rng.normal(size=(4 * length, audio_dim)).astype(np.float32)
        np.savez(root / "audio_features" / f"{vid}.npz", features=audio)
        rows.append(json.dumps({"vid": vid, "duration": step_s * length}))
    (root / "videos.jsonl").write_text("\n".join(rows) + "\n")


def test_real_layout_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", video_dim=32, audio_dim=16)
    write_real_layout(shared_data / "youtube_highlights", tmp_path / "youtube", video_dim=32)
    ckpt = pretrain(
        tmp_path / "corpus",
        tmp_path / "run",
        "--trainer.max_epochs=1",
        "--model.init_args.video_dim=32",
        "--model.init_args.audio_dim=16",
    )
    metrics = evaluate("youtube", tmp_path / "youtube", tmp_path / "eval", ckpt)
    assert len([key for key in metrics if key.startswith("test/mAP/")]) == 2
    figures = predict_and_score("youtube", tmp_path / "youtube", tmp_path / "eval", ckpt)
    assert_logged_match(metrics, "test/", figures)  # the real files' labels, as vhd eval reads them
    submission = tmp_path / "eval" / "hl_val_submission.jsonl"
    rows = [json.loads(line) for line in submission.read_text().splitlines()]
    records = {
        json.loads(line)["vid"]: json.loads(line)
        for line in (tmp_path / "youtube" / "youtube_valid.jsonl").read_text().splitlines()
    }
    assert {row["vid"] for row in rows} == set(records)
    for row in rows:
        assert len(row["pred_saliency_scores"]) == len(records[row["vid"]]["label"])
        assert min(row["pred_saliency_scores"]) == 0 and max(row["pred_saliency_scores"]) == 1
