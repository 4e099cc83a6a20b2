"""CBIS-DDSM adapter: the four official case-description CSVs + the image files on disk.

Two steps, composed by :func:`load_cbis_ddsm`:

1. :func:`read_case_csvs` parses the CSVs exactly as TCIA ships them into a
   :class:`RecordTable` whose paths are still the CSV's UID-style strings.
2. :func:`resolve_files` finds each file on disk and decides, from the files themselves,
   which of an abnormality's two files is the ROI mask and which the crop.

Folder layouts found on disk (all accepted, under ``image_root`` or any folder below it):

- CSV/UID layout: ``Mass-Training_P_00001_LEFT_CC/<StudyUID>/<SeriesUID>/000000.dcm``;
- current NBIA download layout:
  ``CBIS-DDSM/Mass-Test_P_00016_LEFT_CC_1/10-04-2016-DDSM-09887/1-cropped images-26184/000001.dcm``;
- PNG/JPEG conversions of either (same tree, ``.png``/``.jpg`` instead of ``.dcm``), and the
  common ``jpeg/<SeriesUID>/1-1.jpg`` conversion, found through the series UID.

Folder and file names do not say which file is the ROI mask and which the crop (the CSV
columns are swapped in many rows, and NBIA folder names are wrong too), so the role is
decided from the file: a ROI mask has the full image's size (TCIA's own test, as in the
TensorFlow Datasets builder), then the DICOM SeriesDescription, then pixel content (a mask is
binary).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mammocad.data.cbis_ddsm_schema import COLUMNS, CSV_FILES, SERIES_CROP, SERIES_ROI_MASK
from mammocad.data.records import (
    AbnormalityRecord,
    AbnormalityType,
    ImageRecord,
    Laterality,
    Pathology,
    RecordTable,
    View,
)
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import RASTER_SUFFIXES, image_shape, is_dicom, read_dicom_header, read_image
from mammocad.utils.parallel import Failure, map_items

DATASET = "cbis-ddsm"
IMAGE_SUFFIXES = {".dcm"} | RASTER_SUFFIXES
# Series folder names: Mass-Training_P_00001_LEFT_CC (full image) or ..._CC_1 (abnormality 1).
SERIES_FOLDER = re.compile(r"^(Mass|Calc)-(Training|Test)_P_\d+_(LEFT|RIGHT)_(CC|MLO)(_\d+)?$")
UID_FOLDER = re.compile(r"^1\.3\.6\.1\.4\.1\.9590\.[0-9.]+$")


# ---- 1. CSV parsing ----------------------------------------------------------------------
def read_case_csv(path: str | Path) -> pd.DataFrame:
    """One case-description CSV as a DataFrame with uniform column names and stripped cells.

    Accepts both density spellings (``breast density``/``breast_density``) and the newline
    inside quoted paths. Raises :class:`DataError` naming the file for unknown or missing
    columns, so a wrong file is caught before anything else runs.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "CSV file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise DataError(path, f"not a UTF-8 text file: {_first_bad_byte(path)}; save it as UTF-8") from None
    except Exception as err:
        raise DataError(path, f"not a readable CSV ({type(err).__name__}: {err})") from None
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.rename(columns={"breast density": "breast_density"})
    kind = "mass" if "mass shape" in frame.columns else "calcification"
    expected = [c.replace("breast density", "breast_density") for c in COLUMNS[kind]]
    unknown = [c for c in frame.columns if c not in expected]
    missing = [c for c in expected if c not in frame.columns]
    if unknown or missing:
        raise DataError(path, f"not a CBIS-DDSM {kind} CSV: unknown columns {unknown}, missing columns {missing}")
    return frame.apply(lambda col: col.str.strip())


