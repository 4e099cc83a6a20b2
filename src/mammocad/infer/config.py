"""Settings of ``mammocad export``, ``predict`` and ``second-read`` (each field a YAML key and a CLI flag).

A light module: it imports neither torch nor OpenCV, so the command line answers ``--help`` at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mammocad.utils.config import check_workers

BASELINES = ("blob",)


@dataclass(frozen=True)
class ExportConfig:
    """Which training run to pack into a bundle, and where to write it."""

    run: Path = field(default=Path("runs/classifier"), metadata={
        "help": "run folder written by `mammocad train-classifier` or `mammocad train-segmenter`"})
    out: Path = field(default=Path("model.mcad"), metadata={"help": "bundle file to write (.mcad)"})
    checkpoint: str = field(default="best", metadata={"help": "checkpoint of the run: best or last"})
    patches: Path | None = field(default=None, metadata={
        "help": "patch set the run trained on (none: the one in the run's config, where it was at training time)"})
    evaluation: Path | None = field(default=None, metadata={
        "help": "evaluation folder holding the operating point (metrics.json). none: a classifier's RUN/evaluation; "
                "a segmenter's `evaluate-segmenter --out` folder of this checkpoint under RUN, else the run's "
                "score threshold"})

    def __post_init__(self) -> None:
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be best or last, got {self.checkpoint!r}")


@dataclass(frozen=True)
class PredictConfig:
    """Models and outputs of ``mammocad predict``: one classifier bundle and one source of regions."""

    classifier: Path = field(default=Path("classifier.mcad"), metadata={
        "help": "classifier bundle (written by `mammocad export`)"})
    segmenter: Path | None = field(default=None, metadata={
        "help": "segmenter bundle (`mammocad export` of a train-segmenter run); none: use --baseline"})
    baseline: str | None = field(default=None, metadata={
        "help": f"untrained region proposals instead of a segmenter: {', '.join(BASELINES)} (brightest blobs)"})
    out: Path = field(default=Path("predictions"), metadata={"help": "output folder"})
    workers: int = field(default=1, metadata={"help": "worker processes (each loads the models once)"})
    batch_size: int = field(default=32, metadata={"help": "regions per classifier batch"})
    gradcam: bool = field(default=True, metadata={"help": "Grad-CAM panel in the overlay PNG"})
    overlay_side: int = field(default=2048, metadata={
        "help": "longer side of the overlay PNG (both panels and the footer), px: a display size; the JSON keeps "
                "original pixels"})

    def __post_init__(self) -> None:
        check_workers(self.workers)
        problems = [
            (self.segmenter is not None and self.baseline is not None, "give --segmenter or --baseline, not both"),
            (self.baseline is not None and self.baseline not in BASELINES,
             f"baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}"),
            (self.batch_size < 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.overlay_side < 128, f"overlay_side must be >= 128 px, got {self.overlay_side}"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)


@dataclass(frozen=True)
class SecondReadConfig:
    """Predictions and readings to compare, and where the discrepancy list goes."""

    predictions: Path = field(default=Path("predictions"), metadata={"help": "folder written by `mammocad predict`"})
    readings: Path = field(default=Path("readings.csv"), metadata={
        "help": "radiologist's readings CSV: patient, laterality, view, assessment (BI-RADS; CBIS-DDSM column names work)"})
    out: Path = field(default=Path("second-read"), metadata={"help": "output folder (discrepancies.csv, second_read.html)"})
