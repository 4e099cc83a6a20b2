"""Preprocess one mammogram and its lesion masks with the same geometry (paper appendix 9.1).

:func:`preprocess` runs the steps of :mod:`mammocad.preprocess.steps` in the reference
order, except that the breast is found before the border crop so the crop can spare it::

    normalise -> breast mask on the full image (labels and film edges removed) -> crop the
    border-zone rows/cols without breast -> mask the image -> flip so the chest wall is on the
    left -> CLAHE -> pad to square -> resize

Every geometric step (crop, flip, pad, resize) is applied identically to the image, its
breast mask and its lesion masks, so they stay pixel-aligned; :class:`Geometry` records the
steps and maps coordinates between the input and the output. The breast-mask and flip
decisions are taken on the image alone, and the breast mask cuts the image only: a lesion
mask is never clipped by it. The crop never cuts the breast or a lesion mask; a lesion mask
lying mostly outside the breast (a misregistered outline) gets a line in
:attr:`Preprocessed.warnings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from mammocad.preprocess import steps
from mammocad.preprocess.config import PreprocessConfig
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import binary_mask


@dataclass(frozen=True)
class Geometry:
    """How output pixels relate to input pixels: crop, then flip, then pad, then resize.

    Shapes are (rows, cols) in pixels. Coordinates are (row, col) with pixel centres at
    integer positions (pixel ``[r, c]`` is the point ``(r, c)``), real-valued, so they can
    describe sub-pixel positions and survive the resize exactly.
    """

    input_shape: tuple[int, int]
    crop_top: int  # first input row kept
    crop_left: int  # first input col kept
    cropped_shape: tuple[int, int]
    flipped: bool  # left-right mirror of the cropped image
    padded_shape: tuple[int, int]  # zeros added at the right/bottom only: no pixel moves
    output_shape: tuple[int, int]

    def _scale(self) -> tuple[float, float]:
        return (self.output_shape[0] / self.padded_shape[0], self.output_shape[1] / self.padded_shape[1])

    def to_output(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Input (row, col) coordinates -> output coordinates; array-likes in, float arrays out."""
        rows = np.asarray(rows, dtype=np.float64) - self.crop_top
        cols = np.asarray(cols, dtype=np.float64) - self.crop_left
        if self.flipped:
            cols = (self.cropped_shape[1] - 1) - cols
        scale_rows, scale_cols = self._scale()
        # Resizing maps pixel *edges* 0..n onto 0..m, so centres shift by half a pixel.
        return (rows + 0.5) * scale_rows - 0.5, (cols + 0.5) * scale_cols - 0.5

    def to_input(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Output (row, col) coordinates -> input coordinates; the inverse of :meth:`to_output`."""
        scale_rows, scale_cols = self._scale()
        rows = (np.asarray(rows, dtype=np.float64) + 0.5) / scale_rows - 0.5
        cols = (np.asarray(cols, dtype=np.float64) + 0.5) / scale_cols - 0.5
        if self.flipped:
            cols = (self.cropped_shape[1] - 1) - cols
        return rows + self.crop_top, cols + self.crop_left


@dataclass
class Preprocessed:
    """Output of :func:`preprocess`; all arrays share the shape ``geometry.output_shape``."""

    image: np.ndarray  # uint8 or uint16 (config.output_bits), breast only, background 0
    masks: list[np.ndarray]  # uint8 0/255 lesion masks, in the order given
    breast_mask: np.ndarray  # uint8 0/255
    geometry: Geometry
    # One line per problem worth a look that did not stop preprocessing, e.g. a lesion mask
    # lying mostly outside the breast.
    warnings: list[str] = field(default_factory=list)


def preprocess(image: np.ndarray, masks: Sequence[np.ndarray] = (), config: PreprocessConfig = PreprocessConfig(),
               source: str | None = None) -> Preprocessed:
    """Preprocess a mammogram (uint8 or uint16, rows x cols) and its lesion masks.

    ``masks``: lesion masks of the image's shape, any dtype, nonzero = lesion. ``source``
    names the image in error messages. Inputs are not modified.

    The image is normalised with the darkest and brightest pixels inside the border zone
    (:func:`steps.inner_window`), the breast is found on the whole image, and the crop removes
    only border-zone rows/cols without breast or lesion (:func:`steps.crop_window`), so every
    lesion mask keeps its whole area. A lesion mask lying mostly (> ``MOSTLY_OUTSIDE``) outside
    the breast gets a line in ``warnings``: the image is blanked there, so it is likely misplaced.

    Raises :class:`DataError` (one line) for a non-2-D or empty image, an unsupported pixel
    type, a mask of another shape than the image, an all-zero mask, an image without a
    breast (e.g. constant), and a lesion mask that the resize empties.
    """
    _check_image(image, source)
    _check_masks(image.shape, masks, source)
    fractions = config.crop_fractions
    norm_full = steps.normalize(image, steps.inner_window(image.shape, fractions))
    breast_full = _find_breast(norm_full, config, source)
    full_lesions = [binary_mask(m) for m in masks]
    window = steps.crop_window(breast_full, fractions, keep=full_lesions)
    lesions = [np.ascontiguousarray(m[window]) for m in full_lesions]
    warnings = _outside_breast_warnings(full_lesions, breast_full)

    breast = np.ascontiguousarray(breast_full[window])
    tissue = steps.apply_mask(norm_full[window], breast)
    cropped_shape = _shape(tissue.shape)
    del norm_full, breast_full, full_lesions  # full-size copies: free them before CLAHE and padding
    flipped = steps.should_flip(tissue)
    if flipped:
        tissue, breast = steps.flip_horizontal(tissue), steps.flip_horizontal(breast)
        lesions = [steps.flip_horizontal(m) for m in lesions]
    hist_bits = 8 if image.dtype == np.uint8 else config.clahe_hist_bits
    enhanced = steps.clahe(tissue, config.clahe_clip, (config.clahe_tile, config.clahe_tile), hist_bits)

    if config.pad_square:
        enhanced, breast = steps.pad_to_square(enhanced), steps.pad_to_square(breast)
        lesions = [steps.pad_to_square(m) for m in lesions]
    padded_shape = enhanced.shape
    if config.size is not None:
        enhanced, breast = steps.resize(enhanced, config.size), steps.resize(breast, config.size, mask=True)
        lesions = [steps.resize(m, config.size, mask=True) for m in lesions]
        _check_not_emptied(lesions, source, f"vanished when resizing to {enhanced.shape[0]}x{enhanced.shape[1]} "
                                            "(lesion smaller than the scale step; use a larger size)")

    # Last, so nothing outside the final breast mask survives: CLAHE lifts the empty background
    # to a few grey levels, and area resizing blends the breast edge into the next pixels.
    enhanced = steps.apply_mask(enhanced, breast)
    geometry = Geometry(
        input_shape=(int(image.shape[0]), int(image.shape[1])),
        crop_top=window[0].start,
        crop_left=window[1].start,
        cropped_shape=cropped_shape,
        flipped=flipped,
        padded_shape=_shape(padded_shape),
        output_shape=_shape(enhanced.shape),
    )
    return Preprocessed(steps.to_uint(enhanced, config.output_bits), lesions, breast, geometry, warnings)


# Above this share of its area outside the breast, a lesion outline is more likely misplaced
# (CBIS-DDSM has misregistered ROI masks) than drawn a little past the skin line, as the
# approximate circles of mini-MIAS often are.
MOSTLY_OUTSIDE = 0.5


def _outside_breast_warnings(lesions: list[np.ndarray], breast: np.ndarray) -> list[str]:
    """One line per lesion mask lying mostly outside the breast mask (its image pixels there are blanked)."""
    lines = []
    for k, lesion in enumerate(lesions, start=1):
        area = cv2.countNonZero(lesion)
        outside = area - cv2.countNonZero(cv2.bitwise_and(lesion, breast))
        if outside > MOSTLY_OUTSIDE * area:
            lines.append(f"lesion mask {k} of {len(lesions)}: {outside / area:.1%} of its area lies outside the "
                         f"breast ({outside} of {area} px); check that the mask belongs to this image")
    return lines


def _shape(shape: tuple[int, ...]) -> tuple[int, int]:
    return int(shape[0]), int(shape[1])


def _check_image(image: np.ndarray, source: str | None) -> None:
    if image.ndim != 2:
        raise DataError(source, f"expected a 2-D grayscale image (rows, cols), got shape {image.shape}")
    if image.size == 0:
        raise DataError(source, f"empty image (shape {image.shape})")
    if image.dtype not in (np.uint8, np.uint16):
        raise DataError(source, f"unsupported pixel type {image.dtype}; expected uint8 or uint16")


def _check_masks(shape: tuple[int, int], masks: Sequence[np.ndarray], source: str | None) -> None:
    for k, mask in enumerate(masks, start=1):
        which = f"(lesion mask {k} of {len(masks)})"
        if mask.shape != shape:
            raise DataError(source, f"mask {'x'.join(map(str, mask.shape))} does not match image "
                                    f"{shape[0]}x{shape[1]} (rows x cols) {which}")
        if not mask.any():
            raise DataError(source, f"empty ROI mask: all zero {which}")


def _check_not_emptied(masks: list[np.ndarray], source: str | None, why: str) -> None:
    for k, mask in enumerate(masks, start=1):
        if not mask.any():
            raise DataError(source, f"ROI mask {why} (lesion mask {k} of {len(masks)})")


def _find_breast(norm: np.ndarray, config: PreprocessConfig, source: str | None) -> np.ndarray:
    breast = steps.breast_mask(norm, config.threshold, config.open_size, config.dilate_size, config.crop_fractions)
    if breast.any():
        return breast
    if not norm.any():  # normalize() maps a constant image to all zeros
        raise DataError(source, "no breast found: the image (inside the border zone) is constant")
    size = steps.kernel_px(config.open_size, norm.shape)
    raise DataError(source, f"no breast found: no region above threshold {config.threshold} survives "
                            f"the {size}x{size} px opening")


def original_frame(pixels: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A prepared image (or mask) put back in the frame of the original mammogram, at the prepared scale.

    Undoes the square padding and puts the border crop back as zeros, so the result covers what
    the original image covered (rows x cols in proportion to ``geometry.input_shape``), in the
    prepared orientation (chest wall on the left) and resolution. This is the image the TFDS
    builder would have resized (it never padded), which small-context patches need. Any dtype;
    ``pixels`` has ``geometry.output_shape``.
    """
    if pixels.shape != geometry.output_shape:
        raise ValueError(f"pixels {pixels.shape} do not have the prepared shape {geometry.output_shape}")
    scale_rows = geometry.output_shape[0] / geometry.padded_shape[0]
    scale_cols = geometry.output_shape[1] / geometry.padded_shape[1]
    content = pixels[:round(geometry.cropped_shape[0] * scale_rows), :round(geometry.cropped_shape[1] * scale_cols)]
    in_rows, in_cols = geometry.input_shape
    top, left = geometry.crop_top, geometry.crop_left
    bottom = in_rows - top - geometry.cropped_shape[0]
    right = in_cols - left - geometry.cropped_shape[1]
    if geometry.flipped:  # the mirror put the original left margin on the right
        left, right = right, left
    return cv2.copyMakeBorder(content, round(top * scale_rows), round(bottom * scale_rows),
                              round(left * scale_cols), round(right * scale_cols), cv2.BORDER_CONSTANT, value=0)