def _first_bad_byte(path: Path) -> str:
    """Where a file stops being UTF-8, as an editor counts: ``line 7, column 12: byte 0xe9``."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        return f"line {line}, column {column}: byte 0x{data[err.start]:02x} ({err.reason})"
    return "undecodable bytes"  # not reached: pandas decodes the same bytes as UTF-8


def read_case_csvs(csv_dir: str | Path) -> RecordTable:
    """Parse all four official CSVs found in ``csv_dir`` into records (paths not yet resolved).

    Image ids are the full image's series folder (``Mass-Training_P_00001_LEFT_CC``), so the
    same breast imaged for a mass and a calcification gives two images, as in TCIA.
    """
    csv_dir = Path(csv_dir)
    images: dict[str, ImageRecord] = {}
    abnormalities: list[AbnormalityRecord] = []
    found = False
    for (kind, split), name in CSV_FILES.items():
        path = csv_dir / name
        if not path.exists():
            continue
        found = True
        for line, row in enumerate(read_case_csv(path).to_dict("records"), start=2):
            try:
                image, abnormality = _row_to_records(row, kind, split)
            except (KeyError, ValueError) as err:
                raise DataError(path, f"line {line}: {err}") from None
            images.setdefault(image.image_id, image)
            abnormalities.append(abnormality)
    if not found:
        raise DataError(csv_dir, f"no CBIS-DDSM case-description CSV here (expected {sorted(CSV_FILES.values())})")
    return RecordTable(list(images.values()), abnormalities)


def _row_to_records(row: dict[str, str], kind: str, split: str) -> tuple[ImageRecord, AbnormalityRecord]:
    image_id = _series_folder(row["image file path"])
    image = ImageRecord(
        image_id=image_id,
        dataset=DATASET,
        patient_id=row["patient_id"],
        laterality=Laterality(row["left or right breast"]),
        view=View(row["image view"]),
        image_path=Path(row["image file path"]),
        official_split=split,
        breast_density=_int_or_none(row["breast_density"]),
    )
    is_mass = kind == "mass"
    abnormality = AbnormalityRecord(
        image_id=image_id,
        abnormality_id=int(row["abnormality id"]),
        abnormality_type=AbnormalityType.MASS if is_mass else AbnormalityType.CALCIFICATION,
        pathology=Pathology(row["pathology"]),
        assessment=_int_or_none(row["assessment"]),
        subtlety=_int_or_none(row["subtlety"]),
        mass_shape=_str_or_none(row.get("mass shape")),
        mass_margins=_str_or_none(row.get("mass margins")),
        calc_type=_str_or_none(row.get("calc type")),
        calc_distribution=_str_or_none(row.get("calc distribution")),
        roi_mask_path=Path(row["ROI mask file path"]),
        crop_path=Path(row["cropped image file path"]),
    )
    return image, abnormality


def _series_folder(csv_path: str) -> str:
    folder = csv_path.split("/")[0]
    if not SERIES_FOLDER.match(folder):
        raise ValueError(f"unexpected image path {csv_path!r} (no CBIS-DDSM series folder)")
    return folder


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "", "nan") else None


def _str_or_none(value: str | None) -> str | None:
    return value if value not in (None, "", "nan", "N/A") else None


# ---- 2. finding files on disk ------------------------------------------------------------
class FileIndex:
    """Where each CBIS-DDSM series folder (and UID folder) lives under a root.

    Built by one walk of the tree that stops descending at series folders, so its cost is
    the number of series (~7k for the whole dataset), not the number of files.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "image folder not found")
        self.series: dict[str, Path] = {}
        self.uids: dict[str, Path] = {}
        for dirpath, dirnames, _ in os.walk(self.root):
            keep = []
            for name in dirnames:
                if SERIES_FOLDER.match(name):
                    self.series.setdefault(name, Path(dirpath) / name)
                elif UID_FOLDER.match(name):
                    self.uids.setdefault(name, Path(dirpath) / name)
                else:
                    keep.append(name)
            dirnames[:] = keep

    def files_for(self, csv_path: Path) -> list[Path]:
        """Image files on disk for one CSV path: the exact file if present, else its folder's files."""
        parts = csv_path.parts
        folder = self.series.get(parts[0])
        if folder is not None:
            exact = folder.joinpath(*parts[1:])
            for candidate in [exact, *(exact.with_suffix(s) for s in sorted(IMAGE_SUFFIXES))]:
                if candidate.is_file():
                    return [candidate]
            return _image_files_below(folder)
        # Conversions that keep only the series UID folder (e.g. jpeg/<SeriesUID>/1-1.jpg).
        for uid in reversed(parts[1:-1]):
            if uid in self.uids:
                return _image_files_below(self.uids[uid])
        return []


def _image_files_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def classify_roi_files(candidates: Iterable[Path], full_shape: tuple[int, int]) -> tuple[Path | None, Path | None]:
    """Return ``(roi_mask_path, crop_path)`` among an abnormality's files.

    Evidence, strongest first: (1) a ROI mask has exactly the full image's shape and a crop
    is smaller; (2) the DICOM SeriesDescription (``ROI mask images`` / ``cropped images``);
    (3) pixel content: a mask is binary (at most two distinct values). Either may be
    ``None`` when the folder holds only one kind of file.
    """
    candidates = list(candidates)
    shapes = {p: image_shape(p) for p in candidates}
    masks = [p for p in candidates if shapes[p] == tuple(full_shape)]
    if len(masks) == 1:
        crops = [p for p in candidates if p not in masks]
        return masks[0], crops[0] if crops else None
    roles = {p: _role_from_content(p) for p in candidates}
    masks = [p for p in candidates if roles[p] == "mask"]
    crops = [p for p in candidates if roles[p] == "crop"]
    if len(masks) > 1 or len(crops) > 1:
        raise DataError(candidates[0].parent, f"cannot tell ROI mask from crop among {[p.name for p in candidates]}")
    return (masks[0] if masks else None), (crops[0] if crops else None)


