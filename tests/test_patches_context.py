"""Small-context (TFDS rules) and large-context (Levy & Jain) patch extraction on synthetic images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammocad.patches.large_context import (
    LargeContextConfig,
    large_context_patches,
    large_context_window,
)
from mammocad.patches.small_context import (
    SmallContextConfig,
    background_windows,
    overlaps_above,
    positive_patches,
    positive_windows,
    resize_to_grid,
    sampling_range,
    small_context_patches,
    tfds_breast_mask,
)
from mammocad.patches.types import LesionMask, PatchLabel
from mammocad.preprocess.steps import resize_square
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import mask_box
from mammocad.utils.imageio import read_image

SHAPE = (2000, 1500)  # rows, cols: not a multiple of the 1152x896 grid, so resizing is real
GRID = SmallContextConfig().image_size
PATCH = 224


def _mammogram(dtype: type, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """An elliptical 'breast' against the left edge, a bright scanner label top right, noise."""
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max * 0.8
    image = rng.uniform(0, 0.01 * top, shape)  # background: below the 5% breast threshold
    breast = _breast_ellipse(shape)
    image[breast] = rng.uniform(0.4 * top, top, int(breast.sum()))
    image[50:150, shape[1] - 300:shape[1] - 100] = top  # scanner label, outside the breast
    return image.astype(dtype)


def _breast_ellipse(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return ((rows - shape[0] / 2) / (0.45 * shape[0])) ** 2 + (cols / (0.7 * shape[1])) ** 2 <= 1


def _mask(shape: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """uint8 0/255 with the (row0, col0, row1, col1) boxes set."""
    mask = np.zeros(shape, np.uint8)
    for row0, col0, row1, col1 in boxes:
        mask[row0:row1, col0:col1] = 255
    return mask


def _ellipse_mask(shape, centre_rc, semi_axes_rc) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, (centre_rc[1], centre_rc[0]), (semi_axes_rc[1], semi_axes_rc[0]), 0, 0, 360, 255, -1)
    return mask


def _lesions(shape: tuple[int, int] = SHAPE) -> list[LesionMask]:
    return [
        LesionMask("tiny", PatchLabel.BENIGN_CALCIFICATION.value, _mask(shape, (1300, 300, 1310, 310))),
        # ~403x358 in the grid: larger than a patch both ways.
        LesionMask("large", PatchLabel.MALIGNANT_MASS.value, _ellipse_mask(shape, (700, 450), (350, 300))),
        LesionMask("border", PatchLabel.BENIGN_MASS.value, _mask(shape, (1400, 0, 1460, 40))),
    ]


def _in_window(mask: np.ndarray, row: int, col: int) -> int:
    return int(np.count_nonzero(mask[row:row + PATCH, col:col + PATCH]))


def _meets_positive_rule(mask: np.ndarray, row: int, col: int, threshold: float) -> bool:
    inside = _in_window(mask, row, col)
    return inside / PATCH**2 > threshold or inside / np.count_nonzero(mask) > threshold


# --- small context: the overlap rule and the sampling region -------------------------------------

def test_overlaps_above_is_strict_and_either_way():
    assert not overlaps_above(90, 100, 1000, 0.9)  # 0.9 of the window is not MORE than 0.9
    assert overlaps_above(91, 100, 1000, 0.9)  # window mostly lesion
    assert overlaps_above(10, 100, 10, 0.9)  # whole (small) lesion inside
    assert not overlaps_above(5, 100, 10, 0.9)
    np.testing.assert_array_equal(overlaps_above(np.array([0, 91, 10]), 100, 11, 0.9), [False, True, True])


def test_sampling_range_is_the_builder_formula():
    # lo = 500 - int(0.1 * 224), hi = 500 + 50 - int(0.9 * 50)
    assert sampling_range(500, 50, PATCH, 0.9, 1152) == (478, 505)
    # a box larger than the patch: lo = 100 - int((1.0 - 0.9) * 400), hi = 100 + 400 - int(0.9 * 224);
    # 1.0 - 0.9 is 0.0999... in floating point, so int() gives 39, as it did in the builder.
    assert sampling_range(100, 400, PATCH, 0.9, 1152) == (61, 299)
    assert sampling_range(5, 50, PATCH, 0.9, 1152)[0] == 0  # clamped at the top
    assert sampling_range(900, 100, PATCH, 0.9, 1152) == (878, 910)
    # the builder would start at 1000 - 22 = 978 and run off the image; we stop at 1152-224-1
    assert sampling_range(1000, 100, PATCH, 0.9, 1152) == (927, 927)


# --- small context: the whole image ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_small_context_patches_follow_the_tfds_rules(dtype):
    image, lesions = _mammogram(dtype), _lesions()
    patches = small_context_patches(image, lesions, np.random.default_rng(7), source="img")

    assert len(patches) == 3 * 10 + 10
    assert [p.abnormality for p in patches] == ["tiny"] * 10 + ["large"] * 10 + ["border"] * 10 + [None] * 10
    assert [p.label for p in patches[::10]] == [les.label for les in lesions] + ["BACKGROUND"]
    grid_image, grid_lesions = resize_to_grid(image, lesions)
    assert grid_image.shape == GRID
    for p in patches:
        assert p.pixels.dtype == dtype and p.pixels.shape == (PATCH, PATCH) == (p.height, p.width)
        np.testing.assert_array_equal(p.pixels, grid_image[p.row:p.row + PATCH, p.col:p.col + PATCH])

    # The same stream, step by step, gives the windows with their relaxation level.
    rng = np.random.default_rng(7)
    positives = [w for lesion in grid_lesions for w in positive_windows(lesion, rng)]
    backgrounds = background_windows(grid_image, grid_lesions, rng)
    assert [(p.row, p.col) for p in patches] == [(w.row, w.col) for w in positives + backgrounds]

    # Every lesion here admits 90% windows, and the breast leaves room: no relaxation needed.
    assert {w.level for w in positives + backgrounds} == {0}
    masks = {les.key: les.mask for les in grid_lesions}
    for p in patches[:30]:
        assert _meets_positive_rule(masks[p.abnormality], p.row, p.col, 0.9), p
    breast = tfds_breast_mask(grid_image)
    for p in patches[30:]:
        assert _in_window(breast, p.row, p.col) / PATCH**2 > 0.75
        for mask in masks.values():
            inside = _in_window(mask, p.row, p.col)
            assert inside / PATCH**2 <= 0.35 and inside / np.count_nonzero(mask) <= 0.35


def test_small_context_is_deterministic_per_seed():
    image, lesions = _mammogram(np.uint16), _lesions()

    def windows(seed):
        return [(p.row, p.col) for p in small_context_patches(image, lesions, np.random.default_rng(seed))]

    assert windows(3) == windows(3)
    assert windows(3) != windows(4)


def test_context_scale_gives_the_same_windows_with_more_tissue_around_them():
    image, lesions = _mammogram(np.uint16), _lesions()
    plain = small_context_patches(image, lesions, np.random.default_rng(3))
    wide = small_context_patches(image, lesions, np.random.default_rng(3), SmallContextConfig(context_scale=2.0))
    assert [(p.label, p.abnormality) for p in wide] == [(p.label, p.abnormality) for p in plain]
    grid, _ = resize_to_grid(image, lesions)
    padded = np.pad(grid, PATCH)  # zero beyond the grid, as the wide cut
    for p, w in zip(plain, wide):
        # the same centre, twice the side, resized back to the patch size
        assert (w.row, w.col, w.height, w.width) == (p.row - PATCH // 2, p.col - PATCH // 2, 2 * PATCH, 2 * PATCH)
        assert w.pixels.shape == (PATCH, PATCH) and w.pixels.dtype == image.dtype
        cut = padded[w.row + PATCH:w.row + 3 * PATCH, w.col + PATCH:w.col + 3 * PATCH]
        np.testing.assert_array_equal(w.pixels, cv2.resize(cut, (PATCH, PATCH), interpolation=cv2.INTER_AREA))
    with pytest.raises(ValueError, match="context_scale"):
        SmallContextConfig(context_scale=0.5)


def test_relaxed_threshold_is_the_one_reported():
    # Two equal squares far apart: a window holds at most half of the lesion, so the threshold
    # must fall below 0.5, i.e. 12 relaxations (0.9 * 0.95**11 = 0.512, 0.9 * 0.95**12 = 0.486).
    lesion = LesionMask("split", "BENIGN_MASS", _mask(GRID, (300, 300, 320, 320), (800, 600, 820, 620)))
    windows = positive_windows(lesion, np.random.default_rng(0))
    assert len(windows) == 10 and {w.level for w in windows} == {12}
    for w in windows:
        assert _meets_positive_rule(lesion.mask, w.row, w.col, 0.9 * 0.95**w.level)
        assert not _meets_positive_rule(lesion.mask, w.row, w.col, 0.9 * 0.95**11)


def test_lesion_in_the_corner_stays_inside_the_grid():
    # The builder would cut windows running off the image here; ours stop at the last start
    # (1152-224-1, 896-224-1). That single position misses the last row and col of the lesion
    # (21*15/22/16 = 0.895 of it), so the threshold relaxes once; with one position per round
    # the builder's rule allows one trial per round, hence one window per level.
    lesion = LesionMask("corner", "BENIGN_MASS", _mask(GRID, (1130, 880, 1152, 896)))
    grid_image = np.full(GRID, 1000, np.uint16)
    patches = positive_patches(grid_image, lesion, np.random.default_rng(0))
    assert {(p.row, p.col, p.pixels.shape) for p in patches} == {(927, 671, (PATCH, PATCH))}
    assert [w.level for w in positive_windows(lesion, np.random.default_rng(0))] == list(range(1, 11))


def test_tfds_breast_mask_keeps_the_breast_only():
    grid_image, _ = resize_to_grid(_mammogram(np.uint16), [])
    breast = tfds_breast_mask(grid_image) > 0
    expected = _breast_ellipse(GRID)
    assert (breast & expected).sum() / (breast | expected).sum() > 0.98
    assert not breast[:100, -250:].any()  # the scanner label is not the largest region
    assert not tfds_breast_mask(np.zeros(GRID, np.uint8)).any()


@pytest.mark.parametrize("make_lesion, message", [
    (lambda: LesionMask("empty-one", "BENIGN_MASS", np.zeros(SHAPE, np.uint8)), "empty ROI mask for empty-one"),
    (lambda: LesionMask("wrong-size", "BENIGN_MASS", np.zeros((10, 10), np.uint8)), "wrong-size"),
])
def test_bad_lesion_raises_data_error_naming_it(make_lesion, message):
    with pytest.raises(DataError, match=message) as err:
        small_context_patches(_mammogram(np.uint8), [make_lesion()], np.random.default_rng(0), source="img.png")
    assert err.value.path == "img.png"


@pytest.mark.parametrize("image", [np.zeros(SHAPE, np.float32), np.zeros((*SHAPE, 3), np.uint8)])
def test_only_2d_integer_images_are_accepted(image):
    with pytest.raises(DataError, match="2-D uint8/uint16"):
        small_context_patches(image, [], np.random.default_rng(0))


def test_blank_image_has_no_background():
    with pytest.raises(DataError, match="no breast region"):
        small_context_patches(np.zeros(SHAPE, np.uint16), [], np.random.default_rng(0))


def test_real_mammogram_backgrounds_are_breast(cbis_samples):
    # A real scan: scanner labels and film borders must not pass for breast.
    image = read_image(cbis_samples / "full-png" / "Mass-Test_P_00016_LEFT_CC_FULL.png")
    lesion = LesionMask("synthetic", "BENIGN_MASS", _mask(image.shape, (1800, 300, 2000, 500)))
    grid_image, grid_lesions = resize_to_grid(image, [lesion])
    breast = tfds_breast_mask(grid_image)
    windows = background_windows(grid_image, grid_lesions, np.random.default_rng(0))
    assert len(windows) == 10
    for w in windows:
        assert _in_window(breast, w.row, w.col) / PATCH**2 > 0.75 * 0.95**w.level


# --- large context ------------------------------------------------------------------------------

def test_window_pads_every_side_away_from_the_border():
    # h=100, w=80: pad = round(0.5 * 100) = 50 on every side
    assert large_context_window((500, 400, 600, 480), (2000, 1500)) == (450, 350, 650, 530)
    assert large_context_window((500, 400, 600, 480), (2000, 1500), LargeContextConfig(context=0.25)) \
        == (475, 375, 625, 505)


@pytest.mark.parametrize("bbox", [(10, 5, 110, 85), (1950, 1450, 1995, 1500), (0, 700, 30, 760)])
def test_window_near_the_border_is_shifted_not_clipped(bbox):
    shape = (2000, 1500)
    free = large_context_window((1000, 700, 1000 + bbox[2] - bbox[0], 700 + bbox[3] - bbox[1]), shape)
    row0, col0, row1, col1 = large_context_window(bbox, shape)
    assert (row1 - row0, col1 - col0) == (free[2] - free[0], free[3] - free[1])  # same size as in the middle
    assert 0 <= row0 and 0 <= col0 and row1 <= shape[0] and col1 <= shape[1]
    assert row0 <= bbox[0] and col0 <= bbox[1] and row1 >= bbox[2] and col1 >= bbox[3]


def test_window_larger_than_the_image_is_clipped_in_that_dimension_only():
    # rows: 90 + 2*45 = 180 > 100 -> the whole height; cols: 10 + 2*45 = 100 fits -> shifted
    assert large_context_window((0, 0, 90, 10), (100, 500)) == (0, 0, 100, 100)


def test_square_window_is_square_and_centred():
    row0, col0, row1, col1 = large_context_window((500, 400, 600, 440), (2000, 1500), LargeContextConfig(square=True))
    assert row1 - row0 == col1 - col0 == 200  # (1 + 2*0.5) * max(100, 40)
    assert (row0 + row1) / 2 == 550 and (col0 + col1) / 2 == 420


def test_tiny_lesion_gets_min_side():
    row0, col0, row1, col1 = large_context_window((500, 400, 504, 404), (2000, 1500))
    assert row1 - row0 == col1 - col0 == 32
    assert row0 <= 500 and row1 >= 504 and col0 <= 400 and col1 >= 404


def test_nonzero_bbox_spans_every_component():
    assert mask_box(_mask((100, 100), (10, 20, 15, 25), (50, 5, 60, 8))) == (10, 5, 60, 25)
    assert mask_box(np.zeros((10, 10), np.uint8)) is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("output_size", [224, 299])
def test_large_context_patches(dtype, output_size):
    image, lesions = _mammogram(dtype), _lesions()
    top = np.iinfo(dtype).max
    image[lesions[0].mask > 0] = top  # a bright tiny lesion to find in the middle of its patch
    patches = large_context_patches(image, lesions, LargeContextConfig(output_size=output_size), source="img")
    assert [(p.abnormality, p.label) for p in patches] == [(les.key, les.label) for les in lesions]
    for p, lesion in zip(patches, lesions):
        assert p.pixels.shape == (output_size, output_size) and p.pixels.dtype == dtype
        window = (p.row, p.col, p.row + p.height, p.col + p.width)
        assert window == large_context_window(mask_box(lesion.mask), image.shape)
    centre = output_size // 2
    assert patches[0].pixels[centre, centre] == top


def test_large_context_empty_mask_raises():
    lesion = LesionMask("calc-7", "BENIGN_CALCIFICATION", np.zeros(SHAPE, np.uint8))
    with pytest.raises(DataError, match="empty ROI mask for calc-7"):
        large_context_patches(_mammogram(np.uint8), [lesion], source="img.png")


def test_resize_square_with_one_axis_shrinking_and_one_growing():
    pixels = np.full((400, 100), 1234, np.uint16)
    resized = resize_square(pixels, 224)
    assert resized.shape == (224, 224) and resized.dtype == np.uint16
    assert (resized == 1234).all()


def _breast_columns(grid: np.ndarray, threshold: float) -> int:
    """Columns that are breast in most of the middle rows (away from border strips and labels)."""
    band = grid[int(0.3 * grid.shape[0]):int(0.7 * grid.shape[0])]
    columns = np.flatnonzero((band > threshold).mean(axis=0) > 0.5)
    return int(columns.max() - columns.min() + 1)


@pytest.mark.parametrize("name", ["Mass-Test_P_00016_LEFT_CC_FULL.png", "Mass-Test_P_00116_RIGHT_MLO_FULL.png"])
def test_small_context_grid_has_the_tfds_scale_on_real_mammograms(cbis_samples, name: str):
    """The builder resized the original mammogram to 1152x896: the breast spans as many grid
    columns in our grid (cut from the prepared, padded image) as in that independent resize."""
    from mammocad.preprocess.pipeline import PreprocessConfig, original_frame, preprocess

    original = read_image(cbis_samples / "full-png" / name)
    builder_grid = cv2.resize(original, (896, 1152))
    prepared = preprocess(original, [], PreprocessConfig())
    assert prepared.image.shape[0] == prepared.image.shape[1]  # padded to a square
    grid, _ = resize_to_grid(original_frame(prepared.image, prepared.geometry), [])
    expected = _breast_columns(builder_grid, 0.1 * original.max())
    assert expected > 400  # about half the grid's 896 columns
    # The naive reference also counts the bright film-edge strip along the chest wall, which
    # preprocessing removes (about 9 grid columns on P_00016); the padded grid was ~200 off.
    assert abs(_breast_columns(grid, 0) - expected) <= 12
