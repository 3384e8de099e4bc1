"""The one-node test cluster: multi-task jobs, requeue, job arrays, and the fixture's skip."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.slurm.conftest import SlurmCluster, parse_record, start_cluster, task_ids


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    return path


def test_two_tasks_complete(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    script = write_script(tmp_path / "job.sh", "#SBATCH --ntasks=2\nsrun hostname\n")
    job = slurm_cluster.submit(script, f"--output={out}")
    assert slurm_cluster.wait(job, timeout=60) == "COMPLETED"
    assert len(out.read_text().splitlines()) == 2
    assert slurm_cluster.show(job)["NumTasks"] == "2"
    assert slurm_cluster.show(job)["WorkDir"] == str(tmp_path.resolve())


def test_requeue_runs_the_job_again(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    log = tmp_path / "restarts.txt"
    # SLURM_RESTART_COUNT is unset on the first run and 1 after one requeue.
    script = write_script(
        tmp_path / "job.sh",
        f"""echo "start ${{SLURM_RESTART_COUNT:-0}}" >> {log}
trap 'echo SIGTERM >> {log}; exit 143' TERM
if [ "${{SLURM_RESTART_COUNT:-0}}" = 0 ]; then sleep 120 & wait; fi
""",
    )
    job = slurm_cluster.submit(script, "--requeue", f"--output={tmp_path / 'out.txt'}")
    deadline = time.monotonic() + 60
    while not (log.exists() and "start 0" in log.read_text()):
        assert time.monotonic() < deadline, slurm_cluster.show(job)
        time.sleep(0.2)
    slurm_cluster.requeue(job)
    assert slurm_cluster.wait(job, timeout=60) == "COMPLETED"
    assert log.read_text().splitlines() == ["start 0", "SIGTERM", "start 1"]
    assert slurm_cluster.show(job)["Restarts"] == "1"


def test_array_tasks(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    script = write_script(tmp_path / "job.sh", "echo $SLURM_ARRAY_TASK_ID\n")
    job = slurm_cluster.submit(script, "--array=0-1", f"--output={tmp_path}/task_%a.out")
    assert slurm_cluster.wait(job, timeout=60) == {0: "COMPLETED", 1: "COMPLETED"}
    assert slurm_cluster.state(f"{job}_1") == "COMPLETED"
    for task in (0, 1):
        assert (tmp_path / f"task_{task}.out").read_text().strip() == str(task)


def test_scontrol_parsing() -> None:
    record = parse_record(
        "JobId=7 JobName=my job ArrayJobId=7 ArrayTaskId=1-3%1 JobState=PENDING "
        "Reason=JobArrayTaskLimit TRES=cpu=1,node=1 CPUs/Task=1 WorkDir=/tmp/a b"
    )
    assert record["JobName"] == "my job"
    assert record["TRES"] == "cpu=1,node=1"
    assert record["CPUs/Task"] == "1"
    assert record["WorkDir"] == "/tmp/a b"
    assert task_ids(record["ArrayTaskId"]) == [1, 2, 3]
    assert task_ids("0,4-8:2") == [0, 4, 6, 8]


@pytest.mark.parametrize("required", [False, True])
def test_without_slurm_skips_or_fails(monkeypatch: pytest.MonkeyPatch, required: bool) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    monkeypatch.setenv("VHD_REQUIRE_SLURM", "1" if required else "0")
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match=r"no sbatch on PATH.*apt-get install -y slurm-wlm munge"):
        start_cluster()
