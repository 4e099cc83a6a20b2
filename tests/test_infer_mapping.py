"""Masks between pixel grids: the box-wise original-grid resampling (DICOM SEG) and between two preprocessings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mammocad.infer.dicom_seg import write_dicom_seg
from mammocad.infer.mapping import between_grids, content_window, masks_to_input_grid, masks_to_input_labels, to_input_grid
from mammocad.preprocess.config import PreprocessConfig
from mammocad.preprocess.pipeline import preprocess
from mammocad.utils.geometry import dice
from mammocad.utils.imageio import read_dicom_header
from test_infer_predict import LESION, mammogram, write_case_dicom


@pytest.mark.parametrize("size", [None, 128, 640])  # as is, downscaled, upscaled
def test_masks_to_input_grid_is_the_stacked_full_resampling(size: int | None):
    geometry = preprocess(mammogram(), config=PreprocessConfig(size=size)).geometry
    assert geometry.flipped and geometry.crop_top > 0  # every step that moves pixels
    rng = np.random.default_rng(0)
    masks = np.zeros((4, *geometry.output_shape), bool)
    rows, cols = geometry.output_shape
    for k, (r, c) in enumerate([(0, 0), (rows // 3, cols // 2), (rows - 9, cols - 7)]):  # corners: crop and padding
        masks[k, r:r + 9, c:c + 7] = rng.random((min(9, rows - r), min(7, cols - c))) > 0.3
    # masks[2] lies in the square padding (nothing of the image: maps to nothing), masks[3] is empty
    got = masks_to_input_grid(masks, geometry)
    expected = np.stack([to_input_grid(m, geometry) for m in masks])
    assert got.shape == (4, *geometry.input_shape) and np.array_equal(got, expected) and got[:2].any(axis=(1, 2)).all()
    labels = masks_to_input_labels(masks, geometry)  # the masks do not overlap: one label map holds them
    assert labels.dtype == np.uint8 and np.array_equal(labels, (expected * np.arange(1, 5)[:, None, None]).sum(axis=0))
    overlapping = np.concatenate([masks, masks[1:2]])
    assert masks_to_input_labels(overlapping, geometry) is None


def test_dicom_seg_from_a_label_map_is_the_seg_from_the_stacked_masks(tmp_path: Path):
    import highdicom as hd

    header = write_case_dicom(tmp_path / "case.dcm")
    source = read_dicom_header(tmp_path / "case.dcm")
    masks = np.zeros((2, *mammogram().shape), bool)
    masks[0, 10:20, 30:50] = masks[1, 100:140, 60:70] = True
    label_map = (masks * np.array([1, 2])[:, None, None]).sum(axis=0).astype(np.uint8)
    pixels = []
    for name, segments in (("stack", masks), ("labels", label_map)):
        write_dicom_seg(tmp_path / f"{name}.dcm", source, segments, ["a", "b"])
        seg = hd.seg.segread(tmp_path / f"{name}.dcm")
        assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == header.sop_uid
        pixels.append(seg.get_pixels_by_source_instance([header.sop_uid])[0])
    assert pixels[0].shape == (*mammogram().shape, 2) and np.array_equal(pixels[0], pixels[1])
    assert np.array_equal(np.moveaxis(pixels[0], -1, 0), masks)


def test_between_grids_moves_a_lesion_to_another_preprocessing():
    image = mammogram()
    lesion = np.zeros(image.shape, np.uint8)
    row0, col0, row1, col1 = LESION
    lesion[row0:row1, col0:col1] = 255
    full = preprocess(image, [lesion], config=PreprocessConfig())
    small = preprocess(image, [lesion], config=PreprocessConfig(size=96, crop_left=0.0, crop_right=0.0))
    moved = between_grids(full.masks[0] > 0, full.geometry, small.geometry)
    assert moved.shape == small.geometry.output_shape and dice(moved, small.masks[0] > 0) > 0.85
    back = between_grids(moved, small.geometry, full.geometry)
    assert dice(back, full.masks[0] > 0) > 0.85
    assert np.array_equal(between_grids(full.masks[0], full.geometry, full.geometry), full.masks[0])
    # nothing lands in the square padding
    everything = between_grids(np.ones(full.geometry.output_shape, bool), full.geometry, small.geometry)
    rows, cols = content_window(small.geometry)
    assert everything[rows, cols].mean() > 0.9 and everything.sum() == everything[rows, cols].sum()


@pytest.mark.parametrize("size", [None, 100])
def test_content_window_is_the_image_without_its_padding(size: int | None):
    prepared = preprocess(mammogram(), config=PreprocessConfig(size=size))
    rows, cols = content_window(prepared.geometry)
    geometry = prepared.geometry
    assert (rows.start, cols.start, rows.stop) == (0, 0, geometry.output_shape[0])  # taller than wide
    scale = geometry.output_shape[1] / geometry.padded_shape[1]
    assert cols.stop == pytest.approx(geometry.cropped_shape[1] * scale, abs=1)
    assert cols.stop < geometry.output_shape[1]
    assert prepared.breast_mask[:, cols].any() and not prepared.breast_mask[:, cols.stop:].any()
