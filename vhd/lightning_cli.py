"""vhd's LightningCLI: fit/validate/test/predict with the model and datamodule chosen in the YAML.

Model and datamodule are chosen by ``class_path`` (subclass mode), so every method and dataset
plugs into the same entry point: ``vhd fit --config configs/videolights_qv.yaml``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from vhd.models.base import VHDModule
from vhd.tracking import LogConfig, place_loggers

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
    Loggers left without ``save_dir``/``name`` go to the run folder under the run's name, and the
    resolved config reaches W&B runs (``vhd.tracking``).
    """

    def __init__(
        self,
        *args: Any,
        save_config_callback: type[SaveConfigCallback] | None = LogConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, save_config_callback=save_config_callback, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults(TRAINER_DEFAULTS)
        parser.add_argument(
            "--name",
            type=str | None,
            default=None,
            help="the run's name in trackers (W&B); default: the first --config's file name",
        )

    def before_instantiate_classes(self) -> None:
        # Loggers are built before the trainer: give them its run folder now.
        place_loggers(self.config.get(str(self.subcommand), self.config))


def make_cli(args: list[str] | None) -> VHDCLI:
    """Parse ``args`` and run its subcommand, as ``vhd`` does; the CLI keeps the trainer, model
    and datamodule for more work (``vhd domains`` validates each run). ``args=None`` lets
    LightningCLI read ``sys.argv`` itself (it warns when given both)."""
    return VHDCLI(
        VHDModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=2018,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
