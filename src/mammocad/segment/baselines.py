"""Classical lesion detectors, the baselines a trained segmenter must beat (no training, no data).

``blob`` (brightest blob): masses are brighter than the tissue around them, at a size of a
few percent of the breast. On the prepared image (intensities scaled to [0, 1] by the dtype's
range):

1. a difference of Gaussians (sigma ``sigma`` and ``4 * sigma``, fractions of the image's
   longer side) keeps structures brighter than their surroundings at lesion scale, and
   suppresses the broad gradients of dense tissue and the pectoral muscle; the blurs are
   normalised convolutions over the breast only, so its dark surroundings do not make the
   skin line look like a bright rim;
2. threshold it at the ``percentile`` of its values inside the breast mask;
3. connected components (8-connected) inside the breast, smaller than ``min_area`` (fraction of
   the breast's area) dropped;
4. score = the component's mean response / the largest response in the breast, in [0, 1];
   the ``max_instances`` best are returned, highest first.

``empty`` (nothing found) and ``breast`` (the whole breast mask as one region, score 1) are the
floors any detector must clear: the average Dice of a prediction that does not look at the
image. (Empty gives 0 on every image with a lesion; whole-breast about twice the lesion's share
of the breast, a few percent.)

Every detector has the signature of :data:`Predictor`: ``(image, breast) -> Instances``, the
prepared image (any integer dtype or float in [0, 1]) and its breast mask (non-zero = breast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from mammocad.segment.instances import Instances
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import Box, mask_box

Predictor = Callable[[np.ndarray, np.ndarray], Instances]


@dataclass(frozen=True)
class BlobConfig:
    sigma: float = 0.015          # fraction of the longer side (15 px at 1024)
    percentile: float = 96.0      # of the response inside the breast
    min_area: float = 0.0005      # fraction of the breast's area
    max_instances: int = 10


def unit_range(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 in [0, 1]: integers divided by their dtype's maximum, floats clipped."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def _breast_blur(pixels: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the breast alone (normalised convolution: the background does not darken the edge)."""
    blurred = cv2.GaussianBlur(pixels * weight, (0, 0), sigma)
    return blurred / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-6)


def blob_response(image: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """Difference of breast-only Gaussian blurs at ``sigma`` and ``4 * sigma`` pixels, float32 (rows, cols).

    Computed on the image shrunk so that ``sigma`` is about 2 px (the blurs remove finer detail
    anyway; 60-100x faster at 1024 px), then enlarged back bilinearly.
    """
    factor = max(1, int(sigma // 2))
    rows, cols = image.shape
    small_size = (max(1, cols // factor), max(1, rows // factor))  # OpenCV: (width, height)
    pixels = cv2.resize(unit_range(image), small_size, interpolation=cv2.INTER_AREA)
    weight = cv2.resize(inside.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    small_sigma = sigma / factor
    response = _breast_blur(pixels, weight, small_sigma) - _breast_blur(pixels, weight, 4 * small_sigma)
    return cv2.resize(response, (cols, rows), interpolation=cv2.INTER_LINEAR)


def blob_detector(image: np.ndarray, breast: np.ndarray, config: BlobConfig = BlobConfig()) -> Instances:
    """Brightest-blob detections on a prepared image (see the module docstring); ``image`` and ``breast`` (rows, cols)."""
    if image.ndim != 2 or image.shape != breast.shape:
        raise ValueError(f"need a 2-D image and a breast mask of its shape, got {image.shape} and {breast.shape}")
    inside = breast != 0
    if not inside.any():
        return Instances.empty(image.shape)
    response = blob_response(image, inside, max(config.sigma * max(image.shape), 0.5))
    values = response[inside]
    peak = float(values.max())
    if peak <= 0:
        return Instances.empty(image.shape)
    candidate = (response >= np.percentile(values, config.percentile)) & (response > 0) & inside
    n, labels, stats, _ = cv2.connectedComponentsWithStats(candidate.view(np.uint8), connectivity=8)
    min_area = config.min_area * np.count_nonzero(inside)
    found = []
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < min_area:
            continue
        box = Box.from_xywh(*stats[k, :cv2.CC_STAT_AREA])
        window = (slice(box.row0, box.row1), slice(box.col0, box.col1))  # the component lies inside its box:
        component = labels[window] == k  # no full-size array per component
        found.append((float(response[window][component].mean()) / peak, box, component))
    found.sort(key=lambda f: -f[0])
    found = found[: config.max_instances]
    if not found:
        return Instances.empty(image.shape)
    masks = np.zeros((len(found), *image.shape), bool)
    for mask, (_, box, component) in zip(masks, found):
        mask[box.row0:box.row1, box.col0:box.col1] = component
    return Instances(masks, np.array([f[0] for f in found], np.float32),
                     np.array([f[1].xyxy() for f in found], np.float32), np.ones(len(found), np.int64))


def empty_detector(image: np.ndarray, breast: np.ndarray) -> Instances:
    """No region on any image (a floor; see the module docstring)."""
    return Instances.empty(image.shape)


def breast_detector(image: np.ndarray, breast: np.ndarray) -> Instances:
    """The whole breast mask (non-zero pixels of ``breast``) as one region scoring 1 (a floor); nothing if empty."""
    inside = breast != 0
    box = mask_box(inside)
    if box is None:
        return Instances.empty(image.shape)
    return Instances(inside[None], np.ones(1, np.float32), np.array([box.xyxy()], np.float32), np.ones(1, np.int64))


BASELINES: dict[str, Callable[[], Predictor]] = {"blob": lambda: partial(blob_detector, config=BlobConfig()),
                                                 "empty": lambda: empty_detector, "breast": lambda: breast_detector}


def baseline(name: str) -> Predictor:
    """The named classical detector (``blob``, ``empty``, ``breast``); DataError naming the known ones otherwise."""
    if name not in BASELINES:
        raise DataError(None, f"unknown baseline {name!r}; known: {', '.join(sorted(BASELINES))}")
    return BASELINES[name]()
