"""The ``vhd`` entry point end to end on tiny synthetic data: fit, validate, test, predict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.strategies import DDPStrategy

from tests.submission_helpers import assert_logged_match, logged_columns, predict_figures
from vhd.cli import main
from vhd.lightning_cli import VHDCLI
from vhd.models.base import VHDModule

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "baseline_synthetic.yaml"


def overrides(data_root: Path, run_dir: Path) -> list[str]:
    """Point the baseline config at a tiny dataset and a temporary run folder."""
    return [
        "--config",
        str(BASELINE),
        f"--data.init_args.data_root={data_root}",
        "--data.init_args.synthetic=null",
        "--data.init_args.batch_size=8",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
    ]


@pytest.fixture(scope="module")
def trained(tiny_moments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short epochs of the baseline; returns the run folder holding checkpoints/best.ckpt."""
    run_dir = tmp_path_factory.mktemp("run")
    main(["fit", *overrides(tiny_moments, run_dir), "--trainer.max_epochs=2"])
    return run_dir


def test_fit_fast_dev_run(tiny_moments: Path, tmp_path: Path) -> None:
    main(["fit", *overrides(tiny_moments, tmp_path), "--trainer.fast_dev_run=true"])
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()  # no model selection


def test_fit_writes_best_checkpoint_on_main_metric(trained: Path) -> None:
    import torch

    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    callbacks = {
        key: value for key, value in checkpoint["callbacks"].items() if "BestCheckpoint" in key
    }
    (state,) = callbacks.values()
    assert state["monitor"] == "val/MR-full-mAP"
    logged = logged_columns(trained / "logs" / "version_0" / "metrics.csv")["val/MR-full-mAP"]
    assert [epoch for epoch, _ in logged] == [0, 1]
    best_epoch, best = max(logged, key=lambda pair: pair[1])  # the first of equal values
    assert float(state["best_model_score"]) == pytest.approx(best, rel=1e-6)
    assert checkpoint["epoch"] == best_epoch


def test_validate_and_test_report_official_metrics(
    tiny_moments: Path, trained: Path, tmp_path: Path
) -> None:
    """``vhd validate`` / ``vhd test`` of best.ckpt log what ``vhd eval`` scores of the
    submission ``vhd predict`` writes from it for the same split."""
    ckpt = f"--ckpt_path={trained / 'checkpoints' / 'best.ckpt'}"
    annotations = [tiny_moments / "annotations" / f"{split}.jsonl" for split in ("val", "test")]
    for subcommand, split in (("validate", "val"), ("test", "test")):
        cli = VHDCLI(
            VHDModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=[subcommand, *overrides(tiny_moments, trained), ckpt],
        )
        metrics = {key: float(value) for key, value in cli.trainer.callback_metrics.items()}
        args = [*overrides(tiny_moments, trained), ckpt]
        figures = predict_figures(args, annotations, "qvhighlights", split, tmp_path / split)
        for key in ("MR-full-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7", "HL-min-VeryGood-mAP"):
            assert key in figures
        assert_logged_match(metrics, f"{split}/", figures, digits=2)


def test_predict_writes_official_submission(tiny_moments: Path, trained: Path) -> None:
    ckpt = str(trained / "checkpoints" / "best.ckpt")
    main(["predict", *overrides(tiny_moments, trained), f"--ckpt_path={ckpt}"])
    submission = trained / "hl_test_submission.jsonl"
    rows = [json.loads(line) for line in submission.read_text().splitlines()]
    annotations = [
        json.loads(line)
        for line in (tiny_moments / "annotations" / "test.jsonl").read_text().splitlines()
    ]
    assert [row["qid"] for row in rows] == [record["qid"] for record in annotations]
    for row, record in zip(rows, annotations, strict=True):
        assert set(row) == {"qid", "vid", "query", "pred_relevant_windows", "pred_saliency_scores"}
        assert row["vid"] == record["vid"]
        assert len(row["pred_saliency_scores"]) == round(record["duration"] / 2)
        windows = row["pred_relevant_windows"]
        assert 1 <= len(windows) <= 10
        assert all(0 <= start < end <= record["duration"] for start, end, _ in windows)
        scores = [score for _, _, score in windows]
        assert scores == sorted(scores, reverse=True)


def test_print_config_round_trips(tiny_moments: Path, tmp_path: Path) -> None:
    def printed(args: list[str]) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "vhd.cli", "fit", *args, "--print_config"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        return result.stdout

    first = printed(overrides(tiny_moments, tmp_path))
    saved = tmp_path / "printed.yaml"
    saved.write_text(first)
    second = printed(["--config", str(saved)])
    assert yaml.safe_load(second) == yaml.safe_load(first)
    assert yaml.safe_load(first)["model"]["class_path"] == "vhd.models.SimilarityBaseline"


def test_precision_devices_and_strategy_pass_through(tiny_moments: Path, tmp_path: Path) -> None:
    cli = VHDCLI(
        VHDModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=[
            *overrides(tiny_moments, tmp_path),
            "--trainer.precision=bf16-mixed",
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
        ],
    )
    assert cli.trainer.precision == "bf16-mixed"
    assert cli.trainer.num_devices == 2
    assert isinstance(cli.trainer.strategy, DDPStrategy)


def test_bf16_mixed_trains_on_cpu(tiny_moments: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            *overrides(tiny_moments, tmp_path),
            "--trainer.fast_dev_run=true",
            "--trainer.precision=bf16-mixed",
        ]
    )


def test_console_script_dispatches_tools(tmp_path: Path) -> None:
    vhd = Path(sys.executable).with_name("vhd")
    result = subprocess.run(
        [str(vhd), "synth", "--kind", "moments", "--out", str(tmp_path / "d"), "--size", "tiny"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "annotations" / "train.jsonl").is_file()


def test_domains_tool_is_a_vhd_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    """``vhd domains`` reaches the per-domain launcher (its own help, under the ``vhd`` name)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["domains", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vhd domains") and "--domains" in out


def test_eval_tool_starts_without_torch() -> None:
    """``vhd eval`` is dispatched before Lightning and torch are imported (it starts fast)."""
    code = (
        "import sys\n"
        "from vhd.cli import main\n"
        "try:\n"
        "    main(['eval', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({'torch', 'lightning'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
