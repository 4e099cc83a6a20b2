"""A synthetic CBIS-DDSM: deterministic, realistic data in the exact on-disk format TCIA ships.

Tests and the demo run the whole toolkit on it without the licensed data. Output under
``out_dir``:

- ``csv/``: the four official case-description CSVs (:data:`CSV_FILES`, columns
  :data:`COLUMNS`), with the real files' quirks: UID-style paths, a newline inside the quotes
  of one path column, and crop/mask file names that do not say which file is which;
- ``synth_config.json``: the config, so a re-run can tell its own folder from others;
- ``CBIS-DDSM/``: DICOM files in the current NBIA download layout, e.g.
  ``CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-74994/1-full mammogram images-24515/000000.dcm``
  and ``CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<date>-DDSM-<n>/1-ROI mask images-<n>/00000N.dcm``
  (ROI mask and crop; for about a third of the abnormalities split over a ``1-ROI mask images-<n>``
  and a ``1-cropped images-<n>`` folder whose names need not match their content, as on TCIA).

Images: 16-bit MONOCHROME2 film scans with a dark noisy background, a breast attached to the
chest wall (LEFT breasts at column 0, RIGHT breasts at the last column), a pectoral muscle on
MLO views, fibroglandular texture that grows with breast density, skin-line fall-off, vessels,
scanner labels and bright film-border strips. Lesions are drawn from their CSV descriptors:
malignant masses lean irregular/spiculated and denser, benign ones round/oval and
circumscribed; malignant calcifications lean many tiny pleomorphic/linear specks in a tight
cluster, benign ones few larger round or lucent-centred specks spread wider. The ROI mask
(same size as the image, 0/255 uint8) is the drawn mass outline or the blob covering a
calcification cluster; the crop is the mask's bounding box plus a margin, cut from the image.

Determinism: the plan (patients, lesions, UIDs, folder names) comes from one generator seeded
by ``seed``; each image's pixels from a generator seeded by ``(seed, image index)``; a lesion's
outline from its own seed, so its CC and MLO views show the same lesion. Output bytes are
therefore identical for any number of workers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from mammocad.data.cbis_ddsm_schema import (
    COLUMNS,
    CSV_FILES,
    FOLDER_PREFIX,
    SERIES_CROP,
    SERIES_FULL,
    SERIES_ROI_MASK,
)
from mammocad.utils.atomic import atomic_path, check_output_folder, write_csv, write_json
from mammocad.utils.config import check_workers
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import mask_box
from mammocad.utils.parallel import map_items
from mammocad.utils.seeding import generator

UID_PREFIX = "1.3.6.1.4.1.9590.100.1.2."  # every CBIS-DDSM UID starts with this
NBIA_ROOT = "CBIS-DDSM"  # top folder of an NBIA Data Retriever download
CSV_DIR = "csv"
MANIFEST = "synth_config.json"  # the config a folder was generated with
MIN_IMAGE_SIZE = 128  # pixels; below this a lesion no longer fits a breast
ASPECT_RANGE = (0.75, 2.5)  # rows / cols; real scans are ~1.2-2.3, and lesions are sized by rows

# Independent random streams (SeedSequence spawn keys): the plan never shifts image pixels.
_PLAN_STREAM, _IMAGE_STREAM = 0, 1

# ---- clinical vocabulary and how often each value occurs --------------------------------------
# Proportions follow the real CSVs roughly; BENIGN_WITHOUT_CALLBACK lesions look benign.
PATHOLOGY_P = {"MALIGNANT": 0.45, "BENIGN": 0.40, "BENIGN_WITHOUT_CALLBACK": 0.15}
DENSITY_P = {1: 0.15, 2: 0.40, 3: 0.33, 4: 0.12}
SUBTLETY_P = {1: 0.05, 2: 0.10, 3: 0.25, 4: 0.27, 5: 0.33}
ASSESSMENT_P = {  # BI-RADS given pathology (real CSVs: malignant mostly 4-5, BWC mostly 2)
    "MALIGNANT": {0: 0.04, 3: 0.06, 4: 0.50, 5: 0.40},
    "BENIGN": {0: 0.15, 2: 0.07, 3: 0.30, 4: 0.48},
    "BENIGN_WITHOUT_CALLBACK": {2: 0.80, 3: 0.12, 4: 0.08},
}
# Descriptors given malignancy (key True = MALIGNANT): overlapping on purpose, so pathology is
# learnable from the pixels but not trivially; about one lesion in ten shows the other class's
# hallmark (e.g. a circumscribed malignant mass), so a demo-sized set still shows learning.
MASS_SHAPE_P = {
    True: {"IRREGULAR": 0.68, "ARCHITECTURAL_DISTORTION": 0.14, "LOBULATED": 0.10, "OVAL": 0.05, "ROUND": 0.03},
    False: {"OVAL": 0.45, "ROUND": 0.32, "LOBULATED": 0.17, "IRREGULAR": 0.04, "ARCHITECTURAL_DISTORTION": 0.02},
}
MASS_MARGINS_P = {
    True: {"SPICULATED": 0.62, "ILL_DEFINED": 0.25, "MICROLOBULATED": 0.08, "OBSCURED": 0.03, "CIRCUMSCRIBED": 0.02},
    False: {"CIRCUMSCRIBED": 0.65, "OBSCURED": 0.22, "ILL_DEFINED": 0.07, "MICROLOBULATED": 0.04, "SPICULATED": 0.02},
}
CALC_TYPE_P = {
    True: {"PLEOMORPHIC": 0.55, "FINE_LINEAR_BRANCHING": 0.33, "AMORPHOUS": 0.06, "PUNCTATE": 0.05,
           "ROUND_AND_REGULAR": 0.01},
    False: {"ROUND_AND_REGULAR": 0.40, "LUCENT_CENTER": 0.35, "PUNCTATE": 0.15, "PLEOMORPHIC": 0.05,
            "AMORPHOUS": 0.05},
}
CALC_DISTRIBUTION_P = {
    True: {"CLUSTERED": 0.65, "LINEAR": 0.20, "SEGMENTAL": 0.12, "REGIONAL": 0.03},
    False: {"CLUSTERED": 0.30, "REGIONAL": 0.30, "DIFFUSELY_SCATTERED": 0.30, "SEGMENTAL": 0.06, "LINEAR": 0.04},
}
LESIONS_PER_BREAST_P = {1: 0.78, 2: 0.16, 3: 0.06}
TWO_BREASTS_P = 0.2  # patients with abnormalities in both breasts
SAME_TYPE_BOTH_BREASTS_P = 0.8
SPLIT_ROI_FOLDERS_P = 1 / 3  # abnormalities whose mask and crop sit in two NBIA series folders

# ---- CSV quirks of the real files, per abnormality type ---------------------------------------
# The file name each path column carries (which file really is the mask is random, so the
# names are right for about half the rows, as on TCIA) and the column whose value ends with a
# newline inside its quotes (mass CSVs: the mask path; calc CSVs: the crop path).
CSV_CROP_NAME = {"mass": "000000.dcm", "calcification": "000001.dcm"}
CSV_MASK_NAME = {"mass": "000001.dcm", "calcification": "000000.dcm"}
CSV_NEWLINE_COLUMN = {"mass": "ROI mask file path", "calcification": "cropped image file path"}

# ---- lesion geometry ------------------------------------------------------------------------------
# Mass outline per shape: (aspect ratio range, harmonic orders of the radius, amplitude range).
MASS_OUTLINE = {
    "ROUND": ((1.0, 1.15), (2, 3, 4), (0.0, 0.03)),
    "OVAL": ((1.4, 1.9), (2, 3, 4), (0.0, 0.03)),
    "LOBULATED": ((1.0, 1.4), (3, 4, 5, 6), (0.06, 0.14)),
    "IRREGULAR": ((1.0, 1.5), tuple(range(2, 13)), (0.05, 0.16)),
    "ARCHITECTURAL_DISTORTION": ((1.0, 1.3), tuple(range(2, 9)), (0.03, 0.12)),
}
MICROLOBULATION = ((14, 17, 20, 23), (0.025, 0.045))  # harmonic orders, amplitude range
# Edge blur per margin, as a fraction of the mass radius: a sharp edge is circumscribed.
MARGIN_BLUR = {"CIRCUMSCRIBED": 0.02, "MICROLOBULATED": 0.03, "SPICULATED": 0.06, "OBSCURED": 0.10,
               "ILL_DEFINED": 0.20}
MASS_RADIUS = {True: (0.025, 0.06), False: (0.02, 0.055)}  # fraction of image rows
MASS_CONTRAST = {True: (0.20, 0.32), False: (0.13, 0.24)}  # added brightness, fraction of full scale
CALC_CONTRAST = (0.30, 0.50)
# Calcification cluster region per distribution: (radius range as fraction of rows, aspect range).
CALC_REGION = {
    "CLUSTERED": ((0.012, 0.03), (1.0, 1.6)),
    "LINEAR": ((0.02, 0.04), (3.5, 5.0)),
    "SEGMENTAL": ((0.03, 0.05), (2.0, 3.0)),
    "REGIONAL": ((0.04, 0.06), (1.0, 1.5)),
    "DIFFUSELY_SCATTERED": ((0.045, 0.065), (1.0, 1.4)),
}
# Specks per calcification type: (count range, radius range in speck units, relative brightness).
CALC_SPECKS = {
    "PLEOMORPHIC": ((25, 50), (0.5, 1.6), 1.0),
    "FINE_LINEAR_BRANCHING": ((6, 14), (0.6, 0.9), 1.0),
    "AMORPHOUS": ((15, 35), (0.5, 1.0), 0.4),
    "PUNCTATE": ((8, 25), (0.5, 0.9), 0.9),
    "ROUND_AND_REGULAR": ((3, 8), (2.2, 3.6), 1.0),
    "LUCENT_CENTER": ((2, 6), (3.0, 4.8), 1.0),
}
SPECK_UNIT = 0.0016  # speck radius unit as a fraction of image rows (~1.6 px at 1024 rows)
GLAND_FRACTION = {1: 0.12, 2: 0.30, 3: 0.50, 4: 0.72}  # share of the breast that is dense tissue
SHRINK_STEPS = (1.0, 0.8, 0.65, 0.5, 0.4, 0.3, 0.22, 0.16)  # retry a lesion smaller if it does not fit


# ---- public API ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Sizes in pixels; real CBIS-DDSM mammograms are ~4000x3000."""

    patients: int = 24
    seed: int = 0
    image_rows: int = 1024  # full mammogram height
    image_cols: int = 768
    test_fraction: float = 0.25  # fraction of patients in the official "Test" CSVs
    workers: int = 1

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise ValueError(f"patients must be >= 1, got {self.patients}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if min(self.image_rows, self.image_cols) < MIN_IMAGE_SIZE:
            raise ValueError(f"image_rows and image_cols must be at least {MIN_IMAGE_SIZE} pixels, "
                             f"got {self.image_rows}x{self.image_cols}")
        if not ASPECT_RANGE[0] <= self.image_rows / self.image_cols <= ASPECT_RANGE[1]:
            raise ValueError(f"image_rows / image_cols must be in {list(ASPECT_RANGE)}, "
                             f"got {self.image_rows}x{self.image_cols}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(f"test_fraction must be in [0, 1], got {self.test_fraction}")
        check_workers(self.workers)


@dataclass
class SynthSummary:
    out_dir: Path
    n_patients: int
    n_images: int  # full mammograms
    n_abnormalities: int  # CSV rows
    csv_paths: dict[tuple[str, str], Path]  # (abnormality type, split) -> CSV, as CSV_FILES


def generate_cbis_ddsm(out_dir: str | Path, config: SynthConfig, progress: bool = True) -> SynthSummary:
    """Write a synthetic CBIS-DDSM under ``out_dir`` (``csv/`` and ``CBIS-DDSM/``).

    Images are rendered and written one at a time per worker (memory stays bounded); the CSVs
    are written last, so a CSV on disk means all its images are there.
    """
    out_dir = Path(out_dir)
    _claim(out_dir, config)
    plans = plan_dataset(config)
    work = functools.partial(write_image_files, out_dir=out_dir, seed=config.seed,
                             shape=(config.image_rows, config.image_cols))
    for _ in map_items(work, plans, workers=config.workers, name=lambda p: p.folder,
                       desc="synthesise CBIS-DDSM", progress=progress):
        pass
    csv_paths = write_csvs(out_dir / CSV_DIR, plans)
    return SynthSummary(
        out_dir=out_dir,
        n_patients=config.patients,
        n_images=len(plans),
        n_abnormalities=sum(len(p.lesions) for p in plans),
        csv_paths=csv_paths,
    )


def _claim(out_dir: Path, config: SynthConfig) -> None:
    """Record ``config`` in ``out_dir``, refusing a folder that holds other data.

    Two datasets in one folder would give a series folder two images (a different plan puts
    the same patient's files under other study folders), so only a re-run of the same config
    (any ``workers``: same bytes) may write over existing files.
    """
    check_output_folder(out_dir)
    wanted = {k: v for k, v in dataclasses.asdict(config).items() if k != "workers"}
    manifest = out_dir / MANIFEST
    previous = json.loads(manifest.read_text()) if manifest.is_file() else None
    if ((out_dir / NBIA_ROOT).exists() or (out_dir / CSV_DIR).exists()) and previous != wanted:
        what = f"a synthetic dataset made with {previous}" if previous else "a CBIS-DDSM folder"
        raise DataError(out_dir, f"already holds {what}; choose an empty folder or delete this one")
    write_json(manifest, wanted)


# ---- the plan: everything except pixels ----------------------------------------------------------
@dataclass(frozen=True)
class Lesion:
    """One abnormality of a breast, seen in both its CC and MLO views.

    ``descriptors`` is (mass shape, mass margins) or (calc type, calc distribution).
    ``size`` is the mass radius / cluster radius as a fraction of image rows; ``depth`` the
    position from the chest wall (0) to the skin (1) along the breast; ``rotation`` radians;
    ``contrast`` the added brightness as a fraction of full scale; ``shape_seed`` seeds the
    outline so both views draw the same lesion.
    """

    kind: str  # "mass" | "calcification"
    pathology: str
    descriptors: tuple[str, str]
    assessment: int
    subtlety: int
    size: float
    depth: float
    rotation: float
    contrast: float
    shape_seed: int


@dataclass(frozen=True)
class RoiSeries:
    """The ROI-mask + crop series of one abnormality on one image.

    Files ``000000.dcm`` and ``000001.dcm``; ``mask_file`` (0 or 1) is the one holding the mask.
    ``nbia_dirs[i]`` is file i's folder relative to the output root.
    """

    abnormality_id: int
    folder: str  # e.g. Mass-Training_P_00001_LEFT_CC_1
    study_uid: str
    series_uid: str
    study_date: str  # YYYYMMDD
    mask_file: int
    nbia_dirs: tuple[str, str]


@dataclass(frozen=True)
class ImagePlan:
    """One full mammogram: its CSV fields, UIDs, NBIA folder and lesions (one RoiSeries each)."""

    index: int
    patient_id: str
    split: str  # "train" | "test"
    kind: str
    laterality: str  # "LEFT" | "RIGHT"
    view: str  # "CC" | "MLO"
    density: int
    folder: str  # e.g. Mass-Training_P_00001_LEFT_CC
    study_uid: str
    series_uid: str
    study_date: str
    nbia_dir: str
    lesions: tuple[Lesion, ...]
    rois: tuple[RoiSeries, ...]


def plan_dataset(config: SynthConfig) -> list[ImagePlan]:
    """Every image of the dataset in CSV order (patient, breast, CC before MLO)."""
    rng = generator(config.seed, _PLAN_STREAM)
    numbers = np.cumsum(rng.integers(1, 4, size=config.patients))  # real ids have gaps
    test = set(rng.choice(config.patients, size=_n_test(config), replace=False).tolist())
    plans: list[ImagePlan] = []
    for p, number in enumerate(numbers):
        patient_id = f"P_{number:05d}"
        split = "test" if p in test else "train"
        density = _draw(rng, DENSITY_P)
        for laterality, kind in _plan_breasts(rng):
            lesions = tuple(plan_lesion(rng, kind) for _ in range(_draw(rng, LESIONS_PER_BREAST_P)))
            for view in ("CC", "MLO"):
                folder = f"{FOLDER_PREFIX[(kind, split)]}_{patient_id}_{laterality}_{view}"
                plans.append(_plan_image(rng, config.seed, len(plans), folder, lesions, patient_id=patient_id,
                                         split=split, kind=kind, laterality=laterality, view=view, density=density))
    return plans


def _n_test(config: SynthConfig) -> int:
    n = round(config.test_fraction * config.patients)
    if 0 < config.test_fraction < 1 and config.patients >= 2:
        n = min(max(n, 1), config.patients - 1)  # a fraction strictly between 0 and 1 leaves both splits non-empty
    return n


def _plan_breasts(rng: np.random.Generator) -> list[tuple[str, str]]:
    """(laterality, abnormality type) of each breast with abnormalities."""
    first = str(rng.choice(["mass", "calcification"]))
    if rng.random() >= TWO_BREASTS_P:
        return [(str(rng.choice(["LEFT", "RIGHT"])), first)]
    other = {"mass": "calcification", "calcification": "mass"}[first]
    second = first if rng.random() < SAME_TYPE_BOTH_BREASTS_P else other
    return [("LEFT", first), ("RIGHT", second)]


def plan_lesion(rng: np.random.Generator, kind: str) -> Lesion:
    """Clinical fields and drawing parameters of one abnormality; descriptors follow pathology."""
    pathology = _draw(rng, PATHOLOGY_P)
    malignant = pathology == "MALIGNANT"
    if kind == "mass":
        descriptors = (_draw(rng, MASS_SHAPE_P[malignant]), _draw(rng, MASS_MARGINS_P[malignant]))
        size = rng.uniform(*MASS_RADIUS[malignant])
        contrast = rng.uniform(*MASS_CONTRAST[malignant])
    else:
        descriptors = (_draw(rng, CALC_TYPE_P[malignant]), _draw(rng, CALC_DISTRIBUTION_P[malignant]))
        size = rng.uniform(*CALC_REGION[descriptors[1]][0])
        contrast = rng.uniform(*CALC_CONTRAST)
    subtlety = _draw(rng, SUBTLETY_P)
    return Lesion(
        kind=kind,
        pathology=pathology,
        descriptors=descriptors,
        assessment=_draw(rng, ASSESSMENT_P[pathology]),
        subtlety=subtlety,
        size=float(size),
        depth=float(rng.uniform(0.3, 0.75)),
        rotation=float(rng.uniform(0, math.pi)),
        contrast=float(contrast * (0.7 + 0.075 * (subtlety - 1))),  # subtlety 1 is faint, 5 obvious
        shape_seed=int(rng.integers(2**63)),
    )


def _plan_image(rng: np.random.Generator, seed: int, index: int, folder: str, lesions: tuple[Lesion, ...],
                **fields) -> ImagePlan:
    """UIDs, dates and NBIA folders of one image and its ROI series; ``fields`` are the CSV fields."""
    study_uid, series_uid, date = _uid(seed, folder, "study"), _uid(seed, folder, "series"), _study_date(rng)
    rois = []
    for k in range(1, len(lesions) + 1):
        roi_folder = f"{folder}_{k}"
        roi_study, roi_series = _uid(seed, roi_folder, "study"), _uid(seed, roi_folder, "series")
        roi_date = _study_date(rng)
        study_dir = _nbia_study_dir(roi_folder, roi_date, roi_study)
        names = [SERIES_ROI_MASK, SERIES_ROI_MASK]
        if rng.random() < SPLIT_ROI_FOLDERS_P:  # one file per folder; names match the content only by chance
            names = [str(n) for n in rng.permutation([SERIES_ROI_MASK, SERIES_CROP])]
        rois.append(RoiSeries(
            abnormality_id=k, folder=roi_folder, study_uid=roi_study, series_uid=roi_series, study_date=roi_date,
            mask_file=int(rng.integers(2)),
            nbia_dirs=tuple(f"{study_dir}/1-{n}-{roi_series[-5:]}" for n in names),
        ))
    return ImagePlan(
        index=index, folder=folder, study_uid=study_uid, series_uid=series_uid, study_date=date,
        nbia_dir=f"{_nbia_study_dir(folder, date, study_uid)}/1-{SERIES_FULL}-{series_uid[-5:]}",
        lesions=lesions, rois=tuple(rois), **fields,
    )


def _nbia_study_dir(folder: str, study_date: str, study_uid: str) -> str:
    """NBIA names a study folder ``MM-DD-YYYY-DDSM-<last 5 digits of the StudyInstanceUID>``."""
    date = dt.datetime.strptime(study_date, "%Y%m%d")
    return f"{NBIA_ROOT}/{folder}/{date:%m-%d-%Y}-DDSM-{study_uid[-5:]}"


def _study_date(rng: np.random.Generator) -> str:
    """A YYYYMMDD date in 2016-2017, when TCIA converted CBIS-DDSM."""
    return (dt.date(2016, 1, 1) + dt.timedelta(days=int(rng.integers(730)))).strftime("%Y%m%d")


def _uid(seed: int, *parts: object) -> str:
    """A CBIS-DDSM-style UID that depends only on ``seed`` and ``parts`` (hash, not clock)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=["mammocad-synth", str(seed), *map(str, parts)])


def _draw(rng: np.random.Generator, probabilities: dict):
    """One key of ``probabilities`` (values need not sum to exactly 1)."""
    keys = list(probabilities)
    p = np.array([probabilities[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


# ---- CSVs ---------------------------------------------------------------------------------------
def csv_rows(plan: ImagePlan) -> list[dict[str, object]]:
    """The image's CSV rows (one per abnormality) with UID-style paths, as TCIA writes them."""
    columns = COLUMNS[plan.kind]
    image_path = f"{plan.folder}/{plan.study_uid}/{plan.series_uid}/000000.dcm"
    rows = []
    for lesion, roi in zip(plan.lesions, plan.rois):
        roi_dir = f"{roi.folder}/{roi.study_uid}/{roi.series_uid}"
        values = [plan.patient_id, plan.density, plan.laterality, plan.view, roi.abnormality_id, plan.kind,
                  *lesion.descriptors, lesion.assessment, lesion.pathology, lesion.subtlety, image_path,
                  f"{roi_dir}/{CSV_CROP_NAME[plan.kind]}", f"{roi_dir}/{CSV_MASK_NAME[plan.kind]}"]
        row = dict(zip(columns, values, strict=True))
        row[CSV_NEWLINE_COLUMN[plan.kind]] += "\n"
        rows.append(row)
    return rows


def write_csvs(csv_dir: Path, plans: Sequence[ImagePlan]) -> dict[tuple[str, str], Path]:
    """All four CSVs (header-only where a type/split has no rows), written atomically."""
    paths = {}
    for (kind, split), name in CSV_FILES.items():
        rows = [row for p in plans if (p.kind, p.split) == (kind, split) for row in csv_rows(p)]
        paths[(kind, split)] = csv_dir / name
        write_csv(paths[(kind, split)], pd.DataFrame(rows, columns=COLUMNS[kind]))
    return paths


# ---- breast anatomy -----------------------------------------------------------------------------
# All anatomy is drawn in the "chest-wall-left" frame (chest wall at column 0) and mirrored for
# RIGHT breasts at the end. Arrays are (rows, cols); brightness is a fraction of full scale.
@dataclass(frozen=True)
class Breast:
    """Outline of one breast in the chest-wall-left frame.

    ``width[r]``: how many columns the breast reaches from the chest wall on row r (0 = none).
    ``mask``: (rows, cols) bool breast region, pectoral muscle included.
    ``skin_distance``: (rows, cols) float32 pixel distance to the skin line (the chest wall and
    image edges cutting the breast are not skin).
    ``pectoral``: (rows, cols) bool pectoral muscle (all False on CC views).
    ``falloff_px``: depth over which the compressed breast thins toward the skin.
    """

    width: np.ndarray
    mask: np.ndarray
    skin_distance: np.ndarray
    pectoral: np.ndarray
    falloff_px: float


def draw_breast_outline(rng: np.random.Generator, shape: tuple[int, int], view: str) -> Breast:
    """A half-(super)ellipse attached to the chest wall; MLO adds the axillary tail and pectoral muscle."""
    rows, cols = shape
    r = np.arange(rows, dtype=np.float32)
    reach = rng.uniform(0.5, 0.75) * cols  # widest point, columns from the chest wall
    bluntness = rng.uniform(1.7, 2.6)  # 2 = ellipse; larger = blunter, fuller breast
    if view == "CC":
        centre = rng.uniform(0.46, 0.54) * rows
        above = below = rng.uniform(0.38, 0.45) * rows
        top_width = 0.0
    else:  # widest lower down; the upper outline sweeps up to the axilla at the top edge
        centre = rng.uniform(0.5, 0.62) * rows
        above, below = centre, rng.uniform(0.3, 0.38) * rows
        top_width = rng.uniform(0.35, 0.5)
    t = np.where(r < centre, (centre - r) / above, (r - centre) / below)
    profile = np.clip(1 - t**2, 0, 1) ** (1 / bluntness)
    if view == "MLO":
        profile = np.where(r < centre, top_width + (1 - top_width) * profile, profile)
    width = reach * profile
    width = width * (1 + 0.02 * smooth_noise(rng, (rows, 1), rows / 8))[:, 0]  # uneven skin line
    col = np.arange(cols, dtype=np.float32)[None, :]
    mask = col < width[:, None]
    pectoral = np.zeros_like(mask)
    if view == "MLO":
        muscle_width, muscle_height = rng.uniform(0.6, 0.95) * width[0], rng.uniform(0.35, 0.6) * rows
        edge = muscle_width * np.clip(1 - r / muscle_height, 0, 1) ** rng.uniform(0.8, 1.25)  # slightly curved
        pectoral = (col < edge[:, None]) & mask
    falloff = rng.uniform(0.08, 0.14) * cols
    return Breast(width.astype(np.float32), mask, _skin_distance(mask, falloff), pectoral, float(falloff))


def _skin_distance(mask: np.ndarray, falloff: float) -> np.ndarray:
    # Replicating the border extends the breast past the image edges it touches (chest wall,
    # top of an MLO), so only the real skin line counts; distances beyond the pad are not needed.
    pad = int(falloff) + 2
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[pad:-pad, pad:-pad]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float, stretch: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std float32 noise of ``shape`` (rows, cols) with features ~``scale_px`` wide.

    ``stretch`` > 1 elongates features along columns (ducts run from the chest wall to the
    nipple). Drawn on a coarse grid and upsampled, so cost hardly grows with image size.
    """
    rows, cols = shape
    grid = (max(4, math.ceil(2 * rows / scale_px)), max(4, math.ceil(2 * cols / (scale_px * stretch))))
    coarse = cv2.GaussianBlur(rng.standard_normal(grid, dtype=np.float32), (0, 0), 1.0)
    fine = cv2.resize(coarse, (cols, rows), interpolation=cv2.INTER_CUBIC)
    sample = fine[::4, ::4]  # smooth, so a subsample gives the same mean and spread
    fine -= sample.mean()
    fine *= 1 / (sample.std() + 1e-6)
    return fine


def draw_tissue(rng: np.random.Generator, breast: Breast, density: int) -> np.ndarray:
    """Breast tissue brightness (float32, ~0.3 fat to ~0.7 pectoral) before skin fall-off.

    Fibroglandular tissue is multi-scale noise thresholded so that it covers
    ``GLAND_FRACTION[density]`` of the breast, preferring deep tissue over the skin zone.
    """
    rows, cols = breast.mask.shape
    texture = (0.55 * smooth_noise(rng, (rows, cols), 0.08 * rows, 2.0)
               + 0.35 * smooth_noise(rng, (rows, cols), 0.03 * rows, 2.5)
               + 0.25 * smooth_noise(rng, (rows, cols), 0.012 * rows, 1.5))
    # Glandular tissue fills the middle of the breast behind the nipple; fat lines the skin.
    depth = np.clip(breast.skin_distance / (0.6 * max(float(breast.skin_distance.max()), 1.0)), 0, 1)
    gland_score = texture + 1.5 * depth
    inside = gland_score[breast.mask][::7]  # a subsample is enough for a quantile
    threshold = np.quantile(inside, 1 - GLAND_FRACTION[density]) if inside.size else 0.0
    gland = 1 / (1 + np.exp(-(gland_score - threshold) / 0.5))
    # Ridged noise (bright where the noise crosses zero) draws a network of thin fibrous strands.
    strands = np.clip(1 - np.abs(smooth_noise(rng, (rows, cols), 0.02 * rows, 3.0)), 0, 1)
    strands *= strands
    strands *= strands * strands  # ** 6, without float pow
    fine = smooth_noise(rng, (rows, cols), 0.004 * rows)
    tissue = (rng.uniform(0.28, 0.34) + rng.uniform(0.22, 0.30) * gland
              + 0.05 * strands * (0.4 + gland) + 0.015 * fine)
    if breast.pectoral.any():
        soft = cv2.GaussianBlur(breast.pectoral.astype(np.float32), (0, 0), max(1.0, 0.004 * rows))
        muscle = rng.uniform(0.6, 0.7) + 0.03 * texture
        tissue = tissue * (1 - soft) + muscle * soft
    return tissue.astype(np.float32)


def draw_vessels(rng: np.random.Generator, tissue: np.ndarray, breast: Breast) -> None:
    """Add 2-5 faint winding vessels from the chest wall toward the nipple to ``tissue`` (in place).

    They look like spicules to a naive detector, which keeps the lesion task honest.
    """
    rows, cols = tissue.shape
    layer = np.zeros_like(tissue)
    rows_with_breast = np.flatnonzero(breast.width > 0.3 * breast.width.max())
    thickness = max(1, round(0.0015 * rows))
    for _ in range(int(rng.integers(2, 6))):
        r = float(rng.choice(rows_with_breast))
        steps = 12
        cols_along = np.linspace(0, 0.85 * breast.width[int(r)], steps)
        rows_along = r + np.cumsum(rng.normal(0, 0.012 * rows, steps))
        points = np.stack([cols_along, rows_along], axis=1)  # cv2 wants (x, y) = (col, row)
        cv2.polylines(layer, [np.round(points * 8).astype(np.int32)], False, float(rng.uniform(0.02, 0.045)),
                      thickness, cv2.LINE_AA, shift=3)
    tissue += cv2.GaussianBlur(layer, (0, 0), 0.7 * thickness) * breast.mask


def expose_film(rng: np.random.Generator, tissue: np.ndarray, breast: Breast) -> np.ndarray:
    """The film: dark mottled background, the breast thinning to about a third of its brightness at the skin."""
    rows, cols = tissue.shape
    x = np.clip(breast.skin_distance * (1 / breast.falloff_px), 0, 1)
    ramp = x * (2 - x)  # rises steeply at the skin and levels off inside
    breast_image = tissue * (0.35 + 0.65 * ramp)
    background = rng.uniform(0.025, 0.05) + 0.008 * smooth_noise(rng, (rows, cols), 0.2 * rows)
    edge = cv2.GaussianBlur(breast.mask.astype(np.float32), (0, 0), max(0.7, 0.001 * rows))
    return background + edge * (breast_image - background)


# ---- scanner artefacts (drawn in the final orientation) -----------------------------------------
def add_scanner_labels(rng: np.random.Generator, image: np.ndarray, breast_mask: np.ndarray) -> None:
    """Draw 1-2 bright label rectangles with dark text outside the breast (in place).

    A label that finds no free spot in 50 tries is left out (a breast filling the film).
    """
    rows, cols = image.shape
    gap = max(2, int(0.02 * rows))
    for _ in range(int(rng.integers(1, 3))):
        h, w = int(rng.uniform(0.035, 0.07) * rows), int(rng.uniform(0.12, 0.25) * cols)
        for _ in range(50):
            top, left = int(rng.integers(0, rows - h)), int(rng.integers(0, cols - w))
            if not breast_mask[max(0, top - gap):top + h + gap, max(0, left - gap):left + w + gap].any():
                break
        else:
            continue
        image[top:top + h, left:left + w] = rng.uniform(0.8, 0.95)
        _draw_label_text(rng, image, top, left, h, w)


def _draw_label_text(rng: np.random.Generator, image: np.ndarray, top: int, left: int, h: int, w: int) -> None:
    """Dark random letters fitted into the label box (rows top..top+h, cols left..left+w), in place."""
    letters = "".join(rng.choice(list("ABCDEFGHKLMNPRSTUVWXYZ0123456789"), size=int(rng.integers(3, 8))))
    thickness = max(1, round(h / 12))
    (tw, th), _ = cv2.getTextSize(letters, cv2.FONT_HERSHEY_SIMPLEX, 1.0, thickness)
    scale = min(0.6 * h / th, 0.9 * w / tw)  # text size is linear in scale
    (tw, th), _ = cv2.getTextSize(letters, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    ink = np.zeros((h, w), np.uint8)  # putText only draws on 8-bit images
    cv2.putText(ink, letters, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness,
                cv2.LINE_AA)
    box = image[top:top + h, left:left + w]
    box += (ink.astype(np.float32) / 255) * (rng.uniform(0.05, 0.2) - box)


def add_border_strips(rng: np.random.Generator, image: np.ndarray) -> None:
    """Bright strips along some image edges, like the film border of a scan (in place)."""
    rows, cols = image.shape
    for edge in ("top", "bottom", "left", "right"):
        if rng.random() >= 0.35:
            continue
        along_rows = edge in ("top", "bottom")
        width = max(1, int(rng.uniform(0.003, 0.015) * (rows if along_rows else cols)))
        strip = {"top": np.s_[:width, :], "bottom": np.s_[-width:, :], "left": np.s_[:, :width],
                 "right": np.s_[:, -width:]}[edge]
        image[strip] = rng.uniform(0.85, 1.0)


def add_film_grain(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Image plus white film/scanner grain, clipped to [0, 1]."""
    grain = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(0.004, 0.008))
    return np.clip(image + grain, 0, 1)


def to_uint16(image: np.ndarray) -> np.ndarray:
    """[0, 1] float brightness to the 0-65535 range of a 16-bit scan."""
    return np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)


