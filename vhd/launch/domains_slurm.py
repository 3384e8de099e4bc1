"""``vhd domains --slurm``: one SLURM job array for the per-domain benchmark, one domain per task.

Each task runs the in-process ``vhd domains --domains <its domain> --no_summary``, which writes
``<run_root>/<domain>/result.json`` only, so tasks never write the same file;
``vhd domains --collect RUN_ROOT`` prints the table once they are done. A task records its state
in ``<run_root>/<domain>/slurm.status`` so that ``--collect`` can tell failed from pending.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vhd.launch.errors import UserError
from vhd.launch.files import check_writable
from vhd.launch.results import STATUS, record_domains
from vhd.launch.sbatch import (
    Bash,
    Job,
    check_log_folder,
    command_lines,
    deliver,
    script_head,
    vhd_executable,
)
from vhd.launch.slurm_options import job_name, trainer_args

FIX = "choose another with --run_root DIR"


def task_lines(job: Job, run_root: Path, domains: Sequence[str], command: str) -> list[str]:
    """Bash picking the task's domain, keeping its status file, and running ``command``."""
    root = shlex.quote(str(run_root))
    return [
        "# One domain per array task, by its index.",
        ': "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch: it is a job array}"',
        f"domains=({' '.join(shlex.quote(name) for name in domains)})",
        'domain="${domains[$SLURM_ARRAY_TASK_ID]}"',
        'task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        f'run_dir={root}/"$domain"',
        f'log={shlex.quote(str(job.folder))}/"${{SLURM_JOB_NAME}}-$task.log"',
        'mkdir -p "$run_dir" || exit 1',
        "",
        "# The task's state for `vhd domains --collect`: running, done or failed, and its log.",
        f'status_file="$run_dir/{STATUS}"',
        "status() {",
        '  printf \'state=%s\\nexit=%s\\njob=%s\\nlog=%s\\n\' "$1" "$2" "$task" "$log" \\',
        '    >"$status_file.tmp" && mv -f "$status_file.tmp" "$status_file"',
        "}",
        'status running ""',
        "",
        f"srun {command}",
        "code=$?",
        'if [ "$code" -eq 0 ]; then status done 0; else status failed "$code"; fi',
        'exit "$code"',
    ]


def write_array(
    options: argparse.Namespace,
    argv: Sequence[str],
    config: dict[str, Any],
    domains: Sequence[str],
    run_root: Path,
    overrides: Sequence[str],
) -> int:
    """Write (print, submit) the array script under ``<run_root>/slurm/``."""
    run_root = run_root.absolute()
    try:
        name = options.job_name or job_name(Path(options.config).stem)
    except ValueError as error:
        raise UserError(f"{error} (the config's file name); pass --job-name NAME") from error
    job = Job(name, run_root / "slurm", 1, options, array_size=len(domains))
    check_writable(run_root, "run root", FIX)
    for domain in domains:
        check_writable(run_root / domain / "checkpoints", f"checkpoint folder of {domain}", FIX)
    check_writable(job.folder, "SLURM folder", FIX)
    check_log_folder(job.folder, FIX)
    run = [
        [str(vhd_executable()), "domains", "--config", options.config],
        ["--domains", Bash('"$domain"'), "--run_root", str(run_root)],
        ["--domain_key", options.domain_key, "--select", options.select, "--no_summary"],
        ["--", *trainer_args(options, 1, config, overrides)],
        ["--ckpt_path", "last"],
        overrides,
    ]
    lines = script_head(job, ["domains", *argv], Path.cwd())
    lines += task_lines(job, run_root, domains, command_lines(run))

    def next_step(job_id: str) -> list[str]:
        tasks = ", ".join(f"{index} {domain}" for index, domain in enumerate(domains))
        return [
            f"logs: {job.log(job_id, '<task>')} (tasks: {tasks})",
            f"when they are done: vhd domains --collect {shlex.quote(str(run_root))}",
        ]

    return deliver(
        job,
        "\n".join(lines) + "\n",
        FIX,
        also_write=lambda: record_domains(run_root, options.config, options.select, domains),
        next_step=next_step,
    )
