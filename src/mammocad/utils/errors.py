"""One exception type for bad input, so every batch job can report it the same way."""

from __future__ import annotations

from pathlib import Path

INTERRUPTED = 130
"""Exit code of a command ended by Ctrl-C (128 + SIGINT, what shells report for an interrupted program)."""


class DataError(Exception):
    """Bad input: a missing file, a corrupt image, a mask that does not fit its image, ...

    ``str(err)`` is one line naming the file and the problem, e.g.
    ``data/P_00001/000000.dcm: not a readable DICOM file (...)``.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)
