"""What a launcher needs to know of a run before it starts: the merged YAML configs and the
command-line overrides, read without Lightning (the launchers start in a fraction of a second).

Only the few values a job script depends on are looked at (run folder, checkpoint folder,
strategy); ``vhd fit`` itself still parses everything with LightningCLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vhd.launch.errors import UserError


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, nested dicts merged key by key (as later configs apply)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_configs(paths: Sequence[str]) -> dict[str, Any]:
    """The configs merged in order; a missing or malformed file is a user error naming it."""
    merged: dict[str, Any] = {}
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"config file {path} not found; pass an existing YAML with --config")
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"config {path} cannot be read ({first_line}); fix the file") from error
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise UserError(f"config {path} is not a YAML mapping; pass a vhd config")
        merged = merge(merged, loaded)
    return merged


def override_pairs(overrides: Sequence[str]) -> list[tuple[str, str | None]]:
    """``--key=value`` and ``--key value`` overrides as ``(key, value)`` pairs, keys without
    the dashes, in order (a later pair wins, as in LightningCLI)."""
    pairs: list[tuple[str, str | None]] = []
    index = 0
    while index < len(overrides):
        token = overrides[index]
        index += 1
        if not token.startswith("--"):
            continue
        key, equals, value = token[2:].partition("=")
        if equals:
            pairs.append((key, value))
        elif index < len(overrides) and not overrides[index].startswith("--"):
            pairs.append((key, overrides[index]))
            index += 1
        else:
            pairs.append((key, None))
    return pairs


def override_value(overrides: Sequence[str], key: str) -> str | None:
    """The last value given to ``--key`` in ``overrides``, or None."""
    values = [value for name, value in override_pairs(overrides) if name == key]
    return values[-1] if values else None


def contains_string(value: Any, text: str) -> bool:
    """Whether ``text`` occurs in any string inside ``value`` (nested dicts and lists)."""
    if isinstance(value, str):
        return text in value.lower()
    if isinstance(value, dict):
        return any(contains_string(item, text) for item in value.values())
    if isinstance(value, list):
        return any(contains_string(item, text) for item in value)
    return False


def asks_for_nccl(config: dict[str, Any], overrides: Sequence[str]) -> bool:
    """Whether the trainer's strategy names the nccl backend, in a config or an override."""
    strategy = (config.get("trainer") or {}).get("strategy")
    if contains_string(strategy, "nccl"):
        return True
    return any(
        key.startswith("trainer.strategy") and contains_string(value or "", "nccl")
        for key, value in override_pairs(overrides)
    )


def sets_strategy(config: dict[str, Any], overrides: Sequence[str]) -> bool:
    """Whether the user chose a strategy (anything but Lightning's ``auto``)."""
    strategy = (config.get("trainer") or {}).get("strategy")
    if strategy not in (None, "auto"):
        return True
    return any(key.startswith("trainer.strategy") for key, _ in override_pairs(overrides))


def checkpoint_folder(config: dict[str, Any], run_folder: Path) -> Path:
    """Where the checkpoint callback writes ``last.ckpt``: its ``dirpath`` when the config sets
    one, else ``<run folder>/checkpoints`` (vhd's BestCheckpoint default)."""
    for callback in (config.get("trainer") or {}).get("callbacks") or []:
        if not isinstance(callback, dict) or "Checkpoint" not in str(callback.get("class_path")):
            continue
        dirpath = (callback.get("init_args") or {}).get("dirpath")
        if dirpath:
            return Path(dirpath).absolute()
    return run_folder / "checkpoints"
