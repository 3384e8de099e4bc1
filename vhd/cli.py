"""The ``vhd`` command: LightningCLI's fit/validate/test/predict plus ``eval``, ``synth``,
``extract``, ``highlight``, ``app``, ``domains`` and ``slurm``.

The plain tools are dispatched before Lightning and torch are imported, so ``vhd eval`` starts in
a fraction of a second; the Lightning runs live in ``vhd.lightning_cli``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from vhd.allocator import keep_freed_memory
from vhd.errors import UserError, report, show_tracebacks

# Subcommands that are plain tools, not Lightning runs: name -> module holding ``main(argv)``.
TOOLS = {
    "eval": "vhd.metrics.evaluate",
    "synth": "vhd.datamodules.synthetic",
    "domains": "vhd.launch.domains",
    "slurm": "vhd.launch.slurm",
    "extract": "vhd.extract.cli",
    "highlight": "vhd.highlight.cli",
    "app": "vhd.highlight.app",
}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a ``UserError`` anywhere ends in one ``error: ...`` line, exit 2."""
    try:
        return run(argv)
    except UserError as error:
        if show_tracebacks():
            raise
        return report(error)


def run(argv: list[str] | None) -> int:
    keep_freed_memory()  # faster CPU steps; see vhd/allocator.py
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        tool: Callable[[list[str]], int] = importlib.import_module(TOOLS[args[0]]).main
        return tool(args[1:])
    from vhd.lightning_cli import make_cli

    make_cli(None if argv is None else args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
