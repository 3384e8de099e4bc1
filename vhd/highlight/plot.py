"""The picture of one result: saliency over time with the top moments shaded and numbered.

Drawn on a bare ``Figure`` (the Agg canvas, no pyplot), so it needs no display and leaves no
global state behind. 12 x 3.5 in at 100 dpi: 1200 x 350 pixels, whatever the video's length.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vhd.atomic import atomic_path

if TYPE_CHECKING:
    from vhd.highlight.result import HighlightResult

SIZE_IN = (12.0, 3.5)
DPI = 100
TITLE_CHARS = 110  # per line; two lines at most
LABEL_ROWS = (0.9, 0.76, 0.62, 0.48)  # axes fraction: labels of nearby moments stack downwards


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "the highlight plot needs matplotlib: pip install 'vhd[extract]'"
        ) from err
    return Figure


def title_of(result: HighlightResult) -> str:
    """The query (wrapped, cut to two lines), else "highlights of {vid}"."""
    if not result.query:
        return f"highlights of {result.vid}"
    lines = textwrap.wrap(
        " ".join(result.query.split()), TITLE_CHARS, max_lines=2, placeholder=" …"
    )
    return "\n".join(lines)


def curve(result: HighlightResult) -> tuple[np.ndarray, np.ndarray, float]:
    """(x, y, end): saliency at clip centres, held flat out to 0 and to the video's end."""
    times = np.asarray(result.times, dtype=np.float64)
    scores = np.asarray(result.saliency, dtype=np.float64)
    end = max(float(result.duration), float(times[-1]) + 1e-3 if len(times) else 1e-3)
    if not len(times):
        return np.array([0.0, end]), np.zeros(2), end
    centres = times + np.minimum(result.clip_len, end - times) / 2
    x = np.concatenate([[0.0], centres, [end]])
    y = np.concatenate([scores[:1], scores, scores[-1:]])
    return x, y, end


def _label_row(placed: list[tuple[float, int]], x: float, spacing: float) -> int:
    """The first row with no label within ``spacing`` of x, so overlapping moments stay legible."""
    for row in range(len(LABEL_ROWS)):
        if all(abs(x - other) >= spacing for other, used in placed if used == row):
            return row
    return len(placed) % len(LABEL_ROWS)


def plot_result(result: HighlightResult, path: Path, top: int) -> Path:
    """Write the PNG to ``path`` atomically and return it."""
    figure = _figure_class()(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    x, y, end = curve(result)
    finite = y[np.isfinite(y)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    pad = (high - low) * 0.08 or 0.5
    ax.set_xlim(0, end)
    ax.set_ylim(low - pad, high + pad * 3)  # head room for the moment numbers
    ax.fill_between(x, y, low - pad, color="tab:blue", alpha=0.15, linewidth=0)
    ax.plot(x, y, color="tab:blue", linewidth=1.2, label="saliency")

    colours = ("tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")
    placed: list[tuple[float, int]] = []
    moments = result.top(max(0, top))
    for rank, (start, stop, _) in enumerate(moments, start=1):
        start, stop = max(0.0, start), min(end, stop)
        colour = colours[(rank - 1) % len(colours)]
        # the best moment drawn on top; spans are translucent so overlaps show through
        ax.axvspan(start, stop, color=colour, alpha=0.25, linewidth=0, zorder=-rank)
        centre = (start + stop) / 2
        row = _label_row(placed, centre, spacing=end * 0.02)
        placed.append((centre, row))
        ax.text(
            centre, LABEL_ROWS[row], str(rank), transform=ax.get_xaxis_transform(),
            ha="center", va="center", fontsize=9, fontweight="bold", zorder=10,
            bbox={"boxstyle": "circle,pad=0.25", "facecolor": "white", "edgecolor": colour},
        )  # fmt: skip

    ax.set_title(title_of(result), fontsize=11)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("saliency")
    ax.grid(axis="y", alpha=0.3)
    provenance = " · ".join([result.method, *result.recipes])
    figure.text(0.995, 0.01, provenance, ha="right", va="bottom", fontsize=7, color="0.4")

    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    return path
