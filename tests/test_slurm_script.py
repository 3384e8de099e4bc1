"""``vhd slurm`` and ``vhd domains --slurm/--collect`` without a cluster: the scripts they write
(checked by ``bash -n`` and run with a stand-in ``srun``), their user errors, and the table
collected from per-domain result files. The cluster tests submit them for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vhd.cli import main

REPO = Path(__file__).resolve().parents[1]
QV = str(REPO / "configs" / "videolights_qv.yaml")
YOUTUBE = str(REPO / "configs" / "hpcl_youtube.yaml")
VHD = str(Path(sys.executable).absolute().parent / "vhd")
EXAMPLE = [
    "slurm", "--config", QV, "--nodes", "2", "--gpus-per-node", "4", "--time", "08:00:00",
    "--partition", "gpu", "--account", "A", "--qos", "Q", "--cpus-per-task", "8", "--mem", "64G",
]  # fmt: skip
YOUTUBE_DOMAINS = ["dog", "gymnastics", "parkour", "skating", "skiing", "surfing"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run starts in an empty folder (relative run folders land there) and can never
    reach a real ``sbatch``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("shutil.which", lambda name, *args, **kwargs: None)


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """An executable ``name`` in ``folder`` running the shell ``body``."""
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return tool


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single ``error:`` line on stderr."""
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ")
    return line


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_example_script_has_the_allocation_the_environment_and_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*EXAMPLE, "--", "--trainer.max_epochs", "3"]) == 0
    run = tmp_path / "runs" / "videolights_qv"
    script = run / "slurm" / "videolights_qv.sbatch"
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"wrote {script}", f"submit it with: sbatch {script}"]
    text = script.read_text()
    for line in [
        "#SBATCH --job-name=videolights_qv", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64G",
        "#SBATCH --time=08:00:00", "#SBATCH --partition=gpu", "#SBATCH --account=A",
        "#SBATCH --qos=Q", "#SBATCH --signal=SIGUSR1@90", "#SBATCH --requeue",
        "#SBATCH --open-mode=append", f"#SBATCH --output={run}/slurm/%x-%j.log",
        f"cd {tmp_path} || exit 1", "export PYTHONUNBUFFERED=1",
    ]:  # fmt: skip
        assert line in text.splitlines(), line
    assert f"sbatch {script}" in text  # how to resubmit
    assert f"vhd slurm --config {QV} --nodes 2" in text  # how it was made
    assert "# Code: " in text and "git " in text
    assert f"srun {VHD} fit" in text
    assert f"--config {QV}" in text
    assert "--trainer.num_nodes 2 --trainer.devices 4 --trainer.accelerator gpu" in text
    assert "--trainer.strategy ddp" in text
    assert text.rstrip().endswith("--ckpt_path last \\\n  --trainer.max_epochs 3")  # resumes
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_job_runs_vhd_fit_resuming_from_last(tmp_path: Path) -> None:
    """The script run as a job (stand-in ``srun``): ``vhd fit`` of the config with the Trainer of
    the allocation, ``--ckpt_path last`` (which starts afresh when there is no checkpoint) and
    the overrides last, so they win."""
    assert main([*EXAMPLE, "--", "--trainer.max_epochs", "3"]) == 0
    run = tmp_path / "runs" / "videolights_qv"
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "srun", f'printf "%s\\n" "$@" > {tmp_path}/srun.args')
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "1"}
    script = run / "slurm" / "videolights_qv.sbatch"
    subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True)
    args = (tmp_path / "srun.args").read_text().splitlines()
    assert args[:4] == [VHD, "fit", "--config", str(QV)]
    assert args[-4:] == ["--ckpt_path", "last", "--trainer.max_epochs", "3"]


