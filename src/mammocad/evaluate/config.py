"""Settings of the evaluation layer that the command line needs at start-up (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CALIBRATION_METHODS = ("temperature", "isotonic")  # see mammocad.evaluate.calibration
LESION_SCORES = ("max", "mean")  # how a lesion's patch scores become its one score (cross-validation)


@dataclass(frozen=True)
class CrossValConfig:
    """Cross-validation settings (``mammocad cross-validate``); the model's are a ``TrainConfig``'s."""

    folds: int = field(default=5, metadata={"help": "folds (patient-grouped, label-stratified)"})
    val_fraction: float = field(default=0.15, metadata={
        "help": "share of each training fold's patients cut off (grouped, stratified) as its validation split"})
    fold_seed: int = field(default=0, metadata={"help": "seed of the fold and validation assignment"})
    members: int = field(default=1, metadata={
        "help": "models per fold (seeds seed, seed+1, ...): their mean probability is the fold's prediction"})
    tta: str = field(default="none", metadata={"help": "test-time augmentation: none, flips (4 views), d4 (8)"})
    calibration: str = field(default="temperature", metadata={
        "help": "calibration fitted on each fold's validation split: temperature, isotonic (binary) or none"})
    lesion_score: str = field(default="max", metadata={
        "help": "lesion_vs_background: a lesion's score from its patches' scores, max or mean"})
    compare: Path | None = field(default=None, metadata={
        "help": "another cross-validate output folder on the same folds: paired AUC difference (this - that)"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples (patients) for the 95% CIs"})

    def __post_init__(self) -> None:
        from mammocad.train.config import TTA_MODES

        problems = [
            (self.folds < 2, f"folds must be >= 2, got {self.folds}"),
            (not 0.0 < self.val_fraction < 0.5, f"val_fraction must be in (0, 0.5), got {self.val_fraction}"),
            (self.members < 1, f"members must be >= 1, got {self.members}"),
            (self.tta not in TTA_MODES, f"tta must be one of {', '.join(TTA_MODES)}, got {self.tta!r}"),
            (self.calibration not in (*CALIBRATION_METHODS, "none"),
             f"calibration must be one of {', '.join(CALIBRATION_METHODS)} or none, got {self.calibration!r}"),
            (self.lesion_score not in LESION_SCORES,
             f"lesion_score must be one of {', '.join(LESION_SCORES)}, got {self.lesion_score!r}"),
            (self.bootstrap < 1, f"bootstrap must be >= 1, got {self.bootstrap}"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)
