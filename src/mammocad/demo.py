"""What `mammocad demo` trains, and how few patients it accepts: one place, shared with its tests.

The demo trains a small benign-vs-malignant classifier on the large-context patches of a
synthetic CBIS-DDSM (:func:`demo_train_config`): MedicalCNN from scratch at 64 px, 12 epochs
at lr 1e-3 then 4 at 1e-4, horizontal flips. Chosen on validation data of a separate
synthetic set (seed 100, not a demo seed): flips only, because the full affine augmentation
learnt too slowly for a 16-epoch budget; the lr drop, because validation AUC of a constant lr
jumps by +-0.1 between epochs; 64 px, because 96 px scored lower on the same
data for 2.25x the pixels (benchmarks/RESULTS.md, "the demo learns"). The demo scores the *last*
checkpoint, the end of the lr schedule (:func:`demo_checkpoint`), not the best-by-validation
one: with ~30 validation patches the validation AUC moves by +-0.1 between epochs, so picking an
epoch on it picks noise (on tuning seeds 100-102, never demo seeds, the last checkpoint's worst
test AUC was higher; benchmarks/bench_demo_seeds.py). Its tests train with these same
functions, so they check the recipe the demo really runs.

Why a minimum: the demo splits patients as `mammocad prepare` does (official train/test from
the synthetic CSVs, a quarter of the patients in test, a tenth of the rest in validation).
Validation picks the best checkpoint by AUC and the test split is scored by AUC, so both
need benign and malignant patches. Below :data:`MIN_PATIENTS`, tens of seeds in a thousand
leave validation or test with one class; at it, 1 of seeds 0-999 does (counted from the
synthetic plan). :func:`split_class_problem` catches that case, and the demo stops with one
line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mammocad.train.config import TrainConfig

if TYPE_CHECKING:
    from mammocad.train.engine import TrainResult
from mammocad.train.tasks import get_task

TASK = "benign_malignant"
MIN_PATIENTS = 40
"""Fewest ``--patients`` the demo accepts."""


def demo_train_config(data: Path, out: Path, seed: int = 0) -> TrainConfig:
    """The demo's classifier recipe on the large-context patch set ``data``, run folder ``out``."""
    return TrainConfig(data=Path(data), out=Path(out), task=TASK, model="medical_cnn", weights="none",
                       input_size=64, phases="all:12:1e-3,all:4:1e-4", batch_size=16, workers=0, augment="simple",
                       seed=seed)


def demo_checkpoint(result: TrainResult) -> Path:
    """The checkpoint the demo evaluates: the last one (see the module docstring for why)."""
    return result.last_checkpoint


def split_class_problem(manifest: pd.DataFrame, splits: tuple[str, ...] = ("train", "val", "test")) -> str | None:
    """None when every split in ``splits`` has patches of both demo classes, else what is missing (one line)."""
    task = get_task(TASK)
    index = manifest["label"].map(task.classes)
    for split in splits:
        present = set(index[(manifest["split"] == split) & index.notna()].astype(int))
        missing = [name for i, name in enumerate(task.class_names) if i not in present]
        if missing:
            return f"the {split} split has no {' or '.join(missing)} patches"
    return None
