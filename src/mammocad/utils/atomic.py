"""Atomic writes: write to a temporary file in the target's folder, then rename over it.

A reader (or a re-run after a crash) therefore sees either the old file or the complete
new one, never a half-written file. ``os.replace`` is atomic on POSIX within one filesystem,
which is why the temporary file lives next to the target.

The temporary file is created private (mode 0600, ``tempfile.mkstemp``); before the rename it
gets the mode an ordinary ``open(target, "w")`` would give, ``0666 & ~umask``, so outputs are
as readable as any other file the user writes (0644 under the usual umask 022).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pandas is imported by the writers that need it, not by every importer
    import pandas as pd

from mammocad.utils.errors import DataError

_UMASK_LOCK = threading.Lock()


@functools.cache
def process_umask() -> int:
    """The process's umask, read once (at the first atomic write) and cached.

    Linux reports it in ``/proc/self/status`` (``Umask:`` line, kernel 4.7+), which reads it
    without changing it. Elsewhere ``os.umask`` is the only way, and it can only read by
    setting: it is set to 0o077 and straight back under a lock. That briefly affects files
    other threads create at the same instant (os.umask is process-wide), hence the cache.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    match = re.search(r"^Umask:\s*([0-7]+)\s*$", status, re.MULTILINE)
    if match:
        return int(match.group(1), 8)
    with _UMASK_LOCK:
        umask = os.umask(0o077)
        os.umask(umask)
    return umask


def file_mode() -> int:
    """The permission bits of a new file: ``0666 & ~umask`` (what ``open(path, "w")`` gives)."""
    return 0o666 & ~process_umask()


def check_output_folder(folder: str | Path) -> Path:
    """``folder`` as a Path; DataError unless it is a folder or can be created as one.

    Call it before the work whose results go there: a path that is a file (or lies below one)
    then fails at once, with a message saying so, instead of after the work.
    """
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    if existing is None or existing.is_dir():
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise DataError(folder, f"cannot write there: no permission to write in {existing}")
        return folder
    if existing == folder:
        raise DataError(folder, "is a file, not a folder; choose a folder (new or existing) for the output")
    raise DataError(folder, f"cannot be created: {existing} is a file, not a folder")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to ``target``.

    The temporary name keeps the target's suffix so writers that infer the format from the
    extension (OpenCV, matplotlib, pydicom) work unchanged. On error the temporary file is
    removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode())  # mkstemp's file is 0600; writers may have re-created it
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path`` (as :func:`write_json` writes one), or ``{}`` when the file is missing,
    unreadable or holds no object."""
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_rows_csv(target: str | Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A CSV with a header of ``columns`` and one line per dict (missing keys left empty)."""
    with atomic_path(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_csv(target: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
