"""The one on-disk format of every patch set, and reading it back.

A patch set is a folder::

    images/<patch_id>.png          the patch (8/16-bit PNG, same dtype as the prepared image,
                                   uncompressed: training decodes every patch every epoch)
    masks/<patch_id>_<k>.png       segmentation kinds: instance k's mask, 0/255, aligned with the patch
    patches.csv                    manifest, one row per patch (columns below)
    done/<image_id>.json           the rows one source image produced (incremental re-runs)
    failures.csv, patches.yaml, figures/

Manifest columns: ``patch_id, kind, split, label, image_id, patient_id, abnormality,
abnormality_type, pathology, row, col, height, width, source, file, masks, instance_keys,
instance_labels, boxes, category, relaxations``. ``row/col/height/width`` locate the window in the grid the extractor
worked on (see :class:`mammocad.patches.types.Patch`); ``source`` is the prepared image it
came from; ``masks``/``instance_keys``/``instance_labels``/``boxes`` are JSON lists (boxes as x0, y0, x1, y1 in
patch pixels, exclusive end). Paths are relative to the folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mammocad.patches.types import Patch
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import write_png
from mammocad.utils.stage import check_fresh, read_stage

MANIFEST = "patches.csv"
COLUMNS = [
    "patch_id", "kind", "split", "label", "image_id", "patient_id", "abnormality", "abnormality_type",
    "pathology", "row", "col", "height", "width", "source", "file", "masks", "instance_keys", "instance_labels", "boxes", "category",
    "relaxations",
]


def write_patch(out: Path, patch_id: str, patch: Patch, context: dict[str, Any]) -> dict[str, Any]:
    """Write one patch (and its masks) atomically; return its manifest row.

    ``context`` holds the columns that come from the records (kind, image_id, instance_labels, ...).
    """
    file = Path("images") / f"{patch_id}.png"
    write_png(out / file, patch.pixels, compression=0)
    mask_files = []
    for k, mask in enumerate(patch.masks):
        mask_file = Path("masks") / f"{patch_id}_{k}.png"
        write_png(out / mask_file, mask)
        mask_files.append(str(mask_file))
    return {
        **context,
        "patch_id": patch_id,
        "label": patch.label,
        "abnormality": patch.abnormality,
        "row": patch.row, "col": patch.col, "height": patch.height, "width": patch.width,
        "file": str(file),
        "masks": json.dumps(mask_files),
        "instance_keys": json.dumps(list(patch.instance_keys)),
        "boxes": json.dumps([list(map(int, b)) for b in patch.boxes]),
        "category": patch.category,
        "relaxations": patch.relaxations,
    }


def patch_set_fingerprint(root: str | Path) -> str:
    """A fingerprint of the patch set at ``root`` (its manifest and lineage), after checking it is current.

    A set written by ``mammocad patches`` has a ``stage.json``: it is refused, with one line naming
    the fix, when the prepared folder it came from changed since. A hand-made set (a
    ``patches.csv`` only, e.g. a cross-validation fold view) has no lineage to check.
    """
    root = Path(root)
    lineage = check_fresh(root, "patches", f"mammocad patches --out {root} ...") if read_stage(root) else ""
    path = root / MANIFEST
    if not path.is_file():
        raise DataError(path, "not a patch set (run `mammocad patches` first)")
    return hashlib.sha256(lineage.encode() + path.read_bytes()).hexdigest()[:12]


def read_manifest(root: str | Path) -> pd.DataFrame:
    """The manifest of a patch set, JSON columns decoded into lists."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise DataError(path, "not a patch set (run `mammocad patches` first)")
    frame = pd.read_csv(path, keep_default_na=False, na_values={"row": [""], "col": [""]})
    for column in ("masks", "instance_keys", "instance_labels", "boxes"):
        frame[column] = [json.loads(v) if v else [] for v in frame[column]]
    for column in ("abnormality", "category", "abnormality_type", "pathology"):
        # object dtype: pandas' string dtype would turn None into NaN
        frame[column] = frame[column].astype(object).where(frame[column] != "", None)
    return frame
