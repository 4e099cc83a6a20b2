"""Preprocessing steps and pipeline on small synthetic mammograms built here (plus real samples when present)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure

from mammocad.preprocess import steps
from mammocad.preprocess.figures import before_after_figure
from mammocad.preprocess.pipeline import Geometry, PreprocessConfig, preprocess
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import binary_mask

ROWS, COLS = 300, 200
LESION_CENTER = (110, 50)  # (row, col): off the horizontal mid-line, so a vertical flip would show
LESION_RADIUS = 8
LABEL_BOX = (slice(20, 55), slice(140, 175))  # 35x35 px: survives the 23 px opening, outside the breast
STRIP_COLS = 2  # bright film edge at the far side: exactly the default 1% crop of 200 cols
STRIP_ROWS = 12  # bright strip along the top: exactly the default 4% crop of 300 rows


@dataclass
class Phantom:
    image: np.ndarray
    lesion: np.ndarray  # uint8 0/255
    label_box: tuple[slice, slice]
    lesion_center: tuple[float, float]  # (row, col)


def phantom(dtype=np.uint16, facing: str = "left", seed: int = 0) -> Phantom:
    """A ROWS x COLS mammogram: half-ellipse breast on the ``facing`` side, a bright lesion in it,
    a bright square label outside it, bright border strips at the top and the far side."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:ROWS, 0:COLS]
    img = rng.normal(0.03, 0.01, (ROWS, COLS))
    breast = ((r - ROWS / 2) / (0.42 * ROWS)) ** 2 + (c / (0.55 * COLS)) ** 2 <= 1
    img[breast] = 0.45 + 0.1 * (1 - c[breast] / COLS) + rng.normal(0, 0.01, breast.sum())
    lesion = (r - LESION_CENTER[0]) ** 2 + (c - LESION_CENTER[1]) ** 2 <= LESION_RADIUS**2
    img[lesion] += 0.3
    img[LABEL_BOX] = 0.9
    img[:, COLS - STRIP_COLS:] = 1.0
    img[:STRIP_ROWS, :] = 1.0
    image = np.rint(np.clip(img, 0, 1) * np.iinfo(dtype).max).astype(dtype)
    mask = lesion.astype(np.uint8) * 255
    label_box, center = LABEL_BOX, LESION_CENTER
    if facing == "right":
        image, mask = np.fliplr(image).copy(), np.fliplr(mask).copy()
        cols = LABEL_BOX[1]
        label_box = (LABEL_BOX[0], slice(COLS - cols.stop, COLS - cols.start))
        center = (LESION_CENTER[0], COLS - 1 - LESION_CENTER[1])
    return Phantom(image, mask, label_box, center)


def centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return float(rows.mean()), float(cols.mean())


