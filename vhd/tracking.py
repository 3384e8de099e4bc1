"""Experiment tracking that follows the run: loggers placed in the run folder, and W&B runs that
record what a researcher needs to find and trust a result, and end cleanly.

``configs/loggers/wandb.yaml``, added as a second ``--config``, selects ``RunCSVLogger`` (so
``<run>/logs/version_N/metrics.csv`` keeps working) and ``WandbRun``. Loggers are built before
the trainer, so ``VHDCLI`` fills their ``save_dir: null`` with ``trainer.default_root_dir`` and
``name: null`` with the run name (``place_loggers``).

A ``WandbRun`` records the full resolved config, the git commit of vhd's source and tags
(method, dataset), every metric, a final metrics table per evaluation, and the submission file
of ``vhd predict`` as an artifact. Lightning never finishes a W&B run and W&B (0.31) does not at
exit, which left runs unfinished and their debug log ending in an error: ``WandbRun`` finishes
its run at the end of the process, when a later command starts a run, or by ``finish_runs``.
Only rank 0 touches W&B (Lightning's ``rank_zero_experiment``/``rank_zero_only``).
"""

from __future__ import annotations

import atexit
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from vhd.atomic import write_text_atomic
from vhd.source import source_version

TABLE_COLUMNS = ["split", "metric", "value"]

_open_runs: list[WandbRun] = []  # W&B runs this process started and has not finished


class RunCSVLogger(CSVLogger):
    """Lightning's CSVLogger whose ``save_dir`` may be left null: ``VHDCLI`` then writes the log
    into the run folder, ``<default_root_dir>/logs/version_N/metrics.csv``, as vhd's configs do."""

    def __init__(self, save_dir: str | None = None, name: str = "logs", **kwargs: Any) -> None:
        super().__init__(save_dir if save_dir is not None else ".", name=name, **kwargs)


class WandbRun(WandbLogger):
    """Lightning's WandbLogger as one vhd run: config, code version, tags, final tables and
    submissions recorded; the run finished at the end of the command.

    ``save_dir: null`` and ``name: null`` are filled by ``VHDCLI`` (the run folder, the config's
    name); ``WANDB_MODE=offline`` or ``offline: true`` keeps everything on disk for ``wandb sync``.
    """

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | None = None,
        project: str = "vhd",
        offline: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, save_dir=save_dir, project=project, offline=offline, **kwargs)
        self._config_logged = False
        self._failed = False

    @property
    def run_name(self) -> str | None:
        """The W&B run's display name (Lightning's ``name`` is the project)."""
        return self._wandb_init.get("name")

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            finish_runs()  # one command, one run: a run an earlier command left open is not reused
            run = super().experiment
            _open_runs.append(self)
            # W&B registered its own teardown when it started; hooks run last-in first-out, so
            # this one finishes the run while W&B can still record it.
            atexit.register(self.finish)
            return run
        return self._experiment

    @rank_zero_only
    def log_config(self, config: Mapping[str, Any], tags: Iterable[str]) -> None:
        """The resolved config (nested, as ``--print_config`` shows it) with the git commit of
        vhd's source, and ``tags`` added to the run's own."""
        run = self.experiment
        run.config.update({**config, "git": source_version()}, allow_val_change=True)
        run.tags = tuple(dict.fromkeys([*(run.tags or ()), *tags]))
        self._config_logged = True

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """Lightning's flat copy of the model's and datamodule's arguments would repeat the
        resolved config's ``model``/``data`` entries; it is logged only without one."""
        if not self._config_logged:
            super().log_hyperparams(params)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's end of a trainer stage; a failed one marks the run failed at ``finish``."""
        super().finalize(status)
        self._failed = self._failed or status == "failed"

    @rank_zero_only
    def finish(self) -> None:
        """End the W&B run: failed when a trainer stage failed, else with the process's exit
        status (W&B's exit hooks); an offline run gets readable config and summary files."""
        if self not in _open_runs:
            return
        _open_runs.remove(self)
        atexit.unregister(self.finish)
        run = self._experiment
        if getattr(run, "offline", False):
            write_offline_files(run)
        run.finish(exit_code=1 if self._failed else None)


def finish_runs() -> list[WandbRun]:
    """Finish every W&B run this process has open; returns their loggers (``vhd domains`` ends
    each domain's run before the next and logs its table beside them)."""
    finished = list(_open_runs)
    for logger in finished:
        logger.finish()
    return finished


