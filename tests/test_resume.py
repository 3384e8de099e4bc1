"""Resuming outside SLURM: ``last.ckpt`` is the end of the last finished epoch, and a run killed
with SIGKILL and started again with ``--ckpt_path last`` ends exactly as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vhd.cli import main

REPO = Path(__file__).resolve().parents[1]
VHD = str(Path(sys.executable).parent / "vhd")
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
EPOCHS = 8


def fit_args(data_root: Path, run: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", QUICKSTART, f"--data.init_args.data_root={data_root}",
        "--data.init_args.synthetic=null", f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}", "--trainer.accelerator=cpu", *extra,
    ]  # fmt: skip


def stored_epoch(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["epoch"])


def test_last_checkpoint_is_the_last_epoch_not_the_best(tiny_moments: Path, tmp_path: Path) -> None:
    """Three epochs, validated after the second only: best.ckpt holds epoch 1, last.ckpt epoch 2
    (Lightning's own save_last would have left it at the best epoch)."""
    main(fit_args(tiny_moments, tmp_path, "--trainer.max_epochs=3",
                  "--trainer.check_val_every_n_epoch=2"))  # fmt: skip
    assert stored_epoch(tmp_path / "checkpoints" / "best.ckpt") == 1
    assert stored_epoch(tmp_path / "checkpoints" / "last.ckpt") == 2


def run_fit(args: list[str]) -> subprocess.Popen[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # the same kernels in every run
    return subprocess.Popen(
        [VHD, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=REPO, start_new_session=True,
    )  # fmt: skip


def last_epoch(run: Path) -> int:
    """The epoch stored in ``last.ckpt`` (-1 before it exists or while it is being replaced)."""
    try:
        return stored_epoch(run / "checkpoints" / "last.ckpt")
    except (FileNotFoundError, RuntimeError, EOFError):  # not yet written, or being replaced
        return -1


def final_validation(run: Path) -> dict[str, str]:
    """The last validation row of the run's newest CSV log, as logged."""
    log = max(run.glob("logs/version_*/metrics.csv"), key=lambda path: int(path.parent.name[8:]))
    header, *rows = (line.split(",") for line in log.read_text().splitlines())
    validated = [row for row in rows if row[header.index("val/MR-full-mAP")]]
    return {key: value for key, value in zip(header, validated[-1], strict=True) if value}


def test_kill_and_resume_ends_as_the_uninterrupted_run(tiny_moments: Path, tmp_path: Path) -> None:
    every_epoch = [f"--trainer.max_epochs={EPOCHS}", "--trainer.check_val_every_n_epoch=1"]
    reference, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    uninterrupted = run_fit(fit_args(tiny_moments, reference, *every_epoch))
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stdout.read()

    job = run_fit(fit_args(tiny_moments, killed, *every_epoch))
    deadline = time.monotonic() + 300
    while last_epoch(killed) < 2:
        assert job.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # no chance to save anything
    job.wait(timeout=60)
    stopped_at = last_epoch(killed)
    if stopped_at >= EPOCHS - 1:
        pytest.fail(f"the run finished (epoch {stopped_at}) before the kill reached it")

    resumed = run_fit(fit_args(tiny_moments, killed, *every_epoch, "--ckpt_path=last"))
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert f"training goes on at epoch {stopped_at + 1} " in output
    assert final_validation(killed) == final_validation(reference)
    ours = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    theirs = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    assert ours["epoch"] == theirs["epoch"] == EPOCHS - 1
    assert all(
        torch.equal(value, theirs["state_dict"][key]) for key, value in ours["state_dict"].items()
    )
