"""Up-front writability checks for the launchers' folders: refuse before writing anything."""

from __future__ import annotations

import os
from pathlib import Path

from vhd.launch.errors import UserError


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (where a new folder would be created)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(folder: Path, what: str, fix: str) -> None:
    """Refuse a ``folder`` that cannot be created or written, before anything is written.

    ``os.access`` answers for the real user, so it holds for root too (root may write a folder
    without ``w`` bits, and then it is writable); nothing can be created under a regular file,
    and a read-only file system denies even root.
    """
    try:
        existing = nearest_existing(folder)
    except OSError as error:
        raise UserError(f"{what} {folder} cannot be checked ({error.strerror}); {fix}") from error
    if not existing.is_dir():
        raise UserError(f"{what} {folder} cannot be created: {existing} is not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder.absolute() else f" ({existing} denies creating it)"
        raise UserError(f"{what} {folder} is not writable{where}; {fix}")


def make_folder(folder: Path, what: str, fix: str) -> None:
    """Create ``folder`` (checked first), turning an OS failure into a user error."""
    check_writable(folder, what, fix)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{what} {folder} cannot be created ({error.strerror}); {fix}") from error
