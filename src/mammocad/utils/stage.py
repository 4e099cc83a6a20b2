"""The batch-stage pattern of ``prepare`` and ``patches``: fingerprint, done records, parallel run, manifest, failures.

A *stage* turns the items of an input (a dataset, a prepared folder) into an output folder,
one item (an image) at a time. :func:`run_stage` does the part every stage shares:

1. **fingerprint**: each item carries a fingerprint of everything its outputs depend on (the
   stage's settings and the item's own inputs, e.g. the upstream item's fingerprint);
2. **done records**: an item whose ``done/<id>.json`` holds that fingerprint and whose outputs
   all exist is skipped; any change upstream or in the settings changes the fingerprint, so
   exactly the affected items are redone (as nnU-Net names preprocessed data after its plan);
3. **parallel run**: the other items run in worker processes (:func:`map_items`); each writes
   its outputs atomically and its done record last, so a crash leaves nothing that looks finished;
4. **manifest**: the caller writes its manifests from the done records of the finished items;
5. **failures/warnings**: ``failures.csv`` (items that could not be done, with the problem) and
   ``warnings.csv`` (items done, but with something to check) are written, then ``stage.json``
   last: the stage's own fingerprint and the one of the folder it was built from.

``stage.json`` is the folder's lineage: :func:`check_fresh` tells a later stage (or training)
whether the folder is still what its upstream folder now holds.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Sequence, TypeVar

from mammocad.utils.atomic import check_output_folder, write_json, write_rows_csv
from mammocad.utils.done import is_done, read_done, write_done
from mammocad.utils.errors import DataError
from mammocad.utils.parallel import Failure, map_items

T = TypeVar("T")

STAGE_FILE = "stage.json"
FAILURES = "failures.csv"
WARNINGS = "warnings.csv"


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (dataclasses, paths and enums via ``str``/asdict)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StageItem(Generic[T]):
    """One unit of work: ``id`` names its done record, ``fingerprint`` what its outputs depend on."""

    id: str
    fingerprint: str
    work: T


@dataclass(frozen=True)
class StageRun:
    """What :func:`run_stage` did: the done records of every finished item (in item order)."""

    records: list[dict[str, Any]]
    done_now: int
    skipped: int
    failures: list[Failure]
    warnings: list[Failure]


def _outputs_exist(out: Path, record: dict[str, Any]) -> bool:
    return all((out / f).is_file() for f in record.get("outputs", []))


def _run_one(fn: Callable[[Any], dict[str, Any]], out: Path, item: StageItem) -> dict[str, Any]:
    """Worker side: run ``fn``, stamp the record with the item's fingerprint, write it last."""
    record = fn(item.work)
    record["id"] = item.id
    record["fingerprint"] = item.fingerprint
    write_done(out, item.id, record)
    return record


def run_stage(
    out: Path,
    items: Sequence[StageItem],
    fn: Callable[[Any], dict[str, Any]],
    *,
    workers: int,
    desc: str,
    progress: bool = True,
    failures: list[Failure] | None = None,
) -> StageRun:
    """Run ``fn(item.work)`` for every item of ``items`` not already done into ``out``.

    ``fn`` must be picklable (module level), write its outputs atomically under ``out`` and
    return its done record: a JSON-able dict with ``"outputs"`` (paths relative to ``out``)
    and optionally ``"warnings"`` (one-line strings). Items whose ``fn`` raises
    :class:`DataError` become failures; the others still run. ``failures`` may hold failures
    found before (e.g. while loading records); they are reported with the rest.
    """
    out = Path(out)
    existed = check_output_folder(out).is_dir()
    failures = list(failures or ())
    todo = [item for item in items if not is_done(out, item.id, item.fingerprint)]
    skipped = len(items) - len(todo)
    if todo:
        out.mkdir(parents=True, exist_ok=True)
    by_id: dict[str, dict[str, Any]] = {}
    done_now = 0
    for record in map_items(functools.partial(_run_one, fn, out), todo, workers=workers, name=lambda i: i.id,
                            desc=desc, failures=failures, progress=progress):
        by_id[record["id"]] = record
        done_now += 1
    records = []
    for item in items:
        record = by_id.get(item.id) or read_done(out, item.id)
        if record is not None and record.get("fingerprint") == item.fingerprint and _outputs_exist(out, record):
            records.append(record)
    if not records and failures and not existed:
        # Nothing at all could be done: leave no folder of orphans behind; the caller reports.
        shutil.rmtree(out, ignore_errors=True)
    warnings = [Failure(r["id"], None, w) for r in records for w in r.get("warnings", [])]
    return StageRun(records, done_now, skipped, failures, warnings)


def write_reports(out: Path, run: StageRun) -> None:
    """``failures.csv`` and ``warnings.csv`` (item, path, problem), rewritten every run."""
    columns = ["item", "path", "problem"]
    write_rows_csv(out / FAILURES, [dataclasses.asdict(f) for f in run.failures], columns)
    write_rows_csv(out / WARNINGS, [dataclasses.asdict(w) for w in run.warnings], columns)


def write_stage(out: Path, name: str, settings: dict[str, Any], upstream: Path | None,
                upstream_fingerprint: str | None, items: Sequence[StageItem]) -> str:
    """Write ``stage.json`` (last, after the manifests); returns the stage's fingerprint.

    The stage fingerprint covers the settings, the upstream folder's fingerprint and every
    finished item's fingerprint: any change to what the folder holds changes it.
    """
    own = fingerprint([name, settings, upstream_fingerprint, sorted(i.fingerprint for i in items)])
    write_json(out / STAGE_FILE, {
        "stage": name,
        "fingerprint": own,
        "settings": settings,
        "upstream": None if upstream is None else {"path": str(Path(upstream).resolve()),
                                                  "fingerprint": upstream_fingerprint},
    })
    return own


def read_stage(folder: Path) -> dict[str, Any] | None:
    """The folder's ``stage.json``, or None when there is none (or it is unreadable)."""
    path = Path(folder) / STAGE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def stage_fingerprint(folder: Path, expected: str, rerun: str) -> str:
    """The fingerprint of a finished stage folder of kind ``expected``; DataError if it is not one.

    ``rerun`` is the command that makes such a folder, for the message.
    """
    stage = read_stage(folder)
    if stage is None or stage.get("stage") != expected:
        raise DataError(folder, f"not a finished {expected} folder (no {STAGE_FILE} of a {expected} run); "
                                f"run `{rerun}` first")
    return stage["fingerprint"]


def check_fresh(folder: Path, expected: str, rerun: str) -> str:
    """``folder``'s fingerprint, after checking it was built from what its upstream folder holds now.

    Raises :class:`DataError` when the upstream folder was rebuilt since (different settings,
    re-prepared images, a new split): the folder is stale and ``rerun`` redoes it. An upstream
    folder that no longer exists cannot be checked and is accepted.
    """
    own = stage_fingerprint(folder, expected, rerun)
    upstream = (read_stage(folder) or {}).get("upstream")
    if upstream and Path(upstream["path"]).is_dir():
        now = read_stage(Path(upstream["path"]))
        if now is not None and now.get("fingerprint") != upstream["fingerprint"]:
            raise DataError(folder, f"is out of date: {upstream['path']} changed after it was built; "
                                    f"re-run `{rerun}`")
    return own
