"""VideoLights speed at the release's QVHighlights sizes: one training step (forward with the
negative pass and MR-to-HD, criterion with Hungarian matching, backward, AdamW) and one evaluation
forward (``predict_batch``: the network without the negative pass, then the windows and
saliency scores). Median seconds over ``--repeats`` timed runs after one warm-up, 2 CPU threads
by default, with the host allocator setting that ``vhd`` applies (``vhd/allocator.py``; turn it
off with ``--default_allocator``). Prints one JSON object.

    .venv/bin/python benchmarks/videolights_step.py [--device cuda] [--precision bf16]
        [--official DIR]

On the 2-core development machine the official release (patched only to run on the CPU) takes a
median 2.13 s per training step and 0.49 s per inference batch of 32; the targets are 1.4 s and
0.2 s. Shared machines vary by tens of percent over an hour (``gemm_gflops`` says how fast the
machine is right now), so with ``--official DIR``, a checkout of github.com/dpaul06/VideoLights,
the release is timed in the same run on the same batch (its ``.cuda()`` calls made no-ops), turn
about with ours, and ``*_vs_official`` give the median of the per-turn ratios of our time to its
time (targets: 0.66 and 0.41).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch

from vhd.allocator import keep_freed_memory
from vhd.models import VideoLights


def timed(step: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median wall time of ``step`` over ``repeats`` runs, after one warm-up run."""
    step()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_gflops(device: torch.device) -> float:
    """The machine's speed right now (a 2432 x 1024 x 1024 matmul, the FFN's shape): shared
    machines vary by tens of percent over an hour, so step times are comparable only with it."""
    a = torch.randn(2432, 1024, device=device)
    b = torch.randn(1024, 1024, device=device)
    return 2 * 2432 * 1024 * 1024 / timed(lambda: a @ b, 20, device) / 1e9


def make_batch(
    size: int, clips: int, tokens: int, options: argparse.Namespace, device: torch.device
) -> dict:
    """A full (unpadded) batch with one ground-truth window and saliency labels per sample."""
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
        "meta": [
            {"qid": i, "vid": str(i), "num_clips": clips, "duration": 2.0 * clips, "clip_len": 2.0}
            for i in range(size)
        ],
    }


def interleaved(
    ours: Callable[[], None], theirs: Callable[[], None], repeats: int
) -> tuple[float, float, float]:
    """Median times of ``ours`` and ``theirs`` run turn about (one warm-up each), and the median of
    the per-turn ratios: both see the same machine state, which on a shared machine drifts by
    tens of percent within a minute, so the ratio is far steadier than either time."""
    ours(), theirs()
    pairs = []
    for _ in range(repeats):
        start = time.perf_counter()
        ours()
        middle = time.perf_counter()
        theirs()
        pairs.append((middle - start, time.perf_counter() - middle))
    mine, official = zip(*pairs, strict=True)
    ratio = statistics.median(a / b for a, b in pairs)
    return statistics.median(mine), statistics.median(official), ratio


def release_steps(release_dir: str, batch: dict, eval_batch: dict) -> tuple[Callable, Callable]:
    """The release's train step and inference forward on the same batches (CPU, fp32): its
    forward (with the negative pass it always runs), its criterion's weighted sum, backward,
    clipping at 0.1 and AdamW, as its train.py; inference as its ``compute_hl_results``."""
    sys.path.insert(0, release_dir)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the release hard-codes .cuda()
    from video_lights.model import build_model  # the release, importable only now
    from videolights_parity import RELEASE_QV, release_targets

    model, criterion = build_model(argparse.Namespace(**RELEASE_QV))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    targets = release_targets(batch)

    def inputs(data: dict) -> dict:
        return {
            "src_txt": data["query"], "src_txt_mask": data["query_mask"].float(),
            "src_vid": data["video"], "src_vid_mask": data["video_mask"].float(),
        }  # fmt: skip

    def train_step() -> None:
        model.train()
        terms = criterion(model(**inputs(batch)), targets, 0)
        loss = sum(terms[k] * criterion.weight_dict[k] for k in terms if k in criterion.weight_dict)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()

    @torch.no_grad()
    def eval_forward() -> None:
        model.eval()
        model(**inputs(eval_batch))

    return train_step, eval_forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--video_dim", type=int, default=3586)
    parser.add_argument("--text_dim", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads; 0 = torch default")
    parser.add_argument(
        "--default_allocator",
        action="store_true",
        help="leave glibc's allocator as it is (``vhd`` keeps freed memory: vhd/allocator.py)",
    )
    parser.add_argument("--official", help="a checkout of dpaul06/VideoLights to time as well")
    options = parser.parse_args()
    kept = False if options.default_allocator else keep_freed_memory()
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(options.device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if options.precision == "bf16"
        else nullcontext()
    )
    model = VideoLights(options.video_dim, options.text_dim).to(device)
    optimizer = model.configure_optimizers()["optimizer"]  # as ``vhd fit`` builds it
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

    @torch.inference_mode()  # as Lightning runs validate/test/predict
    def eval_step() -> None:
        model.eval()
        with autocast:
            model.predict_batch(eval_batch)

    @torch.inference_mode()  # as Lightning runs validate/test/predict
    def eval_forward() -> None:
        model.eval()
        with autocast:
            model(eval_batch, for_loss=False)

    results = {
        "device": str(device),
        **vars(options),
        "allocator": "keeps freed memory" if kept else "default",
        "parameters": sum(p.numel() for p in model.parameters()),
        "gemm_gflops": round(gemm_gflops(device), 1),
    }
    if options.official:
        if device.type != "cpu" or options.precision != "32":
            raise SystemExit("--official times the release on the CPU in fp32 only")
        release_train, release_eval = release_steps(options.official, train_batch, eval_batch)
        for name, ours, theirs, official_name in (
            ("train_step_s", train_step, release_train, "official_train_step_s"),
            ("eval_batch_s", eval_step, release_eval, "official_eval_forward_s"),
        ):
            mine, official, ratio = interleaved(ours, theirs, options.repeats)
            results[name], results[official_name] = round(mine, 4), round(official, 4)
            results[name.split("_")[0] + "_vs_official"] = round(ratio, 3)
        results["eval_forward_s"] = round(timed(eval_forward, options.repeats, device), 4)
    else:
        results["train_step_s"] = round(timed(train_step, options.repeats, device), 4)
        results["eval_batch_s"] = round(timed(eval_step, options.repeats, device), 4)
        results["eval_forward_s"] = round(timed(eval_forward, options.repeats, device), 4)
    if device.type == "cuda":
        results["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
