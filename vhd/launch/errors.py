"""User errors of the launchers: one ``error: ...`` line on stderr and exit status 2.

A launcher is run by hand before a long job; a traceback or argparse's usage block would bury
the one thing to fix, so every user error (bad flag, bad file) is a single line that names the
thing and the fix.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from vhd.errors import USER_ERROR, UserError, report

__all__ = ["USER_ERROR", "Parser", "UserError", "report"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: vhd slurm: ...; see vhd slurm --help``)."""

    def error(self, message: str) -> NoReturn:
        report(f"{self.prog}: {message}; see {self.prog} --help")
        sys.exit(USER_ERROR)
