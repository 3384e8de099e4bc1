"""User errors of the launchers: one ``error: ...`` line on stderr and exit status 2.

A launcher is run by hand before a long job; a traceback or argparse's usage block would bury
the one thing to fix, so every user error (bad flag, bad file) is a single line that names the
thing and the fix.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix; the message names the thing and the fix."""


def report(error: UserError | str) -> int:
    """Print ``error: ...`` as one line on stderr and return the user-error exit status."""
    message = " ".join(str(error).split())  # one line, whatever the message holds
    print(f"error: {message}", file=sys.stderr)
    return USER_ERROR


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: vhd slurm: ...; see vhd slurm --help``)."""

    def error(self, message: str) -> NoReturn:
        report(f"{self.prog}: {message}; see {self.prog} --help")
        sys.exit(USER_ERROR)
