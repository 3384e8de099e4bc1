"""The top moments as a short rich table, for the terminal after ``vhd highlight``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from vhd.highlight.result import HighlightResult


def clock(seconds: float) -> str:
    """m:ss.s (h:mm:ss.s from an hour), rounded once so 59.96 s reads 1:00.0, not 0:60.0."""
    tenths = round(max(0.0, seconds) * 10)
    minutes, rest = divmod(tenths, 600)
    hours, minutes = divmod(minutes, 60)
    tail = f"{rest / 10:04.1f}"
    return f"{hours}:{minutes:02d}:{tail}" if hours else f"{minutes}:{tail}"


def moments_table(result: HighlightResult, top: int) -> Table:
    """Rank, start-end, length and score of the best ``top`` moments."""
    title = Text(result.vid, style="bold")  # Text, not markup: a query may contain "[...]"
    if result.query:
        title.append(f": {result.query}", style="italic")
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("moment", justify="right")
    table.add_column("length", justify="right")
    table.add_column("score", justify="right")
    moments = result.top(max(0, top))
    for rank, (start, end, score) in enumerate(moments, start=1):
        span = f"{clock(start)}-{clock(end)}"
        table.add_row(str(rank), span, f"{end - start:.1f} s", f"{float(score):.3f}")
    if not moments:
        table.caption = "no moments"
    return table


def print_moments(
    results: Iterable[HighlightResult], top: int, console: Console | None = None
) -> None:
    """One table per result, on ``console`` (stdout by default)."""
    console = console or Console()
    for result in results:
        console.print(moments_table(result, top))
