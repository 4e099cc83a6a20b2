"""Before/after panels of the preprocessing, in the style of the paper's Figures 4-7."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mammocad.preprocess.pipeline import Preprocessed
from mammocad.utils.geometry import binary_mask

DISPLAY_ROWS = 1024  # images are shrunk to at most this many rows for drawing: same look, far faster
MASK_COLORS = ("red", "lime", "cyan", "yellow", "magenta")


def before_after_figure(original: np.ndarray, original_masks: Sequence[np.ndarray], result: Preprocessed,
                        title: str) -> Figure:
    """Two panels: the input with its lesion outlines, the preprocessed image with its own.

    ``original``: the input image (rows x cols, any grey dtype) and ``original_masks`` its
    lesion masks (nonzero = lesion), as given to :func:`~mammocad.preprocess.pipeline.preprocess`;
    ``result`` is what it returned. Outlines are traced at full resolution, so small lesions
    stay visible. The figure has an Agg canvas and touches no pyplot state (safe in worker
    processes); save it with ``fig.savefig(path)``.
    """
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    before, after = fig.subplots(1, 2)
    _panel(before, original, original_masks, f"original {_size(original)}")
    flipped = ", flipped" if result.geometry.flipped else ""
    _panel(after, result.image, result.masks, f"preprocessed {_size(result.image)}{flipped}")
    fig.suptitle(title)
    return fig


def _size(image: np.ndarray) -> str:
    return f"{image.shape[0]}x{image.shape[1]}"


def _panel(ax: Axes, image: np.ndarray, masks: Sequence[np.ndarray], label: str) -> None:
    """Draw ``image`` in grey with each mask's outline, in the image's pixel coordinates."""
    rows, cols = image.shape
    # extent keeps axes in full-resolution pixels, so full-resolution outlines land in place.
    ax.imshow(_shrink(image), cmap="gray", extent=(-0.5, cols - 0.5, rows - 0.5, -0.5), interpolation="antialiased")
    for k, mask in enumerate(masks):
        color = MASK_COLORS[k % len(MASK_COLORS)]
        contours, _ = cv2.findContours(binary_mask(mask), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            xy = np.vstack([contour[:, 0, :], contour[:1, 0, :]])  # closed outline, (x=col, y=row)
            ax.plot(xy[:, 0], xy[:, 1], color=color, linewidth=1.2)
    ax.set_title(label)
    ax.set_axis_off()


def _shrink(image: np.ndarray) -> np.ndarray:
    rows, cols = image.shape
    if rows <= DISPLAY_ROWS:
        return image
    scale = DISPLAY_ROWS / rows
    return cv2.resize(image, (max(1, round(cols * scale)), DISPLAY_ROWS), interpolation=cv2.INTER_AREA)