def _role_from_content(path: Path) -> str:
    if is_dicom(path):
        description = str(read_dicom_header(path).get("SeriesDescription", "")).strip().lower()
        if description == SERIES_ROI_MASK.lower():
            return "mask"
        if description == SERIES_CROP.lower():
            return "crop"
    pixels = read_image(path)
    return "mask" if _is_binary(pixels) else "crop"


def _is_binary(pixels: np.ndarray) -> bool:
    # Sampling every 4th pixel keeps this cheap on full-size masks; a crop of real tissue has
    # hundreds of grey levels, so a subsample never looks binary by chance.
    return np.unique(pixels[::4, ::4]).size <= 2


def resolve_image(image: ImageRecord, index: FileIndex) -> ImageRecord:
    """The image record with ``image_path`` pointing at the file on disk."""
    files = index.files_for(image.image_path)
    if not files:
        raise DataError(index.root / image.image_path, f"full mammogram of {image.image_id} not found on disk")
    if len(files) > 1:
        raise DataError(files[0].parent, f"several image files for {image.image_id}: {[f.name for f in files]}")
    return replace(image, image_path=files[0])


def resolve_abnormality(abnormality: AbnormalityRecord, full_image: Path, index: FileIndex) -> AbnormalityRecord:
    """The abnormality with ``roi_mask_path``/``crop_path`` pointing at the right files."""
    candidates: list[Path] = []
    for csv_path in (abnormality.roi_mask_path, abnormality.crop_path):
        for f in index.files_for(csv_path) if csv_path else []:
            if f not in candidates:
                candidates.append(f)
    if not candidates:
        raise DataError(index.root / str(abnormality.roi_mask_path), f"no ROI mask or crop on disk for {abnormality.key}")
    mask, crop = classify_roi_files(candidates, image_shape(full_image))
    if mask is None:
        raise DataError(candidates[0], f"no ROI mask of the full image's size among the files of {abnormality.key}")
    return replace(abnormality, roi_mask_path=mask, crop_path=crop)


def _resolve_one(image_and_abnormalities: tuple[ImageRecord, list[AbnormalityRecord]], index: FileIndex):
    image, abnormalities = image_and_abnormalities
    image = resolve_image(image, index)
    return image, [resolve_abnormality(a, image.image_path, index) for a in abnormalities]


class _Resolver:
    """Picklable per-image resolve step for the worker pool (holds the file index)."""

    def __init__(self, index: FileIndex):
        self.index = index

    def __call__(self, item):
        return _resolve_one(item, self.index)


def resolve_files(
    table: RecordTable, image_root: str | Path, *, workers: int = 1, failures: list[Failure] | None = None,
    progress: bool = True,
) -> RecordTable:
    """Point every record at its files under ``image_root``; images that fail are dropped.

    Each failure (missing file, unreadable DICOM, no mask of the right size) is appended to
    ``failures`` as one line naming the file; the other images are still resolved.
    """
    index = FileIndex(image_root)
    by_image = table.abnormalities_by_image()
    items = [(im, by_image[im.image_id]) for im in table.images]
    images, abnormalities = [], []
    for image, abns in map_items(
        _Resolver(index), items, workers=workers, name=lambda it: it[0].image_id,
        desc="resolve CBIS-DDSM files", failures=failures, progress=progress,
    ):
        images.append(image)
        abnormalities.extend(abns)
    order = {im.image_id: i for i, im in enumerate(table.images)}
    images.sort(key=lambda im: order[im.image_id])  # pool returns in completion order
    abnormalities.sort(key=lambda a: (order[a.image_id], a.abnormality_id))
    return RecordTable(images, abnormalities)


def load_cbis_ddsm(
    root: str | Path, *, csv_dir: str | Path | None = None, workers: int = 1,
    failures: list[Failure] | None = None, progress: bool = True,
) -> RecordTable:
    """Read the CSVs (``csv_dir``, default ``root/csv`` or ``root``) and resolve files under ``root``."""
    table = read_case_csvs(csv_dir if csv_dir is not None else csv_folder(root))
    return resolve_files(table, root, workers=workers, failures=failures, progress=progress)


def csv_folder(root: str | Path) -> Path:
    """Where the CSVs of a dataset root are: ``root/csv`` if it exists, else ``root`` itself."""
    root = Path(root)
    return root / "csv" if (root / "csv").is_dir() else root
