"""From the prepared image's pixel grid back to the original mammogram's: boxes, outlines, masks, maps.

Preprocessing crops, flips, pads and resizes (:class:`~mammocad.preprocess.pipeline.Geometry`);
everything a model finds on the prepared image is mapped back with ``Geometry.to_input``.
Coordinates here are real-valued with pixel centres at integers (pixel ``[r, c]`` is the point
``(r, c)``), so a pixel's edges are at ``+-0.5``; boxes are ``(x0, y0, x1, y1) = (col0, row0,
col1, row1)`` with exclusive ends, outlines ``[[x, y], ...]`` (x = column, y = row), both in
original pixels.
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from mammocad.preprocess.pipeline import Geometry
from mammocad.utils.geometry import Box, mask_box


def box_to_input(box: Box, geometry: Geometry) -> tuple[float, float, float, float]:
    """A box on the prepared grid -> the box ``(x0, y0, x1, y1)`` it covers in original pixels.

    The box's outer pixel edges are mapped (so a one-pixel box keeps its width at any scale);
    with a flip, its left and right edges swap. Exact (integers) when the preprocessing did
    not resize; otherwise real-valued.
    """
    rows, cols = geometry.to_input([box.row0 - 0.5, box.row1 - 0.5], [box.col0 - 0.5, box.col1 - 0.5])
    rows, cols = np.sort(rows) + 0.5, np.sort(cols) + 0.5
    return float(cols[0]), float(rows[0]), float(cols[1]), float(rows[1])


def outlines_to_input(mask: np.ndarray, geometry: Geometry,
                      origin: tuple[int, int] = (0, 0)) -> list[list[list[float]]]:
    """The outer outline of each connected part of ``mask`` (prepared grid), as ``[[x, y], ...]`` in original pixels.

    ``mask`` may be a window of the prepared grid whose top-left pixel is at ``origin`` (row,
    col): the region's bounding box is enough, and much cheaper than the whole grid. Outline
    points are the centres of the mask's boundary pixels (OpenCV ``findContours``, simplified
    along straight runs), mapped back; largest part first.
    """
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE, offset=(origin[1], origin[0]))
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


def _sample_indices(rows: np.ndarray, cols: np.ndarray, source: Geometry) -> tuple[np.ndarray, ...]:
    """For samples at original-pixel centres ``rows`` (R,) and ``cols`` (C,) (the geometry is separable:
    rows and columns map independently): the nearest pixel rows and cols of ``source``'s prepared
    grid, and which samples the border crop kept. All four are monotonic or one interval."""
    out_rows = source.to_output(rows, np.zeros_like(rows))[0]
    out_cols = source.to_output(np.zeros_like(cols), cols)[1]
    return (_nearest(out_rows, source.output_shape[0]), _nearest(out_cols, source.output_shape[1]),
            _covered(rows, source.crop_top, source.cropped_shape[0]),
            _covered(cols, source.crop_left, source.cropped_shape[1]))


def _gather(pixels: np.ndarray, rows: np.ndarray, cols: np.ndarray, rows_in: np.ndarray,
            cols_in: np.ndarray) -> np.ndarray:
    result = pixels[np.ix_(rows, cols)]
    result[~rows_in] = 0
    result[:, ~cols_in] = 0
    return result


def _original_centres(geometry: Geometry, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Centres of a (rows, cols) grid of samples over the whole original image, in original pixels."""
    rows_n, cols_n = shape
    return ((np.arange(rows_n) + 0.5) * geometry.input_shape[0] / rows_n - 0.5,
            (np.arange(cols_n) + 0.5) * geometry.input_shape[1] / cols_n - 0.5)


