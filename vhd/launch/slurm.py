"""``vhd slurm``: the sbatch script of one ``vhd fit`` run on a SLURM cluster, written under the
run folder (and submitted with ``--submit``), so a long run is one command away and the job runs
the code and environment it was prepared with::

    vhd slurm --config configs/videolights_qv.yaml --nodes 2 --gpus-per-node 4 \\
        --time 08:00:00 --partition gpu [--submit] [-- FIT OVERRIDES]

The script (``<run folder>/slurm/<job name>.sbatch``) runs ``srun vhd fit`` with the Trainer
matching the allocation and ``--ckpt_path last``: a requeued or resubmitted job resumes from the
end of its last finished epoch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vhd.launch.errors import Parser, UserError, report
from vhd.launch.files import check_writable
from vhd.launch.run_config import checkpoint_folder, load_configs, override_value
from vhd.launch.sbatch import (
    Job,
    check_log_folder,
    command_lines,
    deliver,
    script_head,
    vhd_executable,
)
from vhd.launch.slurm_options import add_slurm_options, count, job_name, trainer_args

FIX = "choose another with -- --trainer.default_root_dir DIR"


def make_parser() -> Parser:
    parser = Parser(
        prog="vhd slurm",
        description="Write the sbatch script of a `vhd fit` run (and submit it with --submit). "
        "Arguments after -- are passed to `vhd fit`.",
        usage="vhd slurm --config CONFIG [--config CONFIG ...] [--nodes N] [SLURM options] "
        "[-- FIT OVERRIDES]",
    )
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        help="a vhd config; give several to apply them in order (e.g. a logger config)",
    )
    parser.add_argument("--nodes", type=count(1), default=1, metavar="N", help="default 1")
    add_slurm_options(parser)
    return parser


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """The launcher's own arguments and the ones after ``--`` (for the runs)."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def run_folder(config: dict[str, Any], overrides: Sequence[str]) -> Path:
    """The run's ``trainer.default_root_dir`` (an override wins over the configs), absolute."""
    value = override_value(overrides, "trainer.default_root_dir")
    value = value or (config.get("trainer") or {}).get("default_root_dir")
    if not value:
        raise UserError(
            "the config sets no trainer.default_root_dir, the run folder the job writes and "
            "resumes from; set it in the config or pass -- --trainer.default_root_dir DIR"
        )
    return Path(value).absolute()


def default_job_name(config: str) -> str:
    try:
        return job_name(Path(config).stem)
    except ValueError as error:  # argparse.ArgumentTypeError is a ValueError
        raise UserError(f"{error} (the config's file name); pass --job-name NAME") from error


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, overrides = split_overrides(argv)
    options = make_parser().parse_args(own)
    try:
        config = load_configs(options.config)
        run = run_folder(config, overrides)
        checkpoints = checkpoint_folder(config, run)
        job = Job(
            name=options.job_name or default_job_name(options.config[0]),
            folder=run / "slurm",
            nodes=options.nodes,
            options=options,
        )
        for folder, what in ((run, "run folder"), (checkpoints, "checkpoint folder")):
            check_writable(folder, what, FIX)
        check_writable(job.folder, "SLURM folder", FIX)
        check_log_folder(job.folder, FIX)
        fit = [
            [str(vhd_executable()), "fit"],
            *(["--config", path] for path in options.config),
            trainer_args(options, options.nodes, config, overrides),
            ["--ckpt_path", "last"],
            overrides,
        ]
        lines = script_head(job, ["slurm", *argv], Path.cwd())
        lines += [f"srun {command_lines(fit)}"]
        return deliver(job, "\n".join(lines) + "\n", FIX)
    except UserError as error:
        return report(error)


if __name__ == "__main__":
    sys.exit(main())
