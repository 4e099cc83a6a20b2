"""Segmentation data: sampled tiles with instance masks, and whole images resized with theirs.

(a) **Tiles**: every image is cut into ``tile_size`` squares (256) on a grid of step ``stride``
(128), each classed as *lesion*, *normal* tissue or *blank* background (:class:`TileConfig`
gives the rules; tiles that fit none, e.g. half breast and half background, are left out).
The paper then samples each sub-dataset (calc-train, calc-test, mass-train, mass-test) to
50% lesion, 25% normal and 25% blank tiles: :func:`sample_tiles` does that on the positions
of all images of a sub-dataset (:func:`tile_positions`), and :func:`make_tile` cuts a chosen one.

(b) **Resized images**: :func:`resize_with_instances` shrinks a whole prepared image to
``size`` x ``size`` (512) with one mask and one box per abnormality.

Conventions: arrays are indexed (row, col); ``row``/``col`` of a tile are its top-left corner
in pixels of the prepared image. Boxes follow the detection convention instead, (x0, y0, x1, y1)
= (col0, row0, col1, row1) in pixels of the delivered patch, exclusive end. Images are 2-D
uint8/uint16 and keep their dtype; breast and lesion masks are uint8 0/255 (any non-zero value
counts as inside) with the image's shape, and delivered masks are uint8 0/255.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mammocad.patches.config import BLANK, CATEGORIES, LESION, MIXED, NORMAL, TileConfig
from mammocad.patches.small_context import validate_inputs
from mammocad.patches.types import LesionMask, Patch
from mammocad.preprocess.steps import resize_square
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import WindowCounter, mask_box

XYBox = tuple[int, int, int, int]  # (x0, y0, x1, y1) = (col0, row0, col1, row1), exclusive ends, pixels

def tile_positions(
    breast: np.ndarray,
    lesions: Sequence[LesionMask],
    config: TileConfig = TileConfig(),
    source: str | None = None,
) -> list[tuple[int, int, str]]:
    """Every lesion/normal/blank tile of one image as (row, col, category), row-major order.

    ``breast`` is the prepared image's breast mask (rows, cols); ``lesions`` its ROI masks.
    Tiles start every ``stride`` px from 0, plus a last row and column flush with the bottom
    and right edges (so that it overlaps its neighbour more) where the grid does not end there:
    every pixel lies in some tile. Mixed tiles are left out. Pixel counts come from integral
    images, so the cost is a few passes over the masks whatever the number of tiles.
    Raises :class:`DataError` (naming ``source``) for masks of the wrong shape, an empty lesion
    mask (the lesion could be under any "normal" tile) or an image smaller than a tile: prepared
    mammograms are thousands of pixels across, so such an image is a data problem, not padded.
    """
    validate_inputs(breast, lesions, source)
    size = config.tile_size
    if min(breast.shape) < size:
        raise DataError(source, f"image {breast.shape} (rows, cols) is smaller than a {size} px tile")
    rows, cols = grid_starts(breast.shape[0], size, config.stride), grid_starts(breast.shape[1], size, config.stride)
    whole = np.zeros((rows.size, cols.size), bool)
    union = np.zeros(breast.shape, bool)
    for lesion in lesions:
        inside = lesion.mask > 0
        area = int(np.count_nonzero(inside))
        if area == 0:
            raise DataError(source, f"empty ROI mask for {lesion.key}")
        whole |= _tile_sums(inside, rows, cols, size) == area
        union |= inside
    # The union, not the sum over instances: overlapping outlines must not count twice.
    lesion_px = _tile_sums(union, rows, cols, size)
    categories = categorise(lesion_px, whole, _tile_sums(breast, rows, cols, size), config)
    return [
        (int(rows[i]), int(cols[j]), str(categories[i, j]))
        for i in range(rows.size) for j in range(cols.size) if categories[i, j] != MIXED
    ]


def grid_starts(length: int, tile: int, stride: int) -> np.ndarray:
    """Tile starts along one axis of ``length`` px: 0, stride, ... and ``length - tile`` last."""
    starts = np.arange(0, length - tile + 1, stride)
    return starts if starts[-1] == length - tile else np.append(starts, length - tile)


def categorise(lesion_px: np.ndarray, whole_lesion: np.ndarray, breast_px: np.ndarray,
               config: TileConfig = TileConfig()) -> np.ndarray:
    """The category of each tile (array of str) from its pixel counts, per :class:`TileConfig`.

    ``lesion_px``: lesion pixels (union of instances) in the tile; ``whole_lesion``: whether it
    holds some lesion entirely; ``breast_px``: breast pixels in it. Same-shape arrays.
    """
    area = config.tile_size ** 2
    lesion_free = lesion_px == 0
    return np.select(
        [(lesion_px >= config.min_lesion_fraction * area) | whole_lesion,
         lesion_free & (breast_px >= config.min_normal_breast * area),
         lesion_free & (breast_px <= config.max_blank_breast * area)],
        [LESION, NORMAL, BLANK], MIXED,
    )


def _tile_sums(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Non-zero pixels of ``mask`` in every tile (rows[i], cols[j]) of side ``size``: (len(rows), len(cols))."""
    return WindowCounter(mask, (size, size)).count(rows[:, None], cols[None, :])


