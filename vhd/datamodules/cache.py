"""Packed feature caches: many small per-video arrays stacked into one (rows, dim) block.

One block plus an index (name -> first row, row count) is cheap to share with DataLoader workers
and avoids reopening thousands of files every epoch. The on-disk form is a plain ``.npy`` next to a
JSON index whose fingerprint (folder, key, names, file sizes and mtimes) tells when to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from rich.progress import track

from vhd.atomic import write_text_atomic

if TYPE_CHECKING:
    from vhd.datamodules.features import FeatureFolder

T = TypeVar("T")
PROGRESS_THRESHOLD = 200  # fewer files load fast enough that a bar is noise
LISTED = 10  # bad files named in one message
log = logging.getLogger("vhd.datamodules")


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
    from vhd.datamodules.features import FeatureError, nonfinite

    bad: list[str] = []
    for name in progress(list(index), f"caching {folder.folder.name}"):
        start, length = index[name]
        array = folder.read(name)
        if array.shape != (length, block.shape[1]):
            raise FeatureError(
                f"{folder.path_for(name)} changed while the cache was built (shape {array.shape}, "
                f"expected {(length, block.shape[1])}); rerun"
            )
        if problem := nonfinite(array):
            bad.append(f"{folder.path_for(name)} ({problem})")
        block[start : start + length] = array
    if bad:
        raise nonfinite_error(bad)


def nonfinite_error(bad: list[str]) -> Exception:
    """One error naming every feature file with NaN or inf values."""
    from vhd.datamodules.features import FeatureError

    shown = "; ".join(bad[:LISTED]) + (
        f" and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
    )
    return FeatureError(
        f"{len(bad)} feature files contain NaN or inf values: {shown}. Re-extract them (or remove "
        "their records)"
    )


def check_finite(folder: FeatureFolder, names: Sequence[str], cache_dir: Path | None) -> None:
    """Every value of every file finite, all bad files named in one error.

    Files already found finite (same size and mtime) are listed in a small JSON under
    ``cache_dir``, so only new or changed files are read: the first run reads every file once,
    later runs cost one ``stat`` each. A ``cache_dir`` that cannot be written only loses that.
    """
    from vhd.datamodules.features import nonfinite

    record = _finite_record(folder, cache_dir)
    known = _read_finite(record)
    versions = {name: _version(folder.path_for(name)) for name in names}
    todo = [name for name in names if known.get(name) != versions[name]]
    if not todo:
        return
    bad: list[str] = []
    for name in progress(todo, f"checking {folder.folder.name}"):
        if problem := nonfinite(folder.read(name)):
            bad.append(f"{folder.path_for(name)} ({problem})")
        else:
            known[name] = versions[name]
    if record is not None:
        try:
            write_text_atomic(record, json.dumps({"folder": str(folder.folder), "files": known}))
        except OSError as err:
            log.info("cannot keep the finite check of %s in %s (%s)", folder.folder, record, err)
    if bad:
        raise nonfinite_error(bad)


def _version(path: Path | None) -> list[int]:
    stat = path.stat() if path is not None else None
    return [stat.st_size, stat.st_mtime_ns] if stat else [-1, -1]


def _finite_record(folder: FeatureFolder, cache_dir: Path | None) -> Path | None:
    if cache_dir is None:
        return None
    head = [str(folder.folder.resolve()), folder.key, folder.prefix, folder.suffix]
    key = hashlib.sha1(json.dumps(head).encode()).hexdigest()[:16]
    return cache_dir / f"{folder.folder.name}-{key}-finite.json"


def _read_finite(record: Path | None) -> dict[str, list[int]]:
    if record is None or not record.is_file():
        return {}
    try:
        return {name: list(v) for name, v in json.loads(record.read_text())["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):  # damaged: check everything again
        return {}


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
