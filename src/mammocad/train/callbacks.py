"""Lightning plug-ins of a training run: the per-epoch metrics table and phase-aware early stopping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from mammocad.utils.atomic import write_csv

FIRST_COLUMNS = ("epoch", "phase", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc")


class EpochCsvLogger(Logger):
    """``metrics.csv``: one row per epoch (0-based ``epoch``), one column per logged metric.

    Columns ``FIRST_COLUMNS`` first, then any others, sorted. Values logged for an epoch are
    merged into its row, and the file is rewritten atomically after every log call. With
    ``keep_existing`` (a resumed run) the rows already in the file are kept: the resumed epochs
    overwrite their own rows, so the table reads as one uninterrupted run. (Lightning's own
    CSVLogger deletes an existing metrics.csv, and writes one row per logging call.)
    """

    def __init__(self, path: Path, keep_existing: bool = False):
        super().__init__()
        self.path = Path(path)
        self.rows: dict[int, dict[str, Any]] = {}
        if keep_existing and self.path.is_file():
            self.rows = {int(row["epoch"]): row for row in pd.read_csv(self.path).to_dict("records")}

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Not stored here: the run's config.yaml and the checkpoints hold them."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = dict(metrics)
        epoch = int(values.pop("epoch"))
        self.rows.setdefault(epoch, {"epoch": epoch}).update(values)

    @rank_zero_only
    def save(self) -> None:
        if not self.rows:
            return
        frame = pd.DataFrame([self.rows[e] for e in sorted(self.rows)])
        first = [c for c in FIRST_COLUMNS if c in frame.columns]
        write_csv(self.path, frame[first + sorted(set(frame.columns) - set(first))])


class LastPhaseEarlyStopping(EarlyStopping):
    """``EarlyStopping`` that watches only the last phase of the schedule.

    A plateau while only the head trains must not end the run before the later phases unfreeze
    the backbone, so checks (and the patience count) start with the last phase's first epoch.
    Needs a ``PhasedModule`` (its ``in_last_phase``): a classifier or a segmenter module.
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.in_last_phase:
            super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.in_last_phase:
            super().on_train_epoch_end(trainer, pl_module)
