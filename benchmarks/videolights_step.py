"""VideoLights speed at the release's QVHighlights sizes: one training step (forward with the
negative pass and MR-to-HD, criterion with Hungarian matching, backward, AdamW) and one evaluation
forward. Prints one JSON object.

    .venv/bin/python benchmarks/videolights_step.py [--device cuda] [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch

from vhd.models import VideoLights


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


def make_batch(size: int, clips: int, tokens: int, options, device: torch.device) -> dict:
    saliency = torch.zeros(size, clips, device=device)
    saliency[:, clips // 3 : clips // 2] = 8.0
    return {
        "video": torch.randn(size, clips, options.video_dim, device=device),
        "video_mask": torch.ones(size, clips, dtype=torch.bool, device=device),
        "query": torch.randn(size, tokens, options.text_dim, device=device),
        "query_mask": torch.ones(size, tokens, dtype=torch.bool, device=device),
        "windows": [torch.tensor([[0.42, 0.17]], device=device)] * size,
        "saliency": saliency,
        "saliency_pos": torch.full((size, 2), clips // 3, device=device),
        "saliency_neg": torch.zeros(size, 2, dtype=torch.long, device=device),
        "meta": [{"qid": i, "vid": str(i), "num_clips": clips} for i in range(size)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=100)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--video_dim", type=int, default=3586)
    parser.add_argument("--text_dim", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = torch default")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(options.device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if options.precision == "bf16"
        else nullcontext()
    )
    model = VideoLights(options.video_dim, options.text_dim).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    train_batch = make_batch(options.batch_size, options.clips, options.tokens, options, device)
    eval_batch = make_batch(options.eval_batch_size, options.clips, options.tokens, options, device)

    def train_step() -> None:
        model.train()
        with autocast:
            loss, _ = model.criterion(model(train_batch), train_batch, epoch=0)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()

    @torch.no_grad()
    def eval_step() -> None:
        model.eval()
        with autocast:
            model.predict_batch(eval_batch)

    results = {
        "device": str(device),
        **vars(options),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_step_s": round(timed(train_step, options.repeats, device), 4),
        "eval_batch_s": round(timed(eval_step, options.repeats, device), 4),
    }
    if device.type == "cuda":
        results["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
