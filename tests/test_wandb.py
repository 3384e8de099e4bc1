"""A W&B logger selected from the YAML runs in offline mode (no network) and records the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import overrides
from vhd.lightning_cli import VHDCLI
from vhd.models.base import VHDModule

wandb = pytest.importorskip("wandb", reason="the `wandb` extra is part of `make test`'s setup")


def test_wandb_logger_offline(
    tiny_moments: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    config = tmp_path / "wandb.yaml"
    config.write_text(
        "trainer:\n"
        "  logger:\n"
        "    class_path: lightning.pytorch.loggers.WandbLogger\n"
        "    init_args:\n"
        f"      save_dir: {tmp_path}\n"
        "      project: vhd-test\n"
        "      offline: true\n"
    )
    args = [
        arg for arg in overrides(tiny_moments, tmp_path) if "logger.init_args.save_dir" not in arg
    ]
    cli = VHDCLI(
        VHDModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=[
            "fit",
            *args,
            "--config",
            str(config),
            "--trainer.max_epochs=1",
            "--trainer.log_every_n_steps=1",
        ],
    )
    summary = dict(cli.trainer.logger.experiment.summary)
    wandb.finish()

    assert "train/loss" in summary and "val/MR-full-mAP" in summary
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (events,) = run_dir.glob("run-*.wandb")
    assert events.stat().st_size > 0, "the offline run wrote no events"