def _xyxy(mask: np.ndarray) -> XYBox:
    """The detection box (x0, y0, x1, y1) of a non-empty mask (see :class:`mammocad.utils.geometry.Box`)."""
    box = mask_box(mask)
    if box is None:
        raise ValueError("an empty mask has no box")
    return box.xyxy()


def sample_tiles(
    candidates: dict[str, list[tuple[str, int, int]]],
    rng: np.random.Generator,
    config: TileConfig = TileConfig(),
) -> list[tuple[str, int, int]]:
    """Pick tiles of one sub-dataset in the lesion/normal/blank shares; sorted (image_id, row, col).

    ``candidates`` maps a category to its tiles (image_id, row, col); a missing category has
    none. The total is the largest (at most ``max_tiles``) whose split into the shares fits the
    pools: the scarcest category relative to its share bounds it, and a sub-dataset lacking a
    category with a positive share yields no tile at all rather than a skewed mix. The split is by
    largest remainder, so each count is within 1 of share x total (ties favour the earlier of
    lesion, normal, blank). Tiles are drawn without replacement from each pool sorted first, so
    the result depends on ``rng`` alone, not on the order the candidates were collected in.
    """
    unknown = sorted(set(candidates) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"unknown tile categories {unknown}; known: {list(CATEGORIES)}")
    pools = {c: sorted(candidates.get(c, ())) for c in CATEGORIES}
    counts = tile_counts({c: len(p) for c, p in pools.items()}, config)
    chosen = []
    for category in CATEGORIES:
        pool = pools[category]
        chosen += [pool[i] for i in rng.choice(len(pool), size=counts[category], replace=False)]
    return sorted(chosen)


def tile_counts(available: dict[str, int], config: TileConfig = TileConfig()) -> dict[str, int]:
    """How many tiles to take per category: the largest total whose split fits ``available``."""
    shares = config.shares
    # No count can be below floor(share x total), so total < (available + 1) / share bounds it.
    total = min(math.ceil((available[c] + 1) / s) for c, s in shares.items() if s > 0)
    if config.max_tiles is not None:
        total = min(total, config.max_tiles)
    while total > 0:
        counts = _apportion(total, shares)
        if all(counts[c] <= available[c] for c in CATEGORIES):
            return counts
        total -= 1
    return dict.fromkeys(CATEGORIES, 0)


