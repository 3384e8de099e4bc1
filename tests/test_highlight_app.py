"""``vhd app``: its flags, its error messages, and the page itself in headless Chromium with a
HPCL checkpoint trained here: upload a generated video, submit, read the moments, click one and
see the player seek to it. The browser test skips without Chromium unless ``VHD_REQUIRE_BROWSER=1``
(as CI sets it), where it fails instead."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from vhd.cli import main as vhd
from vhd.datamodules.synthetic.videos import (
    generate_video_dataset,
    write_corrupt_video,
    write_video,
)
from vhd.highlight.app import build_app, build_parser, launch_kwargs, main
from vhd.highlight.result import HighlightResult

gr = pytest.importorskip("gradio")
# gradio's queue still sets a pandas 2 option; nothing here can change that
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")

REPO = Path(__file__).resolve().parents[1]
HOW_TO = "apt-get install -y chromium chromium-driver"
PAGE_TIMEOUT = 240  # seconds for a request: feature extraction and the reel on a slow CPU


# -- flags ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {"server_name": "127.0.0.1", "server_port": 7860, "share": False}),
        (["--host", "0.0.0.0", "--port", "8000"], {"server_name": "0.0.0.0", "server_port": 8000}),
        (["--share"], {"server_name": "127.0.0.1", "share": True}),
    ],
)
def test_flags_map_to_launch_arguments(flags: list[str], expected: dict[str, Any]) -> None:
    """Local-only by default: another machine reaches the page only when the user asks."""
    kwargs = launch_kwargs(build_parser().parse_args(["--ckpt", "m.ckpt", *flags]))
    assert kwargs.items() >= expected.items()


def test_a_missing_checkpoint_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ckpt", "missing.ckpt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: missing.ckpt: no such checkpoint file") and err.count("\n") == 1


def test_no_checkpoint_flag_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: vhd app: the following arguments are required: --ckpt")


# -- the request handler ------------------------------------------------------------------------
class FakeHighlighter:
    """``Highlighter``'s interface, scoring a planted bump at 8-12 s."""

    def __init__(self, method: str, needs_query: bool) -> None:
        self.method, self.needs_query = method, needs_query
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, video: str | Path, query: str | None = None) -> HighlightResult:
        self.calls.append((str(video), query))
        times = np.arange(10) * 2.0
        return HighlightResult(
            video=Path(video), vid=Path(video).stem, method=self.method, checkpoint="fake.ckpt",
            recipes=["pixel_mel"], clip_len=2.0, duration=20.0, times=times,
            saliency=np.exp(-((times - 9.0) ** 2) / 8), moments=[(8.0, 12.0, 0.9)], query=query,
        )  # fmt: skip


def handler(demo: Any, name: str) -> Any:
    (fn,) = {block_fn.fn for block_fn in demo.fns.values() if block_fn.name == name}
    return fn


def component(demo: Any, elem_id: str) -> Any:
    (found,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id]
    return found


@pytest.mark.parametrize("needs_query", [True, False])
def test_the_query_box_shows_only_for_models_that_read_one(needs_query: bool) -> None:
    method = "VideoLights" if needs_query else "HPCL"
    demo = build_app(FakeHighlighter(method, needs_query))
    assert component(demo, "query").visible is needs_query


def test_an_empty_query_is_an_error_message_not_a_call(tmp_path: Path) -> None:
    fake = FakeHighlighter("VideoLights", needs_query=True)
    highlight = handler(build_app(fake), "highlight")
    video = tmp_path / "v.mp4"
    video.touch()
    with pytest.raises(gr.Error, match="VideoLights finds moments for a text query"):
        highlight(str(video), "  ", 5)
    with pytest.raises(gr.Error, match="Upload a video first"):
        highlight(None, "a dog", 5)
    assert fake.calls == []


def test_each_request_writes_into_its_own_folder(tmp_path: Path) -> None:
    video = write_video(
        tmp_path / "v.mp4", duration=20, fps=12.5, width=160, height=120,
        highlight=(8.0, 12.0), seed=0,
    ).path  # fmt: skip
    fake = FakeHighlighter("HPCL", needs_query=False)
    highlight = handler(build_app(fake), "highlight")
    first, second = highlight(str(video), "ignored", 3), highlight(str(video), "", 3)
    assert fake.calls == [(str(video), None)] * 2  # HPCL reads no query: none is passed
    assert Path(first[0]).parent != Path(second[0]).parent
    plot, rows, reel, saved = first
    assert rows == [[1, 8.0, 12.0, 0.9]]
    assert Path(plot).suffix == ".png" and Path(reel).stat().st_size > 0
    assert Path(saved).read_text().count('"moments"') == 1


