"""A validation split carved from the training file, by video.

The release selects Charades-STA checkpoints on the test file (its "val" split), so the reported
figures are chosen on the data they are reported on. Holding out a share of the training videos
gives a selection split that is not the test set. The choice is a pure function of the video ids
(sorted by a hash), so every run, process and machine holds out the same videos, and no video
is in both splits (its other queries would leak the answer).
"""

from __future__ import annotations

import hashlib
from typing import Any

from vhd.errors import ConfigError


class HoldoutError(ConfigError):
    """A hold-out share outside (0, 1), or one that leaves a split empty."""


def held_out_videos(vids: list[str], fraction: float) -> set[str]:
    """``round(fraction x videos)`` of the distinct ``vids`` (at least one, never all)."""
    if not 0.0 < fraction < 1.0:
        raise HoldoutError(f"val_holdout must lie strictly between 0 and 1, not {fraction}")
    distinct = sorted(set(vids), key=lambda vid: (hashlib.sha1(vid.encode()).hexdigest(), vid))
    if len(distinct) < 2:
        raise HoldoutError(
            f"val_holdout needs at least 2 videos in the training file, found {len(distinct)}"
        )
    count = min(max(round(fraction * len(distinct)), 1), len(distinct) - 1)
    return set(distinct[:count])


def split_records(
    records: list[dict[str, Any]], fraction: float, held_out: bool
) -> list[dict[str, Any]]:
    """The held-out records (``held_out=True``, the validation split) or the rest (training)."""
    chosen = held_out_videos([str(record["vid"]) for record in records], fraction)
    return [record for record in records if (str(record["vid"]) in chosen) == held_out]
