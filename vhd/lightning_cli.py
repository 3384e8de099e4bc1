"""vhd's LightningCLI: fit/validate/test/predict with the model and datamodule chosen in the YAML.

Model and datamodule are chosen by ``class_path`` (subclass mode), so every method and dataset
plugs into the same entry point: ``vhd fit --config configs/videolights_qv.yaml``.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from vhd.callbacks import LogLines
from vhd.checkpoints import check_class, check_fits, read_checkpoint, user_ckpt_path
from vhd.errors import ConfigError, UserError
from vhd.models.base import VHDModule
from vhd.tracking import LogConfig, place_loggers
from vhd.writers import check_writable

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

    def _parse_ckpt_path(self) -> None:
        """Lightning takes the model's settings from ``--ckpt_path``: read the file here first
        (one-line errors for a file that is not a checkpoint) and refuse another method's."""
        subcommand = self.config.get("subcommand")
        config = self.config.get(subcommand) if subcommand else None
        path = config.get("ckpt_path") if config else None
        self._checkpoint = None
        if user_ckpt_path(path):
            self._checkpoint = read_checkpoint(path)
            model = config.get("model")
            class_path = model.get("class_path") if model is not None else None
            if class_path:
                check_class(self._checkpoint, path, class_path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        # Loggers are built before the trainer: give them its run folder now.
        place_loggers(self.config.get(str(self.subcommand), self.config))

    def instantiate_classes(self) -> None:
        """Model, data and trainer from the config; a constructor that rejects its settings is a
        user error (jsonargparse wraps it in its own ``ValueError``: unwrap it)."""
        try:
            super().instantiate_classes()
        except Exception as error:
            user = constructor_error(error)
            if user is None:
                raise
            # the constructor's own traceback stays in the chain for VHD_DEBUG=1
            raise user from user.__cause__
        if not sys.stdout.isatty():  # a log file: plain lines instead of the terminal bar
            self.trainer.callbacks.append(LogLines())

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        """Checked before the trainer starts: the run folder can be written, and ``--ckpt_path``
        is a checkpoint of the configured model (not a torch traceback minutes later)."""
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if self.trainer.is_global_zero:
            check_writable(self.trainer.default_root_dir, "--trainer.default_root_dir")
        if self._checkpoint is not None:
            check_fits(self._checkpoint, kwargs["ckpt_path"], self.model)
            self._checkpoint = None  # memory-mapped; Lightning reads the file itself
        return kwargs


def constructor_error(error: BaseException) -> UserError | None:
    """The user error behind an exception raised while building the config's classes: a
    ``UserError`` anywhere in the chain, or a constructor's ``ValueError`` (it rejected the
    value given; jsonargparse has already checked the types) or Lightning's misconfiguration."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    user = next((link for link in chain if isinstance(link, UserError)), None)
    if user is not None:
        return user
    root = chain[-1]
    if isinstance(root, MisconfigurationException):
        wrapped = ConfigError(f"trainer: {root}")
    elif type(root) is ValueError and root is not error:
        found = re.search(r"class_path='([\w.]+)'", str(error))
        wrapped = ConfigError(f"{found.group(1) + ': ' if found else ''}{root}")
    else:
        return None
    wrapped.__cause__ = root
    return wrapped


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