# ---- lesions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LesionPatch:
    """A lesion drawn on its own small canvas centred on the lesion.

    ``intensity``: (h, w) float32 brightness to add to the tissue (fraction of full scale, >= 0).
    ``roi``: (h, w) bool region an annotator outlines (the ROI mask).
    """

    intensity: np.ndarray
    roi: np.ndarray

    @property
    def footprint(self) -> np.ndarray:
        """Every pixel the lesion touches visibly (brightness > 0.005) or by its ROI."""
        return self.roi | (self.intensity > 0.005)


def polar_outline(radius: float, aspect: float, rotation: float,
                  harmonics: Sequence[tuple[int, float, float]], n: int = 256) -> np.ndarray:
    """Closed outline as (n, 2) float (x, y) = (col, row) offsets from the centre, in pixels.

    Radius ``radius * (1 + sum(amp * cos(k * theta + phase)))`` over ``harmonics`` (k, amp,
    phase), stretched to ``aspect`` (long/short axis, area kept) and rotated by ``rotation`` rad.
    """
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones_like(theta)
    for k, amp, phase in harmonics:
        r += amp * np.cos(k * theta + phase)
    r = radius * np.maximum(r, 0.3)
    x, y = r * np.cos(theta) * math.sqrt(aspect), r * np.sin(theta) / math.sqrt(aspect)
    c, s = math.cos(rotation), math.sin(rotation)
    return np.stack([c * x - s * y, s * x + c * y], axis=1)


