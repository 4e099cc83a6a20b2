"""The paper's Table 9: patients, mammograms and abnormalities per split, with % malignant.

A patient (or mammogram) counts as malignant when any of its abnormalities is malignant,
the convention of the TensorFlow Datasets builder whose numbers the paper reports.
"""

from __future__ import annotations

import pandas as pd

from mammocad.data.records import RecordTable
from mammocad.data.splits import SPLITS


def split_statistics(table: RecordTable, split_of_image: dict[str, str]) -> pd.DataFrame:
    """One row per split (in train/val/test order) plus ``all``.

    Columns: ``patients``, ``patients_malignant_pct``, ``mammograms``,
    ``mammograms_malignant_pct``, ``abnormalities``, ``abnormalities_malignant_pct``, and
    the abnormality count per type (``mass``, ``calcification``, ...). Percentages are 0-100.
    """
    images = table.images_frame()
    images["split"] = images["image_id"].map(split_of_image)
    abn = table.abnormalities_frame()
    abn["split"] = abn["image_id"].map(split_of_image)
    abn["malignant"] = abn["pathology"] == "MALIGNANT"
    malignant_images = set(abn.loc[abn["malignant"], "image_id"])
    images["malignant"] = images["image_id"].isin(malignant_images)
    types = sorted(abn["abnormality_type"].unique())

    rows = []
    present = [s for s in SPLITS if s in set(images["split"])]
    for name in [*present, "all"]:
        im = images if name == "all" else images[images["split"] == name]
        ab = abn if name == "all" else abn[abn["split"] == name]
        patients = im.groupby("patient_id")["malignant"].any()
        row = {
            "split": name,
            "patients": len(patients),
            "patients_malignant_pct": _pct(patients.sum(), len(patients)),
            "mammograms": len(im),
            "mammograms_malignant_pct": _pct(im["malignant"].sum(), len(im)),
            "abnormalities": len(ab),
            "abnormalities_malignant_pct": _pct(ab["malignant"].sum(), len(ab)),
        }
        row.update({t: int((ab["abnormality_type"] == t).sum()) for t in types})
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0
