"""Done-records: what makes batch jobs incremental.

A per-item job writes all its outputs atomically, then ``done/<item_id>.json`` last. The record
holds the fingerprint of the settings that produced the outputs and the list of output files,
so a re-run skips an item only when the settings are unchanged and every output still exists;
a crash between outputs leaves no record, and the item is redone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from mammocad.utils.atomic import write_json


def done_path(out: Path, item_id: str) -> Path:
    return Path(out) / "done" / f"{item_id}.json"


def read_done(out: Path, item_id: str) -> dict[str, Any] | None:
    """The item's record, or None when there is none or it is unreadable."""
    path = done_path(out, item_id)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def is_done(out: Path, item_id: str, fingerprint: str, outputs: Iterable[str] | None = None) -> bool:
    """True when the record matches ``fingerprint`` and every output (relative to ``out``) exists.

    ``outputs`` defaults to the record's ``"outputs"`` list.
    """
    record = read_done(out, item_id)
    if record is None or record.get("fingerprint") != fingerprint:
        return False
    files = record.get("outputs", []) if outputs is None else outputs
    return all((Path(out) / f).is_file() for f in files)


def write_done(out: Path, item_id: str, record: dict[str, Any]) -> None:
    """Write the record (call it after every output is written)."""
    write_json(done_path(out, item_id), record)
