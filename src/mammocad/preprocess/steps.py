"""The image operations of the CBIS-DDSM preprocessing (paper appendix 9.1), one job each.

Every function is pure: it returns a new array and never modifies its input.

Conventions used throughout:

- arrays are 2-D and indexed ``[row, col]``; shapes are ``(rows, cols)``; sizes are pixels of the
  array passed in;
- raw images are ``uint16`` (DICOM) or ``uint8`` (PNG/PGM); *normalised* images are ``float32``
  in [0, 1]; masks are ``uint8`` with values 0 and 255 (255 = inside);
- OpenCV takes sizes as ``(width, height)`` = ``(cols, rows)``; the conversion happens here, so
  callers only ever see ``(rows, cols)``.

The order in which :mod:`mammocad.preprocess.pipeline` applies them is the widely used
CBIS-DDSM pipeline: crop borders, normalise, breast mask, flip so the chest wall is on the
left, CLAHE, pad to square, resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


# ---- border crop ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropFractions:
    """Fraction of the rows/cols removed at each side, each in [0, 0.5).

    The defaults drop the scanner borders and film edges of DDSM scans (4% top and bottom,
    where the film labels and bright strips are, 1% left and right).
    """

    left: float = 0.01
    right: float = 0.01
    top: float = 0.04
    bottom: float = 0.04

    def __post_init__(self) -> None:
        for side in ("left", "right", "top", "bottom"):
            value = getattr(self, side)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"crop fraction {side}={value} is outside [0, 0.5)")


def _border_px(size: int, fraction: float) -> int:
    # floor(size * fraction) as the reference pipeline's int(); the epsilon keeps products
    # like 100 * 0.29 = 28.999999999999996 from losing a pixel to float error.
    return int(size * fraction + 1e-9)


def crop_window(shape: tuple[int, int], fractions: CropFractions = CropFractions()) -> tuple[slice, slice]:
    """The (row slice, col slice) that :func:`crop_borders` keeps from an image of ``shape``.

    Each side loses ``floor(size * fraction)`` pixels; the slices start at the first kept
    row/col, so a kept pixel ``(r, c)`` of the input is ``(r - start_row, c - start_col)`` in
    the crop. Fractions below 0.5 each way always keep at least one row and one column.
    """
    rows, cols = shape
    return (
        slice(_border_px(rows, fractions.top), rows - _border_px(rows, fractions.bottom)),
        slice(_border_px(cols, fractions.left), cols - _border_px(cols, fractions.right)),
    )


def crop_borders(image: np.ndarray, fractions: CropFractions = CropFractions()) -> np.ndarray:
    """Remove a fixed fraction of rows/cols at each side (scanner borders); any dtype.

    Returns a contiguous copy, shape ``(rows - top - bottom, cols - left - right)`` pixels.
    """
    return image[crop_window(image.shape, fractions)].copy()


# ---- intensities ----------------------------------------------------------------------------------
def normalize(image: np.ndarray) -> np.ndarray:
    """Min-max scale to float32 [0, 1]: the darkest pixel becomes 0, the brightest 1.

    A constant image has no contrast to scale; it becomes all zeros (and then yields no
    breast). Accepts any real dtype (uint8, uint16, float).
    """
    low, high, _, _ = cv2.minMaxLoc(image)
    if high == low:
        return np.zeros(image.shape, np.float32)
    out = image.astype(np.float32)
    # In place: a 4000x3000 image would otherwise make two more 48 MB temporaries.
    out -= np.float32(low)
    out *= np.float32(1.0 / (high - low))
    return out


def to_uint(norm: np.ndarray, bits: int) -> np.ndarray:
    """float [0, 1] -> uint8 (``bits=8``, 0..255) or uint16 (``bits=16``, 0..65535).

    Rounds to the nearest level; values outside [0, 1] saturate.
    """
    dtype = {8: np.uint8, 16: np.uint16}[bits]
    top = np.float32((1 << bits) - 1)
    scaled = norm * top
    np.clip(scaled, 0, top, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(dtype)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 [0, 1], dividing by the dtype's full scale (255 or 65535)."""
    out = image.astype(np.float32)
    out *= np.float32(1.0 / np.iinfo(image.dtype).max)
    return out


# ---- masks ----------------------------------------------------------------------------------------
def binary_mask(mask: np.ndarray) -> np.ndarray:
    """Any mask (bool, 0/1, 0/2, 0/255, uint16, ...) -> uint8 0/255; nonzero means inside."""
    return (mask != 0).view(np.uint8) * np.uint8(255)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest blob of a 0/255 uint8 mask, holes filled; all zeros if none.

    "Largest" is by the area inside the outer contour (as in the reference pipeline), and the
    blob is redrawn filled, so dark fatty tissue enclosed by the breast stays inside it.
    """
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask)
    if contours:
        largest = max(contours, key=cv2.contourArea)
        cv2.drawContours(out, [largest], -1, 255, thickness=cv2.FILLED)
    return out


def _rect(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))


def breast_mask(norm: np.ndarray, threshold: float = 0.1, open_kernel: int = 23, dilate_kernel: int = 23) -> np.ndarray:
    """The breast region of a normalised image: uint8 0/255, same shape.

    ``norm``: float32 [0, 1] (output of :func:`normalize`). Steps: pixels ``>= threshold``;
    morphological opening with an ``open_kernel`` x ``open_kernel`` square (px) removes thin
    bright structures (text, film edges, noise); dilation with a ``dilate_kernel`` square
    grows the result back over the skin line; the largest connected blob (holes filled) is the
    breast. Everything else, labels included, is outside the mask. The defaults (0.1, 23, 23)
    are the reference pipeline's, tuned on full-resolution (~4000x3000) DDSM scans.

    Runs at full resolution on purpose: OpenCV's rectangular morphology is separable, so
    threshold, opening, dilation and contour search on a 4000x3000 image take about 20 ms
    (one core); a downscaled approximation would save next to nothing and change the outline.
    """
    binary = cv2.compare(norm, float(threshold), cv2.CMP_GE)
    opened = cv2.morphologyEx(binary, cv2.MORPH_OPEN, _rect(open_kernel))
    return largest_component(cv2.dilate(opened, _rect(dilate_kernel)))


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` where ``mask`` is nonzero, 0 elsewhere; same shape and dtype as ``image``."""
    return cv2.copyTo(image, mask, np.zeros_like(image))