def _unit(angle: float) -> np.ndarray:
    """(x, y) unit vector at ``angle`` radians (x = columns, y = rows, so angles turn clockwise on screen)."""
    return np.array([math.cos(angle), math.sin(angle)])


def _harmonics(rng: np.random.Generator, orders: Sequence[int], amplitude: tuple[float, float]):
    return [(k, rng.uniform(*amplitude), rng.uniform(0, 2 * np.pi)) for k in orders]


def _fill_polygon(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Bool (rows, cols) raster of a polygon given as (x, y) pixel points, sub-pixel accurate."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def draw_mass(rng: np.random.Generator, shape: str, margins: str, radius: float, contrast: float,
              rotation: float) -> LesionPatch:
    """A mass of ``radius`` pixels: outline from ``shape``, edge and spicules from ``margins``.

    The body is a dense dome (brightest in the centre) with the edge blurred by MARGIN_BLUR;
    spiculated masses and architectural distortions get thin radiating lines that taper out to
    0.6-1.7 radii beyond the edge. The ROI is the outline, spicules excluded (as annotated).
    """
    aspect_range, orders, amplitude = MASS_OUTLINE[shape]
    harmonics = _harmonics(rng, orders, amplitude)
    if margins == "MICROLOBULATED":
        harmonics += _harmonics(rng, *MICROLOBULATION)
    distortion = shape == "ARCHITECTURAL_DISTORTION"  # a faint small centre, mostly spicules
    outline = polar_outline(radius * (0.6 if distortion else 1.0), rng.uniform(*aspect_range), rotation, harmonics)
    spicules = _spicules(rng, outline, radius) if distortion or margins == "SPICULATED" else []
    blur = max(0.6, MARGIN_BLUR[margins] * radius)
    reach = max([np.abs(outline).max(), *(np.abs(s).max() for s in spicules)])
    half = math.ceil(reach + 3 * blur + 2)
    size = (2 * half + 1, 2 * half + 1)
    core = _fill_polygon(size, outline + half)
    dome = cv2.distanceTransform(core.astype(np.uint8), cv2.DIST_L2, 5)
    dome = (dome / max(float(dome.max()), 1e-6)) ** 0.35
    body = cv2.GaussianBlur(dome, (0, 0), blur) * (1 + 0.15 * smooth_noise(rng, size, 0.25 * radius))
    intensity = (0.45 if distortion else 1.0) * contrast * body
    if spicules:
        intensity += 0.7 * contrast * _draw_spicules(size, spicules, half, radius)
    return LesionPatch(np.maximum(intensity, 0).astype(np.float32), core)


