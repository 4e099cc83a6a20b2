"""CBIS-DDSM CSV parsing, on the real official CSVs (skipped when absent) and on bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mammocad.data.cbis_ddsm import read_case_csv, read_case_csvs
from mammocad.data.records import RecordTable
from mammocad.data.splits import image_split, patient_split
from mammocad.data.stats import split_statistics
from mammocad.utils.errors import DataError


@pytest.mark.parametrize(
    "name, rows, pathology",
    [
        ("mass_case_description_train_set.csv", 1318, (637, 577, 104)),
        ("mass_case_description_test_set.csv", 378, (147, 194, 37)),
        ("calc_case_description_train_set.csv", 1546, (544, 528, 474)),
        ("calc_case_description_test_set.csv", 326, (129, 130, 67)),
    ],
)
def test_real_csv_row_counts(cbis_csv_dir: Path, name: str, rows: int, pathology: tuple[int, int, int]):
    frame = read_case_csv(cbis_csv_dir / name)
    assert len(frame) == rows
    counts = frame["pathology"].value_counts()
    assert (counts["MALIGNANT"], counts["BENIGN"], counts["BENIGN_WITHOUT_CALLBACK"]) == pathology
    # both density spellings end up in one column; the quoted trailing newline is stripped
    assert "breast_density" in frame.columns
    assert not frame["ROI mask file path"].str.contains("\n").any()
    assert frame["ROI mask file path"].str.endswith(".dcm").all()


def test_real_csvs_to_records(cbis_csv_dir: Path):
    table = read_case_csvs(cbis_csv_dir)
    assert len(table.abnormalities) == 3568
    assert len(table.images) == 3103  # the mammogram count the TFDS builder documents
    assert len(table.patients()) == 1566
    first = table.abnormalities[0]
    assert first.key == "Mass-Training_P_00001_LEFT_CC_1"
    assert first.mass_margins == "SPICULATED" and first.calc_type is None
    # the frame round trip keeps every field
    again = RecordTable.from_frames(table.images_frame(), table.abnormalities_frame())
    assert again.abnormalities[:50] == table.abnormalities[:50]
    assert again.images[:50] == table.images[:50]


def test_tfds_split_reproduces_the_builders_statistics(cbis_csv_dir: Path):
    """The TFDS builder documents its split of the official CSVs; the paper's Table 9 comes from it."""
    table = read_case_csvs(cbis_csv_dir)
    stats = split_statistics(table, image_split(table, "tfds")).set_index("split")
    assert stats.loc["test", ["patients", "mammograms", "abnormalities"]].tolist() == [234, 450, 538]
    assert stats.loc["train", ["patients", "mammograms", "abnormalities"]].tolist() == [1197, 2386, 2722]
    assert stats.loc["val", ["patients", "mammograms", "abnormalities"]].tolist() == [135, 267, 308]
    assert stats.loc["test", "abnormalities_malignant_pct"] == 39.8
    assert stats.loc["all", "patients_malignant_pct"] == 48.0


def test_official_split_keeps_patients_whole(cbis_csv_dir: Path):
    table = read_case_csvs(cbis_csv_dir)
    split = patient_split(table, "official", seed=0)
    per_image = image_split(table, "official", seed=0)
    seen: dict[str, set[str]] = {}
    for im in table.images:
        seen.setdefault(im.patient_id, set()).add(per_image[im.image_id])
    assert all(len(s) == 1 for s in seen.values())
    # every official-test image stays in test; val is ~10% of the training patients
    assert all(per_image[im.image_id] == "test" for im in table.images if im.official_split == "test")
    n_train, n_val = sum(v == "train" for v in split.values()), sum(v == "val" for v in split.values())
    assert abs(n_val / (n_train + n_val) - 0.1) < 0.01


@pytest.fixture(params=["real", "synthetic"])
def csv_dir(request) -> Path:
    """The official CSVs, or the synthetic generator's copy of their format (runs without ../shared)."""
    if request.param == "real":
        return request.getfixturevalue("cbis_csv_dir")
    return request.getfixturevalue("synth_small") / "csv"


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_unknown_column_is_one_clear_error(csv_dir: Path, tmp_path: Path):
    frame = pd.read_csv(csv_dir / "mass_case_description_test_set.csv", dtype=str).head(3)
    bad = _write_csv(tmp_path / "mass_case_description_test_set.csv", frame.rename(columns={"subtlety": "subtle"}))
    with pytest.raises(DataError) as err:
        read_case_csv(bad)
    message = str(err.value)
    assert str(bad) in message and "'subtle'" in message and "'subtlety'" in message and "\n" not in message


def test_bad_value_names_file_and_line(csv_dir: Path, tmp_path: Path):
    frame = pd.read_csv(csv_dir / "calc_case_description_test_set.csv", dtype=str).head(3)
    frame.loc[1, "pathology"] = "MAYBE"
    _write_csv(tmp_path / "calc_case_description_test_set.csv", frame)
    with pytest.raises(DataError, match=r"calc_case_description_test_set.csv: line 3: 'MAYBE'"):
        read_case_csvs(tmp_path)


def test_missing_csvs(tmp_path: Path):
    with pytest.raises(DataError, match="no CBIS-DDSM case-description CSV"):
        read_case_csvs(tmp_path)
    with pytest.raises(DataError, match="CSV file not found"):
        read_case_csv(tmp_path / "nope.csv")


def test_subset_of_csvs_is_fine(cbis_csv_dir: Path, tmp_path: Path):
    shutil.copy(cbis_csv_dir / "calc_case_description_test_set.csv", tmp_path)
    table = read_case_csvs(tmp_path)
    assert len(table.abnormalities) == 326
    assert {a.abnormality_type.value for a in table.abnormalities} == {"calcification"}


def test_invalid_utf8_names_file_and_line(csv_dir: Path, tmp_path: Path):
    """A CSV saved in another encoding: one line naming the file, the line and the column."""
    lines = (csv_dir / "mass_case_description_train_set.csv").read_bytes().split(b"\n")
    n = next(i for i, line in enumerate(lines) if i >= 5 and line.startswith(b"P_"))  # a row's first line
    lines[n] = b"P_\xe9" + lines[n][3:]  # a latin-1 e-acute in the patient id: line n + 1, column 3
    bad = tmp_path / "mass_case_description_train_set.csv"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as err:
        read_case_csvs(tmp_path)
    message = str(err.value)
    assert message.startswith(str(bad)) and f"line {n + 1}, column 3: byte 0xe9" in message and "UTF-8" in message
    assert "\n" not in message
