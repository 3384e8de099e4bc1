"""A trained checkpoint as ``vhd highlight`` needs it: the model, and how its inputs were made.

LightningCLI checkpoints carry the model's class path and arguments (``hyper_parameters``), the
datamodule's arguments (feature folders, normalisation, clip length, ...) and, since features
come from ``vhd extract``, the datamodule's record of the extraction manifest (recipes, clip_len,
weights). Everything is read with ``weights_only=True``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vhd.checkpoints import read_checkpoint
from vhd.launch.errors import UserError
from vhd.models import VHDModule

# datamodule classes whose checkpoint state holds the feature manifest
DATAMODULE_STATE_KEYS = ("HighlightDataModule", "MomentDataModule", "UnlabeledDataModule")


@dataclass
class TrainedModel:
    model: VHDModule
    path: Path
    data: dict[str, Any]  # the datamodule's arguments at training time
    recipes: list[str]
    clip_len: float
    provenance: dict[str, Any] | None  # the extraction manifest's recipes, if training had one
    data_class: str  # e.g. "HighlightDataModule"

    @property
    def method(self) -> str:
        return type(self.model).__name__


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def load_trained(
    path: str | Path, recipe: list[str] | None = None, clip_len: float | None = None
) -> TrainedModel:
    """The model in eval mode with the settings its features need; ``recipe`` / ``clip_len``
    stand in for a checkpoint trained without an extraction manifest (older runs)."""
    path = Path(path)
    checkpoint = read_checkpoint(path, flag="--ckpt")
    hparams = checkpoint.get("hyper_parameters") or {}
    class_path = hparams.get("_class_path")
    if "state_dict" not in checkpoint or not class_path:
        raise UserError(
            f"{path} is not a checkpoint of vhd fit (no model class_path in its hyper_parameters)"
        )
    model_class = _import(class_path)
    model = model_class(**{k: v for k, v in hparams.items() if not k.startswith("_")})
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise UserError(f"{path}: the weights do not fit {class_path}: {err}") from err
    model.eval()
    data_hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    data = {k: v for k, v in data_hparams.items() if not k.startswith("_")}
    data_class = str(data_hparams.get("_class_path", "")).rpartition(".")[2]
    provenance = next(
        (
            checkpoint[key]["feature_manifest"]
            for key in DATAMODULE_STATE_KEYS
            if isinstance(checkpoint.get(key), dict) and "feature_manifest" in checkpoint[key]
        ),
        None,
    )
    recipes, trained_clip_len = _feature_settings(path, data, provenance)
    if recipe:
        recipes = list(recipe)
    if clip_len is not None:
        trained_clip_len = clip_len
    if not recipes:
        raise UserError(
            f"{path} was trained on features without a vhd extract manifest (benchmark or "
            "synthetic features), so it does not say how to extract them from a video; pass "
            "--recipe NAME (the recipe those features came from; see vhd extract --list) and, if "
            "not 2 s, --clip_len"
        )
    return TrainedModel(model, path, data, recipes, trained_clip_len, provenance, data_class)


def _feature_settings(
    path: Path, data: dict[str, Any], provenance: dict[str, Any] | None
) -> tuple[list[str], float]:
    if provenance is not None:
        return sorted(provenance["recipes"]), float(provenance["clip_len"])
    named = data.get("feature_recipe")
    recipes = [named] if isinstance(named, str) else list(named or [])
    if "fps" in data:  # RASL pretraining: one feature row per 1 / fps seconds
        return recipes, 1.0 / float(data["fps"])
    return recipes, float(data.get("clip_len", 2.0))
