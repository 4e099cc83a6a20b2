"""Settings of every patch kind (each field a YAML key and a CLI flag): a light module.

It imports neither OpenCV nor pandas, so the command line can define its options (and answer
``--help``) at once. The extractors that use them: :mod:`small_context`, :mod:`large_context`,
:mod:`segmentation`; the job that runs them: :mod:`build`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path

from mammocad.utils.config import check_workers


class PatchKind(str, enum.Enum):
    SMALL = "small"
    LARGE = "large"
    SEG = "seg"
    RESIZE512 = "resize512"


@dataclass(frozen=True)
class PatchJob:
    """Which patch set to build from which prepared folder."""

    prepared: Path = field(default=Path("prepared"), metadata={"help": "folder written by `mammocad prepare`"})
    out: Path = field(default=Path("patches"), metadata={"help": "output folder of the patch set"})
    kind: PatchKind = field(default=PatchKind.SMALL, metadata={"help": "small, large, seg or resize512"})
    seed: int = field(default=0, metadata={"help": "random seed (patch positions, tile sampling)"})
    workers: int = field(default=2, metadata={"help": "worker processes"})
    figure: bool = field(default=True, metadata={"help": "write figures/examples.png (paper Figure 9)"})

    def __post_init__(self) -> None:
        check_workers(self.workers)


@dataclass(frozen=True)
class SmallContextConfig:
    """The builder's numbers, as parameters; defaults are the builder's.

    Sizes are (rows, cols) in pixels. Fractions are in [0, 1]: overlaps are "more than"
    (strict ``>``) comparisons, as in the builder.
    """

    image_size: tuple[int, int] = field(default=(1152, 896),
        metadata={"help": "grid every image is resized to first: rows cols"})
    patch_size: tuple[int, int] = field(default=(224, 224), metadata={"help": "patch size: rows cols"})
    positives_per_lesion: int = field(default=10, metadata={"help": "abnormal patches per abnormality"})
    backgrounds_per_image: int = field(default=10, metadata={"help": "background patches per mammogram"})
    trials_per_threshold: int = field(default=100,
        metadata={"help": "random trials before a threshold is relaxed"})
    min_lesion_overlap: float = field(default=0.90,
        metadata={"help": "abnormal patch: lesion/patch or inside/lesion above this"})
    min_breast_overlap: float = field(default=0.75,
        metadata={"help": "background patch: breast covers more than this of the patch"})
    max_lesion_overlap: float = field(default=0.35,
        metadata={"help": "background patch: overlap with every lesion at most this, either way"})
    shrink: float = field(default=0.95,
        metadata={"help": "lower bounds are multiplied by this after each failed round of trials"})
    grow: float = field(default=1.05,
        metadata={"help": "background's lesion-overlap bound is multiplied by this after each failed round"})
    lowest_threshold: float = field(default=0.1, metadata={"help": "give up when a lower bound falls to this"})
    highest_lesion_overlap: float = field(default=0.9,
        metadata={"help": "give up when the background's lesion-overlap bound reaches this"})
    breast_intensity: float = field(default=0.05,
        metadata={"help": "breast = largest region above this fraction of the image maximum"})
    context_scale: float = field(default=1.0, metadata={
        "help": "side of the cut window as a multiple of patch_size, centred on each accepted window and "
                "resized back to patch_size (zero beyond the grid): 2 gives the same patches, same seed, with "
                "twice the context (multi-scale input); 1: the builder's patches"})

    def __post_init__(self) -> None:
        if self.context_scale < 1.0:
            raise ValueError(f"context_scale must be >= 1, got {self.context_scale}")
        if any(p < 1 or p >= g for p, g in zip(self.patch_size, self.image_size)):
            # The builder keeps windows one pixel short of the last row/col, hence ">=".
            raise ValueError(f"patch_size {self.patch_size} must be positive and smaller than image_size "
                             f"{self.image_size} (rows, cols)")
        if min(self.positives_per_lesion, self.backgrounds_per_image, self.trials_per_threshold) < 1:
            raise ValueError("patch counts and trials_per_threshold must be >= 1")
        if not 0.0 < self.shrink < 1.0 < self.grow:
            raise ValueError(f"need 0 < shrink < 1 < grow, got shrink={self.shrink}, grow={self.grow}")


@dataclass(frozen=True)
class LargeContextConfig:
    """How much context to keep and what size to deliver.

    ``context``: padding on every side, as a fraction of the box's larger side (>= 0).
    ``square``: use a square window of side (1 + 2*context) * max(h, w), centred on the box,
    instead of the padded box (which keeps the lesion's aspect, then gets stretched to a square).
    ``output_size``: side of the delivered patch in pixels (224; 299 for InceptionV3).
    ``min_side``: smallest window side in pixels. Calcification clusters can be a few pixels
    across; padding them proportionally would still give a window of ~10 px, i.e. no tissue
    context and a 20x upscale of pure interpolation blur. The floor keeps a minimum of real
    surrounding tissue in every patch.
    """

    context: float = field(default=0.5, metadata={"help": "padding on every side, fraction of the ROI box's larger side"})
    square: bool = field(default=False, metadata={"help": "square window centred on the ROI instead of the padded box"})
    output_size: int = field(default=224, metadata={"help": "side of the delivered patch, px (224; 299 for InceptionV3)"})
    min_side: int = field(default=32, metadata={"help": "smallest window side, px (keeps context around tiny clusters)"})

    def __post_init__(self) -> None:
        if self.context < 0:
            raise ValueError(f"context must be >= 0, got {self.context}")
        if self.output_size < 1 or self.min_side < 1:
            raise ValueError(f"output_size and min_side must be >= 1, got {self.output_size}, {self.min_side}")


LESION, NORMAL, BLANK = "lesion", "normal", "blank"
CATEGORIES = (LESION, NORMAL, BLANK)  # also the order in which the sampler draws
MIXED = "mixed"  # a tile that is none of the three: never listed by tile_positions


@dataclass(frozen=True)
class TileConfig:
    """Grid, categories and sampling shares of segmentation tiles. Fractions are of the tile's area.

    A tile is *lesion* when the lesions (all instances together) cover at least
    ``min_lesion_fraction`` of it, or when it holds some lesion entirely. 1% (655 px, ~26x26, of
    a 256 tile) drops tiles that only graze a lesion's edge, whose target is a sliver; the
    whole-lesion rule keeps calcifications smaller than that: any lesion at most
    ``tile_size - stride`` px (128) across lies wholly in some tile of the grid. A tile with
    some lesion pixels, but fewer, is neither lesion nor lesion-free, so it is left out.
    *normal*: no lesion pixel and at least ``min_normal_breast`` breast (0.5: mostly tissue,
    which still admits tiles across the skin line, part of what a segmenter must handle).
    *blank*: no lesion pixel and at most ``max_blank_breast`` breast (0.05: background, allowing
    for a breast mask's ragged edge).
    """

    tile_size: int = field(default=256, metadata={"help": "segmentation tile side, px"})
    stride: int = field(default=128, metadata={"help": "step between tiles, px (<= tile size)"})
    lesion_share: float = field(default=0.5, metadata={"help": "share of lesion tiles in each sub-dataset"})
    normal_share: float = field(default=0.25, metadata={"help": "share of normal-tissue tiles in each sub-dataset"})
    blank_share: float = field(default=0.25, metadata={"help": "share of blank-background tiles in each sub-dataset"})
    min_lesion_fraction: float = field(default=0.01, metadata={
        "help": "lesion tile: lesion pixels >= this fraction of the tile (or a whole lesion inside)"})
    min_normal_breast: float = field(default=0.5, metadata={
        "help": "normal tile: no lesion pixel and breast >= this fraction of the tile"})
    max_blank_breast: float = field(default=0.05, metadata={
        "help": "blank tile: no lesion pixel and breast <= this fraction of the tile"})
    max_tiles: int | None = field(default=None, metadata={
        "help": "most tiles per sub-dataset; none: as many as the scarcest category allows"})

    def __post_init__(self) -> None:
        shares = (self.lesion_share, self.normal_share, self.blank_share)
        problems = [
            (self.tile_size < 1, f"tile_size must be >= 1 px, got {self.tile_size}"),
            # A larger step would leave gaps between tiles: the grid must cover the image.
            (not 1 <= self.stride <= self.tile_size, f"stride must be in [1, tile_size={self.tile_size}], got "
                                                     f"{self.stride}"),
            (min(shares) < 0 or not math.isclose(sum(shares), 1.0),
             f"lesion/normal/blank shares must be >= 0 and sum to 1, got {shares}"),
            (not 0.0 < self.min_lesion_fraction <= 1.0,
             f"min_lesion_fraction must be in (0, 1], got {self.min_lesion_fraction}"),
            # Disjoint ranges, so no tile is both normal and blank.
            (not 0.0 <= self.max_blank_breast < self.min_normal_breast <= 1.0,
             f"need 0 <= max_blank_breast < min_normal_breast <= 1, got {self.max_blank_breast}, "
             f"{self.min_normal_breast}"),
            (self.max_tiles is not None and self.max_tiles < 1,
             f"max_tiles must be >= 1 or None, got {self.max_tiles}"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)

    @property
    def shares(self) -> dict[str, float]:
        return {LESION: self.lesion_share, NORMAL: self.normal_share, BLANK: self.blank_share}


@dataclass(frozen=True)
class ResizeConfig:
    """Whole images resized with their instance masks (segmentation kind ``resize512``)."""

    size: int = field(default=512, metadata={"help": "side of the resized square image, px"})

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1 px, got {self.size}")


def kind_config_class(kind: PatchKind | str) -> type:
    return {
        PatchKind.SMALL: SmallContextConfig,
        PatchKind.LARGE: LargeContextConfig,
        PatchKind.SEG: TileConfig,
        PatchKind.RESIZE512: ResizeConfig,
    }[PatchKind(kind)]
