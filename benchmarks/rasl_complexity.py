"""RASL's parameters and FLOPs per 30 s window, to compare with Table VI (8.53 M, 0.82 GFLOPs).

    python benchmarks/rasl_complexity.py                       # the paper setup: N = 150, 768-d
    python benchmarks/rasl_complexity.py --conv-axis time --channels 768 384 192

Counts exclude the feature extractors, as the paper's do. ``torch.utils.flop_counter`` counts
2 FLOPs per multiply-add; papers that profile with thop/ptflops report multiply-adds as "FLOPs",
so both are printed. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vhd.models.rasl import RASL

PAPER = {"parameters_M": 8.53, "GFLOPs": 0.82}


def count_parameters(*modules: nn.Module) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def count_flops(function, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        function(*args)
    return counter.get_total_flops()


def measure(model: RASL) -> dict[str, object]:
    hp = model.hparams
    window = torch.randn(1, hp.window, hp.video_dim)
    valid = torch.ones(1, hp.window, dtype=torch.bool)
    visual = model.branches["visual"]
    attention = [model.attention["visual"]] if hp.self_attention else []
    scoring = [*attention, visual.encoder, visual.psi, visual.w]

    def reconstruct() -> None:  # one self-reconstruction pass of the visual branch (eq. 1-5)
        (features, _), *_ = model.branch_inputs({"visual": window}, valid).values()
        out = visual.encode(features, valid)
        visual.decode(out.s, out.r, hp.window)

    with torch.no_grad():
        score_flops = count_flops(model.score_windows, {"visual": window})
        branch_flops = count_flops(reconstruct)
    return {
        "setup": {
            key: hp[key]
            for key in ("video_dim", "audio_dim", "window", "channels", "kernel_size", "conv_axis")
        },
        "parameters": {
            "pretraining_model": count_parameters(model),
            "visual_branch_with_decoder": count_parameters(*attention, visual),
            "inference_scoring": count_parameters(*scoring),
        },
        "flops_per_window": {
            "visual_branch_with_decoder": branch_flops,
            "inference_scoring": score_flops,
        },
        "macs_per_window": {
            "visual_branch_with_decoder": branch_flops // 2,
            "inference_scoring": score_flops // 2,
        },
        "paper_table_vi": PAPER,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video-dim", type=int, default=768)
    parser.add_argument("--audio-dim", type=int, default=768)
    parser.add_argument("--window", type=int, default=150)
    parser.add_argument("--channels", type=int, nargs=3, default=(16, 32, 64))
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--conv-axis", choices=("feature", "time"), default="feature")
    parser.add_argument("--k", type=int, default=None, help="default: 10, or what fits the window")
    parser.add_argument("--scl-dim", type=int, default=None, help="needed when the dims differ")
    args = parser.parse_args(argv)
    model = RASL(
        video_dim=args.video_dim,
        audio_dim=args.audio_dim,
        window=args.window,
        channels=tuple(args.channels),
        kernel_size=args.kernel_size,
        conv_axis=args.conv_axis,
        scl_dim=args.scl_dim,
        k=args.k if args.k is not None else (10 if args.conv_axis == "feature" else 1),
    ).eval()
    print(json.dumps(measure(model), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
