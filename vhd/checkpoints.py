"""Checkpoints a user passes (``--ckpt_path``, ``vhd highlight --ckpt``), checked before use.

torch answers a file that is not a checkpoint with an unpickling traceback that suggests the
unsafe ``weights_only=False``, and Lightning answers another method's checkpoint with a
state-dict traceback. Here each case is one ``CheckpointError`` naming the file, what was
expected and what was found. Files are read with ``weights_only=True`` (memory-mapped where the
format allows, so checking a large checkpoint before Lightning loads it costs little).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vhd.errors import UserError

LISTED = 8  # hyperparameters or parameter names shown in one message
# --ckpt_path values Lightning resolves itself rather than reading as a path
SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")
FIX = "pass a .ckpt written by vhd fit (e.g. <run>/checkpoints/best.ckpt)"


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unreadable, or of another model than the one configured."""


def read_checkpoint(
    path: str | Path, flag: str = "--ckpt_path", allowed: Sequence[type] = ()
) -> dict[str, Any]:
    """The checkpoint's dict, tensors only (and objects of the ``allowed`` types, e.g. the
    VideoLights release's option namespace); anything else is a ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{flag} {path}: no such file; {FIX}")
    is_zip = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(list(allowed)):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as err:  # every failure to unpickle means: not a checkpoint we can read
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint: {_unreadable(path, is_zip, err)}; {FIX}"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict; {FIX}"
        )
    return checkpoint


def _unreadable(path: Path, is_zip: bool, err: Exception) -> str:
    """What the file is, as far as can be told without unpickling it."""
    size = path.stat().st_size
    head = path.read_bytes()[:4] if size else b""
    if is_zip:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:  # torch's advice (allow the class, or weights_only=False) is left out on purpose
            return (
                f"a torch file that holds objects of type {found.group(1)}, not only tensors "
                "and plain values (a checkpoint of another program?)"
            )
        return f"a damaged torch zip archive ({type(err).__name__})"
    if head.startswith(b"PK"):
        return f"a truncated or damaged zip archive ({size} bytes; was the copy cut short?)"
    if not size:
        return "an empty file"
    return f"{size} bytes that are neither a torch zip archive nor a pickle (starting {head!r})"


def check_class(checkpoint: Mapping[str, Any], path: str | Path, wanted: str) -> None:
    """A Lightning checkpoint (``state_dict``) of the model class named ``wanted``.

    Another method's checkpoint is named with its class and hyperparameters.
    """
    if not isinstance(checkpoint.get("state_dict"), Mapping):
        found = ", ".join(sorted(map(str, checkpoint))[:LISTED])
        raise CheckpointError(
            f"{path} is not a checkpoint of vhd fit: it has no 'state_dict' (keys: {found}); {FIX}"
        )
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    trained = str(hparams.get("_class_path", ""))
    if trained and trained.rpartition(".")[2] != wanted.rpartition(".")[2]:
        raise CheckpointError(
            f"{path} is a checkpoint of {trained} ({describe_hparams(hparams)}), but the config "
            f"builds {wanted}; pass the config that checkpoint was trained with, or a "
            f"checkpoint of {wanted.rpartition('.')[2]}"
        )


def check_fits(checkpoint: Mapping[str, Any], path: str | Path, model: nn.Module) -> None:
    """The checkpoint is one of ``model``'s class whose weights fit ``model``; one of the same
    method with other sizes names the hyperparameters that differ (or the weights)."""
    check_class(checkpoint, path, type(model).__name__)
    problems = _weight_problems(checkpoint["state_dict"], model)
    if problems:
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        differ = _differing_hparams(hparams, getattr(model, "hparams", {}))
        cause = f"it was trained with {differ}" if differ else f"its weights differ: {problems}"
        raise CheckpointError(
            f"{path} does not fit the configured {type(model).__name__}: {cause}; pass the "
            "model settings it was trained with (its run's config.yaml), or a checkpoint of "
            "these settings"
        )


def describe_hparams(hparams: Mapping[str, Any]) -> str:
    shown = [(key, value) for key, value in hparams.items() if not key.startswith("_")]
    text = ", ".join(f"{key}={value!r}" for key, value in shown[:LISTED])
    return text + (f" and {len(shown) - LISTED} more" if len(shown) > LISTED else "")


def _differing_hparams(trained: Mapping[str, Any], configured: Mapping[str, Any]) -> str:
    differ = [
        f"{key}={trained[key]!r} (config: {configured[key]!r})"
        for key in configured
        if key in trained and trained[key] != configured[key]
    ]
    return ", ".join(differ[:LISTED]) + (" ..." if len(differ) > LISTED else "")


def _weight_problems(state: Mapping[str, Any], model: nn.Module) -> str:
    """'' when every weight of the model is in the checkpoint with its shape (and, under strict
    loading, nothing else is); evaluation metrics are built later and not compared."""
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith("metrics.")}
    theirs = {k: v for k, v in state.items() if not str(k).startswith("metrics.")}
    shapes = [
        f"{key} is {tuple(theirs[key].shape)} there, {tuple(value.shape)} here"
        for key, value in ours.items()
        if key in theirs and tuple(theirs[key].shape) != tuple(value.shape)
    ]
    missing = [key for key in ours if key not in theirs]
    extra = (
        [key for key in theirs if key not in ours] if getattr(model, "strict_loading", True) else []
    )
    parts = shapes[:3]
    if missing:
        parts.append(f"{len(missing)} weights missing ({', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} unexpected weights ({', '.join(map(str, extra[:3]))})")
    return "; ".join(parts)


def user_ckpt_path(ckpt_path: str | Path | None) -> bool:
    """A ``--ckpt_path`` naming a local file (not one Lightning resolves: last, best, URLs)."""
    return not (
        ckpt_path is None or str(ckpt_path) in SPECIAL_CKPT_PATHS or "://" in str(ckpt_path)
    )
