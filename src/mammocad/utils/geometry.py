"""One vocabulary for boxes, binary masks and window pixel counts, used by every layer.

Conventions (the whole package follows them):

- images and masks are 2-D arrays indexed ``[row, col]``; shapes are ``(rows, cols)`` in pixels;
- a binary mask is ``uint8`` 0/255 (255 = inside); any non-zero value of an input mask counts
  as inside;
- a :class:`Box` is ``(row0, col0, row1, col1)`` in pixels with *exclusive* ends, so
  ``array[row0:row1, col0:col1]`` is the box and ``row1 - row0`` its height. Detection code
  (torchvision, albumentations) wants ``(x0, y0, x1, y1) = (col0, row0, col1, row1)``:
  :meth:`Box.xyxy` converts; OpenCV's ``boundingRect`` gives ``(x, y, w, h)``:
  :meth:`Box.from_xywh` converts.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class Box(NamedTuple):
    """An upright rectangle: rows ``[row0, row1)``, cols ``[col0, col1)``, pixels, exclusive ends.

    A tuple, so ``row0, col0, row1, col1 = box`` and comparisons with plain tuples work.
    """

    row0: int
    col0: int
    row1: int
    col1: int

    @property
    def height(self) -> int:
        return self.row1 - self.row0

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    @property
    def area(self) -> int:
        return self.height * self.width

    def intersection(self, other: tuple[int, int, int, int]) -> Box | None:
        """The pixels both boxes hold, or None when they share none."""
        r0, c0 = max(self.row0, other[0]), max(self.col0, other[1])
        r1, c1 = min(self.row1, other[2]), min(self.col1, other[3])
        return Box(r0, c0, r1, c1) if r0 < r1 and c0 < c1 else None

    def hull(self, other: tuple[int, int, int, int]) -> Box:
        """The smallest box holding both."""
        return Box(min(self.row0, other[0]), min(self.col0, other[1]), max(self.row1, other[2]),
                   max(self.col1, other[3]))

    def relative_to(self, origin: tuple[int, int, int, int]) -> tuple[slice, slice]:
        """This box as (row, col) slices of an array whose top-left pixel is ``origin``'s."""
        return (slice(self.row0 - origin[0], self.row1 - origin[0]),
                slice(self.col0 - origin[1], self.col1 - origin[1]))

    def xyxy(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` = ``(col0, row0, col1, row1)``, exclusive ends (torchvision's boxes)."""
        return self.col0, self.row0, self.col1, self.row1

    @classmethod
    def from_xyxy(cls, x0: int, y0: int, x1: int, y1: int) -> Box:
        return cls(int(y0), int(x0), int(y1), int(x1))

    @classmethod
    def from_xywh(cls, x: int, y: int, w: int, h: int) -> Box:
        """From OpenCV's ``boundingRect`` ``(x, y, width, height)``."""
        return cls(int(y), int(x), int(y + h), int(x + w))


def mask_box(mask: np.ndarray) -> Box | None:
    """The box of ALL non-zero pixels of ``mask`` (every component); None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """Any mask (bool, 0/1, 0/2, 0/255, uint16, float, ...) -> uint8 0/255, same shape; non-zero is inside."""
    if mask.dtype == np.bool_:
        return mask.view(np.uint8) * np.uint8(255)
    # cv2.compare: several times faster than numpy on full-resolution masks (~10 Mpixel);
    # it handles uint8/int8/uint16/int16/int32/float32/float64.
    if mask.dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64):
        return cv2.compare(mask, 0, cv2.CMP_NE)
    return (mask != 0).view(np.uint8) * np.uint8(255)


class WindowCounter:
    """Counts a mask's non-zero pixels in many equal windows at once, via an integral image.

    Building it is one pass over the mask; each count is then four look-ups, whatever the
    window size. Windows must lie inside the mask.
    """

    def __init__(self, mask: np.ndarray, window: tuple[int, int]):
        # 0/1, not 0/255: the int32 sums then hold up to 2**31 pixels.
        self.integral = cv2.integral((mask != 0).view(np.uint8))  # (rows+1, cols+1), int32
        self.window = window  # (height, width), pixels
        self.area = int(self.integral[-1, -1])  # non-zero pixels of the whole mask

    @property
    def window_area(self) -> int:
        return self.window[0] * self.window[1]

    def count(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Non-zero pixels in the windows whose top-left corners are ``(rows, cols)``.

        ``rows``/``cols`` broadcast: equal-length arrays give one count per pair; a column
        ``rows[:, None]`` and a row ``cols[None, :]`` give a (len(rows), len(cols)) grid.
        """
        bottom, right = rows + self.window[0], cols + self.window[1]
        s = self.integral
        return s[bottom, right] - s[rows, right] - s[bottom, cols] + s[rows, cols]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two same-shape masks (non-zero = inside), in [0, 1]; both empty: 1.0."""
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(a & b) / total
