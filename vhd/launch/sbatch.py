"""SLURM job scripts, shared by ``vhd slurm`` (one training run) and ``vhd domains --slurm``
(a job array, one domain per task): the ``#SBATCH`` header, the environment that makes the job
run the same code, resuming, and writing or submitting the script.

Requeueing: ``--signal=SIGUSR1@90`` reaches the ``srun`` tasks, where Lightning's
SLURMEnvironment requeues the job 90 s before its time limit; a preempted job is requeued by
SLURM (``--requeue``). Either way the job starts again with ``--ckpt_path last``: the state at
the end of the last finished epoch (``vhd.callbacks.BestCheckpoint``), from which the run goes on
exactly as an uninterrupted one would (``vhd.seeding``). The mid-epoch ``hpc_ckpt_N.ckpt`` that
Lightning also saves at the signal is not used; ``--ckpt_path hpc`` in the script would take it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vhd import __version__
from vhd.atomic import write_text_atomic
from vhd.launch.errors import UserError, report
from vhd.launch.files import make_folder
from vhd.launch.slurm_options import gpus_per_node, processes_per_node
from vhd.source import source_version


def vhd_executable() -> Path:
    """The ``vhd`` beside the interpreter running now (the code just tried), else the active
    virtual environment's."""
    beside = Path(sys.executable).absolute().parent / "vhd"
    venv = os.environ.get("VIRTUAL_ENV")
    if not beside.is_file() and venv and (Path(venv) / "bin" / "vhd").is_file():
        return Path(venv).absolute() / "bin" / "vhd"
    return beside


def code_version() -> str:
    """The commit of the vhd source tree the job will import, and whether it has changes."""
    source = source_version()
    if source["commit"] is None:
        return f"vhd {__version__} at {source['path']} (not a git checkout)"
    state = "dirty: uncommitted changes, not recorded here" if source["dirty"] else "clean"
    return f"{source['path']} at git {source['commit']} ({state})"


@dataclass(frozen=True)
class Job:
    """One ``sbatch`` script: its name, folder (``<run folder>/slurm``) and resources."""

    name: str
    folder: Path
    nodes: int
    options: argparse.Namespace
    array_size: int | None = None

    @property
    def script(self) -> Path:
        return self.folder / f"{self.name}.sbatch"

    @property
    def output(self) -> Path:
        """SLURM's log pattern: one file per job (or array task), appended to on requeue."""
        return self.folder / ("%x-%A_%a.log" if self.array_size else "%x-%j.log")

    def log(self, job_id: str, task: int | str | None = None) -> Path:
        suffix = f"{job_id}_{task}" if self.array_size else job_id
        return self.folder / f"{self.name}-{suffix}.log"


def check_log_folder(folder: Path, fix: str) -> None:
    """SLURM's ``--output`` takes neither spaces nor ``%`` (a pattern) in the folder."""
    if any(character.isspace() or character == "%" for character in str(folder)):
        raise UserError(f"the SLURM log folder {folder} holds a space or '%'; {fix}")


def script_head(job: Job, command: Sequence[str], cwd: Path) -> list[str]:
    """Shebang, how the script was made, the ``#SBATCH`` lines and the job's environment."""
    options = job.options
    gpus = gpus_per_node(options)
    sbatch = {
        "job-name": job.name,
        "nodes": str(job.nodes),
        "ntasks-per-node": str(processes_per_node(options)),
        "gpus-per-node": str(gpus) if gpus else None,
        "cpus-per-task": str(options.cpus_per_task) if options.cpus_per_task else None,
        "mem": options.mem,
        "time": options.time,
        "partition": options.partition,
        "account": options.account,
        "qos": options.qos,
        "array": f"0-{job.array_size - 1}" if job.array_size else None,
        "signal": "SIGUSR1@90",  # Lightning checkpoints and requeues 90 s before the limit
        "output": str(job.output),
    }
    vhd = vhd_executable()
    venv = vhd.parent.parent
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        "#!/bin/bash",
        f"# Written by `vhd {command[0]}` on {now}:",
        f"#   cd {shlex.quote(str(cwd))} && {shlex.join(['vhd', *command])}",
        f"# Submit it (again, after a failure or an edit): sbatch {shlex.quote(str(job.script))}",
        "# A requeued or resubmitted job resumes from last.ckpt, the end of its last epoch.",
        f"# Code: {code_version()}",
    ]
    lines += [f"#SBATCH --{key}={value}" for key, value in sbatch.items() if value]
    lines += ["#SBATCH --requeue", "#SBATCH --open-mode=append", ""]
    lines += [
        "# The environment `vhd` ran in: its working directory and virtual environment.",
        f"cd {shlex.quote(str(cwd))} || exit 1",
    ]
    if (venv / "pyvenv.cfg").is_file():
        lines.append(f"export VIRTUAL_ENV={shlex.quote(str(venv))}")
    lines += [f'export PATH={shlex.quote(str(vhd.parent))}:"$PATH"', "export PYTHONUNBUFFERED=1"]
    if options.cpus_per_task:  # srun does not inherit sbatch's --cpus-per-task (Slurm >= 22.05)
        lines += [
            'export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"',
            'export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"',
        ]
    lines += [
        'echo "job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST}'
        ' at $(date)"',
        "",
    ]
    return lines


def command_lines(words: Sequence[Sequence[str]]) -> str:
    """A command over several lines, one group of words per line, each word quoted for bash
    except the ``Bash`` expressions."""
    groups = [
        " ".join(word if isinstance(word, Bash) else shlex.quote(word) for word in group)
        for group in words
        if group
    ]
    return " \\\n  ".join(groups)


class Bash(str):
    """A word written into the script as it is (a bash expression), not quoted."""


def deliver(
    job: Job,
    text: str,
    fix: str,
    also_write: Callable[[], None] | None = None,
    next_step: Callable[[str], list[str]] | None = None,
) -> int:
    """Print (``--dry-run``), write, or write and submit (``--submit``) the script.

    ``also_write`` writes companion files once the folder exists; ``next_step(job_id)`` gives
    the lines printed after a submission (the log paths by default).
    """
    options = job.options
    if options.dry_run:
        print(text, end="")
        return 0
    make_folder(job.folder, "SLURM folder", fix)
    try:
        write_text_atomic(job.script, text)
        if also_write is not None:
            also_write()
    except OSError as error:
        where = error.filename or job.script
        raise UserError(f"cannot write {where} ({error.strerror}); {fix}") from error
    script = shlex.quote(str(job.script))
    if not options.submit:
        print(f"wrote {job.script}")
        print(f"submit it with: sbatch {script}")
        return 0
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return report(
            f"sbatch is not on PATH, so nothing was submitted; the script is written to "
            f"{job.script}: submit it by hand with `sbatch {script}` on a machine with SLURM"
        )
    try:
        done = subprocess.run(
            [sbatch, "--parsable", str(job.script)], capture_output=True, text=True, timeout=300
        )
        failure = f"exit {done.returncode}: {done.stderr}" if done.returncode else None
    except (OSError, subprocess.TimeoutExpired) as error:
        failure = str(error)
    if failure:
        return report(
            f"sbatch {job.script} failed ({failure.strip() or 'no message'}); "
            f"fix the options or edit the script and run `sbatch {script}`"
        )
    job_id = done.stdout.strip().split(";")[0]
    print(f"submitted job {job_id}")
    for line in next_step(job_id) if next_step else [f"log: {job.log(job_id)}"]:
        print(line)
    return 0
