"""``vhd app``: a web page over ``Highlighter``: upload a video, get its moments, plot and reel.

    vhd app --ckpt CKPT [--port 7860] [--host 127.0.0.1] [--share] [--device cpu]

The page listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise; ``--share``
adds a public gradio.live link. The query box shows only for models that read a query
(VideoLights). Clicking a row of the moments table seeks the uploaded video to its start.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vhd.launch.errors import Parser, UserError, report

if TYPE_CHECKING:
    import gradio as gr

HEADERS = ["rank", "start (s)", "end (s)", "score"]
# the Highlighter is not thread-safe: the query box's Enter and the button share one slot
ONE_AT_A_TIME = {"concurrency_limit": 1, "concurrency_id": "highlight"}
# Runs in the browser after a row click: the Python handler has put the row's start in #seek.
SEEK_JS = """(start) => {
  const video = document.querySelector('#player video');
  if (video && start !== null && start !== undefined) { video.currentTime = start; }
}"""


def build_parser() -> Parser:
    parser = Parser(prog="vhd app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="checkpoint of vhd fit")
    parser.add_argument("--port", type=int, default=7860, help="port of the page")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--share", action="store_true", help="also a public gradio.live link")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    return parser


def launch_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``Blocks.launch``; local-only unless the user asks otherwise."""
    return {"server_name": args.host or "127.0.0.1", "server_port": args.port, "share": args.share}


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        demo = build_app(load_highlighter(args))
    except UserError as err:
        return report(err)
    demo.launch(**launch_kwargs(args))
    return 0


def load_highlighter(args: argparse.Namespace) -> Any:
    """The checks a user can fix come before the slow imports (gradio, torch)."""
    if not args.ckpt.is_file():
        raise UserError(f"{args.ckpt}: no such checkpoint file; pass --ckpt with one of vhd fit")
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: must be between 1 and 65535")
    try:
        import gradio  # noqa: F401
    except ImportError as err:
        raise UserError("vhd app needs gradio: pip install -e '.[extract]'") from err
    from vhd.extract.cli import check_device
    from vhd.highlight.api import Highlighter

    check_device(args.device)
    return Highlighter.from_checkpoint(args.ckpt, device=args.device)


def intro(highlighter: Any) -> str:
    method = highlighter.method
    how = "Type what to look for." if highlighter.needs_query else f"{method} needs no query."
    checkpoint = getattr(getattr(highlighter, "trained", None), "path", None)
    source = f"Checkpoint `{Path(checkpoint).name}`. " if checkpoint else ""
    return f"## Video highlights with {method}\n{source}{how} Click a moment to jump to it."


def moment_rows(moments: list[tuple[float, float, float]]) -> list[list[float]]:
    return [
        [rank, round(start, 2), round(end, 2), round(score, 4)]
        for rank, (start, end, score) in enumerate(moments, 1)
    ]


def build_app(highlighter: Any) -> gr.Blocks:
    """The page for one loaded model; ``highlighter`` is anything shaped like ``Highlighter``."""
    import gradio as gr

    method, needs_query = highlighter.method, highlighter.needs_query
    # every request writes into its own folder in here; removed when the app is collected
    outputs = tempfile.TemporaryDirectory(prefix="vhd_app_")

    def highlight(video: str | None, query: str, top: int) -> tuple[Any, ...]:
        from vhd.extract.decode import VideoError

        if not video:
            raise gr.Error("Upload a video first.")
        if needs_query and not (query or "").strip():
            raise gr.Error(f"{method} finds moments for a text query: type what to look for.")
        out = Path(tempfile.mkdtemp(dir=outputs.name))
        try:
            result = highlighter(video, query=query if needs_query else None)
            for note in result.notes:
                gr.Warning(note)
            plot = result.plot(out / f"{result.vid}.png", top=top)
            reel = result.write_reel(out / f"{result.vid}_reel.mp4", top=top)
        except (UserError, VideoError) as err:  # the message names the upload's temporary path
            raise gr.Error(str(err).replace(str(video), Path(video).name)) from err
        saved = out / f"{result.vid}.json"
        saved.write_text(json.dumps(result.to_json(), indent=1))
        return str(plot), moment_rows(result.moments), str(reel), str(saved)

    def row_start(event: gr.SelectData) -> float:
        return float(event.row_value[1])

    # gradio passes the click by this hint; the module's hints are strings it cannot resolve
    row_start.__annotations__["event"] = gr.SelectData

    with gr.Blocks(title=f"vhd highlight: {method}", analytics_enabled=False) as demo:
        gr.Markdown(intro(highlighter))
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], elem_id="player")
                query = gr.Textbox(
                    label="Query", placeholder="what to look for", visible=needs_query,
                    elem_id="query",
                )  # fmt: skip
                top = gr.Slider(1, 10, value=5, step=1, label="Moments in the plot and reel")
                submit = gr.Button("Submit", variant="primary", elem_id="submit")
            with gr.Column():
                plot = gr.Image(label="Saliency and moments", type="filepath", elem_id="plot")
                table = gr.Dataframe(
                    headers=HEADERS, datatype=["number"] * 4, interactive=False,
                    label="Moments, best first (click one to play it)", elem_id="moments",
                )  # fmt: skip
        with gr.Row():
            reel = gr.Video(label="Highlight reel", interactive=False, elem_id="reel")
            saved = gr.File(label="Moments and saliency (JSON)", elem_id="json")
        seek = gr.Number(visible="hidden", elem_id="seek")
        for trigger in (submit.click, query.submit):  # one model: one request at a time
            trigger(highlight, [video, query, top], [plot, table, reel, saved], **ONE_AT_A_TIME)
        table.select(row_start, None, seek).then(None, seek, None, js=SEEK_JS)
    demo.vhd_outputs = outputs  # type: ignore[attr-defined]  # lives as long as the page
    return demo
