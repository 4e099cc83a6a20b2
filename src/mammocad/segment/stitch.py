"""Stitch the predictions of overlapping tiles (the paper's 256-px tiles at stride 128) into one image's.

Rule, in the order of decreasing score over all tiles' instances:

1. **Placement**: a tile's instance is put at the tile's top-left ``(row, col)`` of the full
   image (pixels); what falls outside the image is cut off.
2. **Grouping** (de-duplication): an instance joins the existing group it agrees with best, if
   their IoU *within the pixels both have seen* is at least ``agree_iou`` (default 0.5): the
   comparison is restricted to the instance's tile window intersected with the windows of the
   group's tiles, since a tile cannot predict what lies outside it. So a lesion cut by one tile's
   edge and seen whole by another is one group, two separate lesions are two, and duplicates
   within one tile (IoU >= ``agree_iou``) merge too. Otherwise it starts a new group.
3. **Merged mask**: a score-weighted majority vote among the group's members whose tile
   covers the pixel: inside when ``sum(score * predicted) >= 0.5 * sum(score * covered)``.
   Score = the members' maximum; label = the best member's; box = the merged mask's box.

Masks are ``(rows, cols)`` bool on the full image; boxes ``(x0, y0, x1, y1)`` exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mammocad.segment.instances import Instances
from mammocad.utils.geometry import Box, mask_box

AGREE_IOU = 0.5


@dataclass
class _Member:
    window: Box        # the tile, full-image pixels (clipped to the image)
    mask: np.ndarray   # (window.height, window.width) bool: the instance inside its tile window
    score: float
    label: int


@dataclass
class _Group:
    union: np.ndarray  # (rows, cols) bool, all members' masks together
    members: list[_Member] = field(default_factory=list)


def _seen_by(group: _Group, window: Box) -> np.ndarray:
    """Inside ``window``: the pixels that some member tile of ``group`` covered, (height, width) bool."""
    seen = np.zeros((window.height, window.width), bool)
    for m in group.members:
        r0, c0 = max(m.window.row0, window.row0), max(m.window.col0, window.col0)
        r1, c1 = min(m.window.row1, window.row1), min(m.window.col1, window.col1)
        if r0 < r1 and c0 < c1:
            seen[r0 - window.row0:r1 - window.row0, c0 - window.col0:c1 - window.col0] = True
    return seen


def _agreement(group: _Group, member: _Member) -> float:
    """IoU of ``member`` and ``group`` within the pixels both have seen (0 when neither predicts any there)."""
    w = member.window
    seen = _seen_by(group, w)
    ours, theirs = member.mask & seen, group.union[w.row0:w.row1, w.col0:w.col1] & seen
    union = np.count_nonzero(ours | theirs)
    return np.count_nonzero(ours & theirs) / union if union else 0.0


def _merged_mask(group: _Group, shape: tuple[int, int]) -> np.ndarray:
    """Score-weighted majority vote of the members that covered each pixel (see the module docstring)."""
    votes, covered = np.zeros(shape), np.zeros(shape)
    for m in group.members:
        w = (slice(m.window.row0, m.window.row1), slice(m.window.col0, m.window.col1))
        votes[w] += m.score * m.mask
        covered[w] += m.score
    mask = (votes > 0) & (votes >= 0.5 * covered)
    return mask if mask.any() else group.union  # all-zero scores: fall back to the union


def stitch_tiles(tile_predictions: Sequence[tuple[int, int, Instances]], shape: tuple[int, int],
                 agree_iou: float = AGREE_IOU) -> Instances:
    """One image's instances from its tiles' predictions ``(row, col, instances)``; ``shape`` = (rows, cols).

    ``row, col``: the tile's top-left pixel in the full image; each tile's instances lie on that
    tile's own pixel grid (its ``shape``). Returns the merged instances, highest score first.
    """
    rows, cols = shape
    candidates = []
    for row, col, instances in tile_predictions:
        h, w = instances.shape
        window = Box(max(row, 0), max(col, 0), min(row + h, rows), min(col + w, cols))
        if window.height <= 0 or window.width <= 0:
            continue
        crop = (slice(None), slice(window.row0 - row, window.row1 - row), slice(window.col0 - col, window.col1 - col))
        for mask, score, label in zip(instances.masks[crop], instances.scores, instances.labels):
            if mask.any():
                candidates.append(_Member(window, mask, float(score), int(label)))
    candidates.sort(key=lambda m: -m.score)  # stable: equal scores keep the tiles' order
    groups: list[_Group] = []
    for member in candidates:
        agreements = [_agreement(g, member) for g in groups]
        best = int(np.argmax(agreements)) if agreements else -1
        if best < 0 or agreements[best] < agree_iou:
            groups.append(_Group(np.zeros(shape, bool)))
            best = len(groups) - 1
        group = groups[best]
        group.members.append(member)
        w = member.window
        group.union[w.row0:w.row1, w.col0:w.col1] |= member.mask
    if not groups:
        return Instances.empty(shape)
    masks = np.stack([_merged_mask(g, shape) for g in groups])
    boxes = np.array([mask_box(m).xyxy() for m in masks], np.float32)
    return Instances(masks, np.array([g.members[0].score for g in groups], np.float32), boxes,
                     np.array([g.members[0].label for g in groups], np.int64))