def inside_vs_ring(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean intensity inside ``mask`` and in a ring one lesion radius wide around it."""
    radius = max(1, round(np.sqrt(np.count_nonzero(mask) / np.pi)))
    near = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))
    far = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * radius + 1,) * 2))
    ring = (far > 0) & (near == 0)
    return float(image[mask > 0].mean()), float(image[ring].mean())


@dataclass
class SkinPhantom:
    image: np.ndarray  # uint16
    tissue: np.ndarray  # bool: clearly breast (well above the threshold)
    label: np.ndarray  # bool: the label stuck on the skin line
    film_edge: np.ndarray  # bool: the slanted saturated film edge (empty when not drawn)


def skin_phantom(scale: int = 1, top: float = 0.5, film_edge: bool = True, seed: int = 0) -> SkinPhantom:
    """A (300 scale) x (200 scale) mammogram drawn at that resolution, the same scene at every scale.

    A half-ellipse breast against the left edge, centred at ``top`` of the rows (0.35 makes it
    reach past the top edge), fading towards the skin line like a real one; a bright label
    (0.07 x 0.11 of the rows x cols) stuck on the skin line at the nipple side, overlapping the
    breast; optionally a saturated film edge along the chest-wall side that widens from 0 at the
    top to 4% of the cols at the bottom (like Mass-Test_P_00016_LEFT_CC).
    """
    rng = np.random.default_rng(seed)
    rows, cols = 300 * scale, 200 * scale
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    rho = np.hypot((r - top * rows) / (0.42 * rows), c / (0.55 * cols))  # 1 on the skin line
    img = 0.03 + rng.normal(0, 0.005, (rows, cols))
    inside = rho <= 1
    img[inside] = 0.06 + 0.5 * np.clip((1 - rho[inside]) / 0.3, 0, 1) + rng.normal(0, 0.005, inside.sum())
    label = (r >= (top - 0.1) * rows) & (r < (top - 0.03) * rows) & (c >= 0.51 * cols) & (c < 0.62 * cols)
    img[label] = 0.85
    edge = (c < 0.04 * cols * r / rows) if film_edge else np.zeros_like(inside)
    img[edge] = 1.0
    image = np.rint(np.clip(img, 0, 1) * 65535).astype(np.uint16)
    # Tissue: well inside the skin line and more than the removal margins (2% of the longer side
    # around labels, 0.5% around film edges) away from the artefacts.
    artefact = (label | edge).astype(np.uint8)
    far = cv2.distanceTransform(1 - artefact, cv2.DIST_L2, 5) > 0.025 * rows
    return SkinPhantom(image, (rho <= 0.9) & far, label, edge)


def breast_of(image: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """steps.breast_mask of a raw image with the pipeline's normalisation and settings."""
    zone = config.crop_fractions
    norm = steps.normalize(image, steps.inner_window(image.shape, zone))
    return steps.breast_mask(norm, config.threshold, config.open_size, config.dilate_size, zone)


def kept_in_output(result, pixels: np.ndarray) -> np.ndarray:
    """For the True pixels of ``pixels`` (input shape): are they inside the output breast mask?"""
    rows, cols = np.nonzero(pixels)
    out_r, out_c = result.geometry.to_output(rows, cols)
    out_r, out_c = np.rint(out_r).astype(int), np.rint(out_c).astype(int)
    n_rows, n_cols = result.breast_mask.shape
    valid = (out_r >= 0) & (out_r < n_rows) & (out_c >= 0) & (out_c < n_cols)
    kept = np.zeros(rows.size, bool)
    kept[valid] = result.breast_mask[out_r[valid], out_c[valid]] > 0
    return kept


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / (a | b).sum())


# ---- steps --------------------------------------------------------------------------------------
def test_inner_window_floors_without_float_error():
    # 100 * 0.29 is 28.999999999999996 in floating point; still 29 rows.
    fractions = steps.CropFractions(left=0.0, right=0.0, top=0.29, bottom=0.0)
    assert steps.inner_window((100, 10), fractions) == (slice(29, 100), slice(0, 10))
    assert steps.inner_window((ROWS, COLS)) == (slice(12, 288), slice(2, 198))
    with pytest.raises(ValueError, match="outside"):
        steps.CropFractions(top=0.5)


def test_crop_window_crops_only_border_lines_without_breast():
    breast = np.zeros((ROWS, COLS), np.uint8)
    breast[5:250, 0:120] = 255  # reaches into the top zone (12 rows) and the left zone (2 cols)
    # Top: rows 0-4 have no breast -> cropped; row 5 on is kept. Left: col 0 has breast -> nothing
    # cropped. Bottom/right: the whole zone is breast-free -> the full zone goes, never more.
    assert steps.crop_window(breast) == (slice(5, 288), slice(0, 198))
    breast[295, 199] = 255  # one breast pixel in the bottom-right corner keeps its row and col
    assert steps.crop_window(breast) == (slice(5, 296), slice(0, 200))
    assert steps.crop_window(np.zeros((ROWS, COLS), np.uint8)) == steps.inner_window((ROWS, COLS))


