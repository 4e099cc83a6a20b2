"""Lesion masks for abnormality records, whatever the source stores (mask file or circle)."""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.data.records import AbnormalityRecord
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import binary_mask
from mammocad.utils.imageio import read_image


def has_roi(abnormality: AbnormalityRecord) -> bool:
    """False for abnormalities whose outline is unknown (mini-MIAS rows without a centre)."""
    return abnormality.roi_mask_path is not None or abnormality.roi_circle is not None


def load_roi_mask(abnormality: AbnormalityRecord, image_shape: tuple[int, int]) -> np.ndarray:
    """The abnormality's lesion mask as uint8 0/255, shape ``image_shape`` (rows, cols).

    Raises :class:`DataError` naming the mask file when it is missing, unreadable, of another
    size than the image, or empty.
    """
    rows, cols = image_shape
    if abnormality.roi_mask_path is not None:
        pixels = read_image(abnormality.roi_mask_path)
        if pixels.shape != (rows, cols):
            raise DataError(
                abnormality.roi_mask_path,
                f"ROI mask {pixels.shape[0]}x{pixels.shape[1]} does not match its image {rows}x{cols} (rows x cols)",
            )
        mask = binary_mask(pixels)
        source = abnormality.roi_mask_path
    elif abnormality.roi_circle is not None:
        c = abnormality.roi_circle
        mask = np.zeros((rows, cols), np.uint8)
        cv2.circle(mask, (round(c.col), round(c.row)), max(1, round(c.radius)), 255, thickness=-1)
        source = None
    else:
        raise DataError(None, f"{abnormality.key}: abnormality has no ROI (no mask file, no centre)")
    if not mask.any():
        raise DataError(source, f"empty ROI mask for {abnormality.key}")
    return mask
