"""Patient-level split schemes: no patient's images ever fall in two splits.

- ``official``: the dataset's own train/test (CBIS-DDSM's CSVs); the training patients are
  further split 90/10 into train/val, stratified by whether the patient has a malignant
  abnormality. A patient listed in both official sets (31 in CBIS-DDSM, e.g. a mass in
  train and a calcification in test) goes to test, so the test set never shares a woman
  with training. Datasets without an official split (mini-MIAS) fall back to ``tfds``.
- ``tfds``: the TensorFlow Datasets ``curated_breast_imaging_ddsm`` rule that produced the
  paper's Table 9: sort patient ids, shuffle with NumPy's legacy generator seeded
  ``0x12345``, then the first 15% are test, the next 76.5% train, the rest validation.
  On the official CSVs this gives 234 / 1197 / 135 patients, as the builder documents.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: SplitScheme must import without pandas (CLI start-up)
    from mammocad.data.records import RecordTable
from mammocad.utils.atomic import write_json
from mammocad.utils.errors import DataError

SPLITS = ("train", "val", "test")
TFDS_SEED = 0x12345


class SplitScheme(str, enum.Enum):
    OFFICIAL = "official"
    TFDS = "tfds"


def tfds_patient_split(
    patients: list[str], *, seed: int = TFDS_SEED, test_fraction: float = 0.15, train_fraction: float = 0.765,
) -> dict[str, str]:
    """patient id -> split, exactly as the TFDS builder's ``_split_patients`` assigns them."""
    import numpy as np  # here, not at module level: the CLI imports SplitScheme at start-up

    order = sorted(patients)
    # RandomState (not Generator): the builder used np.random.seed + np.random.shuffle.
    np.random.RandomState(seed).shuffle(order)
    cut_test = int(test_fraction * len(order))
    cut_train = cut_test + int(train_fraction * len(order))
    return {p: ("test" if i < cut_test else "train" if i < cut_train else "val") for i, p in enumerate(order)}


def official_patient_split(table: RecordTable, *, seed: int = 0, val_fraction: float = 0.1) -> dict[str, str]:
    """patient id -> split from the dataset's official train/test, train cut into train/val."""
    from sklearn.model_selection import train_test_split

    official: dict[str, set[str]] = {}
    for im in table.images:
        official.setdefault(im.patient_id, set()).add(im.official_split or "")
    if any("" in s for s in official.values()):
        raise ValueError("official split requested but some images have no official_split (use the tfds scheme)")
    assignment = {p: "test" for p, s in official.items() if "test" in s}
    train_patients = sorted(p for p, s in official.items() if s == {"train"})
    malignant = _patients_with_malignancy(table)
    labels = [p in malignant for p in train_patients]
    stratify = labels if 0 < sum(labels) < len(labels) and len(train_patients) >= 20 else None
    n_val = max(1, round(val_fraction * len(train_patients))) if len(train_patients) > 1 else 0
    if n_val:
        train, val = train_test_split(train_patients, test_size=n_val, random_state=seed, stratify=stratify)
    else:
        train, val = train_patients, []
    assignment.update({p: "train" for p in train})
    assignment.update({p: "val" for p in val})
    return assignment


def _patients_with_malignancy(table: RecordTable) -> set[str]:
    patient_of = {im.image_id: im.patient_id for im in table.images}
    return {patient_of[a.image_id] for a in table.abnormalities if a.pathology.is_malignant}


def patient_split(table: RecordTable, scheme: SplitScheme | str, *, seed: int = 0) -> dict[str, str]:
    """patient id -> ``train``/``val``/``test`` under ``scheme``.

    ``seed`` drives the official scheme's train/val cut; the tfds scheme always uses the
    builder's fixed seed so Table 9 is reproduced.
    """
    scheme = SplitScheme(scheme)
    has_official = all(im.official_split for im in table.images)
    if scheme is SplitScheme.OFFICIAL and has_official:
        return official_patient_split(table, seed=seed)
    return tfds_patient_split(table.patients())


def image_split(table: RecordTable, scheme: SplitScheme | str, *, seed: int = 0) -> dict[str, str]:
    """image id -> split (each image inherits its patient's split)."""
    by_patient = patient_split(table, scheme, seed=seed)
    return {im.image_id: by_patient[im.patient_id] for im in table.images}


def restrict(table: RecordTable, split_of_image: dict[str, str], split: str) -> RecordTable:
    """The part of ``table`` whose images are in ``split``."""
    return table.subset(i for i, s in split_of_image.items() if s == split)


SPLITS_FILE = "splits.json"


def read_split_file(folder: str | Path) -> dict | None:
    """``folder/splits.json`` as written by :func:`decide_split` (None when absent)."""
    path = Path(folder) / SPLITS_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        SplitScheme(saved["scheme"]), int(saved["seed"]), dict(saved["patients"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(path, f"not a valid split file ({err}); delete it to decide the split anew") from None
    return saved


def decide_split(folder: str | Path, table: RecordTable, scheme: SplitScheme | str | None, seed: int | None, *,
                 resplit: bool = False) -> tuple[dict, list[str]]:
    """The split of ``folder``, decided once: (the splits.json content, patients newly assigned).

    The first run decides it (``scheme``/``seed``, default ``official``/0) and records every
    patient's split in ``folder/splits.json`` (like nnU-Net's ``splits_final.json``); later runs
    keep it. Asking a later run for another scheme or seed is refused with a message naming the
    explicit re-split (``resplit=True``, the ``mammocad split`` command). Patients not yet in the
    file (a dataset that grew) get the recorded scheme's assignment; recorded patients never move.
    The file is not written here: :func:`write_split_file` does it once the stage succeeds.
    """
    saved = None if resplit else read_split_file(folder)
    if saved is not None:
        asked = (None if scheme is None else SplitScheme(scheme).value, seed)
        recorded = (saved["scheme"], saved["seed"])
        if (asked[0] is not None and asked[0] != recorded[0]) or (asked[1] is not None and asked[1] != recorded[1]):
            raise DataError(Path(folder) / SPLITS_FILE,
                            f"the split is already decided (scheme {recorded[0]}, seed {recorded[1]}); this run asks "
                            f"for scheme {asked[0] or recorded[0]}, seed {recorded[1] if asked[1] is None else asked[1]}. "
                            f"Leave --split-scheme/--seed out to keep it, or re-split explicitly: "
                            f"mammocad split {folder} --split-scheme {asked[0] or recorded[0]} --seed "
                            f"{recorded[1] if asked[1] is None else asked[1]}")
        patients = dict(saved["patients"])
        missing = [p for p in table.patients() if p not in patients]
        if missing:
            fresh = patient_split(table, saved["scheme"], seed=saved["seed"])
            patients.update({p: fresh[p] for p in missing})
        return {"scheme": saved["scheme"], "seed": saved["seed"], "patients": patients}, missing
    scheme = SplitScheme(scheme or SplitScheme.OFFICIAL)
    seed = 0 if seed is None else seed
    return {"scheme": scheme.value, "seed": seed, "patients": patient_split(table, scheme, seed=seed)}, []


def write_split_file(folder: str | Path, split: dict) -> None:
    write_json(Path(folder) / SPLITS_FILE, {**split, "patients": dict(sorted(split["patients"].items()))})


def images_split(table: RecordTable, split: dict) -> dict[str, str]:
    """image id -> split under a decided split (see :func:`decide_split`)."""
    return {im.image_id: split["patients"][im.patient_id] for im in table.images}
