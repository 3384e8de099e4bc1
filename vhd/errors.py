"""The user-error family: every mistake a user can fix (bad file, bad record, bad flag).

``vhd`` prints any ``UserError`` as one ``error: ...`` line on stderr with exit status 2 and no
traceback (``VHD_DEBUG=1`` shows it); every other exception is our bug and keeps its traceback.
Each module's error subclasses ``UserError`` and also the builtin it used to be (``ValueError``,
``FileNotFoundError``...), so ``except ValueError`` callers keep working.

This module imports nothing from vhd: datamodules, models, losses and metrics all import from it.
"""

from __future__ import annotations

import os
import sys

USER_ERROR = 2  # exit status of a user error, as argparse uses for bad flags


class UserError(Exception):
    """A mistake the user can fix; the message names the file, the record and the fix."""


class FeatureError(UserError, ValueError):
    """A missing, unreadable or invalid feature file; the message says which and how to fix it."""


def one_line(error: BaseException | str) -> str:
    """The message on one line, whatever whitespace it holds."""
    return " ".join(str(error).split())


def report(error: BaseException | str) -> int:
    """Print ``error: ...`` as one line on stderr and return the user-error exit status."""
    print(f"error: {one_line(error)}", file=sys.stderr)
    return USER_ERROR


def show_tracebacks() -> bool:
    """``VHD_DEBUG=1``: user errors keep their traceback too (for reporting a confusing one)."""
    return os.environ.get("VHD_DEBUG", "") not in ("", "0")
