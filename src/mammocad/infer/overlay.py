"""The overlay PNG of one prediction: the original mammogram with its outlined regions, beside its Grad-CAM map.

Both panels show the ORIGINAL image (orientation and framing as acquired), scaled so the whole
PNG (panels side by side, footer below) has its longer side at most ``side`` px (2048 by default in
``mammocad predict``: a display size; the JSON keeps the coordinates in original pixels, and the
DICOM SEG the full grid); outlines come from the prediction's original-pixel polygons, the
Grad-CAM map is resampled from the prepared grid with :func:`mapping.to_input_grid`. Regions at
or above the operating threshold are red, the others yellow; each is numbered with its
malignancy probability. A footer carries the disclaimer. Drawn with OpenCV (no figure library).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from mammocad import DISCLAIMER
from mammocad.infer.mapping import to_input_grid
from mammocad.preprocess.pipeline import Geometry
from mammocad.utils.atomic import atomic_path
from mammocad.utils.errors import DataError

RED, YELLOW, WHITE = (0, 0, 255), (0, 220, 255), (255, 255, 255)  # BGR
FOOTER = 28  # px
GAP = 8  # px between the panels
PNG_COMPRESSION = 1  # zlib level: the pixels are mostly image noise, higher levels cost time and save little


def _display(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The image at ``shape`` (rows, cols), contrast-stretched to 8 bits, as BGR."""
    small = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    low, high = float(small.min()), float(small.max())
    gray = np.zeros(shape, np.uint8) if high <= low else ((small - low) * (255.0 / (high - low))).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _draw_regions(panel: np.ndarray, regions: Sequence[dict[str, Any]], scale: tuple[float, float],
                  threshold: float | None) -> None:
    thickness = max(1, round(max(panel.shape[:2]) / 500))
    for region in regions:
        probability = region["malignancy_probability"]
        color = RED if threshold is not None and probability >= threshold else YELLOW
        for outline in region["outline"]:
            points = (np.asarray(outline, np.float64) + 0.5) * [scale[1], scale[0]] - 0.5  # x, y on the panel
            cv2.polylines(panel, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], True, color, thickness,
                          cv2.LINE_AA)
        x0, y0 = region["box"][0] * scale[1], region["box"][1] * scale[0]
        cv2.putText(panel, f"{region['id']}: {probability:.2f}", (int(x0), max(12, int(y0) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, color, thickness, cv2.LINE_AA)


def overlay_image(image: np.ndarray, regions: Sequence[dict[str, Any]], cam: np.ndarray | None, geometry: Geometry,
                  threshold: float | None, side: int) -> np.ndarray:
    """The overlay as a BGR uint8 array: left the outlined regions, right the Grad-CAM map (when ``cam``).

    ``image``: the original mammogram (rows, cols); ``regions``: the prediction JSON's regions
    (original-pixel ``outline`` and ``box``); ``cam``: float map in [0, 1] on the prepared grid;
    ``side``: the longest side of the result, px (the image is never enlarged).
    """
    rows, cols = image.shape
    n = 1 if cam is None else 2
    factor = min(1.0, (side - GAP * (n - 1)) / (n * cols), (side - FOOTER) / rows)
    shape = (max(1, round(rows * factor)), max(1, round(cols * factor)))
    scale = (shape[0] / rows, shape[1] / cols)
    base = _display(image, shape)
    left = base.copy()
    _draw_regions(left, regions, scale, threshold)
    panels = [left]
    if cam is not None:
        heat = to_input_grid(cam.astype(np.float32), geometry, shape)
        colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
        alpha = (0.6 * heat)[..., None]
        right = (base * (1 - alpha) + colored * alpha).astype(np.uint8)
        _draw_regions(right, regions, scale, threshold)
        panels.append(right)
    gap = np.full((shape[0], GAP, 3), 255, np.uint8)
    body = np.hstack([p for panel in panels for p in (panel, gap)][:-1])
    footer = np.zeros((FOOTER, body.shape[1], 3), np.uint8)
    caption = f"mammocad: outlined regions (red: >= threshold){' | Grad-CAM' if cam is not None else ''}. {DISCLAIMER}"
    cv2.putText(footer, caption, (6, FOOTER - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1, cv2.LINE_AA)
    return np.vstack([body, footer])


def write_overlay(target: str | Path, overlay: np.ndarray) -> None:
    """Write the overlay as a PNG (zlib level ``PNG_COMPRESSION``), atomically."""
    with atomic_path(target) as tmp:
        if not cv2.imwrite(str(tmp), overlay, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]):
            raise DataError(target, "could not write the overlay PNG")
