"""The ``vhd`` command: LightningCLI's fit/validate/test/predict plus ``eval``, ``synth`` and
``domains``.

Model and datamodule are chosen in the YAML by ``class_path`` (subclass mode), so every method and
dataset plugs into the same entry point: ``vhd fit --config configs/videolights_qv.yaml``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from vhd.allocator import keep_freed_memory
from vhd.models.base import VHDModule

# Subcommands that are plain tools, not Lightning runs: name -> module holding ``main(argv)``.
TOOLS = {
    "eval": "vhd.metrics.evaluate",
    "synth": "vhd.datamodules.synthetic",
    "domains": "vhd.launch.domains",
}

TRAINER_DEFAULTS = {
    "trainer.logger": {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": "runs", "name": "logs"},
    },
    "trainer.callbacks": [{"class_path": "lightning.pytorch.callbacks.RichProgressBar"}],
}


class VHDCLI(LightningCLI):
    """LightningCLI with vhd's defaults: rich progress bar, CSV logs, seed 2018.

    ``ModelCheckpoint`` on the model's main validation metric comes from
    ``VHDModule.configure_callbacks`` (the metric name depends on the datamodule's protocol).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults(TRAINER_DEFAULTS)


def run_lightning(args: list[str] | None) -> None:
    """``args=None`` lets LightningCLI read ``sys.argv`` itself (it warns when given both)."""
    VHDCLI(
        VHDModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=2018,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # faster CPU steps; see vhd/allocator.py
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        tool: Callable[[list[str]], int] = importlib.import_module(TOOLS[args[0]]).main
        return tool(args[1:])
    run_lightning(None if argv is None else args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
