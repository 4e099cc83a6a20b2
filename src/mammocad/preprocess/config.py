"""Settings of ``mammocad prepare`` (each field a YAML key and a CLI flag): a light module.

It imports neither OpenCV nor pandas, so the command line can define its options (and answer
``--help``) at once. :mod:`pipeline` applies :class:`PreprocessConfig`; :mod:`prepare` runs
:class:`PrepareJob`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mammocad.data.splits import SplitScheme
from mammocad.utils.config import check_workers

if TYPE_CHECKING:
    from mammocad.preprocess.steps import CropFractions


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of :func:`preprocess`. Sizes in pixels of the input image unless stated."""

    crop_left: float = field(default=0.01, metadata={"help": "fraction of columns cropped at the left border"})
    crop_right: float = field(default=0.01, metadata={"help": "fraction of columns cropped at the right border"})
    crop_top: float = field(default=0.04, metadata={"help": "fraction of rows cropped at the top border"})
    crop_bottom: float = field(default=0.04, metadata={"help": "fraction of rows cropped at the bottom border"})
    threshold: float = field(default=0.1, metadata={"help": "breast mask: threshold on the [0, 1]-normalised image"})
    open_kernel: int = field(default=23, metadata={"help": "breast mask: opening square, px (removes labels, edges)"})
    dilate_kernel: int = field(default=23, metadata={"help": "breast mask: dilation square after the opening, px"})
    clahe_clip: float = field(default=2.0, metadata={"help": "CLAHE clip limit"})
    clahe_tile: int = field(default=8, metadata={"help": "CLAHE tiles along each axis"})
    clahe_hist_bits: int = field(default=10, metadata={
        "help": "CLAHE histogram resolution for 16-bit images, 8-16 bits (8-bit images always use 8)"})
    pad_square: bool = field(default=True, metadata={"help": "zero-pad right/bottom to a square"})
    size: int | None = field(default=None, metadata={
        "help": "resize so the longer side is SIZE px (e.g. 512); none keeps full resolution"})
    output_bits: int = field(default=16, metadata={"help": "output image depth: 8 or 16 bits"})

    def __post_init__(self) -> None:
        _ = self.crop_fractions  # CropFractions raises ValueError for a fraction out of range
        problems = [
            (not 0.0 <= self.threshold < 1.0, f"threshold must be in [0, 1), got {self.threshold}"),
            (self.open_kernel < 1 or self.dilate_kernel < 1,
             f"kernels must be >= 1 px, got open {self.open_kernel}, dilate {self.dilate_kernel}"),
            (self.clahe_clip <= 0, f"clahe_clip must be > 0, got {self.clahe_clip}"),
            (self.clahe_tile < 1, f"clahe_tile must be >= 1, got {self.clahe_tile}"),
            (not 8 <= self.clahe_hist_bits <= 16, f"clahe_hist_bits must be 8-16, got {self.clahe_hist_bits}"),
            (self.size is not None and self.size < 1, f"size must be >= 1 or None, got {self.size}"),
            (self.output_bits not in (8, 16), f"output_bits must be 8 or 16, got {self.output_bits}"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)

    @property
    def crop_fractions(self) -> CropFractions:
        from mammocad.preprocess.steps import CropFractions  # OpenCV: imported when used

        return CropFractions(left=self.crop_left, right=self.crop_right, top=self.crop_top,
                                   bottom=self.crop_bottom)


@dataclass(frozen=True)
class PrepareJob:
    """What to prepare and where; the image operations themselves are :class:`PreprocessConfig`."""

    source: Path = field(default=Path("."), metadata={"help": "dataset folder (CBIS-DDSM/synthetic root or mini-MIAS folder)"})
    out: Path = field(default=Path("prepared"), metadata={"help": "output folder"})
    dataset: str = field(default="auto", metadata={"help": "adapter: auto, cbis-ddsm or mini-mias"})
    split_scheme: SplitScheme | None = field(default=None, metadata={
        "help": "patient-level split, decided once into OUT/splits.json: official or tfds (none: the recorded "
                "one, official for a new folder; change it with `mammocad split`)"})
    seed: int | None = field(default=None, metadata={
        "help": "seed of the official scheme's train/val cut (none: the recorded one, 0 for a new folder)"})
    workers: int = field(default=2, metadata={"help": "worker processes"})
    figures: int = field(default=4, metadata={"help": "before/after figures to write (first N images)"})
    limit: int | None = field(default=None, metadata={"help": "prepare only the first N images (smoke runs); none: all"})

    def __post_init__(self) -> None:
        check_workers(self.workers)
        if self.figures < 0 or (self.limit is not None and self.limit < 1):
            raise ValueError(f"figures must be >= 0 and limit >= 1 or none, got {self.figures}, {self.limit}")