def _spicules(rng: np.random.Generator, outline: np.ndarray, radius: float) -> list[np.ndarray]:
    """12-27 spicules leaving the outline outward, each a (5, 2) polyline of (x, y) offsets that
    bends a little at every joint."""
    spicules = []
    for _ in range(int(rng.integers(12, 28))):
        start = outline[int(rng.integers(len(outline)))] * 0.85  # rooted just inside the edge
        angle = math.atan2(start[1], start[0]) + rng.normal(0, 0.15)
        step = radius * rng.uniform(0.6, 1.7) / 4
        points = [start]
        for _ in range(4):
            angle += rng.normal(0, 0.1)
            points.append(points[-1] + step * _unit(angle))
        spicules.append(np.array(points))
    return spicules


def _draw_spicules(size: tuple[int, int], spicules: Sequence[np.ndarray], half: int, radius: float) -> np.ndarray:
    """Spicules on a (size) float32 canvas, tapering from brightness 1 and full width at the root
    to 0.25 and a third of the width at the tip; ``half`` is the canvas centre."""
    layer = np.zeros(size, np.float32)
    width = max(1.0, 0.045 * radius)
    for points in spicules:
        ends = np.round((points + half) * 8).astype(int)  # cv2 fixed point, 3 fractional bits
        for i, level in enumerate((1.0, 0.75, 0.5, 0.25)):
            cv2.line(layer, tuple(ends[i]), tuple(ends[i + 1]), level, max(1, round(width * (1 - i / 4.5))),
                     cv2.LINE_AA, shift=3)
    return cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.015 * radius))


