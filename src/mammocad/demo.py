"""What `mammocad demo` trains, and how few patients it accepts: one place, shared with its tests.

Two recipes: the classifier (:func:`demo_train_config`, below) and the segmenter
(:func:`demo_segment_config`, whose docstring says how it was chosen).

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

from mammocad.segment.config import LESION_TYPES, SegmentTrainConfig
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


SEGMENT_SIZE = 128
"""Side, px, of the demo's ``resize512``-kind patch set (``mammocad patches --kind resize512 --size 128``)."""
SEGMENT_LESION_TYPE = "mass"
SEGMENT_EPOCHS = 8
SEGMENT_LR = 1e-3


def demo_segment_config(data: Path, out: Path, seed: int = 0, *, epochs: int = SEGMENT_EPOCHS) -> SegmentTrainConfig:
    """The demo's segmenter recipe on the resize patch set ``data`` (at :data:`SEGMENT_SIZE`), run folder ``out``.

    A U-Net (smp) with a MobileNetV2 encoder from random weights (nothing can be downloaded), finding
    masses on whole prepared images resized to 128 x 128 px, ``epochs`` epochs of Adam at lr 1e-3 then 2
    at 1e-4, batch 8, horizontal flips, trained on the mass images only. Why each choice:

    - U-Net, not Mask R-CNN: the issue's baseline and ~10x cheaper a step on this CPU
      (benchmarks/RESULTS.md, "segmenters at 512 x 512"); MobileNetV2: the encoder of the
      paper's classifiers, with its ImageNet file usable on real data (``--weights PATH``).
    - 128 px: a synthetic mass (~8% of the image's side) is then ~10 px across, still
      outlined; 256 px costs 4x per epoch, more than the demo's few-minute budget allows.
    - one phase ``all``: staged training (heads first) freezes a *random* encoder, which
      only wastes epochs; lr 1e-3 learnt (validation Dice rose from 0 to ~0.65 in 5 epochs on
      a tuning set); the last 2 epochs at 1e-4 settle it, as in the classifier recipe.
    - masses only, no negatives (``negatives=False``): the demo evaluates on mass images
      (``evaluate_segmenter(lesion_types=("mass",))``), and the calcification-only images
      would nearly double an epoch (108 more train images beside 128 on the tuning set) to teach
      "nothing here" on images that are not scored.
    - flips only: the full affine augmentation learns too slowly for so few epochs (as for
      the classifier).

    Chosen on synthetic seed 100 (150 patients, the demo's size; never a demo or test seed);
    what was tried is in benchmarks/RESULTS.md, "the demo finds masses". The demo evaluates
    the last checkpoint (:func:`demo_checkpoint`), for the classifier's reason: with ~12
    validation mass images best-by-validation-Dice picks noise.
    """
    return SegmentTrainConfig(data=Path(data), out=Path(out), model="unet", encoder="mobilenet_v2", weights="none",
                              lesion_type=SEGMENT_LESION_TYPE, negatives=False,
                              phases=f"all:{epochs}:{SEGMENT_LR},all:2:{SEGMENT_LR / 10}", augment="simple",
                              batch_size=8, workers=0, seed=seed)


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


def split_lesion_problem(manifest: pd.DataFrame, splits: tuple[str, ...] = ("train", "val", "test")) -> str | None:
    """None when every split of the resize patch set ``manifest`` has an image with a lesion the segmenter
    learns (:data:`SEGMENT_LESION_TYPE`), else what is missing (one line): training, the FP control (val)
    and the evaluation (test) each need one."""
    wanted = LESION_TYPES[SEGMENT_LESION_TYPE]
    with_lesion = manifest["instance_labels"].map(lambda labels: any(label in wanted for label in labels))
    for split in splits:
        if not with_lesion[manifest["split"] == split].any():
            return f"the {split} split has no image with a {SEGMENT_LESION_TYPE}"
    return None
