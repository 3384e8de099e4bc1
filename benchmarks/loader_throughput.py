"""MomentDataModule loader throughput (items/s) without and with the feature caches, on a synthetic
corpus the size of QVHighlights (10,148 videos of 75 clips, 10,310 queries). Prints one JSON object.

    .venv/bin/python benchmarks/loader_throughput.py [--out /tmp/vhd_loader_bench] [--workers 0 2]

The corpus is generated once into ``--out`` (about 0.8 GB at the default dims) and reused. Files
were just written or read, so the "none" figures are with a warm OS page cache: on a cold network
filesystem the gap to the caches is larger.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from vhd.datamodules import MomentDataModule
from vhd.datamodules.synthetic import ensure_synthetic

QVHIGHLIGHTS_VIDEOS = 10148
QVHIGHLIGHTS_QUERIES = 10310


def corpus(out: Path, videos: int, video_dim: int, text_dim: int) -> Path:
    """QVHighlights-sized synthetic moments data (one query per video, 75 clips of 2 s)."""
    return ensure_synthetic(
        "moments",
        out,
        seed=0,
        size="full",
        num_videos=videos,
        queries_per_video=1,
        num_clips=75,
        video_dim=video_dim,
        text_dim=text_dim,
        split_fractions=(1.0, 0.0, 0.0),  # every query in train: one big split to stream
    )


def measure(root: Path, cache: str, workers: int, batch_size: int, max_items: int) -> dict:
    dm = MomentDataModule(
        data_root=str(root),
        train_file="annotations/train.jsonl",
        val_file="annotations/train.jsonl",
        test_file="annotations/train.jsonl",
        video_feature_dirs=["video_features"],
        text_feature_dir="text_features",
        feature_cache=cache,
        batch_size=batch_size,
        num_workers=workers,
    )
    start = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    items = 0
    start = time.perf_counter()
    for batch in dm.train_dataloader():
        items += len(batch["meta"])
        if items >= max_items:
            break
    elapsed = time.perf_counter() - start
    return {
        "cache": cache,
        "workers": workers,
        "setup_s": round(setup_s, 2),
        "items": items,
        "items_per_s": round(items / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/vhd_loader_bench"))
    parser.add_argument("--videos", type=int, default=QVHIGHLIGHTS_VIDEOS)
    parser.add_argument("--video_dim", type=int, default=256)
    parser.add_argument("--text_dim", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0])
    parser.add_argument("--max_items", type=int, default=QVHIGHLIGHTS_QUERIES, help="per run")
    parser.add_argument("--caches", nargs="+", default=["none", "memory", "mmap"])
    options = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(sys.stderr):  # progress bars; stdout carries only the JSON
        start = time.perf_counter()
        root = corpus(options.out, options.videos, options.video_dim, options.text_dim)
        generate_s = time.perf_counter() - start
        runs = []
        for workers in options.workers:
            for cache in options.caches:
                if cache == "mmap":  # time the build, then a second run that reuses the file
                    shutil.rmtree(root / ".feature_cache", ignore_errors=True)
                runs.append(measure(root, cache, workers, options.batch_size, options.max_items))
                if cache == "mmap":
                    reuse = measure(root, cache, workers, options.batch_size, options.max_items)
                    runs.append({**reuse, "cache": "mmap (reused)"})
    result = {
        "corpus": {
            "videos": options.videos,
            "queries": len((root / "annotations" / "train.jsonl").read_text().splitlines()),
            "clips": 75,
            "video_dim": options.video_dim,
            "text_dim": options.text_dim,
            "generate_or_reuse_s": round(generate_s, 1),
        },
        "batch_size": options.batch_size,
        "cpus": os.cpu_count(),
        "runs": runs,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