def draw_calcification_cluster(rng: np.random.Generator, calc_type: str, distribution: str, radius: float,
                               contrast: float, rotation: float, speck_px: float) -> LesionPatch:
    """Bright specks of ``calc_type`` scattered over a region shaped by ``distribution``.

    ``radius`` (pixels) sizes the region, ``speck_px`` (pixels) the specks. The ROI is the
    region grown by the largest speck, so it covers every speck.
    """
    aspect = rng.uniform(*CALC_REGION[distribution][1])
    outline = polar_outline(radius, aspect, rotation, _harmonics(rng, (2, 3, 4), (0.0, 0.12)))
    (lo, hi), (r_lo, r_hi), brightness = CALC_SPECKS[calc_type]
    grow = math.ceil(3 * r_hi * speck_px)
    half = math.ceil(np.abs(outline).max()) + grow + 3
    size = (2 * half + 1, 2 * half + 1)
    region = _fill_polygon(size, outline + half)
    inside = np.argwhere(region)  # (row, col) candidates for speck centres
    canvas = np.zeros(size, np.float32)
    for row, col in inside[rng.choice(len(inside), size=int(rng.integers(lo, hi + 1)))]:
        _draw_speck(rng, canvas, calc_type, (col, row), speck_px * rng.uniform(r_lo, r_hi),
                    contrast * brightness * rng.uniform(0.7, 1.0), rotation)
    psf = (0.8 if calc_type == "AMORPHOUS" else 0.35) * speck_px  # amorphous specks are hazy
    intensity = cv2.GaussianBlur(canvas, (0, 0), max(0.4, psf))
    roi = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    return LesionPatch(intensity, roi.astype(bool))


