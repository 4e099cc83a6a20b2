"""Large-context patches: one window per abnormality, the lesion plus surrounding tissue.

The paper re-extracted its patches after Levy & Jain ("Breast mass classification from
mammograms using deep convolutional neural networks", 2016): the bounding box of the ROI mask,
padded on every side by a fraction of its larger side (0.5 by default, so the window is about
twice the lesion), then resized to the network's input (224, or 299 for InceptionV3). A window
that runs off the image is shifted back inside, keeping its size, rather than clipped, so that
lesions at the border keep their context and their aspect; only a window larger than the image
in a dimension is clipped to the image in that dimension.

Coordinates are (row, col) in pixels of the prepared image; boxes are (row0, col0, row1, col1)
with exclusive ends.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mammocad.patches.config import LargeContextConfig
from mammocad.patches.small_context import validate_inputs
from mammocad.patches.types import LesionMask, Patch
from mammocad.preprocess.steps import resize_square
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import Box, mask_box



def large_context_patches(
    image: np.ndarray,
    lesions: Sequence[LesionMask],
    config: LargeContextConfig = LargeContextConfig(),
    source: str | None = None,
) -> list[Patch]:
    """One patch per lesion, in lesion order, ``config.output_size`` square, the image's dtype.

    ``image`` is 2-D uint8/uint16 (rows, cols); each mask has its shape. Each Patch's
    row/col/height/width is its window in ``image``'s grid; label and abnormality come from
    the lesion. Raises :class:`DataError` (naming ``source``) for bad input or an empty mask.
    """
    validate_inputs(image, lesions, source)
    patches = []
    for lesion in lesions:
        bbox = mask_box(lesion.mask)
        if bbox is None:
            raise DataError(source, f"empty ROI mask for {lesion.key}")
        patches.append(large_context_patch(image, bbox, config, label=lesion.label, abnormality=lesion.key))
    return patches


def large_context_patch(image: np.ndarray, bbox: Box, config: LargeContextConfig = LargeContextConfig(),
                        label: str = "", abnormality: str = "") -> Patch:
    """The large-context patch of a lesion whose mask's box on ``image`` is ``bbox`` (see :func:`large_context_patches`)."""
    row0, col0, row1, col1 = large_context_window(bbox, image.shape, config)
    pixels = resize_square(image[row0:row1, col0:col1], config.output_size)
    return Patch(pixels=pixels, label=label, row=row0, col=col0, height=row1 - row0, width=col1 - col0,
                 abnormality=abnormality)


def large_context_window(
    mask_bbox: Box, image_shape: tuple[int, int], config: LargeContextConfig = LargeContextConfig(),
) -> Box:
    """The window (row0, col0, row1, col1) to cut for a lesion whose box is ``mask_bbox``.

    The box padded by ``int(round(context * max(h, w)))`` on every side (or the square of
    that padded larger side, centred), grown to ``min_side`` about its centre, then moved
    inside ``image_shape`` (rows, cols): shifted where it fits, clipped where it does not.
    """
    row0, col0, row1, col1 = mask_bbox
    height, width = row1 - row0, col1 - col0
    pad = int(round(config.context * max(height, width)))
    if config.square:
        side = max(height, width) + 2 * pad
        rows, cols = _centred(row0, height, side), _centred(col0, width, side)
    else:
        rows, cols = (row0 - pad, row1 + pad), (col0 - pad, col1 + pad)
    rows, cols = _at_least(*rows, config.min_side), _at_least(*cols, config.min_side)
    (row0, row1), (col0, col1) = _inside(*rows, image_shape[0]), _inside(*cols, image_shape[1])
    return Box(row0, col0, row1, col1)


def _centred(start: int, extent: int, side: int) -> tuple[int, int]:
    """An interval of length ``side`` with the same centre as [start, start + extent)."""
    begin = start - (side - extent) // 2
    return begin, begin + side


def _at_least(begin: int, end: int, side: int) -> tuple[int, int]:
    """[begin, end) grown about its centre to length ``side`` if it is shorter."""
    return _centred(begin, end - begin, side) if end - begin < side else (begin, end)


def _inside(begin: int, end: int, length: int) -> tuple[int, int]:
    """[begin, end) moved inside [0, length): shifted, keeping its length, if it fits; else [0, length)."""
    if end - begin >= length:
        return 0, length
    shift = max(0, -begin) - max(0, end - length)
    return begin + shift, end + shift