# -- a real checkpoint ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HPCL after 2 epochs on 12 generated videos: enough for a page that shows real moments."""
    from vhd.lightning_cli import make_cli

    root, run = tmp_path_factory.mktemp("app_data"), tmp_path_factory.mktemp("app_run")
    generate_video_dataset(
        root, count=12, seed=0, durations=(20.0, 30.0), size=(160, 120), progress=None
    )
    assert vhd(["extract", str(root / "videos"), "--out", str(root), "--recipe", "pixel_mel"]) == 0
    make_cli(
        [
            "fit", "--config", str(REPO / "configs" / "hpcl_youtube.yaml"),
            f"--data.init_args.data_root={root}", "--data.init_args.synthetic=null",
            "--data.init_args.domain=synthetic",
            "--data.init_args.video_feature_dirs=[pixel_features]",
            "--data.init_args.audio_feature_dirs=[mel_features]",
            "--data.init_args.feature_recipe=pixel_mel", "--model.init_args.video_dim=1024",
            "--model.init_args.audio_dim=128", f"--trainer.default_root_dir={run}",
            f"--trainer.logger.init_args.save_dir={run}", "--trainer.max_epochs=2",
        ]
    )  # fmt: skip
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def highlighter(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from vhd.highlight.api import Highlighter

    return Highlighter.from_checkpoint(
        checkpoint, device="cpu", cache_dir=tmp_path_factory.mktemp("app_cache")
    )


def test_a_bad_video_is_an_error_message(highlighter: Any, tmp_path: Path) -> None:
    """gr.Error shows its message in the page; the upload's temporary folder is left out."""
    bad = write_corrupt_video(tmp_path / "holiday.mp4", mode="garbage")
    highlight = handler(build_app(highlighter), "highlight")
    with pytest.raises(gr.Error) as caught:
        highlight(str(bad), "", 5)
    assert "holiday.mp4" in caught.value.message and str(tmp_path) not in caught.value.message


# -- the page in a browser ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def artifacts() -> Path:
    folder = Path(os.environ.get("VHD_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def unavailable(reason: str, how_to: str) -> NoReturn:
    if os.environ.get("VHD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VHD_REQUIRE_BROWSER=1 but {reason}; {how_to}", pytrace=False)
    pytest.skip(f"{reason}; {how_to}")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver (no driver download: CI is offline)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        unavailable("selenium is not installed", "pip install -e '.[dev]'")
    if chromium is None or driver is None:
        unavailable("Chromium or its driver is not installed", HOW_TO)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)  # --no-sandbox: CI runs as root
    options.add_argument("--window-size=1400,1100")
    session = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    yield session
    session.quit()


@pytest.fixture
def page(highlighter: Any) -> Iterator[str]:
    demo = build_app(highlighter)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_the_page_finds_moments_and_seeks_to_them(
    browser: Any, page: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    video = write_video(
        tmp_path / "planted.mp4", duration=20, fps=12.5, width=160, height=120,
        highlight=(8.0, 12.0), seed=0,
    ).path  # fmt: skip
    wait = WebDriverWait(browser, 60)
    browser.get(page)
    submit = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#submit"))
    assert not [e for e in browser.find_elements(By.CSS_SELECTOR, "#query") if e.is_displayed()]

    submit.click()  # nothing uploaded yet: a message in the page, not a traceback
    # the toast appears before its text is rendered: wait for the text, not the element
    toast = wait.until(
        lambda b: next(
            (t for t in b.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]") if t.text),
            None,
        )
    )
    assert "Upload a video first." in toast.text
    toast.find_element(By.CSS_SELECTOR, "[data-testid=toast-close]").click()
    wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]"))

    browser.find_element(By.CSS_SELECTOR, "#player input[type=file]").send_keys(str(video))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#player video"))
    submit.click()
    rows_css = "#moments [role=row][data-index]"  # body rows; the header has no data-index

    def table(b: Any) -> list[list[str]] | None:
        """The table's cell texts once every cell has rendered its text (None before)."""
        cells = [
            [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "[role=gridcell]")]
            for row in b.find_elements(By.CSS_SELECTOR, rows_css)
        ]
        return cells if cells and all(all(row) for row in cells) else None

    texts = WebDriverWait(browser, PAGE_TIMEOUT).until(table)
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#plot img"))
    wait.until(lambda b: b.execute_script("return document.querySelector('#plot img').complete"))

    rows = [[float(text) for text in row] for row in texts]
    assert rows and [rank for rank, *_ in rows] == list(range(1, len(rows) + 1))
    assert all(0 <= start < end <= 20.0 for _, start, end, _ in rows), rows
    scores = [score for *_, score in rows]
    assert scores == sorted(scores, reverse=True), rows

    current = "return document.querySelector('#player video').currentTime"
    index, start = next((i, r[1]) for i, r in enumerate(rows) if r[1] > 0)  # a visible move
    assert browser.execute_script(current) != start
    browser.find_element(By.CSS_SELECTOR, f'#moments [data-row="{index}"][data-col="1"]').click()
    wait.until(lambda b: abs(b.execute_script(current) - start) < 0.05)

    assert wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#reel video"))
    shot = artifacts() / "highlight_app.png"
    browser.save_screenshot(str(shot))
    with capsys.disabled():
        print(f"\nscreenshot of vhd app: {shot}")
