"""predict: regions found on the prepared image come back onto the lesion in original pixels; JSON, overlay, SEG."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
import torch

from mammocad.data.synthetic import DicomHeader, write_dicom
from mammocad.infer.bundle import Bundle, write_bundle
from mammocad.infer.config import PredictConfig
from mammocad.infer.predict import predict_batch
from mammocad.models import build_classifier
from mammocad.patches.config import LargeContextConfig
from mammocad.preprocess.config import PreprocessConfig
from mammocad.preprocess.pipeline import preprocess
from mammocad.segment.instances import Instances
from mammocad.utils.geometry import mask_box

ROWS, COLS = 300, 220
LESION = (100, 150, 131, 176)  # row0, col0, row1, col1 in original pixels (exclusive ends)


class BrightRegions:
    """A deterministic test segmenter: every connected region above 90% of the image's maximum is a lesion."""

    def predict(self, image: np.ndarray, breast: np.ndarray) -> Instances:
        count, labels = cv2.connectedComponents(((image > 0.9 * image.max()) & (breast > 0)).view(np.uint8))
        n = count - 1  # label 0 is the background
        masks = np.stack([labels == k for k in range(1, count)]) if n else np.zeros((0, *image.shape), bool)
        boxes = np.array([mask_box(m).xyxy() for m in masks], np.float32).reshape(-1, 4)
        return Instances(masks, np.ones(n, np.float32), boxes, np.ones(n, np.int64))


def mammogram() -> np.ndarray:
    """A breast against the RIGHT edge (so preprocessing flips it), empty top/bottom rows (cropped), taller
    than wide (padded), with one bright rectangular lesion at LESION."""
    rng = np.random.default_rng(0)
    image = np.zeros((ROWS, COLS), np.uint16)
    rows, cols = np.mgrid[:ROWS, :COLS]
    breast = ((rows - 150) / 125.0) ** 2 + ((cols - COLS) / 150.0) ** 2 <= 1.0
    image[breast] = 20000 + rng.integers(0, 3000, breast.sum())
    row0, col0, row1, col1 = LESION
    image[row0:row1, col0:col1] = 60000
    return image


def tiny_bundle(path: Path, size: int | None = None) -> Path:
    """A classifier bundle built directly (random weights): the region pipeline, not the model, is under test."""
    torch.manual_seed(0)
    model = build_classifier("medical_cnn", 2, dropout=0.0)
    bundle = Bundle(kind="classifier", architecture="medical_cnn",
                    options={"num_classes": 2, "dropout": 0.0, "input_norm": None}, state_dict=model.state_dict(),
                    task="benign_malignant", class_names=("BENIGN", "MALIGNANT"), input_size=32,
                    preprocess=PreprocessConfig(size=size), patch_kind="large",
                    patch_config=dataclasses.asdict(LargeContextConfig(output_size=48)), metrics={}, threshold=0.0,
                    threshold_source="default", source={"test": True})
    write_bundle(bundle, path)
    return path


def lesion_box_xyxy() -> list[int]:
    row0, col0, row1, col1 = LESION
    return [col0, row0, col1, row1]


