"""Per-video feature files read safely, with an optional cache shared by every datamodule.

A feature *type* lives in one folder: ``{prefix}{name}{suffix}.npz`` (one array key) or ``.npy``.
``FeatureFolder`` reads one file; ``FeatureStore`` adds the cache (``"memory"``: every array packed
into one block of RAM; ``"mmap"``: packed once into a ``.npy`` under ``cache_dir`` and
memory-mapped) so an epoch does not reopen thousands of small files. Files are always opened with
``allow_pickle=False``, and every array is checked (2-D, finite) before a model sees it: all
values once at setup (``FeatureStore.prepare``; the verdict is cached), and again when read.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vhd.datamodules.cache import (
    PackedArrays,
    build_packed,
    build_packed_file,
    check_finite,
    open_packed,
)
from vhd.errors import ConfigError, FeatureError

CacheMode = Literal["none", "memory", "mmap"]
CACHE_MODES = ("none", "memory", "mmap")


def l2_normalize(features: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Row-wise x / (||x|| + eps), the normalisation of the Moment-DETR family of loaders."""
    return features / (np.linalg.norm(features, axis=-1, keepdims=True) + eps)


def _as_rows(array: np.ndarray, path: Path) -> np.ndarray:
    """(time, dim) float32; a 1-D array (e.g. a pooled text feature) is one row."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or 0 in array.shape:
        raise FeatureError(f"{path}: expected a non-empty (time, dim) array, got {array.shape}")
    return array


def nonfinite(array: np.ndarray) -> str:
    """'3 of 40 rows' when some rows hold NaN or inf, else ''."""
    if np.isfinite(array).all():
        return ""
    bad = int((~np.isfinite(array)).any(axis=1).sum())
    return f"{bad} of {len(array)} rows"


class FeatureFolder:
    """One folder of one feature type: ``{prefix}{name}{suffix}.npz`` (key ``key``) or ``.npy``."""

    def __init__(
        self, folder: str | Path, key: str = "features", prefix: str = "", suffix: str = ""
    ) -> None:
        self.folder = Path(folder)
        self.key = key
        self.prefix = prefix
        self.suffix = suffix

    def __repr__(self) -> str:
        return f"FeatureFolder({str(self.folder)!r}, key={self.key!r})"

    def candidates(self, name: str) -> list[Path]:
        stem = f"{self.prefix}{name}{self.suffix}"
        return [self.folder / f"{stem}.npz", self.folder / f"{stem}.npy"]

    def path_for(self, name: str) -> Path | None:
        return next((path for path in self.candidates(name) if path.is_file()), None)

    def describe_search(self) -> str:
        """How a name maps to files, for 'missing file' messages."""
        stem = f"{self.prefix}{{name}}{self.suffix}"
        return f"{self.folder}/{stem}.npz (key {self.key!r}) or .npy"

    def _require(self, name: str) -> Path:
        path = self.path_for(name)
        if path is None:
            npz, npy = self.candidates(name)
            raise FeatureError(
                f"no feature file for {name!r}: looked for {npz} (key {self.key!r}) and "
                f"{npy.name}; extract the features of this video/query or point the datamodule "
                "at the right folder"
            )
        return path

    def load(self, name: str) -> np.ndarray:
        """The validated (time, dim) float32 array of ``name``: readable, 2-D and finite."""
        array = self.read(name)
        problem = nonfinite(array)
        if problem:
            raise FeatureError(
                f"{self.path_for(name)} contains NaN or inf values ({problem}); re-extract it"
            )
        return array

    def read(self, name: str) -> np.ndarray:
        """The (time, dim) float32 array of ``name``, values not yet checked."""
        path = self._require(name)
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    if self.key not in archive.files:
                        raise FeatureError(
                            f"{path} has keys {sorted(archive.files)}, not {self.key!r}; set the "
                            "feature key of this folder (e.g. text_feature_key)"
                        )
                    array = archive[self.key]
            else:
                array = np.load(path, allow_pickle=False)
        except FeatureError:
            raise
        except Exception as err:  # zip, pickle and format errors all mean the same to the user
            raise FeatureError(
                f"{path} cannot be read ({type(err).__name__}: {err}); re-extract or re-download it"
            ) from err
        return _as_rows(array, path)

    def shape(self, name: str) -> tuple[int, int]:
        """(time, dim) from the file header only: cheap enough to check every file at setup."""
        path = self._require(name)
        try:
            if path.suffix == ".npz":
                with zipfile.ZipFile(path) as archive:
                    member = f"{self.key}.npy"
                    if member not in archive.namelist():
                        keys = sorted(n.removesuffix(".npy") for n in archive.namelist())
                        raise FeatureError(
                            f"{path} has keys {keys}, not {self.key!r}; set the feature key of "
                            "this folder (e.g. text_feature_key)"
                        )
                    with archive.open(member) as stream:
                        shape = _header_shape(stream)
            else:
                with path.open("rb") as stream:
                    shape = _header_shape(stream)
        except FeatureError:
            raise
        except Exception as err:
            raise FeatureError(
                f"{path} cannot be read ({type(err).__name__}: {err}); re-extract or re-download it"
            ) from err
        if len(shape) == 1:
            shape = (1, *shape)
        if len(shape) != 2 or 0 in shape:
            raise FeatureError(f"{path}: expected a non-empty (time, dim) array, got {shape}")
        return shape[0], shape[1]


def _header_shape(stream) -> tuple[int, ...]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, _ = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _, _ = np.lib.format.read_array_header_2_0(stream)
    return tuple(shape)


@dataclass
class Scan:
    """What a store found for a list of names: their lengths, and the names with no file."""

    lengths: dict[str, int]
    missing: list[str]


class FeatureStore:
    """A ``FeatureFolder`` behind an optional cache; call ``prepare(names)`` once at setup.

    ``prepare`` reads every file header (missing files and mismatched dimensions fail here, before
    training starts, all at once) and fills the cache. The store pickles without its open arrays,
    so DataLoader workers (fork or spawn) re-open the memory map instead of copying it.
    """

    def __init__(
        self, folder: FeatureFolder, cache: CacheMode = "none", cache_dir: str | Path | None = None
    ) -> None:
        if cache not in CACHE_MODES:
            raise ConfigError(f"unknown feature cache {cache!r}; choose one of {list(CACHE_MODES)}")
        if cache == "mmap" and cache_dir is None:
            raise ConfigError(
                "feature_cache='mmap' needs a cache_dir to write the packed file into"
            )
        self.folder = folder
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.dim: int | None = None
        self._packed: PackedArrays | None = None

    def __repr__(self) -> str:
        return f"FeatureStore({self.folder!r}, cache={self.cache!r})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self.cache == "mmap" and self._packed is not None:
            state["_packed"] = self._packed.detached()  # workers re-open the map lazily
        return state

    def scan(self, names: Sequence[str]) -> Scan:
        """Header-read every name; dimensions must agree within a folder.

        With a valid memory-mapped cache of exactly these names the index answers instead.
        """
        if self.cache == "mmap" and self.cache_dir is not None:
            found = open_packed(self.folder, sorted(set(names)), self.cache_dir)
            if found is not None:
                self._packed, self.dim = found
                return Scan({name: self._packed.index[name][1] for name in names}, [])
        lengths: dict[str, int] = {}
        missing: list[str] = []
        first: tuple[str, int] | None = None
        for name in dict.fromkeys(names):
            if self.folder.path_for(name) is None:
                missing.append(name)
                continue
            length, dim = self.folder.shape(name)
            if first is None:
                first = (name, dim)
            elif dim != first[1]:
                raise FeatureError(
                    f"{self.folder.path_for(name)} has feature dim {dim}, but "
                    f"{self.folder.path_for(first[0])} has {first[1]}; every file of one folder "
                    "must come from the same extractor"
                )
            lengths[name] = length
        self.dim = first[1] if first else self.dim
        return Scan(lengths, missing)

    def prepare(self, lengths: dict[str, int]) -> None:
        """Fill the cache for the scanned names; every file's values are checked (finite) here,
        once: building a cache reads them anyway, and without a cache the verdicts are kept in
        ``cache_dir`` so that later runs only ``stat`` the files."""
        if not lengths:
            return
        names = sorted(lengths)
        if self._packed is not None and self._packed.covers(names):
            return
        if self.cache == "none":
            check_finite(self.folder, names, self.cache_dir)
            return
        if self.cache == "memory":
            self._packed = build_packed(self.folder, names, lengths, self.dim or 0, out=None)
        else:
            assert self.cache_dir is not None
            self._packed = build_packed_file(
                self.folder, names, lengths, self.dim or 0, self.cache_dir
            )

    def load(self, name: str) -> np.ndarray:
        if self._packed is not None and name in self._packed:
            return self._packed.get(name)
        return self.folder.load(name)


def load_concatenated(
    folders: Sequence[FeatureFolder | FeatureStore],
    name: str,
    max_len: int | None,
    normalize: bool,
) -> np.ndarray:
    """Concatenate feature types along channels after cutting all to the shortest (official).

    Each type is cut to ``max_len`` and L2-normalised on its own, as the Moment-DETR loaders do.
    """
    parts = []
    for folder in folders:
        array = folder.load(name)[:max_len]
        parts.append(l2_normalize(array) if normalize else array)
    length = min(part.shape[0] for part in parts)
    return np.concatenate([part[:length] for part in parts], axis=1)


def pool_and_interpolate(features: np.ndarray, length: int) -> np.ndarray:
    """Resample (time, dim) to ``length`` rows as RASL aligns audio to video.

    Denser sequences are first average-pooled by the integer factor ``time // length`` (RASL:
    "average pooling to downsample the temporal length"), then linearly interpolated to exactly
    ``length`` rows (sample centres aligned, as ``F.interpolate(mode="linear")``).
    """
    factor = len(features) // length
    if factor > 1:
        usable = len(features) // factor * factor
        features = features[:usable].reshape(-1, factor, features.shape[1]).mean(axis=1)
    if len(features) == length:
        return features.astype(np.float32, copy=False)
    positions = (np.arange(length) + 0.5) * len(features) / length - 0.5
    positions = np.clip(positions, 0, len(features) - 1)
    low = np.floor(positions).astype(np.int64)
    high = np.minimum(low + 1, len(features) - 1)
    weight = (positions - low)[:, None]
    return ((1 - weight) * features[low] + weight * features[high]).astype(np.float32)
