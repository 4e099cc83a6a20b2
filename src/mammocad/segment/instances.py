"""The predicted lesions of one image: the one type every segmenter returns and every metric reads.

Conventions: masks are ``bool`` arrays ``(N, rows, cols)`` on the pixel grid of the image the
prediction is for; boxes are ``(N, 4)`` float ``(x0, y0, x1, y1) = (col0, row0, col1, row1)``
in pixels, exclusive ends (torchvision's detection order); scores are ``(N,)`` in [0, 1],
highest first; labels are ``(N,)`` class ids (0 is background, never present). An image with
no prediction has N = 0 and keeps its ``(0, rows, cols)`` mask shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Instances:
    """N predicted regions of one image (see the module docstring for units and order)."""

    masks: np.ndarray   # (N, rows, cols) bool
    scores: np.ndarray  # (N,) float32 in [0, 1]
    boxes: np.ndarray   # (N, 4) float32 x0, y0, x1, y1, pixels, exclusive ends
    labels: np.ndarray  # (N,) int64 class ids >= 1

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.masks.ndim != 3 or len(self.masks) != n or self.boxes.shape != (n, 4) or len(self.labels) != n:
            raise ValueError(f"inconsistent instances: masks {self.masks.shape}, scores {self.scores.shape}, "
                             f"boxes {self.boxes.shape}, labels {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the image the masks are on."""
        return self.masks.shape[1], self.masks.shape[2]

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Instances:
        """No prediction on an image of ``shape`` (rows, cols)."""
        return cls(np.zeros((0, *shape), bool), np.zeros(0, np.float32), np.zeros((0, 4), np.float32),
                   np.zeros(0, np.int64))

    def select(self, keep: np.ndarray) -> Instances:
        """The instances at ``keep`` (indices or a boolean array), in that order."""
        return Instances(self.masks[keep], self.scores[keep], self.boxes[keep], self.labels[keep])

    def sorted(self) -> Instances:
        """Highest score first (stable for equal scores)."""
        return self.select(np.argsort(-self.scores, kind="stable"))

    def union(self) -> np.ndarray:
        """All predicted regions together, ``(rows, cols)`` bool (the paper's "average Dice" mask)."""
        return self.masks.any(axis=0) if len(self) else np.zeros(self.shape, bool)