def to_input_grid(pixels: np.ndarray, geometry: Geometry, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A prepared-grid array (image, mask, map) resampled onto the original image's grid, nearest neighbour.

    ``shape``: the (rows, cols) grid to produce, covering the whole original image (default:
    ``geometry.input_shape``, i.e. original pixels; a smaller one for a display). Pixels the
    border crop removed are 0. The geometry is separable (rows and columns map independently),
    so this is one gather.
    """
    if pixels.shape[:2] != geometry.output_shape:
        raise ValueError(f"pixels {pixels.shape} do not have the prepared shape {geometry.output_shape}")
    rows, cols = _original_centres(geometry, shape or geometry.input_shape)
    return _gather(pixels, *_sample_indices(rows, cols, geometry))


def _boxwise(masks: np.ndarray, geometry: Geometry) -> Iterator[tuple[int, slice, slice, np.ndarray]]:
    """Per nonempty mask k (N, rows, cols on the prepared grid): the original-grid window (row slice,
    col slice) where it can be nonzero and its resampled pixels there (nearest neighbour, as
    :func:`to_input_grid`). The window is the original rows and cols that map into the mask's
    bounding box: one interval each, the mapping being monotonic."""
    if masks.ndim != 3 or masks.shape[1:] != geometry.output_shape:
        raise ValueError(f"masks {masks.shape} are not (N, *{geometry.output_shape})")
    rows, cols, rows_in, cols_in = _sample_indices(*_original_centres(geometry, geometry.input_shape), geometry)
    for k, mask in enumerate(masks):
        if not mask.any():
            continue
        box = mask_box(mask)
        r = np.flatnonzero(rows_in & (rows >= box.row0) & (rows < box.row1))
        c = np.flatnonzero(cols_in & (cols >= box.col0) & (cols < box.col1))
        if len(r) and len(c):
            window_rows, window_cols = slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)
            yield k, window_rows, window_cols, mask[np.ix_(rows[window_rows], cols[window_cols])]


def masks_to_input_grid(masks: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Masks (N, rows, cols) on the prepared grid -> (N, rows, cols) bool on the original pixel grid.

    The same as stacking :func:`to_input_grid` of each mask, but each is resampled only inside
    its window (:func:`_boxwise`), so N full-size masks cost one zeroed array plus N small gathers.
    """
    out = np.zeros((len(masks), *geometry.input_shape), bool)
    for k, window_rows, window_cols, pixels in _boxwise(masks, geometry):
        out[k, window_rows, window_cols] = pixels
    return out


def masks_to_input_labels(masks: np.ndarray, geometry: Geometry) -> np.ndarray | None:
    """Masks (N, rows, cols) on the prepared grid -> one label map on the original pixel grid: value
    k + 1 where mask k is (as :func:`masks_to_input_grid`), 0 elsewhere; uint8, uint16 above 255
    masks. None when two masks overlap there (one label map cannot hold both)."""
    labels = np.zeros(geometry.input_shape, np.uint8 if len(masks) < 256 else np.uint16)
    for k, window_rows, window_cols, pixels in _boxwise(masks, geometry):
        window = labels[window_rows, window_cols]
        if window[pixels].any():
            return None
        window[pixels] = k + 1
    return labels


def content_window(geometry: Geometry) -> tuple[slice, slice]:
    """(rows, cols) slices of the prepared grid showing the original image: the square padding is
    at the bottom and right, beyond them."""
    rows = geometry.to_input(np.arange(geometry.output_shape[0]), np.zeros(geometry.output_shape[0]))[0]
    cols = geometry.to_input(np.zeros(geometry.output_shape[1]), np.arange(geometry.output_shape[1]))[1]
    rows_in = np.flatnonzero(_covered(rows, geometry.crop_top, geometry.cropped_shape[0]))
    cols_in = np.flatnonzero(_covered(cols, geometry.crop_left, geometry.cropped_shape[1]))
    return slice(rows_in[0], rows_in[-1] + 1), slice(cols_in[0], cols_in[-1] + 1)


def between_grids(pixels: np.ndarray, source: Geometry, target: Geometry) -> np.ndarray:
    """An array on ``source``'s prepared grid resampled onto ``target``'s prepared grid, nearest neighbour.

    Both geometries prepare the same original image (other preprocessing settings: crop, size);
    a target pixel maps to the original image (``target.to_input``) and from there to the source
    grid. It is 0 where the source's border crop removed that original pixel and where the target
    pixel lies outside its own crop (its square padding).
    """
    if source.input_shape != target.input_shape:
        raise ValueError(f"the geometries prepare different images: {source.input_shape} vs {target.input_shape}")
    if pixels.shape[:2] != source.output_shape:
        raise ValueError(f"pixels {pixels.shape} do not have the prepared shape {source.output_shape}")
    rows = target.to_input(np.arange(target.output_shape[0]), np.zeros(target.output_shape[0]))[0]
    cols = target.to_input(np.zeros(target.output_shape[1]), np.arange(target.output_shape[1]))[1]
    src_rows, src_cols, rows_in, cols_in = _sample_indices(rows, cols, source)
    rows_in &= _covered(rows, target.crop_top, target.cropped_shape[0])
    cols_in &= _covered(cols, target.crop_left, target.cropped_shape[1])
    return _gather(pixels, src_rows, src_cols, rows_in, cols_in)
