"""The ``mammocad`` command (and ``python -m mammocad``): the CLI, with Ctrl-C as one line at any moment.

Importing the CLI loads numpy, pandas, OpenCV, ... and takes a moment; a Ctrl-C then would
end in a traceback from deep inside some import, so the import happens in here, where it is
caught. Ctrl-C during a command is handled by the CLI's group (``mammocad.cli.Interrupted``);
both print one line on stderr and exit with 130, as shells expect of an interrupted program.
"""

from __future__ import annotations

import sys
from typing import Callable

from mammocad.utils.errors import INTERRUPTED


def run_interruptible(fn: Callable[[], object]) -> None:
    """Run ``fn``; a KeyboardInterrupt ends the process with one line and exit code 130."""
    try:
        fn()
    except KeyboardInterrupt:
        print("\nmammocad: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)


def _cli() -> None:
    from mammocad.cli import app

    app()


def main() -> None:
    run_interruptible(_cli)


if __name__ == "__main__":
    main()
