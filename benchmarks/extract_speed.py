"""``vhd extract`` speed on the CPU: seconds of video per wall second for each recipe, next to
PyAV decoding alone (the floor every recipe pays). Prints one JSON object.

    .venv/bin/python benchmarks/extract_speed.py [--seconds 120] [--model_seconds 20]
        [--recipes pixel_mel clip slowfast audio] [--threads 2] [--workers 1]

The video is generated (moving shapes and a tone, 640x360 at 25 fps, H.264 + AAC). Networks get
random weights: speed does not depend on the weight values. ``pixel_mel`` runs on the long video,
``--repeats`` times, each run next to a decode-only run (medians reported: a second-long timing
on a shared machine varies by 20%); the network recipes once on a ``--model_seconds`` video,
since SlowFast runs near real time on 2 cores. Goal: ``pixel_mel`` within 1.5x of decoding alone
(``ratio_to_decode`` <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vhd.datamodules.synthetic.videos import write_video
from vhd.extract.decode import decode_only
from vhd.extract.manifest import open_manifest, recipe_entry
from vhd.extract.recipes import ExtractOptions, Recipe, recipe_class
from vhd.extract.run import Extractor, VideoJob


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def extract_seconds(recipe: Recipe, video: Path, out: Path, workers: int) -> float:
    manifest = open_manifest(out, 2.0, recipe.name, recipe_entry({}, {}, {}))
    extractor = Extractor(recipe, out, manifest, workers=workers)
    start = time.perf_counter()
    summary = extractor.run([VideoJob(video.stem, video)])
    elapsed = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(f"{recipe.name}: {summary.failed}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--model_seconds", type=float, default=20.0)
    parser.add_argument("--recipes", nargs="+", default=["pixel_mel", "clip", "slowfast", "audio"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="pixel_mel runs (median)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "workers": args.workers, "recipes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos = {}
        for seconds in sorted({args.seconds, args.model_seconds}):
            path = folder / f"video_{seconds:g}s.mp4"
            write_video(
                path, duration=seconds, fps=25, width=640, height=360, highlight=None, seed=0
            )
            videos[seconds] = path
        decode: dict[float, list[float]] = {seconds: [] for seconds in videos}
        for name in args.recipes:
            cls = recipe_class(name)
            weights = cls.random_weights(folder / "weights")
            options = ExtractOptions(2.0, "cpu", args.batch_size, weights)
            recipe = cls(options)
            seconds = args.seconds if name == "pixel_mel" else args.model_seconds
            walls, decodes = [], []
            for run in range(args.repeats if name == "pixel_mel" else 1):
                decodes.append(timed(decode_only, videos[seconds]))
                out = folder / f"{name}_{run}"
                walls.append(extract_seconds(recipe, videos[seconds], out, args.workers))
            decode[seconds] += decodes
            wall = statistics.median(walls)
            results["recipes"][name] = {
                "video_seconds": seconds,
                "runs": len(walls),
                "wall_seconds": round(wall, 2),
                "video_s_per_wall_s": round(seconds / wall, 2),
                "ratio_to_decode": round(wall / statistics.median(decodes), 2),
                "ratio_per_run": [round(w / d, 2) for w, d in zip(walls, decodes, strict=True)],
            }
        results["decode_only_video_s_per_wall_s"] = {
            f"{seconds:g}s": round(seconds / statistics.median(walls), 2)
            for seconds, walls in decode.items()
            if walls
        }
    results["pixel_mel_goal_met"] = (
        results["recipes"].get("pixel_mel", {}).get("ratio_to_decode", float("inf")) <= 1.5
    )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
