"""The official CBIS-DDSM case-description CSV format, as TCIA distributes it.

Four files, 14 columns each. Quirks of the real files that readers must accept and the
synthetic writer reproduces:
- calc CSVs say ``breast density``, mass CSVs ``breast_density``;
- ``ROI mask file path`` (and sometimes ``cropped image file path``) ends with a newline
  inside the quotes;
- paths are UID-style: ``<series folder>/<StudyInstanceUID>/<SeriesInstanceUID>/00000N.dcm``,
  where the series folder is ``Mass-Training_P_00001_LEFT_CC`` for the full mammogram and
  ``Mass-Training_P_00001_LEFT_CC_1`` (abnormality id appended) for the ROI mask and crop;
- in many rows the ROI-mask and cropped-image files are swapped, and ``000000``/``000001`` do
  not say which is which.
"""

from __future__ import annotations

CSV_FILES = {
    # (abnormality type, official split) -> file name
    ("mass", "train"): "mass_case_description_train_set.csv",
    ("mass", "test"): "mass_case_description_test_set.csv",
    ("calcification", "train"): "calc_case_description_train_set.csv",
    ("calcification", "test"): "calc_case_description_test_set.csv",
}

# Series-folder prefix per (type, split): "Mass-Training", "Calc-Test", ...
FOLDER_PREFIX = {
    ("mass", "train"): "Mass-Training",
    ("mass", "test"): "Mass-Test",
    ("calcification", "train"): "Calc-Training",
    ("calcification", "test"): "Calc-Test",
}

MASS_COLUMNS = [
    "patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
    "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
    "image file path", "cropped image file path", "ROI mask file path",
]
CALC_COLUMNS = [
    "patient_id", "breast density", "left or right breast", "image view", "abnormality id",
    "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
    "image file path", "cropped image file path", "ROI mask file path",
]
COLUMNS = {"mass": MASS_COLUMNS, "calcification": CALC_COLUMNS}

# DICOM SeriesDescription values TCIA uses for the three kinds of file.
SERIES_FULL = "full mammogram images"
SERIES_ROI_MASK = "ROI mask images"
SERIES_CROP = "cropped images"
