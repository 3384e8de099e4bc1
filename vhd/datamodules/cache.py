"""Packed feature caches: many small per-video arrays stacked into one (rows, dim) block.

One block plus an index (name -> first row, row count) is cheap to share with DataLoader workers
and avoids reopening thousands of files every epoch. The on-disk form is a plain ``.npy`` next to a
JSON index whose fingerprint (folder, key, names, file sizes and mtimes) tells when to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from rich.progress import track

if TYPE_CHECKING:
    from vhd.datamodules.features import FeatureFolder

T = TypeVar("T")
PROGRESS_THRESHOLD = 200  # fewer files load fast enough that a bar is noise


def progress(items: Sequence[T], description: str) -> Iterable[T]:
    """A rich progress bar for long loops, plain iteration for short ones."""
    if len(items) < PROGRESS_THRESHOLD:
        return items
    return track(items, description=description, transient=True)


class PackedArrays:
    """A (rows, dim) float32 block with a name -> (start, length) index; memory or memory-map."""

    def __init__(
        self,
        index: dict[str, tuple[int, int]],
        array: np.ndarray | None = None,
        path: Path | None = None,
    ) -> None:
        self.index = index
        self.path = path
        self._array = array

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def covers(self, names: Iterable[str]) -> bool:
        return all(name in self.index for name in names)

    def detached(self) -> PackedArrays:
        """A copy without the open map, for pickling into worker processes."""
        return PackedArrays(self.index, None, self.path)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            assert self.path is not None
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._array

    def get(self, name: str) -> np.ndarray:
        start, length = self.index[name]
        return np.array(self.array[start : start + length])  # a copy: models may write in place


def _layout(
    names: Sequence[str], lengths: dict[str, int]
) -> tuple[dict[str, tuple[int, int]], int]:
    index, row = {}, 0
    for name in names:
        index[name] = (row, lengths[name])
        row += lengths[name]
    return index, row


def _fill(folder: FeatureFolder, index: dict[str, tuple[int, int]], block: np.ndarray) -> None:
    from vhd.datamodules.features import FeatureError

    for name in progress(list(index), f"caching {folder.folder.name}"):
        start, length = index[name]
        array = folder.load(name)  # validated: 2-D, finite
        if array.shape != (length, block.shape[1]):
            raise FeatureError(
                f"{folder.path_for(name)} changed while the cache was built (shape {array.shape}, "
                f"expected {(length, block.shape[1])}); rerun"
            )
        block[start : start + length] = array


def build_packed(
    folder: FeatureFolder,
    names: Sequence[str],
    lengths: dict[str, int],
    dim: int,
    out: Path | None,
) -> PackedArrays:
    """Load every name once into one block: in RAM (``out=None``) or into the ``.npy`` ``out``."""
    index, rows = _layout(names, lengths)
    if out is None:
        block = np.empty((rows, dim), dtype=np.float32)
        _fill(folder, index, block)
        return PackedArrays(index, block)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=".npy", dir=out.parent)
    os.close(handle)
    try:
        block = np.lib.format.open_memmap(staging, mode="w+", dtype=np.float32, shape=(rows, dim))
        _fill(folder, index, block)
        block.flush()
        del block
        os.replace(staging, out)
    finally:
        Path(staging).unlink(missing_ok=True)
    return PackedArrays(index, None, out)


def fingerprint(folder: FeatureFolder, names: Sequence[str]) -> str:
    """Changes when the folder, key, name set or any file's size or mtime changes."""
    digest = hashlib.sha1()
    head = [str(folder.folder.resolve()), folder.key, folder.prefix, folder.suffix]
    digest.update(json.dumps(head).encode())
    for name in names:
        path = folder.path_for(name)
        stat = path.stat() if path is not None else None
        digest.update(
            f"{name}\0{stat.st_size if stat else -1}\0{stat.st_mtime_ns if stat else -1}\n".encode()
        )
    return digest.hexdigest()


def _paths(folder: FeatureFolder, key: str, cache_dir: Path) -> tuple[Path, Path]:
    stem = f"{folder.folder.name}-{key[:16]}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def open_packed(
    folder: FeatureFolder, names: Sequence[str], cache_dir: Path
) -> tuple[PackedArrays, int] | None:
    """The packed file of exactly these names and file versions, with its dim, if one exists.

    Costs one ``stat`` per file, so a valid cache also skips the header scan.
    """
    data_path, index_path = _paths(folder, fingerprint(folder, names), cache_dir)
    if not (index_path.is_file() and data_path.is_file()):
        return None
    stored = json.loads(index_path.read_text())
    index = {name: (int(start), int(length)) for name, (start, length) in stored["index"].items()}
    return PackedArrays(index, None, data_path), int(stored["dim"])


def build_packed_file(
    folder: FeatureFolder,
    names: Sequence[str],
    lengths: dict[str, int],
    dim: int,
    cache_dir: Path,
) -> PackedArrays:
    """Pack ``names`` into ``cache_dir`` under their fingerprint; the index is written last."""
    key = fingerprint(folder, names)
    data_path, index_path = _paths(folder, key, cache_dir)
    packed = build_packed(folder, names, lengths, dim, data_path)
    record = {"folder": str(folder.folder), "key": folder.key, "dim": dim, "index": packed.index}
    handle, staging = tempfile.mkstemp(prefix=f".{index_path.stem}-", suffix=".json", dir=cache_dir)
    with os.fdopen(handle, "w") as stream:
        json.dump(record, stream)
    os.replace(staging, index_path)  # readers never see an index without its data
    return packed
