"""The SLURM options shared by ``vhd slurm`` and ``vhd domains --slurm``, and the Trainer flags
that match the allocation they ask for (one ``srun`` task per GPU, or ``--devices`` CPU
processes, per node)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from vhd.launch.errors import UserError
from vhd.launch.run_config import asks_for_nccl, sets_strategy


def slurm_value(text: str) -> str:
    """An ``#SBATCH`` value: one word (a space or newline would break or add a line)."""
    if not text or any(character.isspace() for character in text):
        raise argparse.ArgumentTypeError(f"{text!r} must be one word without spaces")
    return text


def job_name(text: str) -> str:
    """A job name, also the script's file name."""
    if "/" in slurm_value(text) or text.startswith("."):
        raise argparse.ArgumentTypeError(f"{text!r} must be a plain name (no '/', no leading '.')")
    return text


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type for whole numbers of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= {minimum}")
        return value

    return parse


def add_slurm_options(parser: argparse.ArgumentParser, title: str = "SLURM") -> None:
    """The resource and submission options every SLURM launcher takes."""
    group = parser.add_argument_group(title)
    group.add_argument(
        "--gpus-per-node", type=count(0), metavar="N", help="one process per GPU (default 1)"
    )
    group.add_argument(
        "--devices",
        type=count(1),
        metavar="N",
        help="with --gpus-per-node 0: CPU processes per node (default 1)",
    )
    group.add_argument("--cpus-per-task", type=count(1), metavar="N", help="CPU cores per process")
    group.add_argument("--mem", type=slurm_value, metavar="SIZE", help="per node, e.g. 64G")
    group.add_argument("--time", type=slurm_value, metavar="LIMIT", help="e.g. 08:00:00")
    group.add_argument(
        "--partition", type=slurm_value, metavar="NAME", help="default: the cluster's"
    )
    group.add_argument("--account", type=slurm_value, metavar="NAME")
    group.add_argument("--qos", type=slurm_value, metavar="NAME")
    group.add_argument(
        "--job-name", type=job_name, metavar="NAME", help="default: the config file's stem"
    )
    action = group.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="print the script, write nothing")
    action.add_argument("--submit", action="store_true", help="write it and run sbatch")


def gpus_per_node(options: argparse.Namespace) -> int:
    return 1 if options.gpus_per_node is None else int(options.gpus_per_node)


def processes_per_node(options: argparse.Namespace) -> int:
    """Training processes (``srun`` tasks) per node: one per GPU, or ``--devices`` on CPUs."""
    if gpus_per_node(options) > 0:
        if options.devices is not None:
            raise UserError(
                "--devices counts CPU processes and goes with --gpus-per-node 0; with GPUs "
                "there is one process per GPU: drop --devices"
            )
        return gpus_per_node(options)
    return int(options.devices or 1)


def trainer_args(
    options: argparse.Namespace, nodes: int, config: dict[str, Any], overrides: Sequence[str]
) -> list[str]:
    """The Trainer flags matching the allocation; a user's strategy is kept as it is."""
    per_node = processes_per_node(options)
    on_gpus = gpus_per_node(options) > 0
    if not on_gpus and asks_for_nccl(config, overrides):
        raise UserError(
            "--gpus-per-node 0 runs on CPUs, but the config or overrides ask for the nccl "
            "process group backend, which needs GPUs; use process_group_backend: gloo (or leave "
            "it out: Lightning picks gloo on CPUs) or request GPUs with --gpus-per-node N"
        )
    args = ["--trainer.num_nodes", str(nodes), "--trainer.devices", str(per_node)]
    args += ["--trainer.accelerator", "gpu" if on_gpus else "cpu"]
    if nodes * per_node > 1 and not sets_strategy(config, overrides):
        args += ["--trainer.strategy", "ddp"]
    return args
