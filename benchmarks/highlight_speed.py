"""``vhd highlight`` speed on the CPU: real-time factor (video seconds per wall second) on a
generated 10-minute video, split into decoding, feature extraction and the model. Prints JSON.

    .venv/bin/python benchmarks/highlight_speed.py [--seconds 600] [--threads 2]

Two set-ups, each with a randomly initialised model (speed does not depend on weight values)
saved as a checkpoint of the shape ``vhd fit`` writes:
- ``pixel_mel``: HPCL (the YouTube Highlights config, 1024-d pixels + 128-d log-mel), whole video;
- ``clip``: VideoLights (the QVHighlights config on CLIP 512-d video + query tokens), scored in
  windows of 75 clips, as a model trained on 150 s videos sees a longer one.
Goal: the model part under 10% of the total, so decoding and extraction set the speed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from vhd.datamodules.synthetic.videos import write_video
from vhd.extract.decode import decode_only
from vhd.extract.recipes import recipe_class
from vhd.highlight.api import Highlighter
from vhd.models import HPCL, VideoLights

REPO = Path(__file__).resolve().parents[1]


def config_args(name: str, block: str) -> dict[str, Any]:
    config = yaml.safe_load((REPO / "configs" / name).read_text())
    return dict(config[block]["init_args"])


def save_checkpoint(
    model: torch.nn.Module, class_path: str, data: dict[str, Any], data_class: str,
    recipes: dict[str, dict], path: Path,
) -> Path:  # fmt: skip
    """A checkpoint laid out as LightningCLI + vhd's datamodules write it."""
    hparams = {**dict(model.hparams), "_class_path": class_path}
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "datamodule_hyper_parameters": {**data, "_class_path": f"vhd.datamodules.{data_class}"},
            data_class: {"feature_manifest": {"clip_len": 2.0, "recipes": recipes}},
        },
        path,
    )
    return path


def measure(
    highlighter: Highlighter, video: Path, warmup: Path, seconds: float, query: str | None
) -> dict:
    """One-time costs (networks built, weights loaded, first forward passes) come from a
    10-second warm-up video and are reported apart: they do not grow with the video."""
    start = time.perf_counter()
    highlighter(warmup, query=query)
    once = time.perf_counter() - start
    highlighter.timings = {"extract": 0.0, "model": 0.0}
    decode = time.perf_counter()
    decode_only(video)
    decode = time.perf_counter() - decode
    start = time.perf_counter()
    result = highlighter(video, query=query)
    total = time.perf_counter() - start
    extract, model = highlighter.timings["extract"], highlighter.timings["model"]
    return {
        "moments": len(result.moments),
        "total_s": round(total, 2),
        "decode_s": round(decode, 2),
        "extract_s": round(max(0.0, extract - decode), 2),
        "model_s": round(model, 2),
        "model_share": round(model / total, 3),
        "realtime_factor": round(seconds / total, 1),
        "goal_model_under_10pct": model / total < 0.10,
        "warmup_10s_video_s": round(once, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"video_seconds": args.seconds, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = folder / "long.mp4"
        write_video(video, duration=args.seconds, fps=25, width=640, height=360,
                    highlight=(args.seconds * 0.7, args.seconds * 0.7 + 6), seed=0)  # fmt: skip
        warmup = folder / "warmup.mp4"
        write_video(warmup, duration=10.0, fps=25, width=640, height=360, highlight=None, seed=1)

        hpcl_args = config_args("hpcl_youtube.yaml", "model") | {
            "video_dim": 1024,
            "audio_dim": 128,
        }
        data = config_args("hpcl_youtube.yaml", "data") | {
            "video_feature_dirs": ["pixel_features"], "audio_feature_dirs": ["mel_features"],
        }  # fmt: skip
        ckpt = save_checkpoint(
            HPCL(**hpcl_args), "vhd.models.HPCL", data, "HighlightDataModule",
            {"pixel_mel": {}}, folder / "hpcl.ckpt",
        )  # fmt: skip
        highlighter = Highlighter.from_checkpoint(ckpt, cache_dir=folder / "cache_pixel")
        results["pixel_mel_hpcl"] = measure(highlighter, video, warmup, args.seconds, None)

        weights = recipe_class("clip").random_weights(folder / "weights")
        vl_args = config_args("videolights_qv.yaml", "model") | {"video_dim": 514, "text_dim": 512}
        data = config_args("videolights_qv.yaml", "data") | {
            "video_feature_dirs": ["clip_features"], "text_feature_dir": ["clip_text_features"],
        }  # fmt: skip
        ckpt = save_checkpoint(
            VideoLights(**vl_args), "vhd.models.VideoLights", data, "MomentDataModule",
            {"clip": {}}, folder / "videolights.ckpt",
        )  # fmt: skip
        highlighter = Highlighter.from_checkpoint(
            ckpt, weights=weights, cache_dir=folder / "cache_clip"
        )
        results["clip_videolights"] = measure(
            highlighter, video, warmup, args.seconds, "a bright flash"
        )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
