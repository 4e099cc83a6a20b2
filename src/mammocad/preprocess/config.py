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
    """Settings of :func:`preprocess`. Crop and kernel sizes are fractions of the input image's
    rows/cols or longer side, so one setting means the same at every resolution."""

    crop_left: float = field(default=0.01, metadata={
        "help": "border zone at the left, fraction of the columns: only its columns without breast are cropped"})
    crop_right: float = field(default=0.01, metadata={
        "help": "border zone at the right, fraction of the columns: only its columns without breast are cropped"})
    crop_top: float = field(default=0.04, metadata={
        "help": "border zone at the top, fraction of the rows: only its rows without breast are cropped"})
    crop_bottom: float = field(default=0.04, metadata={
        "help": "border zone at the bottom, fraction of the rows: only its rows without breast are cropped"})
    threshold: float = field(default=0.1, metadata={"help": "breast mask: threshold on the [0, 1]-normalised image"})
    open_size: float = field(default=0.00575, metadata={
        "help": "breast mask: opening square side, fraction of the image's longer side (0.00575: 23 px at 4000 px)"})
    dilate_size: float = field(default=0.00575, metadata={
        "help": "breast mask: dilation square side after the opening, fraction of the image's longer side"})
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
            (not (0.0 < self.open_size < 0.5 and 0.0 < self.dilate_size < 0.5),
             f"open_size and dilate_size are fractions of the longer side in (0, 0.5), "
             f"got {self.open_size}, {self.dilate_size}"),
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