def test_dry_run_prints_the_script_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*EXAMPLE, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/bin/bash\n") and "#SBATCH --nodes=2" in out
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    "how", ["override=", "override space", "later config", "override over config"]
)
def test_the_run_folder_can_be_overridden(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "elsewhere"
    extra = tmp_path / "extra.yaml"
    extra.write_text(f"trainer:\n  default_root_dir: {other if how == 'later config' else 'x'}\n")
    args = {
        "override=": ["--", f"--trainer.default_root_dir={other}"],
        "override space": ["--", "--trainer.default_root_dir", str(other)],
        "later config": ["--config", str(extra)],
        "override over config": [
            "--config", str(extra), "--", f"--trainer.default_root_dir={other}",
        ],
    }[how]  # fmt: skip
    assert main([*EXAMPLE, *args]) == 0
    script = other / "slurm" / "videolights_qv.sbatch"
    assert f"#SBATCH --output={other}/slurm/%x-%j.log" in script.read_text()
    assert files_under(tmp_path) == sorted([script, extra])


def test_cpu_processes_use_ddp_without_gpu_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["slurm", "--config", QV, "--gpus-per-node", "0", "--devices", "3", "--dry-run"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "#SBATCH --ntasks-per-node=3" in text and "#SBATCH --gpus-per-node" not in text
    assert "--trainer.devices 3 --trainer.accelerator cpu --trainer.strategy ddp" in text
    assert main(["slurm", "--config", QV, "--gpus-per-node", "0", "--dry-run"]) == 0
    assert "--trainer.strategy" not in capsys.readouterr().out  # one process: no DDP


def test_submit_prints_the_job_id_and_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = f'echo "$@" > {tmp_path}/sbatch.args\necho "4242;cluster"'
    sbatch = fake_tool(tmp_path / "bin", "sbatch", body)
    monkeypatch.setattr("shutil.which", lambda name, *args, **kwargs: str(sbatch))
    assert main([*EXAMPLE, "--submit"]) == 0
    script = tmp_path / "runs" / "videolights_qv" / "slurm" / "videolights_qv.sbatch"
    assert (tmp_path / "sbatch.args").read_text().split() == ["--parsable", str(script)]
    assert capsys.readouterr().out.splitlines() == [
        "submitted job 4242",
        f"log: {script.parent / 'videolights_qv-4242.log'}",
    ]


def test_a_failing_sbatch_is_reported_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = 'echo "sbatch: error: invalid partition specified: gpu" >&2\nexit 1'
    sbatch = fake_tool(tmp_path / "bin", "sbatch", body)
    monkeypatch.setattr("shutil.which", lambda name, *args, **kwargs: str(sbatch))
    assert main([*EXAMPLE, "--submit"]) == 2
    assert "invalid partition specified: gpu" in error_line(capsys)


def test_submit_without_sbatch_writes_the_script_and_says_how_to_submit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*EXAMPLE, "--submit"]) == 2
    script = tmp_path / "runs" / "videolights_qv" / "slurm" / "videolights_qv.sbatch"
    assert script.is_file()
    line = error_line(capsys)
    assert "sbatch" in line and f"sbatch {script}" in line


@pytest.mark.parametrize("where", ["config", "override"])
def test_cpus_with_nccl_are_refused(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nccl = tmp_path / "nccl.yaml"
    nccl.write_text(
        "trainer:\n  strategy:\n    class_path: lightning.pytorch.strategies.DDPStrategy\n"
        "    init_args: {process_group_backend: nccl}\n"
    )
    backend = "--trainer.strategy.init_args.process_group_backend=nccl"
    args = ["--config", str(nccl)] if where == "config" else ["--", backend]
    assert main(["slurm", "--config", QV, "--gpus-per-node", "0", "--devices", "2", *args]) == 2
    line = error_line(capsys)
    assert "nccl" in line and "gloo" in line and "--gpus-per-node" in line
    assert files_under(tmp_path) == [nccl]  # no script


def test_a_run_folder_that_cannot_be_created_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder under a regular file cannot be created, even by root."""
    (tmp_path / "file").write_text("")
    run = tmp_path / "file" / "run"
    assert main([*EXAMPLE, "--", f"--trainer.default_root_dir={run}"]) == 2
    line = error_line(capsys)
    assert f"run folder {run} cannot be created" in line and "default_root_dir" in line
    assert files_under(tmp_path) == [tmp_path / "file"]


def test_a_run_folder_without_write_permission_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``os.access`` stands in for a read-only folder (root may write to any chmod-ed one)."""
    (tmp_path / "readonly").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: "readonly" not in str(path) and real_access(path, mode)
    )
    run = tmp_path / "readonly" / "run"
    assert main([*EXAMPLE, "--", f"--trainer.default_root_dir={run}"]) == 2
    assert f"run folder {run} is not writable" in error_line(capsys)
    assert files_under(tmp_path) == []


