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


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the config names that is not there."""


class ConfigError(UserError, ValueError):
    """Settings that do not fit together, or do not fit the data or checkpoint they are used with;
    the message names the setting and the value that would fit."""


def one_line(error: BaseException | str) -> str:
    """The message on one line, whatever whitespace it holds."""
    return " ".join(original_message(error).split())


def original_message(error: BaseException | str) -> str:
    """The message as raised, also when a DataLoader worker re-raised it.

    torch re-raises a worker's exception as the same class with the message ``Caught X in
    DataLoader worker process N. Original Traceback ...`` ending in ``module.X: message``.
    """
    text = str(error)
    if isinstance(error, str) or "Original Traceback (most recent call last):" not in text:
        return text
    cls = type(error)
    marker = f"{cls.__module__}.{cls.__qualname__}: "
    return text.rpartition(marker)[2] if marker in text else text


def report(error: BaseException | str) -> int:
    """Print ``error: ...`` as one line on stderr and return the user-error exit status."""
    print(f"error: {one_line(error)}", file=sys.stderr)
    return USER_ERROR


def show_tracebacks() -> bool:
    """``VHD_DEBUG=1``: user errors keep their traceback too (for reporting a confusing one)."""
    return os.environ.get("VHD_DEBUG", "") not in ("", "0")
