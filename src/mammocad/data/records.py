"""Typed records every dataset adapter produces, and the table that holds them.

One :class:`ImageRecord` per mammogram (a normal mammogram has no abnormality), one
:class:`AbnormalityRecord` per annotated lesion. Adapters (CBIS-DDSM, mini-MIAS, the
synthetic generator) all turn their sources into these, so every later stage reads one
schema. Records are plain frozen dataclasses; :class:`RecordTable` converts to and from
pandas for stats, manifests and CSV round-trips.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd


class Pathology(str, enum.Enum):
    BENIGN = "BENIGN"
    BENIGN_WITHOUT_CALLBACK = "BENIGN_WITHOUT_CALLBACK"
    MALIGNANT = "MALIGNANT"

    @property
    def is_malignant(self) -> bool:
        return self is Pathology.MALIGNANT


class AbnormalityType(str, enum.Enum):
    MASS = "mass"
    CALCIFICATION = "calcification"
    # mini-MIAS keeps these two as their own types (CBIS-DDSM folds distortions into masses).
    ARCHITECTURAL_DISTORTION = "architectural_distortion"
    ASYMMETRY = "asymmetry"


class Laterality(str, enum.Enum):
    LEFT = "LEFT"
    RIGHT = "RIGHT"


class View(str, enum.Enum):
    CC = "CC"
    MLO = "MLO"


@dataclass(frozen=True)
class RoiCircle:
    """A circular region of interest in full-image pixel coordinates.

    ``row``/``col`` have their origin at the TOP-left of the image (numpy order);
    adapters whose source uses another origin (mini-MIAS: bottom-left) convert.
    ``radius`` is in pixels.
    """

    row: float
    col: float
    radius: float


@dataclass(frozen=True)
class ImageRecord:
    """One mammogram.

    ``image_id`` is unique within a table (for CBIS-DDSM ``Mass-Training_P_00001_LEFT_CC``).
    ``official_split`` is the dataset's own train/test assignment (``"train"``/``"test"``) or
    ``None`` when the dataset has none (mini-MIAS).
    """

    image_id: str
    dataset: str
    patient_id: str
    laterality: Laterality
    view: View
    image_path: Path
    official_split: str | None = None
    breast_density: int | None = None
    background_tissue: str | None = None  # mini-MIAS F/G/D


@dataclass(frozen=True)
class AbnormalityRecord:
    """One annotated abnormality on one mammogram.

    The lesion outline comes either from a mask file (``roi_mask_path``, CBIS-DDSM: non-zero
    pixels are the lesion, same size as the full image) or from a circle (``roi_circle``,
    mini-MIAS). ``abnormality_id`` is 1-based within its image, as in the CBIS-DDSM CSVs.
    Mass descriptors (``mass_shape``, ``mass_margins``) and calcification descriptors
    (``calc_type``, ``calc_distribution``) are ``None`` where they do not apply.
    """

    image_id: str
    abnormality_id: int
    abnormality_type: AbnormalityType
    pathology: Pathology
    assessment: int | None = None  # BI-RADS 0-5
    subtlety: int | None = None  # 1-5
    mass_shape: str | None = None
    mass_margins: str | None = None
    calc_type: str | None = None
    calc_distribution: str | None = None
    roi_mask_path: Path | None = None
    crop_path: Path | None = None
    roi_circle: RoiCircle | None = None

    @property
    def key(self) -> str:
        """Unique id of the abnormality in its table, e.g. ``Mass-Training_P_00001_LEFT_CC_1``."""
        return f"{self.image_id}_{self.abnormality_id}"


@dataclass
class RecordTable:
    """All images and abnormalities of one dataset (or several, concatenated).

    Invariant: every abnormality's ``image_id`` names an image in ``images``.
    """

    images: list[ImageRecord] = field(default_factory=list)
    abnormalities: list[AbnormalityRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        known = {im.image_id for im in self.images}
        if len(known) != len(self.images):
            raise ValueError("RecordTable: duplicate image_id")
        orphans = sorted({a.image_id for a in self.abnormalities} - known)
        if orphans:
            raise ValueError(f"RecordTable: abnormalities refer to unknown images: {orphans[:5]}")

    def __add__(self, other: RecordTable) -> RecordTable:
        return RecordTable(self.images + other.images, self.abnormalities + other.abnormalities)

    def abnormalities_by_image(self) -> dict[str, list[AbnormalityRecord]]:
        out: dict[str, list[AbnormalityRecord]] = {im.image_id: [] for im in self.images}
        for a in self.abnormalities:
            out[a.image_id].append(a)
        return out

    def patients(self) -> list[str]:
        return sorted({im.patient_id for im in self.images})

    def subset(self, image_ids: Iterable[str]) -> RecordTable:
        keep = set(image_ids)
        return RecordTable(
            [im for im in self.images if im.image_id in keep],
            [a for a in self.abnormalities if a.image_id in keep],
        )

    # ---- pandas round trip -------------------------------------------------------------
    def images_frame(self) -> pd.DataFrame:
        return _records_to_frame(self.images, ImageRecord)

    def abnormalities_frame(self) -> pd.DataFrame:
        """One row per abnormality, with the image's columns joined in (patient, split, ...)."""
        abn = _records_to_frame(self.abnormalities, AbnormalityRecord)
        return abn.merge(self.images_frame(), on="image_id", how="left", validate="many_to_one")

    @classmethod
    def from_frames(cls, images: pd.DataFrame, abnormalities: pd.DataFrame) -> RecordTable:
        return cls(
            list(_frame_to_records(images, ImageRecord)),
            list(_frame_to_records(abnormalities, AbnormalityRecord)),
        )


# ---- (de)serialisation helpers: flat columns, enums as values, circle as three columns ---
_CIRCLE_COLUMNS = ("roi_row", "roi_col", "roi_radius")


def _records_to_frame(records: list[Any], cls: type) -> pd.DataFrame:
    rows = []
    for r in records:
        row: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = getattr(r, f.name)
            if f.name == "roi_circle":
                for col, v in zip(_CIRCLE_COLUMNS, (value.row, value.col, value.radius) if value else (None,) * 3):
                    row[col] = v
                continue
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Path):
                value = str(value)
            row[f.name] = value
        rows.append(row)
    columns = [c for f in dataclasses.fields(cls) for c in (_CIRCLE_COLUMNS if f.name == "roi_circle" else (f.name,))]
    return pd.DataFrame(rows, columns=columns)


_FIELD_PARSERS = {
    "laterality": Laterality,
    "view": View,
    "pathology": Pathology,
    "abnormality_type": AbnormalityType,
    "image_path": Path,
    "roi_mask_path": Path,
    "crop_path": Path,
    "abnormality_id": int,
    "assessment": int,
    "subtlety": int,
    "breast_density": int,
}


def _frame_to_records(frame: pd.DataFrame, cls: type) -> Iterator[Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    for row in frame.to_dict("records"):
        kwargs: dict[str, Any] = {}
        for name in names:
            if name == "roi_circle":
                vals = [row.get(c) for c in _CIRCLE_COLUMNS]
                kwargs[name] = None if any(_missing(v) for v in vals) else RoiCircle(*map(float, vals))
                continue
            value = row.get(name)
            if _missing(value):
                kwargs[name] = None
            else:
                kwargs[name] = _FIELD_PARSERS.get(name, lambda v: v)(value)
        yield cls(**kwargs)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
