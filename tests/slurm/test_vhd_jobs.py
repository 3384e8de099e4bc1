"""``vhd slurm`` and ``vhd domains --slurm`` on the real test cluster: a 2-process DDP fit, its
requeue mid-run (resumed from last.ckpt, ending exactly as the uninterrupted run), and a job
array of per-domain HPCL runs collected into the paper's table."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.slurm.conftest import SlurmCluster
from tests.test_resume import final_validation, last_epoch

REPO = Path(__file__).resolve().parents[2]
VHD = str(Path(sys.executable).parent / "vhd")
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
HPCL_YOUTUBE = str(REPO / "configs" / "hpcl_youtube.yaml")
EPOCHS = 12


def vhd(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([VHD, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done


def submitted_job(done: subprocess.CompletedProcess[str]) -> int:
    (job,) = re.findall(r"^submitted job (\d+)$", done.stdout, flags=re.MULTILINE)
    return int(job)


def submit_fit(run: Path, data_root: Path) -> int:
    """``vhd slurm --submit``: the quickstart VideoLights on tiny data, 2 CPU processes (DDP
    over gloo) on one node, a validation every epoch."""
    done = vhd(
        "slurm", "--config", QUICKSTART, "--gpus-per-node", "0", "--devices", "2",
        "--cpus-per-task", "1", "--time", "00:10:00", "--submit", "--",
        f"--data.init_args.data_root={data_root}", "--data.init_args.synthetic=null",
        f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
        f"--trainer.max_epochs={EPOCHS}", "--trainer.check_val_every_n_epoch=1",
    )  # fmt: skip
    return submitted_job(done)


def job_log(run: Path, job: int) -> str:
    (log,) = (run / "slurm").glob(f"*-{job}.log")
    return log.read_text()


@pytest.fixture(scope="module")
def uninterrupted(slurm_cluster: SlurmCluster, tiny_moments: Path, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("uninterrupted")
    job = submit_fit(run, tiny_moments)
    assert slurm_cluster.wait(job, timeout=300) == "COMPLETED", job_log(run, job)
    return run


def test_submitted_ddp_fit_completes(uninterrupted: Path) -> None:
    log = next((uninterrupted / "slurm").glob("*.log")).read_text()
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert last_epoch(uninterrupted) == EPOCHS - 1
    assert float(final_validation(uninterrupted)["epoch"]) == EPOCHS - 1
    script = next((uninterrupted / "slurm").glob("*.sbatch")).read_text()
    assert "--ckpt_path last" in script and "#SBATCH --requeue" in script


def test_requeued_job_resumes_and_ends_as_the_uninterrupted_run(
    slurm_cluster: SlurmCluster, tiny_moments: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    job = submit_fit(tmp_path, tiny_moments)
    deadline = time.monotonic() + 240
    while last_epoch(tmp_path) < 2:  # preempt it once a few epochs are behind it
        assert slurm_cluster.state(job) in ("PENDING", "RUNNING"), job_log(tmp_path, job)
        assert time.monotonic() < deadline, "the job reached no third epoch"
        time.sleep(0.2)
    slurm_cluster.requeue(job)
    assert slurm_cluster.wait(job, timeout=300) == "COMPLETED", job_log(tmp_path, job)
    assert slurm_cluster.show(job)["Restarts"] == "1"
    log = job_log(tmp_path, job)
    resumed = re.findall(r"vhd: resumed from \S+last\.ckpt: training goes on at epoch (\d+)", log)
    assert len(resumed) == 1 and 0 < int(resumed[0]) < EPOCHS, log
    print(f"requeued job {job}: resumed at epoch {resumed[0]}")  # quoted in the closing note
    print(f"uninterrupted final validation: {final_validation(uninterrupted)}")
    print(f"requeued final validation:      {final_validation(tmp_path)}")
    assert final_validation(tmp_path) == final_validation(uninterrupted)
    ours = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    reference = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.equal(ours[key], reference["state_dict"][key]) for key in ours)


def test_domain_job_array_completes_and_is_collected(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from vhd.datamodules.synthetic import generate

    data = generate("highlights", tmp_path_factory.mktemp("youtube"), seed=0, size="tiny")
    root = tmp_path / "domains"
    done = vhd(
        "domains", "--slurm", "--config", HPCL_YOUTUBE, "--domains", "dog", "gymnastics",
        "--run_root", str(root), "--gpus-per-node", "0", "--cpus-per-task", "1",
        "--time", "00:10:00", "--submit", "--",
        f"--data.init_args.data_root={data}", "--data.init_args.synthetic=null",
        "--model.init_args.d_model=32", "--model.init_args.d_k=64", "--model.init_args.d_v=64",
        "--model.init_args.d_ff=64", "--model.init_args.num_heads=4",
        "--model.init_args.head_hidden_dim=32", "--trainer.max_epochs=2",
    )  # fmt: skip
    job = submitted_job(done)
    states = slurm_cluster.wait(job, timeout=300)
    logs = "\n".join(path.read_text() for path in (root / "slurm").glob("*.log"))
    assert states == {0: "COMPLETED", 1: "COMPLETED"}, logs
    collected = vhd("domains", "--collect", str(root)).stdout.strip().splitlines()
    assert collected[0].split() == ["domain", "val/mAP"]
    assert [line.split()[0] for line in collected[1:]] == ["dog", "gymnastics", "average"]
    values = [float(line.split()[1]) for line in collected[1:]]
    assert values[2] == pytest.approx((values[0] + values[1]) / 2, abs=1e-4)
