"""From the prepared image's pixel grid back to the original mammogram's: boxes, outlines, masks, maps.

Preprocessing crops, flips, pads and resizes (:class:`~mammocad.preprocess.pipeline.Geometry`);
everything a model finds on the prepared image is mapped back with ``Geometry.to_input``.
Coordinates here are real-valued with pixel centres at integers (pixel ``[r, c]`` is the point
``(r, c)``), so a pixel's edges are at ``+-0.5``; boxes are ``(x0, y0, x1, y1) = (col0, row0,
col1, row1)`` with exclusive ends, outlines ``[[x, y], ...]`` (x = column, y = row), both in
original pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.preprocess.pipeline import Geometry
from mammocad.utils.geometry import Box


def box_to_input(box: Box, geometry: Geometry) -> tuple[float, float, float, float]:
    """A box on the prepared grid -> the box ``(x0, y0, x1, y1)`` it covers in original pixels.

    The box's outer pixel edges are mapped (so a one-pixel box keeps its width at any scale);
    with a flip, its left and right edges swap. Exact (integers) when the preprocessing did
    not resize; otherwise real-valued.
    """
    rows, cols = geometry.to_input([box.row0 - 0.5, box.row1 - 0.5], [box.col0 - 0.5, box.col1 - 0.5])
    rows, cols = np.sort(rows) + 0.5, np.sort(cols) + 0.5
    return float(cols[0]), float(rows[0]), float(cols[1]), float(rows[1])


def outlines_to_input(mask: np.ndarray, geometry: Geometry) -> list[list[list[float]]]:
    """The outer outline of each connected part of ``mask`` (prepared grid), as ``[[x, y], ...]`` in original pixels.

    Outline points are the centres of the mask's boundary pixels (OpenCV ``findContours``,
    simplified along straight runs), mapped back; largest part first.
    """
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    outlines = []
    for contour in sorted(contours, key=lambda c: -cv2.contourArea(c) - len(c)):
        points = contour.reshape(-1, 2)  # (x, y) = (col, row)
        rows, cols = geometry.to_input(points[:, 1], points[:, 0])
        outlines.append(np.round(np.stack([cols, rows], axis=1), 2).tolist())
    return outlines


def pixel_area_in_input(geometry: Geometry) -> float:
    """How many original pixels one prepared pixel covers (1.0 without a resize)."""
    return (geometry.padded_shape[0] / geometry.output_shape[0]) * (geometry.padded_shape[1] / geometry.output_shape[1])


def _nearest(out: np.ndarray, length: int) -> np.ndarray:
    return np.clip(np.floor(out + 0.5), 0, length - 1).astype(np.intp)


def _covered(centres: np.ndarray, start: int, length: int) -> np.ndarray:
    """Which sample centres fall in the pixels ``[start, start + length)`` the border crop kept."""
    return (centres >= start - 0.5) & (centres < start + length - 0.5)


def to_input_grid(pixels: np.ndarray, geometry: Geometry, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A prepared-grid array (image, mask, map) resampled onto the original image's grid, nearest neighbour.

    ``shape``: the (rows, cols) grid to produce, covering the whole original image (default:
    ``geometry.input_shape``, i.e. original pixels; a smaller one for a display). Pixels the
    border crop removed are 0. The geometry is separable (rows and columns map independently),
    so this is one gather.
    """
    if pixels.shape[:2] != geometry.output_shape:
        raise ValueError(f"pixels {pixels.shape} do not have the prepared shape {geometry.output_shape}")
    rows_n, cols_n = shape or geometry.input_shape
    # sample centres, in original pixel coordinates
    rows = (np.arange(rows_n) + 0.5) * geometry.input_shape[0] / rows_n - 0.5
    cols = (np.arange(cols_n) + 0.5) * geometry.input_shape[1] / cols_n - 0.5
    out_rows = geometry.to_output(rows, np.zeros_like(rows))[0]
    out_cols = geometry.to_output(np.zeros_like(cols), cols)[1]
    rows_in = _covered(rows, geometry.crop_top, geometry.cropped_shape[0])
    cols_in = _covered(cols, geometry.crop_left, geometry.cropped_shape[1])
    rows, cols = _nearest(out_rows, geometry.output_shape[0]), _nearest(out_cols, geometry.output_shape[1])
    result = pixels[np.ix_(rows, cols)]
    result[~rows_in] = 0
    result[:, ~cols_in] = 0
    return result