def test_kernel_px_is_a_fraction_of_the_longer_side():
    assert steps.kernel_px(0.00575, (4000, 3000)) == 23  # the reference pipeline's 23 px on DDSM scans
    assert steps.kernel_px(0.00575, (3000, 4000)) == 23
    assert steps.kernel_px(0.00575, (1024, 1024)) == 5
    assert steps.kernel_px(0.00575, (100, 80)) == 1
    assert all(steps.kernel_px(f, (1000, 700)) % 2 == 1 for f in (0.001, 0.004, 0.0123, 0.05))


def test_normalize_with_a_reference_window_clips_the_rest():
    image = np.array([[0, 10, 20], [30, 40, 250]], np.uint8)
    norm = steps.normalize(image, (slice(0, 2), slice(0, 2)))  # darkest 0, brightest 40 in the window
    np.testing.assert_allclose(norm, [[0, 0.25, 0.5], [0.75, 1, 1]], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_normalize_to_unit_float32(dtype):
    image = np.array([[3, 7], [11, 5]], dtype)
    norm = steps.normalize(image)
    assert norm.dtype == np.float32
    np.testing.assert_allclose(norm, [[0, 0.5], [1, 0.25]])
    assert not steps.normalize(np.full((4, 4), 9, dtype)).any()  # constant: no contrast, all zero


def test_to_uint_rounds_and_saturates():
    norm = np.array([[-0.2, 0.0, 0.5, 1.0, 1.3]], np.float32)
    np.testing.assert_array_equal(steps.to_uint(norm, 8), [[0, 0, 128, 255, 255]])
    np.testing.assert_array_equal(steps.to_uint(norm, 16), [[0, 0, 32768, 65535, 65535]])
    np.testing.assert_allclose(steps.to_float(steps.to_uint(norm, 16)), np.clip(norm, 0, 1), atol=1e-5)


def test_breast_mask_keeps_the_breast_and_drops_the_label():
    p = phantom()
    mask = breast_of(p.image)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert mask[150, 0] == 255 and mask[150, 10] == 255  # breast up to the chest wall at the image edge
    assert mask[LESION_CENTER] == 255
    assert not mask[p.label_box].any()
    assert not mask[:STRIP_ROWS].any() and not mask[:, COLS - STRIP_COLS:].any()  # border strips


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_breast_mask_drops_a_label_on_the_skin_line_and_the_film_edge(scale):
    p = skin_phantom(scale)
    mask = breast_of(p.image) > 0
    assert not (mask & p.label).any(), "label stuck on the skin line kept"
    assert not (mask & p.film_edge).any(), "film edge along the chest wall kept"
    assert mask[p.tissue].all()  # the breast itself is kept


def test_breast_mask_is_the_same_at_three_resolutions():
    masks = [breast_of(skin_phantom(scale).image) for scale in (1, 2, 4)]
    common = [cv2.resize(m, (COLS, ROWS), interpolation=cv2.INTER_NEAREST) for m in masks]
    assert iou(common[0], common[1]) >= 0.97
    assert iou(common[0], common[2]) >= 0.97
    assert iou(common[1], common[2]) >= 0.97


def test_film_edge_strips_follow_a_slanted_edge_and_leave_tissue():
    p = skin_phantom(2)
    zone = steps.CropFractions()
    norm = steps.normalize(p.image, steps.inner_window(p.image.shape, zone))
    strips = steps.film_edge_strips(norm, zone) > 0
    assert strips[p.film_edge].all()
    assert not strips[p.tissue].any()
    # No strip where no line of the border zone is mostly saturated.
    assert not steps.film_edge_strips(steps.normalize(skin_phantom(2, film_edge=False).image), zone).any()


def test_labels_on_film_finds_labels_not_bright_tissue():
    p = skin_phantom(2)
    image = p.image.copy()
    rows, cols = image.shape
    cv2.circle(image, (cols // 5, rows // 2), rows // 40, 60000, -1)  # a bright mass inside the breast
    found = steps.labels_on_film(steps.normalize(image)) > 0
    assert found[p.label].all()
    assert not found[rows // 2 - rows // 40:rows // 2 + rows // 40, cols // 5 - rows // 40:cols // 5 + rows // 40].any()


def test_largest_component_fills_holes_and_drops_smaller_blobs():
    mask = np.zeros((60, 60), np.uint8)
    cv2.circle(mask, (20, 30), 15, 255, -1)
    cv2.circle(mask, (20, 30), 5, 0, -1)  # dark fat inside the breast
    cv2.rectangle(mask, (45, 5), (55, 15), 255, -1)  # smaller blob: a label
    out = steps.largest_component(mask)
    assert out[30, 20] == 255 and out[10, 50] == 0
    assert not steps.largest_component(np.zeros((5, 5), np.uint8)).any()


def test_should_flip_follows_the_chest_wall():
    assert not steps.should_flip(phantom(facing="left").image)
    assert steps.should_flip(phantom(facing="right").image)
    mask = np.zeros((10, 10), np.uint8)
    mask[:, 7:] = 255
    assert steps.should_flip(mask)


@pytest.mark.parametrize("hist_bits", [8, 10, 16])
def test_clahe_float_range_and_contrast(hist_bits):
    rng = np.random.default_rng(1)
    # A low-contrast image: CLAHE must widen its spread of values.
    norm = (0.4 + 0.05 * rng.random((256, 256))).astype(np.float32)
    out = steps.clahe(norm, 2.0, (8, 8), hist_bits)
    assert out.dtype == np.float32 and out.shape == norm.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert out.std() > 2 * norm.std()


def test_clahe_8_bits_matches_opencv_8bit_clahe():
    norm = steps.normalize(phantom(np.uint8).image)
    reference = cv2.createCLAHE(2.0, (8, 8)).apply(steps.to_uint(norm, 8))
    ours = steps.clahe(norm, 2.0, (8, 8), hist_bits=8)
    assert np.abs(ours * 255 - reference).max() <= 1.0


@pytest.mark.parametrize("shape,padded", [((30, 20), (30, 30)), ((20, 30), (30, 30)), ((25, 25), (25, 25))])
def test_pad_to_square_pads_right_or_bottom(shape, padded):
    image = np.arange(1, np.prod(shape) + 1, dtype=np.uint16).reshape(shape)
    out = steps.pad_to_square(image)
    assert out.shape == padded and out.dtype == image.dtype
    np.testing.assert_array_equal(out[: shape[0], : shape[1]], image)  # no pixel moved
    assert out.sum() == image.sum()  # the rest is zeros


def test_resize_keeps_masks_binary_and_aspect():
    mask = np.zeros((300, 200), np.uint8)
    cv2.circle(mask, (80, 120), 30, 255, -1)
    small = steps.resize(mask, 64, mask=True)
    assert small.shape == steps.resized_shape((300, 200), 64) == (64, 43)
    assert set(np.unique(small)) == {0, 255}
    assert set(np.unique(steps.resize(mask, 700, mask=True))) == {0, 255}
    image = steps.resize(np.full((300, 200), 0.5, np.float32), 64)
    np.testing.assert_allclose(image, 0.5, atol=1e-6)


def test_steps_do_not_modify_their_input():
    p = phantom()
    norm = steps.normalize(p.image)
    mask = steps.breast_mask(norm)
    before = [a.copy() for a in (p.image, norm, mask)]
    steps.crop_window(mask)
    steps.normalize(p.image)
    steps.normalize(p.image, steps.inner_window(p.image.shape))
    steps.breast_mask(norm)
    steps.film_edge_strips(norm)
    steps.labels_on_film(norm)
    steps.reconstruct(mask, mask)
    steps.apply_mask(norm, mask)
    steps.flip_horizontal(norm)
    steps.clahe(norm, hist_bits=10)
    steps.pad_to_square(norm)
    steps.resize(norm, 50)
    steps.resize(mask, 50, mask=True)
    steps.to_uint(norm, 16)
    for was, now in zip(before, (p.image, norm, mask)):
        np.testing.assert_array_equal(was, now)


# ---- pipeline -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("facing", ["left", "right"])
@pytest.mark.parametrize("size,pad", [(None, True), (128, True), (96, False), (500, True)])
def test_lesion_mask_stays_on_the_lesion(dtype, facing, size, pad):
    p = phantom(dtype, facing)
    result = preprocess(p.image, [p.lesion], PreprocessConfig(size=size, pad_square=pad))
    g = result.geometry
    assert g.flipped == (facing == "right")
    (mask,) = result.masks
    assert mask.shape == result.image.shape == result.breast_mask.shape == g.output_shape
    # The mask is where the geometry says the lesion went ...
    expected = g.to_output(*p.lesion_center)
    tolerance = max(1.0, g.output_shape[0] / g.padded_shape[0])  # one output pixel or one input pixel
    np.testing.assert_allclose(centroid(mask), expected, atol=tolerance)
    # ... and on the bright lesion of the output image.
    inside, ring = inside_vs_ring(result.image.astype(np.float64), mask)
    assert inside > ring * 1.15
    # Chest wall on the left: the breast fills the left edge, not the right one.
    assert result.breast_mask[:, 0].any() and not result.breast_mask[:, -1].any()


def test_masks_flip_with_the_image():
    left, right = phantom(facing="left"), phantom(facing="right")
    a = preprocess(left.image, [left.lesion])
    b = preprocess(right.image, [right.lesion])
    assert not a.geometry.flipped and b.geometry.flipped
    assert abs(centroid(a.masks[0])[1] - centroid(b.masks[0])[1]) <= 1.0
    np.testing.assert_array_equal(a.masks[0], b.masks[0])


@pytest.mark.parametrize("facing", ["left", "right"])
def test_label_and_background_are_zero_in_the_output(facing):
    p = phantom(facing=facing)
    result = preprocess(p.image, [p.lesion], PreprocessConfig(size=150))
    rows, cols = p.label_box
    r, c = np.meshgrid(np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop), indexing="ij")
    out_r, out_c = result.geometry.to_output(r, c)
    assert not result.image[np.rint(out_r).astype(int), np.rint(out_c).astype(int)].any()
    assert not result.image[result.breast_mask == 0].any()  # no lifted background, no blurred rim
    assert result.image[result.breast_mask > 0].mean() > 0


def test_lesion_masks_are_not_cut_by_the_breast_mask():
    p = phantom()
    outside = np.zeros_like(p.lesion)
    outside[100:110, 150:160] = 255  # in the background, far from the breast
    result = preprocess(p.image, [outside])
    assert np.count_nonzero(result.masks[0]) == 100
    assert not (result.breast_mask[result.masks[0] > 0]).any()


@pytest.mark.parametrize("encoding", [np.uint8(1), np.uint8(2), np.bool_(True), np.uint16(65535)], ids=str)
def test_any_nonzero_mask_encoding_becomes_0_255(encoding):
    p = phantom()
    mask = (p.lesion > 0).astype(type(encoding)) * encoding
    result = preprocess(p.image, [mask])
    assert result.masks[0].dtype == np.uint8 and set(np.unique(result.masks[0])) == {0, 255}
    np.testing.assert_array_equal(result.masks[0], preprocess(p.image, [p.lesion]).masks[0])


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (16, np.uint16)])
@pytest.mark.parametrize("input_dtype", [np.uint8, np.uint16])
def test_output_dtype_follows_output_bits(bits, dtype, input_dtype):
    p = phantom(input_dtype)
    result = preprocess(p.image, [p.lesion], PreprocessConfig(output_bits=bits))
    assert result.image.dtype == dtype and result.image.max() > np.iinfo(dtype).max // 2
    assert result.breast_mask.dtype == np.uint8


def test_output_is_square_and_resized():
    p = phantom()
    full = preprocess(p.image, [p.lesion])
    assert full.image.shape == (276, 276)
    assert preprocess(p.image, [p.lesion], PreprocessConfig(size=64)).image.shape == (64, 64)
    # Rows: 12 breast-free rows cropped at the top and the bottom. Cols: the breast touches the
    # left edge, so only the right zone (2 breast-free cols) is cropped.
    assert preprocess(p.image, [p.lesion], PreprocessConfig(pad_square=False)).image.shape == (276, 198)


def test_preprocess_does_not_modify_its_inputs():
    p = phantom(facing="right")
    image, lesion = p.image.copy(), p.lesion.copy()
    preprocess(p.image, [p.lesion], PreprocessConfig(size=100))
    np.testing.assert_array_equal(p.image, image)
    np.testing.assert_array_equal(p.lesion, lesion)


def test_no_masks_is_fine():
    result = preprocess(phantom().image)
    assert result.masks == [] and result.breast_mask.any()


def test_border_crop_never_cuts_the_breast_or_a_lesion_on_it():
    # The breast reaches past the top edge and fills the left edge: the 4% top zone and the 1% left
    # zone hold breast, with a lesion in the top zone (like mini-MIAS mdb144).
    p = skin_phantom(1, top=0.35, film_edge=False)
    lesion = np.zeros(p.image.shape, np.uint8)
    cv2.circle(lesion, (40, 6), 8, 255, -1)  # (x=col, y=row): rows 0-14, inside the breast
    result = preprocess(p.image, [lesion], PreprocessConfig(size=160))
    g = result.geometry
    assert (g.crop_top, g.crop_left) == (0, 0) and g.cropped_shape[0] == 300 - 12  # bottom zone: no breast
    assert kept_in_output(result, p.tissue).all()  # no breast pixel lost
    assert result.warnings == []
    full = preprocess(p.image, [lesion])  # full resolution: the lesion mask keeps every pixel
    assert np.count_nonzero(full.masks[0]) == np.count_nonzero(lesion)


def test_a_lesion_mask_in_the_breast_free_border_is_kept_whole_and_reported():
    p = phantom()
    mask = np.zeros_like(p.lesion)
    mask[5:21, 150:160] = 255  # 16 rows in the background, the top 7 in the breast-free top zone (12 rows)
    other = p.lesion
    result = preprocess(p.image, [other, mask], source="scan.dcm")
    assert result.geometry.crop_top == 5  # the crop stops at the mask's first row
    assert np.count_nonzero(result.masks[1]) == 16 * 10 and np.count_nonzero(result.masks[0]) == np.count_nonzero(other)
    # The mask lies wholly in the background: likely not this image's, so it is reported.
    assert result.warnings == ["lesion mask 2 of 2: 100.0% of its area lies outside the breast (160 of 160 px); "
                               "check that the mask belongs to this image"]
    assert preprocess(p.image, [other]).warnings == []


# ---- geometry -----------------------------------------------------------------------------------
@pytest.mark.parametrize("flipped", [False, True])
def test_geometry_round_trip(flipped):
    g = Geometry(input_shape=(4000, 3000), crop_top=160, crop_left=30, cropped_shape=(3680, 2940),
                 flipped=flipped, padded_shape=(3680, 3680), output_shape=(512, 512))
    rng = np.random.default_rng(0)
    rows, cols = rng.uniform(0, 4000, 50), rng.uniform(0, 3000, 50)
    back = g.to_input(*g.to_output(rows, cols))
    np.testing.assert_allclose(back, (rows, cols), atol=1e-9)
    # Corners of the kept region land on the output's first pixel edge.
    out_r, out_c = g.to_output(160 - 0.5, (30 - 0.5) if not flipped else (30 + 2940 - 0.5))
    np.testing.assert_allclose((out_r, out_c), (-0.5, -0.5), atol=1e-9)


def test_geometry_of_a_real_run_maps_pixels_back():
    p = phantom(facing="right")
    result = preprocess(p.image, [p.lesion], PreprocessConfig(size=128))
    g = result.geometry
    # Facing right: the chest wall touches the right edge (kept), the left zone has no breast (cropped).
    assert (g.input_shape, g.crop_top, g.crop_left, g.cropped_shape) == ((300, 200), 12, 2, (276, 198))
    assert g.padded_shape == (276, 276) and g.output_shape == (128, 128)
    in_r, in_c = g.to_input(*centroid(result.masks[0]))
    np.testing.assert_allclose((in_r, in_c), p.lesion_center, atol=2.5)  # one output pixel = 2.2 input px


# ---- bad input ----------------------------------------------------------------------------------
def test_mask_of_another_shape_is_reported():
    p = phantom()
    with pytest.raises(DataError, match=r"mask 300x201 does not match image 300x200") as err:
        preprocess(p.image, [p.lesion, np.zeros((300, 201), np.uint8)], source="scan.dcm")
    assert str(err.value).startswith("scan.dcm: ") and "lesion mask 2 of 2" in str(err.value)
    assert "\n" not in str(err.value)


def test_empty_mask_is_reported():
    p = phantom()
    with pytest.raises(DataError, match="empty ROI mask"):
        preprocess(p.image, [np.zeros_like(p.lesion)], source="scan.dcm")


@pytest.mark.parametrize("image", [np.zeros((30, 20, 3), np.uint8), np.zeros(30, np.uint16)])
def test_non_2d_image_is_reported(image):
    with pytest.raises(DataError, match="expected a 2-D grayscale image"):
        preprocess(image, source="scan.png")


def test_unsupported_pixel_type_is_reported():
    with pytest.raises(DataError, match="unsupported pixel type float64"):
        preprocess(np.zeros((30, 20)), source="scan.png")


def test_constant_image_has_no_breast():
    with pytest.raises(DataError, match="no breast found: .* constant"):
        preprocess(np.full((ROWS, COLS), 1000, np.uint16), source="scan.dcm")


def test_image_without_a_large_bright_region_has_no_breast():
    image = np.zeros((ROWS, COLS), np.uint16)
    image[100:105, 100:105] = 5000  # smaller than the opening: 0.05 of 300 rows -> 15 px
    with pytest.raises(DataError, match="no breast found: no region above threshold .* 15x15 px opening"):
        preprocess(image, config=PreprocessConfig(open_size=0.05), source="scan.dcm")


def test_lesion_vanishing_in_the_resize_is_reported():
    p = phantom()
    mask = np.zeros_like(p.lesion)
    mask[150, 60] = 255  # one pixel: gone at 1/10 scale
    with pytest.raises(DataError, match="vanished when resizing to 28x28"):
        preprocess(p.image, [mask], PreprocessConfig(size=28), source="scan.dcm")


@pytest.mark.parametrize("settings", [{"crop_top": 0.6}, {"output_bits": 12}, {"size": 0}, {"open_size": 0},
                                      {"dilate_size": 0.5}, {"open_size": 23},
                                      {"clahe_hist_bits": 7}, {"threshold": 1.0}])
def test_bad_settings_are_rejected(settings):
    with pytest.raises(ValueError):
        PreprocessConfig(**settings)


# ---- figure -------------------------------------------------------------------------------------
def test_before_after_figure(tmp_path):
    p = phantom(facing="right")
    result = preprocess(p.image, [p.lesion], PreprocessConfig(size=128))
    fig = before_after_figure(p.image, [p.lesion], result, "P_1 (research use only)")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "flipped" in fig.axes[1].get_title()
    assert all(len(ax.lines) == 1 for ax in fig.axes)  # one lesion outline per panel
    fig.savefig(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000


# ---- real samples (skipped without ../shared/data) ---------------------------------------------
@pytest.mark.parametrize("name", ["Mass-Test_P_00016_LEFT_CC_FULL.png", "Mass-Test_P_00116_RIGHT_MLO_FULL.png"])
def test_real_full_mammograms(cbis_samples, name):
    image = cv2.imread(str(cbis_samples / "full-png" / name), cv2.IMREAD_UNCHANGED)
    result = preprocess(image, config=PreprocessConfig(size=512), source=name)
    assert result.image.shape == (512, 512)
    # Both scans have the chest wall at the right edge of the file.
    assert result.geometry.flipped
    breast = result.breast_mask > 0
    assert breast[:, :256].sum() > 3 * breast[:, 256:].sum()
    assert not result.image[~breast].any()


def test_real_label_is_removed(cbis_samples):
    """P_00116 RIGHT MLO carries an 'R MLO' film label in its top-left corner."""
    image = cv2.imread(str(cbis_samples / "full-png" / "Mass-Test_P_00116_RIGHT_MLO_FULL.png"), cv2.IMREAD_UNCHANGED)
    assert (image[250:900, 100:420] > 100).sum() > 20000  # the label is there ...
    result = preprocess(image)
    r, c = np.meshgrid(np.arange(250, 900, 10), np.arange(100, 420, 10), indexing="ij")
    out_r, out_c = result.geometry.to_output(r, c)
    assert not result.image[np.rint(out_r).astype(int), np.rint(out_c).astype(int)].any()  # ... and gone


def _mias(mias_dir, name: str):
    """A mini-MIAS image and its lesion masks as `prepare` makes them (circles from Info.txt)."""
    from mammocad.data.masks import has_roi, load_roi_mask
    from mammocad.data.mini_mias import load_mini_mias

    image = cv2.imread(str(mias_dir / f"{name}.pgm"), cv2.IMREAD_UNCHANGED)
    records = load_mini_mias(mias_dir).abnormalities_by_image()[name]
    return image, [load_roi_mask(a, image.shape) for a in records if has_roi(a)]


def test_real_mias_lesion_at_the_top_edge_is_kept(mias_dir):
    """mdb144's first lesion (centre row 30, radius 29) lies in the top 4%; the fixed crop kept 776 of its 2629 px."""
    image, masks = _mias(mias_dir, "mdb144")
    result = preprocess(image, masks, source="mdb144")
    assert result.warnings == []
    assert [np.count_nonzero(m) for m in result.masks] == [np.count_nonzero(m) for m in masks]
    assert result.geometry.crop_top == 0  # the breast reaches the top edge: no row cropped there
    # The breast (the largest blob well above the threshold) is kept in full.
    tissue = steps.largest_component(cv2.erode(binary_mask(image > 0.3 * image.max()), np.ones((9, 9))))
    assert kept_in_output(result, tissue > 0).all()


def test_real_mias_label_on_the_skin_line_is_removed(mias_dir):
    """mdb274 has a '50' sticker stuck on the skin line (rows 215-265, cols 580-650)."""
    image, masks = _mias(mias_dir, "mdb274")
    digits = np.zeros(image.shape, bool)
    digits[215:265, 580:650] = image[215:265, 580:650] >= 150
    assert digits.sum() > 400  # the characters are there ...
    result = preprocess(image, masks, source="mdb274")
    assert not kept_in_output(result, digits).any()  # ... and outside the prepared breast


def test_real_film_edge_strip_is_removed(cbis_samples):
    """Mass-Test_P_00016_LEFT_CC has a saturated film edge along the chest wall, 0 to ~50 px wide."""
    image = cv2.imread(str(cbis_samples / "full-png" / "Mass-Test_P_00016_LEFT_CC_FULL.png"), cv2.IMREAD_UNCHANGED)
    strip = np.zeros(image.shape, bool)
    strip[:, -70:] = image[:, -70:] == 255
    assert strip.sum() > 50000  # the strip is there ...
    result = preprocess(image, source="P_00016")
    assert not kept_in_output(result, strip).any()  # ... and outside the prepared breast
    # Flipped: the chest wall is on the left, and the breast still reaches it (but for the strip).
    assert result.geometry.flipped and np.flatnonzero(result.breast_mask.any(axis=0))[0] < 40


@pytest.mark.parametrize("name", ["Mass-Test_P_00016_LEFT_CC_FULL.png", "mdb274"])
def test_real_breast_mask_is_the_same_at_lower_resolutions(cbis_samples, mias_dir, name):
    if name.startswith("mdb"):
        image = cv2.imread(str(mias_dir / f"{name}.pgm"), cv2.IMREAD_UNCHANGED)
    else:
        image = cv2.imread(str(cbis_samples / "full-png" / name), cv2.IMREAD_UNCHANGED)
    full = breast_of(image)
    rows, cols = image.shape
    for factor in (2, 4):
        small = cv2.resize(image, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(breast_of(small), (cols, rows), interpolation=cv2.INTER_NEAREST)
        assert iou(full, mask) >= 0.97, factor