def _draw_speck(rng: np.random.Generator, canvas: np.ndarray, calc_type: str, centre: tuple[float, float],
                radius: float, value: float, rotation: float) -> None:
    """One calcification of ``calc_type`` at ``centre`` (x, y), ``radius`` pixels, on ``canvas`` in place."""
    def px(points) -> np.ndarray:  # to cv2's fixed point (3 fractional bits)
        return np.round(np.asarray(points) * 8).astype(np.int32)

    centre = np.asarray(centre, float)
    if calc_type == "PLEOMORPHIC":  # irregular little polygons of varying size
        n = int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = radius * rng.uniform(0.5, 1.2, n)
        points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [px(points)], value, cv2.LINE_AA, shift=3)
    elif calc_type == "FINE_LINEAR_BRANCHING":  # thin line cast along the region's axis, one branch
        angle = rotation + rng.normal(0, 0.5)
        step = radius * rng.uniform(3, 7)
        points = [centre]
        for _ in range(int(rng.integers(2, 5))):
            angle += rng.normal(0, 0.35)
            points.append(points[-1] + step * _unit(angle))
        thickness = max(1, round(radius))
        cv2.polylines(canvas, [px(points)], False, value, thickness, cv2.LINE_AA, shift=3)
        fork = points[int(rng.integers(1, len(points)))]
        branch_angle = angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.0)
        cv2.line(canvas, tuple(px(fork)), tuple(px(fork + step * _unit(branch_angle))), value, thickness, cv2.LINE_AA,
                 shift=3)
    else:  # round specks; a lucent-centred one has a dark core
        cv2.circle(canvas, tuple(px(centre)), int(round(radius * 8)), value, -1, cv2.LINE_AA, shift=3)
        if calc_type == "LUCENT_CENTER":
            cv2.circle(canvas, tuple(px(centre)), int(round(radius * 0.55 * 8)), 0.3 * value, -1, cv2.LINE_AA, shift=3)


