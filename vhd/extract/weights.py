"""Pretrained weight files: the user's ``--weights NAME=PATH``, else the cache, else a download.

The cache is ``$VHD_CACHE/weights`` (default ``~/.cache/vhd/weights``); ``VHD_OFFLINE=1`` skips
the download. Without a file and
without internet, the error names the file, where to get it and where to put it. Every file used
is recorded in the manifest with its sha256, so features can be traced to exact weights.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from vhd.errors import UserError
from vhd.extract.recipes.base import WeightFile

DOWNLOAD_TIMEOUT_S = 30


class WeightsError(UserError):
    """A weight file is missing or cannot be read; the message says where to put it."""


def cache_dir() -> Path:
    root = os.environ.get("VHD_CACHE") or Path.home() / ".cache" / "vhd"
    return Path(root) / "weights"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    with (
        urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        partial.open("wb") as out,
    ):
        while block := response.read(1 << 20):
            out.write(block)
    os.replace(partial, target)


def resolve_weights(
    recipe: str, files: dict[str, WeightFile], given: dict[str, Path]
) -> dict[str, Path]:
    """An existing file for every weight the recipe needs, or a ``WeightsError``."""
    download = os.environ.get("VHD_OFFLINE", "") in ("", "0")
    unknown = sorted(set(given) - set(files))
    if unknown:
        known = ", ".join(files) or "none"
        raise WeightsError(
            f"--weights {unknown[0]}=...: recipe {recipe!r} has no weights called {unknown[0]!r} "
            f"(its weights: {known})"
        )
    resolved: dict[str, Path] = {}
    for name, spec in files.items():
        if name in given:
            path = Path(given[name]).expanduser()
            if not path.is_file():
                raise WeightsError(
                    f"--weights {name}={path}: no such file; download {spec.description} from "
                    f"{spec.url} and pass its path"
                )
            resolved[name] = path
            continue
        cached = cache_dir() / spec.filename
        if not cached.is_file() and download:
            try:
                _download(spec.url, cached)
            except Exception as err:  # offline, proxy, HTTP error: all end in the same advice
                reason = f"{type(err).__name__}: {err}"
                raise WeightsError(
                    f"recipe {recipe!r} needs {spec.description} ({cached} is missing and the "
                    f"download from {spec.url} failed: {reason}); download it on a machine with "
                    f"internet and put it at {cached}, or pass --weights {name}=PATH"
                ) from err
        if not cached.is_file():
            raise WeightsError(
                f"recipe {recipe!r} needs {spec.description}: put it at {cached} (from "
                f"{spec.url}) or pass --weights {name}=PATH"
            )
        resolved[name] = cached
    return resolved