def test_a_missing_config_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slurm", "--config", "nowhere.yaml"]) == 2
    assert "config file nowhere.yaml not found" in error_line(capsys)


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "nowhere.yaml"],
        ["--config", QV, "--nodes", "0"],
        ["--config", QV, "--dry-run", "--submit"],
        ["--nodes", "2"],
    ],
)
def test_user_errors_are_one_line_without_traceback(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run([VHD, "slurm", *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert result.stdout == ""


# -- vhd domains --slurm / --collect ------------------------------------------------------------


def test_domains_array_runs_one_domain_per_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    args = ["domains", "--slurm", "--config", YOUTUBE, "--run_root", str(root)]
    args += ["--time", "1:00:00"]
    assert main([*args, "--", "--trainer.max_epochs=5"]) == 0
    script = root / "slurm" / "hpcl_youtube.sbatch"
    text = script.read_text()
    assert "#SBATCH --array=0-5" in text and "#SBATCH --time=1:00:00" in text
    assert f"#SBATCH --output={root}/slurm/%x-%A_%a.log" in text
    assert "domains=(dog gymnastics parkour skating skiing surfing)" in text
    assert 'domain="${domains[$SLURM_ARRAY_TASK_ID]}"' in text
    subprocess.run(["bash", "-n", str(script)], check=True)
    manifest = json.loads((root / "slurm" / "array.json").read_text())
    assert manifest["domains"] == YOUTUBE_DOMAINS

    # Task 2 with a stand-in srun that fails: it ran parkour's run and recorded the failure.
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "srun", f'printf "%s\\n" "$@" > {tmp_path}/srun.args\nexit 3')
    env = os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "9",
        "SLURM_ARRAY_JOB_ID": "8", "SLURM_ARRAY_TASK_ID": "2", "SLURM_JOB_NAME": "hpcl_youtube",
    }  # fmt: skip
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 3
    srun = (tmp_path / "srun.args").read_text().splitlines()
    assert srun[:4] == [VHD, "domains", "--config", YOUTUBE]
    assert srun[srun.index("--domains") + 1] == "parkour"
    assert srun[srun.index("--run_root") + 1] == str(root) and "--no_summary" in srun
    after = srun[srun.index("--") + 1 :]
    assert after == [
        "--trainer.num_nodes", "1", "--trainer.devices", "1", "--trainer.accelerator", "gpu",
        "--ckpt_path", "last", "--trainer.max_epochs=5",
    ]  # fmt: skip
    status = (root / "parkour" / "slurm.status").read_text().splitlines()
    log = root / "slurm" / "hpcl_youtube-8_2.log"
    assert status == ["state=failed", "exit=3", "job=8_2", f"log={log}"]

    # --collect names the failed task and its log; the others have not started.
    capsys.readouterr()
    assert main(["domains", "--collect", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"failed: parkour: task 8_2 exited with status 3; see {log}" in err
    assert "missing: dog: no result.json and no task has started it" in err


def test_domains_slurm_options_need_slurm(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["domains", "--config", YOUTUBE, "--time", "1:00:00"])
    assert exit_info.value.code == 2
    assert "--time is a SLURM option: add --slurm" in error_line(capsys)


def write_result(root: Path, domain: str, value: float) -> None:
    (root / domain).mkdir(parents=True)
    metrics = {"val/mAP": value, f"val/mAP/{domain}": value, "main_metric": "val/mAP"}
    (root / domain / "result.json").write_text(json.dumps(metrics))


def table_rows(out: str) -> dict[str, float]:
    header, *rows = out.strip().splitlines()
    assert header.split() == ["domain", "val/mAP"]
    return {name: float(value) for name, value in (row.split() for row in rows)}


def test_collect_prints_the_finished_domains_and_reports_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    write_result(root, "dog", 60.0)
    write_result(root, "gymnastics", 70.0)
    code = main(["domains", "--collect", str(root), "--domains", "dog", "gymnastics", "parkour"])
    assert code == 1
    captured = capsys.readouterr()
    assert table_rows(captured.out) == {"dog": 60.0, "gymnastics": 70.0, "average": 65.0}
    assert "missing: parkour: no result.json" in captured.err
    summary = json.loads((root / "domains.json").read_text())
    assert summary["average"] == 65.0 and list(summary["domains"]) == ["dog", "gymnastics"]
    assert list(summary["missing"]) == ["parkour"]

    write_result(root, "parkour", 80.0)  # the domains found under the run root, paper order
    assert main(["domains", "--collect", str(root)]) == 0
    assert list(table_rows(capsys.readouterr().out)) == ["dog", "gymnastics", "parkour", "average"]


def test_collect_with_a_config_lists_the_protocol_and_reads_task_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    write_result(root, "skiing", 50.0)
    log = root / "slurm" / "hpcl_youtube-5_1.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "job 5 (restart 0) on n1\nTraceback (most recent call last):\nRuntimeError: old\n"
        "job 5 (restart 1) on n1\nTraceback (most recent call last):\n"
        "torch.OutOfMemoryError: CUDA out of memory\n"
    )
    (root / "gymnastics").mkdir()
    (root / "gymnastics" / "slurm.status").write_text(f"state=running\nexit=\njob=5_1\nlog={log}\n")
    assert main(["domains", "--collect", str(root), "--config", YOUTUBE]) == 1
    captured = capsys.readouterr()
    assert table_rows(captured.out) == {"skiing": 50.0, "average": 50.0}
    assert (
        f"failed: gymnastics: task 5_1: torch.OutOfMemoryError: CUDA out of memory; see {log}"
        in captured.err
    )
    assert sum(line.startswith("missing: ") for line in captured.err.splitlines()) == 4


@pytest.mark.parametrize("case", ["no run root", "no domains"])
def test_collect_user_errors(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    root = tmp_path / ("nowhere" if case == "no run root" else "empty")
    assert main(["domains", "--collect", str(root)]) == 2
    line = error_line(capsys)
    assert str(root) in line and (
        "not a folder" in line if case == "no run root" else "--domains" in line
    )