def _apportion(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` by ``shares`` (which sum to 1)."""
    exact = {c: s * total for c, s in shares.items()}
    counts = {c: math.floor(x) for c, x in exact.items()}
    # sorted() is stable: equal remainders go to the categories in CATEGORIES order.
    by_remainder = sorted(CATEGORIES, key=lambda c: counts[c] - exact[c])
    for c in by_remainder[: total - sum(counts.values())]:
        counts[c] += 1
    return counts


def make_tile(
    image: np.ndarray,
    breast: np.ndarray,
    lesions: Sequence[LesionMask],
    row: int,
    col: int,
    config: TileConfig = TileConfig(),
) -> Patch:
    """The tile at (row, col) of the prepared image, with the masks and boxes of its lesions.

    ``category`` is recomputed from the tile with :func:`categorise` (the rule of
    :func:`tile_positions`). ``masks``/``instance_keys``/``boxes`` cover every lesion with at
    least one pixel in the tile, in lesion order. ``label``: for a lesion tile the label of the
    lesion with the most pixels in it (the first of equals), also its ``abnormality``; otherwise
    ``NORMAL``, ``BLANK`` or ``MIXED`` (a position tile_positions would not list).
    Raises ValueError for a tile that is not wholly inside the image.
    """
    size = config.tile_size
    if not (0 <= row <= image.shape[0] - size and 0 <= col <= image.shape[1] - size):
        raise ValueError(f"tile ({row}, {col}) of side {size} is not inside the image {image.shape} (rows, cols)")
    window = np.s_[row:row + size, col:col + size]
    present = []  # (lesion, its pixels in the tile as bool, their count) for lesions in the tile
    union = np.zeros((size, size), bool)
    for lesion in lesions:
        inside = lesion.mask[window] > 0
        count = int(np.count_nonzero(inside))
        if count:
            present.append((lesion, inside, count))
            union |= inside
    whole = any(count == np.count_nonzero(lesion.mask) for lesion, _, count in present)
    category = str(categorise(np.array(np.count_nonzero(union)), np.array(whole),
                              np.array(np.count_nonzero(breast[window])), config))
    # max() keeps the first of equal counts.
    main = max(present, key=lambda p: p[2])[0] if category == LESION else None
    return Patch(
        pixels=image[window].copy(),  # a tile must not keep the whole image alive
        label=main.label if main else category.upper(),
        row=row, col=col, height=size, width=size,
        abnormality=main.key if main else None,
        masks=tuple(inside.astype(np.uint8) * 255 for _, inside, _ in present),
        instance_keys=tuple(lesion.key for lesion, _, _ in present),
        boxes=tuple(_xyxy(inside) for _, inside, _ in present),
        category=category,
    )


def resize_with_instances(
    image: np.ndarray,
    lesions: Sequence[LesionMask],
    size: int = 512,
    source: str | None = None,
) -> Patch:
    """The whole image resized to ``size`` x ``size``, with one mask and box per lesion.

    The image goes through :func:`~mammocad.preprocess.steps.resize_square` (area averaging
    when shrinking, bilinear when growing). A non-square image is stretched to the square, its
    aspect changing; prepared images are already padded to square by default. Each mask gets the
    same resize as the fraction of lesion in each output pixel and keeps the pixels at least half
    lesion (an unbiased outline); where that leaves nothing (a lesion smaller than about half an
    output pixel) it keeps the one pixel with the most lesion, so no instance vanishes. Boxes are
    those of the resized masks. ``label`` is ``IMAGE``; row = col = 0 and height/width are the
    original image's, so the patch locates itself in the prepared image. Raises
    :class:`DataError` (naming ``source``) for bad input or an empty lesion mask.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1 px, got {size}")
    validate_inputs(image, lesions, source)
    masks = []
    for lesion in lesions:
        if not lesion.mask.any():
            raise DataError(source, f"empty ROI mask for {lesion.key}")
        # float32: uint8 averaging would round a small lesion's share of a big output pixel to 0.
        coverage = resize_square((lesion.mask > 0).astype(np.float32), size)
        mask = coverage >= 0.5
        if not mask.any():
            mask.flat[int(np.argmax(coverage))] = True
        masks.append(mask.astype(np.uint8) * 255)
    return Patch(
        pixels=resize_square(image, size), label="IMAGE", row=0, col=0,
        height=image.shape[0], width=image.shape[1],
        masks=tuple(masks), instance_keys=tuple(lesion.key for lesion in lesions),
        boxes=tuple(_xyxy(m) for m in masks),
    )
