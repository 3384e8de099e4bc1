"""HPCL learning curve over ``windows_per_video`` (training windows per video and epoch) on the
synthetic highlight benchmark. Prints a JSON line per setting as it ends (the mean curve), then
one JSON object: per setting, the optimizer steps per epoch and the validation main metric every
``--val_every`` epochs, averaged over domains and seeds (and per domain and seed).

TVSum under HPCL's protocol trains each domain's model on its two longest videos, so with one
T = 20 window per video an epoch is a single optimizer step (of 2 windows); this measures what
more windows buy. Up to ``batch_size`` windows an epoch stays one step, of more windows.
Model and data come from the config (the paper's model; synthetic TVSum-style data, generated
into ``--data_root`` on first use), with only the domain, ``windows_per_video`` and the seed
changed.

    .venv/bin/python benchmarks/hpcl_windows_curve.py [--config configs/hpcl_tvsum.yaml]
        [--settings 1 2 4 all] [--epochs 20] [--domains VT VU] [--seeds 2018]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml

from vhd.datamodules import HighlightDataModule
from vhd.models import HPCL

REPO = Path(__file__).resolve().parents[1]


class CurveHPCL(HPCL):
    """HPCL without the default checkpoint and submission callbacks: only the curve is kept."""

    def configure_callbacks(self) -> list[L.Callback]:
        return []


class Curve(L.Callback):
    """The validation main metric after every ``every``-th training epoch (validation runs at
    the end of the epoch, before this hook)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.values: list[float] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every == 0:
            self.values.append(float(trainer.callback_metrics[pl_module.main_metric]))


def run(
    model_args: dict[str, Any], data_args: dict[str, Any], epochs: int, every: int, seed: int
) -> tuple[list[float], int]:
    """(metric every ``every`` epochs, optimizer steps per epoch) of one domain, setting, seed."""
    L.seed_everything(seed, verbose=False)
    datamodule = HighlightDataModule(**data_args)
    model = CurveHPCL(**model_args)
    curve = Curve(every)
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, callbacks=[curve],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, check_val_every_n_epoch=every,
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    return curve.values, int(trainer.num_training_batches)


def setting(value: str) -> int | str:
    return value if value == "all" else int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "hpcl_tvsum.yaml")
    parser.add_argument("--settings", type=setting, nargs="+", default=[1, 2, 4, "all"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--val_every", type=int, default=5, help="validate every N epochs")
    parser.add_argument("--domains", nargs="+", help="default: every domain of the data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2018])
    parser.add_argument("--data_root", type=Path, help="default: a temporary folder")
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    config = yaml.safe_load(options.config.read_text())
    model_args = config["model"]["init_args"]
    data_args = dict(config["data"]["init_args"])
    with tempfile.TemporaryDirectory() as scratch:
        data_args["data_root"] = str(options.data_root or Path(scratch) / "data")
        HighlightDataModule(**data_args).prepare_data()  # generates the synthetic data once
        splits = json.loads((Path(data_args["data_root"]) / data_args["splits_file"]).read_text())
        domains = options.domains or sorted(splits)
        epochs = list(range(options.val_every, options.epochs + 1, options.val_every))
        results: dict[str, Any] = {
            "config": str(options.config), "domains": domains, "seeds": options.seeds,
            "metric": model_args["main_metric"], "epochs": epochs, "settings": {},
        }  # fmt: skip
        for windows in options.settings:
            curves, steps = {}, {}
            for domain in domains:
                for seed in options.seeds:
                    args = {**data_args, "domain": domain, "windows_per_video": windows}
                    curves[f"{domain}/{seed}"], steps[domain] = run(
                        model_args, args, options.epochs, options.val_every, seed
                    )
            mean = np.mean(list(curves.values()), axis=0)
            results["settings"][str(windows)] = {
                "steps_per_epoch": steps,
                "mean_by_epoch": [round(float(value), 2) for value in mean],
                "by_domain": {key: [round(v, 2) for v in curve] for key, curve in curves.items()},
            }
            print(json.dumps({str(windows): results["settings"][str(windows)]["mean_by_epoch"]}))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
