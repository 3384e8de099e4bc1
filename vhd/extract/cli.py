"""``vhd extract``: video files -> the feature folders the datamodules read.

    vhd extract VIDEO_OR_FOLDER... --out DIR --recipe NAME [--clip_len 2.0] [--device cpu]
        [--batch_size 32] [--workers 1] [--weights NAME=PATH ...] [--queries FILE.jsonl]
    vhd extract --list

Writes ``DIR/<feature>/{vid}.npz`` (key ``features``, one row per clip), query features
``DIR/<text feature>/qid{qid}.npz`` (key ``last_hidden_state``), ``DIR/manifest.json`` and, when
a video fails, ``DIR/errors.jsonl``; the exit status is 1 when any video failed. Rerunning the
same command resumes: what is done is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vhd.launch.errors import Parser, UserError, report

VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".flv", ".wmv", ".ts",
    ".3gp", ".ogv",
}  # fmt: skip
PROGRESS_LINES = 20  # without a terminal: about this many progress lines per run
FAILED = 1


def build_parser() -> Parser:
    parser = Parser(prog="vhd extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", help="video files and folders of videos")
    parser.add_argument("--out", type=Path, help="extraction folder (data_root of a datamodule)")
    parser.add_argument("--recipe", help="feature recipe; see --list")
    parser.add_argument("--clip_len", type=float, default=2.0, help="seconds per feature row")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch_size", type=int, default=32, help="clips per forward pass")
    parser.add_argument(
        "--workers", type=int, default=1, help="videos decoded ahead in threads (0: inline)"
    )
    parser.add_argument(
        "--weights", nargs="+", default=[], metavar="NAME=PATH", help="weight files of the recipe"
    )
    parser.add_argument("--queries", type=Path, help="jsonl with qid and query: text features")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    return parser


def list_recipes() -> int:
    from vhd.extract.recipes import RECIPES, recipe_class

    for name in RECIPES:
        try:
            cls = recipe_class(name)
        except ImportError as err:
            print(f"{name:10s} unavailable ({err}); pip install 'vhd[extract]'")
            continue
        weights = ", ".join(f"{key}={spec.filename}" for key, spec in cls.weight_files.items())
        print(f"{name:10s} {cls.summary}" + (f" [weights: {weights}]" if weights else ""))
    return 0


def collect_videos(inputs: list[str]) -> list[tuple[str, Path]]:
    """(vid, path) per video file; a folder contributes its video files (not its subfolders)."""
    found: list[Path] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                suffixes = " ".join(sorted(VIDEO_SUFFIXES))
                raise UserError(f"{path} holds no video files (looked for {suffixes})")
            found += videos
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    by_vid: dict[str, Path] = {}
    for path in found:
        if path.stem in by_vid and by_vid[path.stem].resolve() != path.resolve():
            raise UserError(
                f"{by_vid[path.stem]} and {path} would both be written as vid {path.stem!r}; "
                "rename one or extract them into different --out folders"
            )
        by_vid[path.stem] = path
    return list(by_vid.items())


def parse_weights(pairs: list[str]) -> dict[str, Path]:
    weights: dict[str, Path] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--weights {pair!r}: write NAME=PATH, e.g. --weights clip=ViT.pt")
        weights[name] = Path(path)
    return weights


def read_queries(path: Path) -> dict[str, str]:
    """qid -> query from a jsonl (a QVHighlights annotation file works as is)."""
    from vhd.datamodules.annotations import AnnotationError, read_jsonl, require_fields, source

    try:
        records = read_jsonl(path)
    except (AnnotationError, OSError) as err:
        raise UserError(str(err)) from err
    queries: dict[str, str] = {}
    for record in records:
        try:
            require_fields(record, ("qid", "query"))
        except AnnotationError as err:
            raise UserError(str(err)) from err
        qid, query = str(record["qid"]), record["query"]
        if not isinstance(query, str) or not query.strip():
            raise UserError(f"{source(record)}: qid={qid!r} has an empty query; write its text")
        if queries.get(qid, query) != query:
            raise UserError(
                f"{source(record)}: qid={qid!r} appears twice with different queries; "
                "give each query its own qid"
            )
        queries[qid] = query
    return queries


def check_device(device: str) -> None:
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"--device {device!r}: {err}; use cpu, cuda or cuda:N") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here; use --device cpu")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        return list_recipes()
    try:
        return extract(args)
    except UserError as err:
        return report(err)


def extract(args: Any) -> int:
    from vhd.extract.manifest import ManifestError, open_manifest, recipe_entry, write_manifest
    from vhd.extract.recipes import ExtractOptions, recipe_class
    from vhd.extract.run import Extractor, VideoJob
    from vhd.extract.weights import WeightsError, resolve_weights, sha256

    if args.recipe is None or args.out is None:
        raise UserError("vhd extract: --recipe and --out are required; see vhd extract --list")
    if not args.inputs and args.queries is None:
        raise UserError("vhd extract: name video files or folders (or --queries FILE.jsonl)")
    if args.clip_len <= 0 or args.batch_size < 1 or args.workers < 0:
        raise UserError("--clip_len must be > 0, --batch_size >= 1 and --workers >= 0")
    try:
        cls = recipe_class(args.recipe)
    except KeyError as err:
        raise UserError(f"--recipe: {err.args[0]}") from err
    videos = collect_videos(args.inputs)
    queries = read_queries(args.queries) if args.queries is not None else {}
    check_device(args.device)
    try:
        weights = resolve_weights(args.recipe, cls.weight_files, parse_weights(args.weights))
    except WeightsError as err:
        raise UserError(str(err)) from err
    options = ExtractOptions(args.clip_len, args.device, args.batch_size, weights)
    try:
        recipe = cls(options)
    except ValueError as err:  # a weight file that does not fit the network
        raise UserError(str(err)) from err
    if queries and recipe.text_output is None:
        raise UserError(
            f"--queries: recipe {args.recipe!r} has no text encoder; extract query features "
            "with --recipe clip"
        )
    entry = recipe_entry(
        features={
            o.folder: {"dim": o.dim, "key": o.key, "modality": o.modality} for o in recipe.outputs()
        },
        models=recipe.describe(),
        weights={
            name: {"file": str(path.resolve()), "sha256": sha256(path)}
            for name, path in weights.items()
        },
    )
    try:
        manifest = open_manifest(args.out, args.clip_len, args.recipe, entry)
    except ManifestError as err:
        raise UserError(str(err)) from err
    write_manifest(args.out, manifest)

    jobs = [VideoJob(vid, path) for vid, path in videos]
    with Progress(len(jobs), "videos") as progress:
        extractor = Extractor(recipe, args.out, manifest, workers=args.workers, progress=progress)
        summary = extractor.run(jobs)
    if queries:
        written = extract_queries(recipe, args.out, queries)
        folder = args.out / recipe.text_output.folder
        manifest["recipes"][args.recipe]["queries"] = len(list(folder.glob("qid*.npz")))
        write_manifest(args.out, manifest)
        print(f"vhd extract: {written} query features written ({len(queries) - written} existed)")
    if summary.no_audio:
        shown = ", ".join(summary.no_audio[:5]) + (" ..." if len(summary.no_audio) > 5 else "")
        print(
            f"vhd extract: {len(summary.no_audio)} videos have no audio track; their audio "
            f"features are those of silence (has_audio false in the manifest): {shown}"
        )
    minutes = summary.seconds_of_video / 60
    print(
        f"vhd extract: {len(summary.done)} videos extracted ({minutes:.1f} min of video), "
        f"{len(summary.skipped)} already done, {len(summary.failed)} failed -> {args.out}"
    )
    if summary.failed:
        first = summary.failed[0]
        print(
            f"error: {len(summary.failed)} videos could not be extracted, listed in "
            f"{args.out / 'errors.jsonl'} (first: {first['video']}: {first['error']}); fix or "
            "remove them and rerun to finish",
            file=sys.stderr,
        )
        return FAILED
    return 0


def extract_queries(recipe: Any, out: Path, queries: dict[str, str]) -> int:
    from vhd.atomic import save_npz_atomic

    folder = out / recipe.text_output.folder
    written = 0
    with Progress(len(queries), "queries") as progress:
        for qid, query in queries.items():
            path = folder / f"qid{qid}.npz"
            if not path.is_file():
                save_npz_atomic(path, **{recipe.text_output.key: recipe.text_features(query)})
                written += 1
            progress(qid)
    return written


class Progress:
    """A rich bar on a terminal; otherwise a plain line every ~1/20 of the items."""

    def __init__(self, total: int, what: str) -> None:
        self.total = total
        self.what = what
        self.count = 0
        self.every = max(1, total // PROGRESS_LINES)
        self.bar: Any = None

    def __enter__(self) -> Progress:
        if sys.stderr.isatty() and self.total:
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(transient=False)
            self.bar.start()
            self.task = self.bar.add_task(f"extract {self.what}", total=self.total)
        return self

    def __call__(self, name: str) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"extract {name}")
        elif self.count % self.every == 0 or self.count == self.total:
            print(f"vhd extract: {self.count}/{self.total} {self.what} ({name})", flush=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
