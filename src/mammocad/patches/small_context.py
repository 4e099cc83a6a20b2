"""Small-context patches: the TensorFlow Datasets ``curated_breast_imaging_ddsm`` "patches" rules.

The builder (``tensorflow_datasets/image_classification/cbis_ddsm.py``, config ``patches``,
version 2.0.1) resizes every mammogram to 1152x896 (rows x cols) and cuts 224x224 windows:

- **positive**: 10 per abnormality, drawn uniformly around the bounding rect of the largest
  contour of its mask and kept when more than 90% of the window is lesion OR more than 90%
  of the lesion is in the window; after 100 trials without 10 patches the threshold shrinks
  by 5%, down to 0.1;
- **background**: 10 per mammogram, drawn around the breast's bounding rect and kept when more
  than 75% of the window is breast and no abnormality overlaps it by more than 35% (either
  way); after 100 trials the limits relax by 5% (breast down, abnormality up).

Every rule and number is reproduced (see :class:`SmallContextConfig`). This module is the one
place that lists the deliberate differences from the builder:

- The builder cut patches from the raw PNG; mammocad cuts them from the *prepared* mammogram
  (normalised, breast-masked, CLAHE, chest wall turned to the left) put back in the original
  image's frame first (:func:`mammocad.preprocess.pipeline.original_frame`: square padding
  removed, any border crop restored as blank), so the grid has the builder's scale and a patch
  covers the builder's amount of tissue. Background outside the breast is therefore 0, not film.

- Randomness comes from the ``numpy.random.Generator`` the caller passes for each image
  (derived from a seed and the image id, so patches do not depend on processing order or
  worker count); the builder used the global legacy generator, seeded once per split with
  ``0x12345 + number of patients`` and consumed in sorted-patient order. The windows follow
  the same distribution but are not the builder's exact windows. The trials of one threshold
  are drawn at once (all rows, then all cols) and the first accepted ones kept, which is the
  builder's sequential loop with a different consumption of the random stream.
- Where the builder's clamp fails (a lesion within ~10% of a patch of the bottom or right
  edge pushes the lowest start past the last valid one), the builder cut a window that ran
  off the image and so came out smaller than 224x224; here the start is clamped to the last
  valid one, so every patch is 224x224 and lies inside the image.
- 8- and 16-bit images are both accepted (the builder read 8-bit PNGs); the breast threshold
  stays 5% of the image's maximum, so it means the same for either depth.

All coordinates are (row, col) in pixels of the resized grid unless a name says x/y (OpenCV's
column/row order, used only where OpenCV returns it).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import cv2
import numpy as np

from mammocad.patches.config import SmallContextConfig
from mammocad.patches.types import LesionMask, Patch, PatchLabel
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import Box, WindowCounter, binary_mask

SUPPORTED_DTYPES = (np.uint8, np.uint16)


class Window(NamedTuple):
    """An accepted window: top-left ``row``/``col`` in the grid, and ``level``, the number of
    relaxations applied when it was accepted (0: the strict thresholds; at level k the positive
    threshold is min_lesion_overlap * shrink**k, the background bounds min_breast_overlap *
    shrink**k and max_lesion_overlap * grow**k)."""

    row: int
    col: int
    level: int


def small_context_patches(
    image: np.ndarray,
    lesions: Sequence[LesionMask],
    rng: np.random.Generator,
    config: SmallContextConfig = SmallContextConfig(),
    source: str | None = None,
) -> list[Patch]:
    """All small-context patches of one mammogram: positives (lesion order), then backgrounds.

    ``image`` is the prepared 2-D uint8/uint16 mammogram (rows, cols); each lesion's mask has
    the same shape. Patches keep the image's dtype; their row/col locate them in the image
    resized to ``config.image_size``. ``source`` names the image in errors. Raises
    :class:`DataError` for bad input or when a lesion or the breast yields too few windows.
    """
    validate_inputs(image, lesions, source)
    grid_image, grid_lesions = resize_to_grid(image, lesions, config)
    positives = [p for lesion in grid_lesions for p in positive_patches(grid_image, lesion, rng, config, source)]
    return positives + background_patches(grid_image, grid_lesions, rng, config, source)


def validate_inputs(image: np.ndarray, lesions: Sequence[LesionMask], source: str | None = None) -> None:
    """Raise :class:`DataError` unless ``image`` is 2-D uint8/uint16 and every mask has its shape."""
    if image.ndim != 2 or image.dtype not in SUPPORTED_DTYPES:
        raise DataError(source, f"expected a 2-D uint8/uint16 image, got {image.dtype} with shape {image.shape}")
    for lesion in lesions:
        if lesion.mask.shape != image.shape:
            raise DataError(source, f"ROI mask of {lesion.key} has shape {lesion.mask.shape}, "
                                    f"its image {image.shape} (rows, cols)")


def resize_to_grid(
    image: np.ndarray, lesions: Sequence[LesionMask], config: SmallContextConfig = SmallContextConfig(),
) -> tuple[np.ndarray, list[LesionMask]]:
    """The image and masks resized to ``config.image_size`` (rows, cols), as the builder did.

    Both use cv2.resize's default (bilinear) interpolation; the masks are then thresholded at
    ``> 0`` (the builder's test everywhere), so a lesion pixel survives wherever any
    interpolated value is non-zero. Masks come back uint8 0/255.
    """
    dsize = (config.image_size[1], config.image_size[0])  # cv2 wants (width, height)
    grid_image = cv2.resize(image, dsize)
    grid_lesions = [
        LesionMask(lesion.key, lesion.label, binary_mask(cv2.resize(binary_mask(lesion.mask), dsize)))
        for lesion in lesions
    ]
    return grid_image, grid_lesions


def positive_patches(
    image: np.ndarray,
    lesion: LesionMask,
    rng: np.random.Generator,
    config: SmallContextConfig = SmallContextConfig(),
    source: str | None = None,
) -> list[Patch]:
    """The positive patches of one lesion, image and mask already in the grid."""
    windows = positive_windows(lesion, rng, config, source)
    return _crop(image, windows, config, lesion.label, lesion.key)


def background_patches(
    image: np.ndarray,
    lesions: Sequence[LesionMask],
    rng: np.random.Generator,
    config: SmallContextConfig = SmallContextConfig(),
    source: str | None = None,
) -> list[Patch]:
    """The background patches of one mammogram, image and masks already in the grid."""
    windows = background_windows(image, lesions, rng, config, source)
    return _crop(image, windows, config, PatchLabel.BACKGROUND.value, None)


def positive_windows(
    lesion: LesionMask,
    rng: np.random.Generator,
    config: SmallContextConfig = SmallContextConfig(),
    source: str | None = None,
) -> list[Window]:
    """``config.positives_per_lesion`` windows over one lesion (mask in the grid).

    Sampled around the bounding rect of the mask's largest contour; a window is accepted when
    :func:`overlaps_above` holds for THIS lesion at the current threshold. Raises
    :class:`DataError` naming the lesion when its mask is empty or too few windows are found.
    """
    box = _largest_contour_box(binary_mask(lesion.mask))
    if box is None:
        raise DataError(source, f"empty ROI mask for {lesion.key} (after resizing to the patch grid)")
    counter = WindowCounter(lesion.mask, config.patch_size)
    thresholds = _schedule(config.min_lesion_overlap, config.shrink, lambda t: t > config.lowest_threshold)

    def accept(rows: np.ndarray, cols: np.ndarray, level: int) -> np.ndarray:
        return _lesion_overlaps(counter, rows, cols, thresholds[level])

    windows = _sample_windows(box, lesion.mask.shape, thresholds, accept, config.positives_per_lesion, rng, config)
    if len(windows) < config.positives_per_lesion:
        raise DataError(source, f"only {len(windows)} of {config.positives_per_lesion} positive patches for "
                                f"{lesion.key}, even at overlap threshold {thresholds[-1]:.3f}")
    return windows


def background_windows(
    image: np.ndarray,
    lesions: Sequence[LesionMask],
    rng: np.random.Generator,
    config: SmallContextConfig = SmallContextConfig(),
    source: str | None = None,
) -> list[Window]:
    """``config.backgrounds_per_image`` windows of breast tissue away from every lesion (grid).

    Sampled around the bounding rect of :func:`tfds_breast_mask`; a window is accepted when
    breast pixels make up more than the breast bound (0.75) of it and :func:`overlaps_above`
    fails for every lesion at the lesion bound (0.35). Raises :class:`DataError` when the image has no breast region
    or too few windows are found.
    """
    breast = tfds_breast_mask(image, config.breast_intensity)
    box = _largest_contour_box(breast)
    if box is None:
        raise DataError(source, "no breast region: the image is blank")
    breast_counter = WindowCounter(breast, config.patch_size)
    # An empty mask cannot overlap anything (and would divide by zero).
    lesion_counters = [WindowCounter(lesion.mask, config.patch_size) for lesion in lesions if lesion.mask.any()]
    # The builder loops while BOTH bounds are in range: zip stops at the first to leave it.
    bounds = list(zip(
        _schedule(config.min_breast_overlap, config.shrink, lambda b: b > config.lowest_threshold),
        _schedule(config.max_lesion_overlap, config.grow, lambda a: a < config.highest_lesion_overlap),
    ))

    def accept(rows: np.ndarray, cols: np.ndarray, level: int) -> np.ndarray:
        min_breast, max_lesion = bounds[level]
        ok = breast_counter.count(rows, cols) / breast_counter.window_area > min_breast
        for counter in lesion_counters:
            ok &= ~_lesion_overlaps(counter, rows, cols, max_lesion)
        return ok

    breast_bounds = [b for b, _ in bounds]
    windows = _sample_windows(box, image.shape, breast_bounds, accept, config.backgrounds_per_image, rng, config)
    if len(windows) < config.backgrounds_per_image:
        raise DataError(source, f"only {len(windows)} of {config.backgrounds_per_image} background patches, even "
                                f"at breast > {bounds[-1][0]:.3f} and lesion overlap <= {bounds[-1][1]:.3f}")
    return windows


def tfds_breast_mask(image: np.ndarray, intensity: float = 0.05) -> np.ndarray:
    """The builder's breast mask: uint8 0/255, same shape as ``image`` (rows, cols).

    Pixels brighter than ``int(image.max() * intensity)`` (cv2.threshold's THRESH_BINARY rule;
    cv2.compare gives the same 0/255 uint8 result for 16-bit images too, which findContours
    needs), then only the largest-area contour of them (RETR_LIST), filled: this drops scanner
    labels and film borders and fills holes. All zeros when nothing is above the threshold.
    """
    threshold = int(image.max() * intensity)
    bright = cv2.compare(image, threshold, cv2.CMP_GT)
    filled = np.zeros_like(bright)
    contour = _largest_contour(bright)
    if contour is not None:
        cv2.drawContours(filled, [contour], 0, 255, cv2.FILLED)
    return filled


def overlaps_above(
    in_window: np.ndarray | int, window_area: int, lesion_area: int, threshold: float,
) -> np.ndarray | bool:
    """The builder's overlap test for one lesion: True where more than ``threshold`` of the
    window is lesion OR more than ``threshold`` of the lesion is in the window.

    ``in_window``: lesion pixels inside the window (a count, or an array of counts);
    ``window_area``/``lesion_area``: pixels, both > 0; ``threshold`` in [0, 1], strict ``>``.
    """
    in_window = np.asarray(in_window)
    return (in_window / window_area > threshold) | (in_window / lesion_area > threshold)


def _lesion_overlaps(counter: WindowCounter, rows: np.ndarray, cols: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`overlaps_above` for the lesion of ``counter`` in the windows at (rows, cols)."""
    return overlaps_above(counter.count(rows, cols), counter.window_area, counter.area, threshold)


def sampling_range(start: int, extent: int, patch: int, fraction: float, grid: int) -> tuple[int, int]:
    """Inclusive range [lo, hi] of window starts along one axis, the builder's formula.

    ``start``/``extent``: the target rect along this axis; ``patch``: the window's extent;
    ``fraction``: the current overlap threshold (positives) or breast bound (backgrounds);
    ``grid``: the image's extent. All in pixels.
    """
    longer, shorter = max(extent, patch), min(extent, patch)
    lo = start - int((1.0 - fraction) * longer)
    hi = start + extent - int(fraction * shorter)
    last = grid - patch - 1  # the builder's bound: a window never reaches the last row/col
    lo = min(max(lo, 0), last)  # min(): our fix, see the module docstring
    hi = max(min(hi, last), lo)
    return lo, hi


def _sample_windows(
    box: Box,
    grid: tuple[int, int],
    fractions: Sequence[float],
    accept: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    count: int,
    rng: np.random.Generator,
    config: SmallContextConfig,
) -> list[Window]:
    """The builder's relaxation loop, shared by both samplers; may return fewer than ``count``.

    Level k samples around ``box`` with region fraction ``fractions[k]``; ``accept(rows, cols,
    k)`` says which trial windows pass. Windows accepted at earlier levels are kept.
    """
    windows: list[Window] = []
    for level, fraction in enumerate(fractions):
        row_lo, row_hi = sampling_range(box.row0, box.height, config.patch_size[0], fraction, grid[0])
        col_lo, col_hi = sampling_range(box.col0, box.width, config.patch_size[1], fraction, grid[1])
        trials = min(config.trials_per_threshold, (row_hi - row_lo + 1) * (col_hi - col_lo + 1))
        rows = rng.integers(row_lo, row_hi + 1, size=trials)
        cols = rng.integers(col_lo, col_hi + 1, size=trials)
        accepted = np.flatnonzero(accept(rows, cols, level))[: count - len(windows)]
        windows += [Window(int(rows[i]), int(cols[i]), level) for i in accepted]
        if len(windows) == count:
            break
    return windows


def _schedule(start: float, factor: float, in_range: Callable[[float], bool]) -> list[float]:
    """start, start*factor, start*factor**2, ... while ``in_range`` (repeated products, as the builder)."""
    values = []
    value = start
    while in_range(value):
        values.append(value)
        value *= factor
    return values


def _crop(image: np.ndarray, windows: Sequence[Window], config: SmallContextConfig,
          label: str, abnormality: str | None) -> list[Patch]:
    """The patches of accepted ``windows``: the window itself, or with ``config.context_scale`` > 1 a wider
    window on the same centre, zero-padded beyond the grid and resized back to ``patch_size`` (INTER_AREA).
    A patch's row/col/height/width are those of the cut window, which may then extend past the grid."""
    height, width = config.patch_size
    if config.context_scale == 1.0:
        # copy(): a patch must not keep the whole grid image alive.
        return [Patch(pixels=image[w.row:w.row + height, w.col:w.col + width].copy(), label=label,
                      row=w.row, col=w.col, height=height, width=width, abnormality=abnormality,
                      relaxations=w.level) for w in windows]
    cut_rows, cut_cols = (round(side * config.context_scale) for side in config.patch_size)
    patches = []
    for w in windows:
        row, col = w.row - (cut_rows - height) // 2, w.col - (cut_cols - width) // 2
        cut = np.zeros((cut_rows, cut_cols), image.dtype)
        top, left = max(row, 0), max(col, 0)
        bottom, right = min(row + cut_rows, image.shape[0]), min(col + cut_cols, image.shape[1])
        cut[top - row:bottom - row, left - col:right - col] = image[top:bottom, left:right]
        pixels = cv2.resize(cut, (width, height), interpolation=cv2.INTER_AREA)
        patches.append(Patch(pixels=pixels, label=label, row=row, col=col, height=cut_rows, width=cut_cols,
                             abnormality=abnormality, relaxations=w.level))
    return patches


def _largest_contour(binary: np.ndarray) -> np.ndarray | None:
    """The largest-area contour of a uint8 mask (RETR_LIST, as the builder), or None if empty."""
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    # argmax keeps the first of equal areas, as the builder's np.argmax did.
    return contours[int(np.argmax([cv2.contourArea(c) for c in contours]))]


def _largest_contour_box(binary: np.ndarray) -> Box | None:
    """cv2.boundingRect of the largest contour; None if empty."""
    contour = _largest_contour(binary)
    if contour is None:
        return None
    x, y, w, h = cv2.boundingRect(contour)
    return Box.from_xywh(x, y, w, h)

