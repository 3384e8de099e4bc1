"""``vhd highlight``'s outputs: the plot, the reel and the table, from hand-made results."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from rich.console import Console

from vhd.datamodules.synthetic.videos import choose_codec, write_video
from vhd.highlight.reel import merge_moments, write_reel
from vhd.highlight.result import HighlightResult
from vhd.highlight.table import clock, print_moments

FPS, RATE = 10, 16000
LEVEL0, STEP = 20, 3  # frame i is grey LEVEL0 + STEP * i: the picture says when it was shot


def result(clips: int, moments: list[tuple[float, float, float]], **kw: object) -> HighlightResult:
    """Saliency with a bump at 40 % of the video."""
    times = np.arange(clips) * 2.0
    saliency = np.exp(-(((times - clips * 0.8) / (clips * 0.1 + 1)) ** 2))
    fields = {
        "video": Path("v.mp4"), "vid": "vid_0001", "method": "VideoLights",
        "checkpoint": "last.ckpt", "recipes": ["clip_vit_b32"], "clip_len": 2.0,
        "duration": clips * 2.0 - 0.5, "times": times, "saliency": saliency, "moments": moments,
    }  # fmt: skip
    return HighlightResult(**{**fields, **kw})  # type: ignore[arg-type]


def timecoded_video(path: Path, frames: int) -> Path:
    """Frames in ``STEP`` grey levels; a 440 Hz tone whose amplitude is 0.05 + 0.1 t."""
    encoder, pix_fmt = choose_codec(64, 48)
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream(encoder, rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, pix_fmt
        sound = container.add_stream("aac", rate=RATE, layout="mono")
        for index in range(frames):
            picture = np.full((48, 64, 3), LEVEL0 + STEP * index, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        t = np.arange(frames * RATE // FPS) / RATE
        tone = ((0.05 + 0.1 * t) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], "fltp", "mono")
            chunk.sample_rate, chunk.pts = RATE, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return path


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray | None, float, bool]:
    """(rgb frames, mono audio or None, frame rate, whether there is an audio stream)."""
    with av.open(str(path)) as container:
        rate = float(container.streams.video[0].average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        has_audio = bool(container.streams.audio)
    audio = None
    if has_audio:
        with av.open(str(path)) as container:
            parts = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        audio = np.concatenate(parts)
    return frames, audio, rate, has_audio


# -- plot ------------------------------------------------------------------------------------------
def test_plot_is_a_png_of_fixed_size_that_shows_the_moments(tmp_path: Path) -> None:
    from matplotlib.image import imread

    first = result(30, [(20.0, 28.0, 0.9), (4.0, 8.0, 0.5)], query="a dog " * 60)
    second = result(30, [(40.0, 50.0, 0.9)], query="a dog " * 60)  # only the moments differ
    paths = [first.plot(tmp_path / "a.png"), second.plot(tmp_path / "b.png", top=1)]
    pictures = [imread(path) for path in paths]
    assert all(picture.shape[:2] == (350, 1200) for picture in pictures)
    assert not np.array_equal(*pictures)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temp files


@pytest.mark.parametrize(
    ("clips", "moments"),
    [
        (1, [(0.0, 1.5, 0.9)]),
        (300, [(230.0, 250.0, 0.9), (236.0, 262.0, 0.8), (240.0, 244.0, 0.7)]),
    ],
    ids=["one-clip", "ten-minutes-overlapping"],
)
def test_plot_handles_short_and_long_videos(
    tmp_path: Path, clips: int, moments: list[tuple[float, float, float]]
) -> None:
    from matplotlib.image import imread

    path = result(clips, moments).plot(tmp_path / "deep" / "plot.png", top=5)
    assert imread(path).shape[:2] == (350, 1200)


def test_long_query_title_is_cut_to_two_lines() -> None:
    from vhd.highlight.plot import title_of

    assert title_of(result(3, [])) == "highlights of vid_0001"
    title = title_of(result(3, [], query="word " * 100))
    assert title.count("\n") == 1 and title.endswith("…")


# -- reel ------------------------------------------------------------------------------------------
def test_merge_moments_orders_clamps_and_merges() -> None:
    moments = [(4.0, 5.0, 0.9), (1.0, 2.0, 0.8), (1.5, 2.5, 0.7), (9.0, 12.0, 0.1), (7.0, 7.0, 0)]
    assert merge_moments(moments, duration=10.0) == [(1.0, 2.5), (4.0, 5.0), (9.0, 10.0)]
    assert merge_moments([(1.0, 2.0, 0), (2.05, 3.0, 0)], 10.0, gap=0.1) == [(1.0, 3.0)]
    assert merge_moments([(11.0, 12.0, 0)], duration=10.0) == []


def test_reel_cuts_moments_in_time_order_with_their_sound(tmp_path: Path) -> None:
    source = timecoded_video(tmp_path / "coded.mp4", frames=60)
    # score order is not time order; the last two overlap
    moments = [(4.0, 5.0, 0.9), (1.0, 2.0, 0.8), (1.5, 2.5, 0.7)]
    reel = write_reel(source, moments, tmp_path / "reel.mp4")
    frames, audio, rate, _ = decode(reel)
    shown = [round((float(frame.mean()) - LEVEL0) / STEP) for frame in frames]
    assert shown == [*range(10, 25), *range(40, 50)]  # each frame once, in time order
    assert rate == FPS
    assert audio is not None and abs(len(audio) / RATE - 2.5) <= 1 / FPS
    # the sound comes from the same seconds: amplitude 0.05 + 0.1 t, RMS = amplitude / sqrt 2
    early, late = (float(np.sqrt(np.mean(audio[a : a + 1600] ** 2))) for a in (4000, 32000))
    assert early == pytest.approx((0.05 + 0.1 * 1.3) / np.sqrt(2), rel=0.15)
    assert late == pytest.approx((0.05 + 0.1 * 4.55) / np.sqrt(2), rel=0.15)


def test_reel_length_is_the_merged_moments_total(tmp_path: Path) -> None:
    video = write_video(
        tmp_path / "v.mp4", duration=8.0, fps=12.5, width=96, height=64, highlight=(2.0, 4.0),
        seed=1, audio=True,
    )  # fmt: skip
    # off the frame grid, overlapping, one past the end
    moments = [(2.03, 3.51, 0.9), (5.17, 6.0, 0.8), (3.0, 3.9, 0.6), (7.5, 9.0, 0.5)]
    reel = result(4, moments, video=video.path).write_reel(tmp_path / "out" / "reel.mp4", top=4)
    frames, audio, rate, _ = decode(reel)
    total = sum(end - start for start, end in merge_moments(moments, video.duration))
    assert total == pytest.approx(1.87 + 0.83 + 0.5)
    assert abs(len(frames) / rate - total) <= 1 / rate
    assert audio is not None and abs(len(audio) / 16000 - total) <= 1 / rate
    assert [p.name for p in reel.parent.iterdir()] == ["reel.mp4"]


def test_reel_of_odd_sized_silent_video(tmp_path: Path) -> None:
    video = write_video(
        tmp_path / "odd.mp4", duration=3.0, fps=12.5, width=321, height=239, highlight=None,
        seed=2, audio=False,
    )  # fmt: skip
    reel = write_reel(video.path, [(2.0, 2.8, 0.9), (0.4, 1.2, 0.5)], tmp_path / "reel.mp4")
    frames, _, rate, has_audio = decode(reel)
    assert not has_audio
    assert frames[0].shape == (239, 321, 3)
    assert abs(len(frames) / rate - 1.6) <= 1 / rate


def test_reel_errors_are_clear(tmp_path: Path) -> None:
    source = timecoded_video(tmp_path / "coded.mp4", frames=10)
    with pytest.raises(ValueError, match="no moment lies inside the video"):
        write_reel(source, [(5.0, 6.0, 1.0)], tmp_path / "reel.mp4")
    with pytest.raises(ValueError, match="reel must end in one of"):
        write_reel(source, [(0.0, 0.5, 1.0)], tmp_path / "reel.gif")
    with pytest.raises(FileNotFoundError, match="source video not found"):
        write_reel(tmp_path / "missing.mp4", [(0.0, 0.5, 1.0)], tmp_path / "reel.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["coded.mp4"]


# -- table -----------------------------------------------------------------------------------------
def test_clock() -> None:
    assert [clock(s) for s in (0.0, 7.26, 59.96, 754.3, 3725.0)] == [
        "0:00.0", "0:07.3", "1:00.0", "12:34.3", "1:02:05.0",
    ]  # fmt: skip


def test_table_shows_the_top_moments(tmp_path: Path) -> None:
    console = Console(record=True, width=100)
    moments = [(3.0, 7.0, 0.912), (62.0, 64.5, 0.5), (10.0, 12.0, 0.25)]
    print_moments([result(40, moments, query="a cat [jumps]"), result(3, [])], 2, console)
    text = console.export_text()
    assert "vid_0001: a cat [jumps]" in text
    assert "0:03.0-0:07.0" in text and "4.0 s" in text and "0.912" in text
    assert "1:02.0-1:04.5" in text and "0:10.0" not in text
    assert "no moments" in text
