"""HPCL speed at the paper's sizes: one training step on T=20 windows and one whole-video
prediction, per architecture variant. Prints one JSON object.

    .venv/bin/python benchmarks/hpcl_step.py [--device cuda] [--batch_size 32] [--video_len 400]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vhd.models import HPCL


def timed(step, repeats: int, device: torch.device) -> float:
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--window", type=int, default=20, help="T, the training window")
    parser.add_argument("--video_len", type=int, default=400, help="clips of an evaluated video")
    parser.add_argument("--video_dim", type=int, default=512)
    parser.add_argument("--audio_dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    device = torch.device(options.device)
    results: dict[str, object] = {"device": str(device), **vars(options)}
    for architecture in ("co_av", "cr_av", "av", "v_only"):
        model = HPCL(options.video_dim, options.audio_dim, architecture=architecture).to(device)
        optimizer = model.configure_optimizers()

        def batch(size: int, length: int) -> dict:
            return {
                "video": torch.randn(size, length, options.video_dim, device=device),
                "audio": torch.randn(size, length, options.audio_dim, device=device),
                "video_mask": torch.ones(size, length, dtype=torch.bool, device=device),
                "meta": [{"qid": i, "vid": str(i), "num_clips": length} for i in range(size)],
            }

        train_batch = batch(options.batch_size, options.window)
        labels = (torch.rand(options.batch_size, options.window, device=device) > 0.6).float()

        def train_step(model=model, optimizer=optimizer, train_batch=train_batch, labels=labels):
            loss = model.losses(model(train_batch), labels, train_batch["video_mask"])["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        video = batch(1, options.video_len)
        model.train()
        train_s = timed(train_step, options.repeats, device)
        model.eval()
        predict_s = timed(
            lambda model=model, video=video: model.predict_batch(video), options.repeats, device
        )
        results[architecture] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_step_ms": round(train_s * 1e3, 2),
            "predict_video_ms": round(predict_s * 1e3, 2),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