def draw_lesion(lesion: Lesion, rows: int, rotation: float, scale: float) -> LesionPatch:
    """The lesion as seen in one view: same outline in every view (``shape_seed``), turned by
    ``rotation`` radians and scaled by ``scale`` for this view; ``rows`` is the image height."""
    rng = np.random.default_rng(lesion.shape_seed)
    radius = lesion.size * rows * scale
    if lesion.kind == "mass":
        return draw_mass(rng, *lesion.descriptors, radius, lesion.contrast, rotation)
    speck_px = max(1.0, SPECK_UNIT * rows)
    return draw_calcification_cluster(rng, *lesion.descriptors, radius, lesion.contrast, rotation, speck_px)


def place_patch(rng: np.random.Generator, footprint: np.ndarray, depth: float, breast: Breast,
                allowed: np.ndarray, tries: int = 60) -> tuple[int, int] | None:
    """(top, left) pixel position where every ``footprint`` pixel lands on ``allowed``, or None.

    Candidates sit at about ``depth`` of the breast's reach on random rows, wandering further
    from that depth as tries fail.
    """
    rows, cols = allowed.shape
    h, w = footprint.shape
    candidate_rows = np.flatnonzero(breast.width > 0.3 * breast.width.max())
    for attempt in range(tries):
        r = int(rng.choice(candidate_rows))
        spread = 0.05 + 0.3 * attempt / tries
        c = float(np.clip(depth + rng.normal(0, spread), 0.1, 0.95)) * breast.width[r]
        top, left = int(round(r - h / 2)), int(round(c - w / 2))
        if top < 0 or left < 0 or top + h > rows or left + w > cols:
            continue
        if allowed[top:top + h, left:left + w][footprint].all():
            return top, left
    return None


@dataclass(frozen=True)
class PlacedLesion:
    """A lesion patch at (top, left) pixel offset in the full image."""

    top: int
    left: int
    patch: LesionPatch

    def mirrored(self, cols: int) -> PlacedLesion:
        """The same lesion in the image flipped left-right (``cols`` = image width)."""
        w = self.patch.roi.shape[1]
        flipped = LesionPatch(self.patch.intensity[:, ::-1], self.patch.roi[:, ::-1])
        return PlacedLesion(self.top, cols - self.left - w, flipped)