@pytest.mark.parametrize("size", [None, 128])
def test_region_maps_back_onto_the_lesion_in_original_pixels(tmp_path: Path, size: int | None):
    image = mammogram()
    geometry = preprocess(image, config=PreprocessConfig(size=size)).geometry
    # the constructed case exercises every step that moves pixels
    assert geometry.flipped and geometry.crop_top > 0 and geometry.padded_shape != geometry.cropped_shape
    path = tmp_path / "case.png"
    cv2.imwrite(str(path), image)
    config = PredictConfig(classifier=tiny_bundle(tmp_path / "c.mcad", size), out=tmp_path / "out", workers=1)
    summary = predict_batch([path], config, segmenter=BrightRegions(), progress=False)
    assert summary.done == 1 and not summary.failures
    result = json.loads((tmp_path / "out" / "case.json").read_text())
    (region,) = result["regions"]
    # one prepared pixel covers padded/output original pixels: the mapping is exact up to that step
    tolerance = 1.0 if size is None else geometry.padded_shape[0] / geometry.output_shape[0]
    assert np.allclose(region["box"], lesion_box_xyxy(), atol=tolerance), (region["box"], lesion_box_xyxy())
    outline = np.asarray(region["outline"][0])  # x, y through boundary pixel centres
    row0, col0, row1, col1 = LESION
    assert np.allclose(outline[:, 0].min(), col0, atol=tolerance) and np.allclose(outline[:, 0].max(), col1 - 1,
                                                                                  atol=tolerance)
    assert np.allclose(outline[:, 1].min(), row0, atol=tolerance) and np.allclose(outline[:, 1].max(), row1 - 1,
                                                                                  atol=tolerance)
    if size is None:  # (resized, the segmenter's threshold also trims the blended edge pixels)
        assert region["area_px"] == (row1 - row0) * (col1 - col0)
    assert region["area_mm2"] is None  # a PNG has no pixel spacing
    assert 0.0 <= region["malignancy_probability"] <= 1.0 and region["suspicious"]  # threshold 0 in the bundle
    assert "not a medical device" in result["disclaimer"].lower()
    assert result["models"]["classifier"]["sha256"] and result["models"]["segmenter"] == {"name": "BrightRegions"}
    overlay = cv2.imread(str(tmp_path / "out" / "case_overlay.png"))
    assert overlay.shape[0] > ROWS and overlay.shape[1] > 2 * COLS  # two panels, regions and Grad-CAM, and a footer
    edge = overlay[row0 - 3:row0 + 4, (col0 + col1) // 2].astype(int)  # across the lesion's top edge
    assert ((edge[:, 2] > 200) & (edge[:, :2] < 80).all(axis=1)).any()  # red outline: above the threshold
    row = pd.read_csv(tmp_path / "out" / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["regions"] == 1 and row["classify_s"] > 0


def write_case_dicom(path: Path) -> DicomHeader:
    header = DicomHeader("Calc-Test_P_00042_RIGHT_MLO", hd.UID(), hd.UID(), hd.UID(), "full mammogram images",
                         "20160101", 1, "RIGHT", "MLO")
    write_dicom(path, mammogram(), header)
    ds = pydicom.dcmread(path)
    ds.PixelSpacing = [0.05, 0.05]
    ds.save_as(path)
    return header


def test_dicom_input_gets_a_seg_referencing_its_source_and_a_bad_file_is_skipped(tmp_path: Path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    header = write_case_dicom(inputs / "case.dcm")
    (inputs / "broken.dcm").write_bytes(b"not a dicom at all")
    config = PredictConfig(classifier=tiny_bundle(tmp_path / "c.mcad"), out=tmp_path / "out", workers=1,
                           gradcam=False)
    summary = predict_batch([inputs], config, segmenter=BrightRegions(), progress=False)

    (failure,) = summary.failures
    assert "broken.dcm" in str(failure) and "DICOM" in failure.problem
    rows = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("name")
    assert rows.loc["broken", "status"] == "failed" and "DICOM" in rows.loc["broken", "problem"]
    assert rows.loc["case", "status"] == "ok"
    assert (rows.loc["case", "patient"], rows.loc["case", "laterality"], rows.loc["case", "view"]) == (
        "P_00042", "RIGHT", "MLO")

    result = json.loads((tmp_path / "out" / "case.json").read_text())
    (region,) = result["regions"]
    assert region["area_mm2"] == pytest.approx(region["area_px"] * 0.05 * 0.05, abs=1e-4)
    seg = hd.seg.segread(tmp_path / "out" / result["files"]["dicom_seg"])
    assert seg.StudyInstanceUID == header.study_uid
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == header.series_uid
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == header.sop_uid
    mask = seg.get_pixels_by_source_instance([header.sop_uid], segment_numbers=[1])[0, ..., 0]
    row0, col0, row1, col1 = LESION
    assert mask.shape[:2] == (ROWS, COLS) and mask[row0:row1, col0:col1].all() and mask.sum() == mask[
        row0:row1, col0:col1].sum()


def test_cli_predict_refuses_before_any_work(tmp_path: Path):
    from test_cli import run  # tests/ is on sys.path

    bundle = tiny_bundle(tmp_path / "c.mcad")
    (tmp_path / "scans").mkdir()
    cv2.imwrite(str(tmp_path / "scans" / "a.png"), mammogram())
    none = run("predict", tmp_path / "scans", "--classifier", bundle, "--out", tmp_path / "out", ok=False)
    assert none.exit_code == 2 and "no region proposals" in none.output and "Traceback" not in none.output
    empty = run("predict", tmp_path / "out-nothing-here", "--classifier", bundle, "--out", tmp_path / "out", ok=False)
    assert empty.exit_code == 2 and "no such file or folder" in empty.output
    assert not (tmp_path / "out").exists()
