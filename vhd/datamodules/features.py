"""Per-video feature files (``{name}.npz`` with one array key, or ``{name}.npy``) read safely."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class FeatureError(ValueError):
    """A missing, unreadable or invalid feature file; the message says which and how to fix it."""


def l2_normalize(features: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Row-wise x / (||x|| + eps), the normalisation of the Moment-DETR family of loaders."""
    return features / (np.linalg.norm(features, axis=-1, keepdims=True) + eps)


class FeatureFolder:
    """One folder of one feature type: ``{stem}.npz`` (key ``key``) or ``{stem}.npy``.

    Arrays are checked for finiteness and 2-D shape (1-D arrays, e.g. pooled text features, are
    read as one row) so bad files fail at the boundary with their path rather than as NaN losses.
    """

    def __init__(self, folder: str | Path, key: str = "features", prefix: str = "") -> None:
        self.folder = Path(folder)
        self.key = key
        self.prefix = prefix

    def path_for(self, name: str) -> Path | None:
        for suffix in (".npz", ".npy"):
            candidate = self.folder / f"{self.prefix}{name}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    def load(self, name: str) -> np.ndarray:
        path = self.path_for(name)
        if path is None:
            raise FeatureError(
                f"no feature file for {self.prefix}{name!s} in {self.folder} "
                f"(looked for {self.prefix}{name}.npz and .npy); check the folder or the id"
            )
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    if self.key not in archive:
                        raise FeatureError(
                            f"{path} has keys {sorted(archive.files)}, not {self.key!r}; "
                            "set the feature key of this folder"
                        )
                    array = archive[self.key]
            else:
                array = np.load(path, allow_pickle=False)
        except FeatureError:
            raise
        except Exception as err:  # zip/pickle/format errors all mean the same to the user
            raise FeatureError(
                f"{path} cannot be read ({err}); re-extract or re-download it"
            ) from err
        array = np.asarray(array, dtype=np.float32)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2:
            raise FeatureError(f"{path}: expected a (time, dim) array, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise FeatureError(f"{path} contains NaN or inf values; re-extract this file")
        return array


def load_concatenated(
    folders: Sequence[FeatureFolder], name: str, max_len: int | None, normalize: bool
) -> np.ndarray:
    """Concatenate feature types along channels after cutting all to the shortest (official)."""
    parts = []
    for folder in folders:
        array = folder.load(name)[:max_len]
        parts.append(l2_normalize(array) if normalize else array)
    length = min(part.shape[0] for part in parts)
    return np.concatenate([part[:length] for part in parts], axis=1)
