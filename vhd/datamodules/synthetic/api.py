"""Entry points: ``generate``, ``ensure_synthetic`` (the datamodules' option), ``main``."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.progress import track

from vhd.datamodules.synthetic.config import KINDS, SIZES, STYLES, SynthConfig, resolve_config
from vhd.datamodules.synthetic.highlights import Progress, write_highlights, write_unlabeled
from vhd.datamodules.synthetic.moments import write_moments

FORMAT_VERSION = 2
MANIFEST = "synth.json"
PACKAGE = Path(__file__).parent


def write_videos(out: Path, config: SynthConfig, seed: int, progress: Progress) -> None:
    """The ``videos`` kind: mp4 files + annotations (imported here: PyAV is an optional extra)."""
    from vhd.datamodules.synthetic.videos import generate_video_dataset

    generate_video_dataset(out, count=config.num_videos, seed=seed, progress=progress)


WRITERS = {
    "moments": write_moments, "highlights": write_highlights, "unlabeled": write_unlabeled,
    "videos": write_videos,
}  # fmt: skip


def generator_digest() -> str:
    """A hash of the generator's source: a cached folder written by other code is rewritten."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def manifest(kind: str, seed: int, size: str, config: SynthConfig) -> dict[str, Any]:
    """What ``synth.json`` records: enough to tell whether a folder holds the wanted data."""
    params = json.loads(json.dumps(asdict(config)))
    return {"format_version": FORMAT_VERSION, "generator": generator_digest(), "kind": kind,
            "seed": seed, "size": size, "params": params}  # fmt: skip


def read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _progress(items: Iterable[int], description: str, total: int) -> Iterable[int]:
    return track(items, description=f"synth {description}", total=total)


def generate(
    kind: str, out: str | Path, seed: int = 0, size: str = "quickstart", **overrides: Any
) -> Path:
    """Write a ``kind`` dataset into ``out`` (replacing an earlier synthetic one); return ``out``.

    Deterministic for ``seed`` (and ``world_seed``); any ``SynthConfig`` field can be overridden.
    """
    config = resolve_config(kind, size, **overrides)
    return _write(kind, Path(out), seed, manifest(kind, seed, size, config), config, keep=False)


def ensure_synthetic(
    kind: str, out: str | Path, seed: int = 0, size: str = "quickstart", **overrides: Any
) -> Path:
    """``generate`` unless ``out/synth.json`` already records exactly these parameters."""
    out, config = Path(out), resolve_config(kind, size, **overrides)
    wanted = manifest(kind, seed, size, config)
    if read_manifest(out) == wanted:
        return out
    return _write(kind, out, seed, wanted, config, keep=True)


def _write(
    kind: str, out: Path, seed: int, wanted: dict[str, Any], config: SynthConfig, keep: bool
) -> Path:
    """Write into a hidden sibling folder, then swap it in: readers and concurrent writers never
    see half a dataset. ``keep``: a matching dataset that appeared meanwhile wins."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if out.exists() and not (out.is_dir() and (read_manifest(out) or not any(out.iterdir()))):
        raise FileExistsError(
            f"{out} exists and is not a synthetic dataset (no {MANIFEST}); refusing to replace "
            "it. Choose another output folder or empty this one."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        WRITERS[kind](staging, config, seed, _progress)
        (staging / MANIFEST).write_text(json.dumps(wanted, indent=1) + "\n")
        _publish(staging, out, wanted if keep else None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _publish(staging: Path, out: Path, keep: dict[str, Any] | None) -> None:
    """Rename ``staging`` to ``out`` (atomic while ``out`` is absent), moving an old one aside."""
    for _ in range(10):
        try:
            os.rename(staging, out)
            return
        except OSError:  # ``out`` exists and is not empty
            if keep is not None and read_manifest(out) == keep:
                return
            old = out.with_name(f".{out.name}.{uuid.uuid4().hex}.old")
            try:
                os.rename(out, old)
            except FileNotFoundError:  # another writer moved it first
                continue
            shutil.rmtree(old, ignore_errors=True)
    raise RuntimeError(f"could not replace {out}: other processes keep writing it")


def _parse_value(text: str) -> Any:
    """JSON when it parses (numbers, lists, null), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vhd synth",
        description="Write embedded synthetic data in a real benchmark's on-disk format.",
    )
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--out", required=True, help="output folder (an earlier one is replaced)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=list(SIZES), default="quickstart")
    parser.add_argument("--style", choices=STYLES, help="highlights format (default youtube)")
    parser.add_argument("--count", type=int, help="number of videos (sets num_videos)")
    parser.add_argument(
        "--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="override a SynthConfig field, e.g. --set num_videos=50 noise=1.5",
    )  # fmt: skip
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = _parse_value(value)
    if args.style:
        overrides["style"] = args.style
    if args.count is not None:
        overrides["num_videos"] = args.count
    try:
        out = generate(args.kind, args.out, seed=args.seed, size=args.size, **overrides)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    files = sum(1 for path in out.rglob("*") if path.is_file())
    print(f"wrote {args.kind} data ({files} files) to {out}")
    return 0