def place_lesions(rng: np.random.Generator, lesions: Sequence[Lesion], breast: Breast) -> list[PlacedLesion]:
    """Draw and place each lesion inside the breast, clear of the skin zone, the pectoral muscle,
    the image edges and each other; a lesion that does not fit is redrawn smaller."""
    rows, cols = breast.mask.shape
    margin = max(2, int(0.03 * min(rows, cols)))  # film border strips never cover a lesion
    allowed = breast.mask & (breast.skin_distance >= max(0.5 * breast.falloff_px, 0.02 * rows))
    allowed &= ~cv2.dilate(breast.pectoral.astype(np.uint8), np.ones((margin, margin), np.uint8)).astype(bool)
    allowed[:margin], allowed[-margin:], allowed[:, :margin], allowed[:, -margin:] = False, False, False, False
    gap = np.ones((margin, margin), np.uint8)
    placed = []
    for lesion in lesions:
        # each view sees the lesion slightly turned and magnified
        rotation, scale = lesion.rotation + rng.normal(0, 0.3), rng.uniform(0.92, 1.08)
        for shrink in SHRINK_STEPS:
            patch = draw_lesion(lesion, rows, rotation, scale * shrink)
            position = place_patch(rng, patch.footprint, lesion.depth, breast, allowed)
            if position is not None:
                break
        else:
            raise RuntimeError(f"no room for a {lesion.kind} in a {rows}x{cols} breast")  # SHRINK_STEPS too short
        top, left = position
        h, w = patch.roi.shape
        taken = cv2.dilate(patch.footprint.astype(np.uint8), gap).astype(bool)
        allowed[top:top + h, left:left + w] &= ~taken  # keep lesions apart
        placed.append(PlacedLesion(top, left, patch))
    return placed


# ---- one mammogram ------------------------------------------------------------------------------
def render_mammogram(plan: ImagePlan, seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, list[PlacedLesion]]:
    """The full 16-bit image (rows, cols) and its lesions in image coordinates, from ``(seed, plan.index)``."""
    rng = generator(seed, _IMAGE_STREAM, plan.index)
    breast = draw_breast_outline(rng, shape, plan.view)
    tissue = draw_tissue(rng, breast, plan.density)
    draw_vessels(rng, tissue, breast)
    placed = place_lesions(rng, plan.lesions, breast)
    for p in placed:
        h, w = p.patch.intensity.shape
        tissue[p.top:p.top + h, p.left:p.left + w] += p.patch.intensity
    image = expose_film(rng, tissue, breast)
    breast_mask = breast.mask
    if plan.laterality == "RIGHT":  # RIGHT breasts have the chest wall on the right edge
        image, breast_mask = image[:, ::-1].copy(), breast_mask[:, ::-1]
        placed = [p.mirrored(shape[1]) for p in placed]
    add_scanner_labels(rng, image, breast_mask)
    add_border_strips(rng, image)
    return to_uint16(add_film_grain(rng, image)), placed


def roi_mask(placed: PlacedLesion, shape: tuple[int, int]) -> np.ndarray:
    """Full-size uint8 mask (rows, cols): 255 on the lesion's ROI, 0 elsewhere."""
    mask = np.zeros(shape, np.uint8)
    h, w = placed.patch.roi.shape
    mask[placed.top:placed.top + h, placed.left:placed.left + w][placed.patch.roi] = 255
    return mask


def crop_lesion(image: np.ndarray, placed: PlacedLesion) -> np.ndarray:
    """The ROI's bounding box plus a 15% (at least 2 px) margin, cut from ``image``."""
    box = mask_box(placed.patch.roi)
    top, bottom = placed.top + box.row0, placed.top + box.row1
    left, right = placed.left + box.col0, placed.left + box.col1
    margin = max(2, int(0.15 * max(bottom - top, right - left)))
    return image[max(0, top - margin):bottom + margin, max(0, left - margin):right + margin].copy()


def write_image_files(plan: ImagePlan, out_dir: Path, seed: int, shape: tuple[int, int]) -> int:
    """Render one mammogram and write its full image, ROI masks and crops; returns ``plan.index``."""
    image, placed = render_mammogram(plan, seed, shape)
    header = functools.partial(DicomHeader, laterality=plan.laterality, view=plan.view)
    write_dicom(out_dir / plan.nbia_dir / "000000.dcm", image,
                header(plan.folder, plan.study_uid, plan.series_uid, _uid(seed, plan.folder, "sop", 0),
                       SERIES_FULL, plan.study_date, 1))
    for roi, lesion in zip(plan.rois, placed, strict=True):
        contents = {roi.mask_file: (roi_mask(lesion, shape), SERIES_ROI_MASK),
                    1 - roi.mask_file: (crop_lesion(image, lesion), SERIES_CROP)}
        for number, (pixels, description) in sorted(contents.items()):
            write_dicom(out_dir / roi.nbia_dirs[number] / f"{number:06d}.dcm", pixels,
                        header(roi.folder, roi.study_uid, roi.series_uid, _uid(seed, roi.folder, "sop", number),
                               description, roi.study_date, number + 1))
    return plan.index


# ---- DICOM --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DicomHeader:
    """The identifying DICOM fields of one CBIS-DDSM file (TCIA sets PatientID to the series folder)."""

    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    series_description: str
    study_date: str  # YYYYMMDD
    instance_number: int
    laterality: str  # "LEFT" | "RIGHT"
    view: str  # "CC" | "MLO"


def write_dicom(target: Path, pixels: np.ndarray, header: DicomHeader) -> None:
    """Write a 2-D uint16 (image, crop) or uint8 (mask) array as a CBIS-DDSM-style DICOM, atomically.

    Secondary Capture, Implicit VR Little Endian, MONOCHROME2, unsigned, bits = dtype bits.
    """
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_dicom expects a 2-D uint8/uint16 array, got {pixels.dtype} {pixels.shape}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = header.sop_uid
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = header.sop_uid
    ds.StudyDate = header.study_date
    ds.Modality = "MG"
    ds.ConversionType = "WSD"
    ds.SeriesDescription = header.series_description
    ds.PatientName = header.patient_id
    ds.PatientID = header.patient_id
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID = header.study_uid
    ds.SeriesInstanceUID = header.series_uid
    ds.StudyID = "DDSM"
    ds.SeriesNumber = 1
    ds.InstanceNumber = header.instance_number
    ds.PatientOrientation = header.view
    ds.Laterality = header.laterality[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.SmallestImagePixelValue, ds.LargestImagePixelValue = int(pixels.min()), int(pixels.max())
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
