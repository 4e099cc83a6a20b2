"""Finding CBIS-DDSM files on disk in every layout, and telling ROI masks from crops."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from mammocad.data.cbis_ddsm import FileIndex, classify_roi_files, load_cbis_ddsm, read_case_csvs
from mammocad.data.cbis_ddsm_schema import MASS_COLUMNS, SERIES_CROP, SERIES_FULL, SERIES_ROI_MASK
from mammocad.data.synthetic import DicomHeader, write_dicom
from mammocad.utils.imageio import image_shape, read_image

STUDY, SERIES = "1.3.6.1.4.1.9590.100.1.2.111", "1.3.6.1.4.1.9590.100.1.2.222"
ROI_STUDY, ROI_SERIES = "1.3.6.1.4.1.9590.100.1.2.333", "1.3.6.1.4.1.9590.100.1.2.444"
FULL_FOLDER, ROI_FOLDER = "Mass-Training_P_00007_LEFT_CC", "Mass-Training_P_00007_LEFT_CC_1"


def _pixels() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    full = rng.integers(1000, 60000, (64, 48), dtype=np.uint16)
    mask = np.zeros((64, 48), np.uint8)
    mask[20:30, 10:20] = 255
    crop = full[18:32, 8:22].copy()
    return {"full": full, "mask": mask, "crop": crop}


def _write(path: Path, pixels: np.ndarray, description: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        cv2.imwrite(str(path), pixels)
        return
    write_dicom(path, pixels, DicomHeader(path.parts[-4], STUDY, SERIES, "1.2.3", description, "20160101", 1, "LEFT", "CC"))


def make_case(root: Path, layout: str, suffix: str = ".dcm") -> dict[str, Path]:
    """One mass abnormality written in ``layout``; the CSV swaps crop and mask columns (a real quirk)."""
    px = _pixels()
    csv_full = f"{FULL_FOLDER}/{STUDY}/{SERIES}/000000.dcm"
    csv_a = f"{ROI_FOLDER}/{ROI_STUDY}/{ROI_SERIES}/000000.dcm"  # the CSV calls this the crop...
    csv_b = f"{ROI_FOLDER}/{ROI_STUDY}/{ROI_SERIES}/000001.dcm"  # ...and this the mask; truth: the opposite
    if layout == "uid":
        paths = {"full": root / csv_full, "mask": root / csv_a, "crop": root / csv_b}
    elif layout == "nbia":
        study = "07-20-2016-DDSM-12345"
        paths = {
            "full": root / "CBIS-DDSM" / FULL_FOLDER / study / "1-full mammogram images-11111" / "000000.dcm",
            "mask": root / "CBIS-DDSM" / ROI_FOLDER / study / "1-ROI mask images-22222" / "000000.dcm",
            "crop": root / "CBIS-DDSM" / ROI_FOLDER / study / "1-ROI mask images-22222" / "000001.dcm",
        }
    elif layout == "nbia-misleading-folders":  # folder names say the opposite of the content
        study = "07-20-2016-DDSM-12345"
        paths = {
            "full": root / FULL_FOLDER / study / "1-full mammogram images-11111" / "000000.dcm",
            "mask": root / ROI_FOLDER / study / "1-cropped images-33333" / "000001.dcm",
            "crop": root / ROI_FOLDER / study / "1-ROI mask images-22222" / "000000.dcm",
        }
    else:
        raise ValueError(layout)
    paths = {k: p.with_suffix(suffix) for k, p in paths.items()}
    for kind, description in (("full", SERIES_FULL), ("mask", SERIES_ROI_MASK), ("crop", SERIES_CROP)):
        _write(paths[kind], px[kind], description)
    csv_dir = root / "csv"
    csv_dir.mkdir(parents=True, exist_ok=True)
    with open(csv_dir / "mass_case_description_train_set.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MASS_COLUMNS)
        writer.writerow(["P_00007", "3", "LEFT", "CC", "1", "mass", "OVAL", "CIRCUMSCRIBED", "3", "BENIGN", "4",
                         csv_full, csv_a, csv_b + "\n"])
    return paths


@pytest.mark.parametrize("layout", ["uid", "nbia", "nbia-misleading-folders"])
@pytest.mark.parametrize("suffix", [".dcm", ".png"])
def test_layouts_resolve_and_roles_come_from_content(tmp_path: Path, layout: str, suffix: str):
    truth = make_case(tmp_path, layout, suffix)
    failures = []
    table = load_cbis_ddsm(tmp_path, failures=failures, progress=False)
    assert failures == []
    (image,), (abn,) = table.images, table.abnormalities
    assert image.image_path == truth["full"]
    assert abn.roi_mask_path == truth["mask"] and abn.crop_path == truth["crop"]


def test_missing_and_corrupt_files_are_reported_and_the_rest_resolves(tmp_path: Path):
    good = tmp_path / "good"
    make_case(good, "nbia")
    # a second image whose full mammogram is missing and a third whose mask DICOM is corrupt
    rows = list(csv.reader(open(good / "csv" / "mass_case_description_train_set.csv")))
    for patient in ("P_00008", "P_00009"):
        row = [c.replace("P_00007", patient) for c in rows[1]]
        rows.append(row)
    with open(good / "csv" / "mass_case_description_train_set.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    roi9 = good / "CBIS-DDSM" / ROI_FOLDER.replace("P_00007", "P_00009") / "s" / "1-ROI mask images-1"
    full9 = good / "CBIS-DDSM" / FULL_FOLDER.replace("P_00007", "P_00009") / "s" / "1-full mammogram images-1"
    _write(full9 / "000000.dcm", _pixels()["full"], SERIES_FULL)
    roi9.mkdir(parents=True)
    (roi9 / "000000.dcm").write_bytes(b"not a dicom at all")
    failures = []
    table = load_cbis_ddsm(good, failures=failures, progress=False)
    assert [im.patient_id for im in table.images] == ["P_00007"]
    by_item = {f.item: str(f) for f in failures}
    assert set(by_item) == {"Mass-Training_P_00008_LEFT_CC", "Mass-Training_P_00009_LEFT_CC"}
    assert "not found on disk" in by_item["Mass-Training_P_00008_LEFT_CC"]
    missing9 = by_item["Mass-Training_P_00009_LEFT_CC"]
    assert str(roi9 / "000000.dcm") in missing9 and "not a readable DICOM" in missing9
    assert all("\n" not in m for m in by_item.values())


def test_index_finds_series_at_any_depth(tmp_path: Path):
    make_case(tmp_path / "deep" / "er", "nbia")
    index = FileIndex(tmp_path)
    assert set(index.series) == {FULL_FOLDER, ROI_FOLDER}


def test_real_nbia_samples_are_all_crops(cbis_samples: Path):
    """All three real files are crops, even the two under 'ROI mask images' folders."""
    root = cbis_samples / "tcia-layout"
    index = FileIndex(root)
    assert set(index.series) == {"Mass-Test_P_00016_LEFT_CC_1", "Mass-Test_P_00116_RIGHT_MLO_1",
                                 "Mass-Test_P_00116_RIGHT_MLO_2"}
    full_shapes = {"P_00016": image_shape(cbis_samples / "full-png" / "Mass-Test_P_00016_LEFT_CC_FULL.png"),
                   "P_00116": image_shape(cbis_samples / "full-png" / "Mass-Test_P_00116_RIGHT_MLO_FULL.png")}
    assert full_shapes["P_00016"] == (4006, 1846)
    for folder, path in index.series.items():
        (dcm,) = sorted(path.rglob("*.dcm"))
        mask, crop = classify_roi_files([dcm], full_shapes[folder.split("_")[1] + "_" + folder.split("_")[2]])
        assert mask is None and crop == dcm
        pixels = read_image(dcm)
        assert pixels.dtype == np.uint16 and np.unique(pixels).size > 100


def test_real_csv_paths_find_real_nbia_files(cbis_csv_dir: Path, cbis_samples: Path):
    """The real CSV's UID paths lead to the real NBIA-layout files through the series folder."""
    table = read_case_csvs(cbis_csv_dir)
    index = FileIndex(cbis_samples / "tcia-layout")
    abn = next(a for a in table.abnormalities if a.key == "Mass-Test_P_00016_LEFT_CC_1")
    (found,) = index.files_for(abn.crop_path)
    assert found.name == "000001.dcm" and "Mass-Test_P_00016_LEFT_CC_1" in found.parts


def test_binary_png_mask_without_full_size_match(tmp_path: Path):
    """A mask a few pixels off the full image's size (it happens in CBIS-DDSM) is still told apart."""
    px = _pixels()
    mask_path, crop_path = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(mask_path), px["mask"][:-3])
    cv2.imwrite(str(crop_path), px["crop"])
    assert classify_roi_files([crop_path, mask_path], (64, 48)) == (mask_path, crop_path)