# ---- orientation ----------------------------------------------------------------------------------
def should_flip(image: np.ndarray) -> bool:
    """True when the breast faces the wrong way: more signal in the right half than the left.

    Works on a (masked) image of any dtype or on a 0/255 mask: compares the sums of the
    left and right halves of the columns (the middle column of an odd width counts for
    neither). The output convention is chest wall on the LEFT, breast extending right; the
    chest-wall side holds most of the breast's area and brightness. Ties do not flip.
    """
    column_sums = image.sum(axis=0, dtype=np.float64)
    half = image.shape[1] // 2
    return bool(column_sums[:half].sum() < column_sums[image.shape[1] - half:].sum())


def flip_horizontal(image: np.ndarray) -> np.ndarray:
    """Mirror left-right: input column ``c`` becomes column ``cols - 1 - c``; any dtype."""
    return cv2.flip(image, 1)


# ---- contrast -------------------------------------------------------------------------------------
def clahe(norm: np.ndarray, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8),
          hist_bits: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation; float32 [0, 1] in and out.

    ``tile_grid``: number of tiles along (rows, cols). ``clip_limit``: OpenCV's, a multiple
    of a tile's mean histogram bin count. ``hist_bits`` (8..16): histogram resolution; the
    image is equalised as uint16 with 2**hist_bits bins (``CLAHE.setBitShift``, OpenCV >=
    4.13), and the output has 2**hist_bits grey levels instead of 8-bit CLAHE's 256.

    Why not always 16: the clip limit is relative to the mean bin count, so it means what it
    means in the 8-bit reference pipeline only while the occupied bins are dense and well
    filled. CBIS-DDSM DICOMs are 16-bit files holding only ~2000-4000 distinct levels (12-bit
    scans, stretched), so most of 65536 bins are empty and the same clip limit equalises
    differently: on a 4000x3000 mammogram with levels 25 apart the output differs from 8-bit
    CLAHE by 0.078 of full scale on average at 16 bits, 0.022 at 12, 0.003 at 10 (within one
    8-bit level) while keeping 4x finer levels. ``hist_bits=8`` matches OpenCV's 8-bit CLAHE
    to within one level.
    """
    engine = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tile_grid[1], tile_grid[0]))
    engine.setBitShift(16 - hist_bits)
    return to_float(engine.apply(to_uint(norm, 16)))


# ---- geometry -------------------------------------------------------------------------------------
def pad_to_square(image: np.ndarray) -> np.ndarray:
    """Zero-pad on the right (if rows > cols) or at the bottom (if cols > rows) to a square.

    With the chest wall on the left the padding lands away from the breast, and no existing
    pixel moves: pixel ``(r, c)`` keeps its coordinates. Any dtype; shape ``(n, n)`` with
    ``n = max(rows, cols)``.
    """
    rows, cols = image.shape
    side = max(rows, cols)
    return cv2.copyMakeBorder(image, 0, side - rows, 0, side - cols, cv2.BORDER_CONSTANT, value=0)


def resized_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(rows, cols) after scaling ``shape`` so its longer side is ``size`` px, aspect kept."""
    rows, cols = shape
    scale = size / max(rows, cols)
    return max(1, round(rows * scale)), max(1, round(cols * scale))


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """``pixels`` (rows, cols) resized to size x size px, aspect not kept: INTER_AREA along an
    axis that shrinks, INTER_LINEAR along one that grows. The one resampling of patches (large
    context, segmentation) and of model inputs (training, validation, inference)."""
    rows, cols = pixels.shape
    row_method, col_method = _interpolation(rows, size), _interpolation(cols, size)
    if row_method == col_method:
        return cv2.resize(pixels, (size, size), interpolation=row_method)
    # One axis shrinks, the other grows: cv2 only averages (INTER_AREA) when both shrink, and
    # bilinear aliases when shrinking, so each axis gets its own pass.
    resized_rows = cv2.resize(pixels, (cols, size), interpolation=row_method)
    return cv2.resize(resized_rows, (size, size), interpolation=col_method)


def _interpolation(source: int, target: int) -> int:
    return cv2.INTER_AREA if target < source else cv2.INTER_LINEAR


def resize(image: np.ndarray, size: int, *, mask: bool = False) -> np.ndarray:
    """Scale so the longer side is ``size`` px (a square becomes ``size`` x ``size``).

    Images (any dtype): area averaging when shrinking (no aliasing), bilinear when
    enlarging. Masks (``mask=True``): nearest neighbour, so a 0/255 mask stays 0/255; OpenCV's
    NEAREST_EXACT samples at pixel centres like the image interpolations, so masks and image
    stay aligned (plain NEAREST is off by up to half a source pixel). A lesion smaller than
    the scale step can vanish; the pipeline reports that.
    """
    rows, cols = resized_shape(image.shape, size)
    if mask:
        interpolation = cv2.INTER_NEAREST_EXACT
    else:
        interpolation = cv2.INTER_AREA if rows < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (cols, rows), interpolation=interpolation)
