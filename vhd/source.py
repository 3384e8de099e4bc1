"""Which code a run used: the git commit of vhd's checkout, recorded by job scripts and trackers."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent


def source_version() -> dict[str, Any]:
    """``{"commit", "dirty", "path"}`` of the checkout holding this package (whether tracked
    files differ from the commit); commit and dirty are None for an installed copy."""

    def git(*args: str) -> str:
        command = ["git", "-C", str(PACKAGE), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        return result.stdout.strip()

    checkout = str(PACKAGE.parent)
    try:
        git("ls-files", "--error-unmatch", "__init__.py")
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "path": checkout}
    return {"commit": commit, "dirty": dirty, "path": checkout}
