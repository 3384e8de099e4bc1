"""``vhd highlight``: videos + a trained checkpoint -> moments, a plot and a highlight reel.

    vhd highlight VIDEO... --ckpt CKPT [--query TEXT] [--out DIR] [--top 5] [--reel]
        [--device cpu|cuda] [--recipe NAME ...] [--clip_len S] [--weights NAME=PATH ...]

Per video: ``DIR/{vid}.json`` (moments best first, per-clip saliency with times, method,
checkpoint, recipes), ``DIR/{vid}.png`` and, with ``--reel``, ``DIR/{vid}_reel.mp4``; a table of
the top moments on the terminal. Features are cached in ``DIR/.features``. A video that fails
gets one ``error:`` line and the others go on; the exit status is then 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vhd.launch.errors import Parser, UserError, report

FAILED = 1


def build_parser() -> Parser:
    parser = Parser(prog="vhd highlight", description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path, help="video files")
    parser.add_argument("--ckpt", type=Path, required=True, help="checkpoint of vhd fit")
    parser.add_argument("--query", help="what to look for (VideoLights; required there)")
    parser.add_argument("--out", type=Path, default=Path("highlights"), help="output folder")
    parser.add_argument("--top", type=int, default=5, help="moments in the plot, table and reel")
    parser.add_argument("--reel", action="store_true", help="also write {vid}_reel.mp4")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--recipe", nargs="+", help="feature recipe(s), for checkpoints without a manifest"
    )
    parser.add_argument("--clip_len", type=float, help="with --recipe, if not 2 s")
    parser.add_argument("--weights", nargs="+", default=[], metavar="NAME=PATH")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        return report(err)


def run(args) -> int:
    from vhd.atomic import write_text_atomic
    from vhd.extract.cli import check_device, parse_weights
    from vhd.highlight.api import Highlighter
    from vhd.highlight.table import print_moments

    if args.top < 1:
        raise UserError("--top must be at least 1")
    check_device(args.device)
    highlighter = Highlighter.from_checkpoint(
        args.ckpt, args.device, recipe=args.recipe, clip_len=args.clip_len,
        weights=parse_weights(args.weights), cache_dir=args.out / ".features",
    )  # fmt: skip
    failed = 0
    for video in args.videos:
        try:
            result = highlighter(video, query=args.query)
        except UserError as err:
            report(err)
            failed += 1
            continue
        base = args.out / result.vid
        write_text_atomic(base.with_suffix(".json"), json.dumps(result.to_json(), indent=1))
        result.plot(base.with_suffix(".png"), top=args.top)
        written = [base.with_suffix(".json").name, base.with_suffix(".png").name]
        if args.reel and result.moments:
            result.write_reel(args.out / f"{result.vid}_reel.mp4", top=args.top)
            written.append(f"{result.vid}_reel.mp4")
        print_moments([result], args.top)
        print(f"vhd highlight: {video} -> {args.out}/{{{','.join(written)}}}", flush=True)
    if failed:
        print(f"vhd highlight: {failed} of {len(args.videos)} videos failed", file=sys.stderr)
        return FAILED
    return 0
