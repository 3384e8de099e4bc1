"""``DIR/manifest.json``: how the features of an extraction folder were made.

One folder holds the features of one clip length, from one or more recipes (e.g. ``slowfast``
and ``clip``, concatenated by VideoLights). Per recipe it records each folder's dim, the models
and their weight files (path and sha256), and what happened per video (duration, clips, whether
the file had an audio track); plus the vhd version. A rerun into the same folder must use the same
clip length and, for a recipe already there, the same weights, so a folder never mixes features of
two clip lengths or two weight files; the datamodules read it to refuse features made for
another configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vhd import __version__
from vhd.atomic import write_text_atomic
from vhd.errors import UserError

MANIFEST = "manifest.json"
# settings of a recipe that must agree between a folder's manifest and a rerun into it
RECIPE_SETTINGS = ("features", "weights")


class ManifestError(UserError):
    """A manifest that disagrees with what the user asked for; the message names both."""


def recipe_entry(
    features: dict[str, dict[str, Any]], models: dict[str, Any], weights: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """A recipe's part of the manifest, before any video is done."""
    return {"features": features, "models": models, "weights": weights, "videos": {}, "queries": 0}


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of an extraction folder, or None when it has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ManifestError(f"{path} cannot be read ({err}); delete it and extract again") from err
    if not isinstance(manifest, dict) or not {"recipes", "clip_len"} <= set(manifest):
        raise ManifestError(f"{path} is not a vhd extract manifest (no recipes / clip_len)")
    return manifest


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> None:
    write_text_atomic(Path(folder) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def open_manifest(folder: Path, clip_len: float, recipe: str, entry: dict[str, Any]) -> dict:
    """The folder's manifest with ``recipe`` in it, checked against this run's settings."""
    manifest = read_manifest(folder) or {"clip_len": clip_len, "fps": 1.0 / clip_len, "recipes": {}}
    if manifest["clip_len"] != clip_len:
        raise ManifestError(
            f"{folder / MANIFEST} was written with clip_len={manifest['clip_len']}, this run has "
            f"clip_len={clip_len}; extract into another --out folder (one clip length per "
            "folder), or rerun with the folder's clip_len to resume it"
        )
    existing = manifest["recipes"].get(recipe)
    if existing is not None:
        for key in RECIPE_SETTINGS:
            if existing.get(key) != entry.get(key):
                raise ManifestError(
                    f"{folder / MANIFEST} has recipe {recipe!r} with {key}="
                    f"{_short(existing.get(key))}, this run has {key}={_short(entry.get(key))}; "
                    "extract into another --out folder, or rerun with the folder's settings to "
                    "resume it"
                )
        entry = {**entry, "videos": existing.get("videos", {}), "queries": existing["queries"]}
    manifest["recipes"][recipe] = entry
    manifest["vhd_version"] = __version__
    return manifest


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def check_features(
    folder: Path,
    manifest: dict[str, Any],
    *,
    clip_len: float,
    recipes: str | list[str] | None,
    config: str,
) -> None:
    """Stop a run whose features were made with another clip_len or recipe than configured.

    ``config`` names the datamodule setting of the clip length for the message.
    """
    where = folder / MANIFEST
    made = float(manifest["clip_len"])
    if abs(made - clip_len) > 1e-6:
        raise ManifestError(
            f"{where}: the features were extracted with clip_len={made:g} s but the datamodule "
            f"reads {clip_len:g} s per feature row ({config}); change {config} to match, or "
            f"extract again with --clip_len {clip_len:g}"
        )
    wanted = [recipes] if isinstance(recipes, str) else list(recipes or [])
    present = sorted(manifest["recipes"])
    for recipe in wanted:
        if recipe not in present:
            raise ManifestError(
                f"{where}: the features were extracted with recipe(s) {present} but the config "
                f"names feature_recipe={recipes!r}; extract them (vhd extract --recipe {recipe} "
                f"--out {folder}) or set feature_recipe to what the folder holds"
            )


def feature_provenance(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its per-video lists: what a checkpoint keeps about its features."""
    return {
        "clip_len": manifest["clip_len"],
        "recipes": {
            name: {key: entry.get(key) for key in ("features", "models", "weights")}
            for name, entry in manifest["recipes"].items()
        },
    }