class LogConfig(SaveConfigCallback):
    """LightningCLI's config callback that also gives the resolved config and the run's tags
    (method, dataset, domain) to every ``WandbRun``; it runs on rank 0 only."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        runs = [logger for logger in trainer.loggers if isinstance(logger, WandbRun)]
        if not runs:
            return
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for run in runs:
            run.log_config(config, run_tags(pl_module, trainer.datamodule))


def run_tags(model: L.LightningModule, datamodule: Any) -> list[str]:
    """The method's class name, the dataset (its evaluation protocol) and the domain if one."""
    tags = [type(model).__name__]
    if datamodule is not None:
        tags.append(getattr(datamodule, "protocol", None) or type(datamodule).__name__)
        if getattr(datamodule, "domain", None):
            tags.append(str(datamodule.domain))
    return tags


def place_loggers(config: Namespace) -> None:
    """Fill every configured logger's ``save_dir: null`` with the run folder and ``name: null``
    with the run name: ``--name``, else the first ``--config``'s file name (the experiment's;
    logger configs come after it), else the run folder's name."""
    root = config.trainer.get("default_root_dir") or os.getcwd()
    configs = config.get("config") or []
    name = config.get("name") or (Path(str(configs[0])).stem if configs else Path(root).name)
    loggers = config.trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        init_args = logger.get("init_args") if isinstance(logger, Namespace) else None
        if init_args is None:
            continue
        if "save_dir" in init_args and init_args.save_dir is None:
            init_args.save_dir = str(root)
        if "name" in init_args and init_args.name is None:
            init_args.name = name


@rank_zero_only
def log_final_metrics(trainer: L.Trainer, split: str, results: Mapping[str, float]) -> None:
    """One ``<split>/table`` (split, metric, value) of an evaluation's figures in every W&B
    logger: the figures a run ends with in one place, where charts show each one apart."""
    rows = [[split, key.removeprefix(f"{split}/"), float(value)] for key, value in results.items()]
    for logger in trainer.loggers if rows else []:
        if isinstance(logger, WandbLogger):
            table = {"columns": TABLE_COLUMNS, "data": rows, "step": trainer.global_step}
            logger.log_table(f"{split}/table", **table)


@rank_zero_only
def log_submission(trainer: L.Trainer, path: Path) -> None:
    """The written submission as an artifact (type ``submission``) of every W&B logger's run, so
    the file sent to a leaderboard stays with the config and checkpoint that made it."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb  # the optional `wandb` extra, there when a W&B logger is

            run = logger.experiment
            artifact = wandb.Artifact(artifact_name(f"{run.name}-{path.stem}"), type="submission")
            artifact.add_file(str(path))
            run.log_artifact(artifact)


def artifact_name(text: str) -> str:
    """``text`` with the characters W&B refuses in artifact names replaced by dashes."""
    return re.sub(r"[^\w.-]", "-", text)


def log_domain_table(like: WandbRun, root: Path, summary: Mapping[str, Any]) -> None:
    """``vhd domains``' table (domain, main metric, then the average) as a small run of its own,
    ``<run name>-domains`` under ``root``, in the project (and mode) of the domains' runs."""
    metric = summary["metric"]
    run = WandbRun(
        name=f"{like.run_name}-domains",
        save_dir=str(root),
        project=like._project,
        offline=like._offline,
    )
    run.experiment.config.update({key: summary[key] for key in ("config", "select", "metric")})
    rows = [[domain, float(values[metric])] for domain, values in summary["domains"].items()]
    run.log_table(
        "domains", columns=["domain", metric], data=[*rows, ["average", summary["average"]]]
    )
    run.log_metrics({f"{metric}/average": float(summary["average"])})
    run.finish()


def write_offline_files(run: Any) -> None:
    """W&B writes ``files/config.yaml`` and ``files/wandb-summary.json`` only when it uploads
    (online, or at ``wandb sync``), so an offline run kept them in its binary log alone. The same
    files in W&B's layout make it readable where it lies."""
    files = Path(run.settings.files_dir)
    config = {key: {"value": value} for key, value in run.config.as_dict().items()}
    write_text_atomic(files / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    summary = json.dumps(plain(run.summary), indent=2, default=str)
    write_text_atomic(files / "wandb-summary.json", summary + "\n")


def plain(value: Any) -> Any:
    """A W&B summary (nested mappings of its own types) as plain dicts."""
    if hasattr(value, "keys"):
        return {key: plain(value[key]) for key in list(value.keys())}  # no __iter__
    return value
