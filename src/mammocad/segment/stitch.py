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
    box: Box           # the mask's own box, full-image pixels


@dataclass
class _Group:
    box: Box           # box of all members' masks together, full-image pixels
    union: np.ndarray  # (box.height, box.width) bool: all members' masks together
    members: list[_Member] = field(default_factory=list)

    def add(self, member: _Member) -> None:
        """Take ``member`` in; the union grows to the hull of both boxes (memory: the group's box, not the image)."""
        hull = self.box.hull(member.box)
        if hull != self.box:
            grown = np.zeros((hull.height, hull.width), bool)
            grown[self.box.relative_to(hull)] = self.union
            self.box, self.union = hull, grown
        self.union[member.box.relative_to(self.box)] |= member.mask[member.box.relative_to(member.window)]
        self.members.append(member)

    def union_in(self, window: Box) -> np.ndarray:
        """The union inside ``window``, (window.height, window.width) bool."""
        inside = np.zeros((window.height, window.width), bool)
        common = self.box.intersection(window)
        if common is not None:
            inside[common.relative_to(window)] = self.union[common.relative_to(self.box)]
        return inside


def _seen_by(group: _Group, window: Box) -> np.ndarray:
    """Inside ``window``: the pixels that some member tile of ``group`` covered, (height, width) bool."""
    seen = np.zeros((window.height, window.width), bool)
    for m in group.members:
        common = m.window.intersection(window)
        if common is not None:
            seen[common.relative_to(window)] = True
    return seen


def _agreement(group: _Group, member: _Member) -> float:
    """IoU of ``member`` and ``group`` within the pixels both have seen (0 when neither predicts any there).

    Masks whose boxes do not meet share no pixel: 0 without looking at them (a tiled image has
    thousands of low-score candidates, most far apart).
    """
    if group.box.intersection(member.box) is None:
        return 0.0
    w = member.window
    seen = _seen_by(group, w)
    ours, theirs = member.mask & seen, group.union_in(w) & seen
    union = np.count_nonzero(ours | theirs)
    return np.count_nonzero(ours & theirs) / union if union else 0.0


def _merged_mask(group: _Group, shape: tuple[int, int]) -> np.ndarray:
    """Score-weighted majority vote of the members that covered each pixel (see the module docstring).

    Counted over the hull of the members' tiles only; returned on the full (rows, cols) grid.
    """
    area = group.members[0].window
    for m in group.members[1:]:
        area = area.hull(m.window)
    votes, covered = np.zeros((area.height, area.width)), np.zeros((area.height, area.width))
    for m in group.members:
        inside = m.window.relative_to(area)
        votes[inside] += m.score * m.mask
        covered[inside] += m.score
    mask = np.zeros(shape, bool)
    if (votes > 0).any():
        mask[area.relative_to(Box(0, 0, *shape))] = (votes > 0) & (votes >= 0.5 * covered)
    else:  # all-zero scores: fall back to the union
        mask[group.box.relative_to(Box(0, 0, *shape))] = group.union
    return mask


def stitch_tiles(tile_predictions: Sequence[tuple[int, int, Instances]], shape: tuple[int, int],
                 agree_iou: float = AGREE_IOU, max_instances: int | None = None) -> Instances:
    """One image's instances from its tiles' predictions ``(row, col, instances)``; ``shape`` = (rows, cols).

    ``row, col``: the tile's top-left pixel in the full image; each tile's instances lie on that
    tile's own pixel grid (its ``shape``). Returns the merged instances, highest score first, at
    most ``max_instances`` of them (a model's detections per image; every candidate is still
    grouped, so a dropped low-score candidate's pixels vote in the group it joined).
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
            own = mask_box(mask)
            if own is not None:
                box = Box(own.row0 + window.row0, own.col0 + window.col0, own.row1 + window.row0,
                          own.col1 + window.col0)
                candidates.append(_Member(window, mask, float(score), int(label), box))
    candidates.sort(key=lambda m: -m.score)  # stable: equal scores keep the tiles' order
    groups: list[_Group] = []
    for member in candidates:
        agreements = [_agreement(g, member) for g in groups]
        best = int(np.argmax(agreements)) if agreements else -1
        if best < 0 or agreements[best] < agree_iou:
            groups.append(_Group(member.box, np.zeros((member.box.height, member.box.width), bool)))
            best = len(groups) - 1
        groups[best].add(member)
    groups = groups[:max_instances]  # made in decreasing order of their best member's score
    if not groups:
        return Instances.empty(shape)
    masks = np.stack([_merged_mask(g, shape) for g in groups])
    boxes = np.array([mask_box(m).xyxy() for m in masks], np.float32)
    return Instances(masks, np.array([g.members[0].score for g in groups], np.float32), boxes,
                     np.array([g.members[0].label for g in groups], np.int64))
