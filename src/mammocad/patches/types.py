"""What every patch extractor returns: pure data, no I/O (the store writes it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class PatchLabel(str, enum.Enum):
    """The five classes of the TFDS ``patches`` config (BENIGN_WITHOUT_CALLBACK counts as benign)."""

    BACKGROUND = "BACKGROUND"
    BENIGN_CALCIFICATION = "BENIGN_CALCIFICATION"
    BENIGN_MASS = "BENIGN_MASS"
    MALIGNANT_CALCIFICATION = "MALIGNANT_CALCIFICATION"
    MALIGNANT_MASS = "MALIGNANT_MASS"


@dataclass(frozen=True)
class LesionMask:
    """One abnormality of an image, as the extractors see it.

    ``mask`` is uint8 0/255 with the image's shape (rows, cols); ``label`` its patch class
    (or any string for other datasets' types); ``key`` the abnormality's record key.
    """

    key: str
    label: str
    mask: np.ndarray


@dataclass(frozen=True)
class Patch:
    """One extracted sample.

    ``row``/``col`` are the top-left corner of the window and ``height``/``width`` its size,
    in pixels of the grid the extractor worked on (for small-context patches the image
    resized to 1152x896, otherwise the prepared image), before any resize of ``pixels`` to
    the output size. ``abnormality`` is the key of the abnormality the patch was drawn for
    (``None`` for background/normal tissue). Segmentation samples carry ``masks`` (uint8
    0/255, aligned with ``pixels``; one per lesion instance, with the matching ``instance_keys``)
    and ``boxes`` (x0, y0, x1, y1 per instance, pixels of ``pixels``, exclusive end).
    ``category`` is the sampling category of segmentation tiles (lesion/normal/blank).
    ``relaxations``: how many times the small-context acceptance thresholds were relaxed
    before this window was accepted (0 = the defaults held), so its rule can be checked.
    """

    pixels: np.ndarray
    label: str
    row: int
    col: int
    height: int
    width: int
    abnormality: str | None = None
    masks: tuple[np.ndarray, ...] = ()
    instance_keys: tuple[str, ...] = ()
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    category: str | None = None
    relaxations: int = 0
