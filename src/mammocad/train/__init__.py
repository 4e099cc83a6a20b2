"""Training of the patch classifiers (Lightning): tasks, augmentation, staged fine-tuning, runs, checkpoints.

- ``tasks``: task names -> class names and {patch label: class index}.
- ``augment``: the none / simple / full augmentation presets and the evaluation resize.
- ``schedule``: the ``phase:epochs:lr`` fine-tuning schedule.
- ``data``: a task's train/val loaders over a patch set (epoch-seeded, DDP-sharded).
- ``module``: the LightningModule (loss, metrics, phase switching).
- ``engine``: ``TrainConfig`` and ``train_classifier`` (run folder, resume, DDP, fast paths).
- ``inference``: ``load_classifier`` and ``predict_probabilities`` for the layers above.
"""

from mammocad.train.augment import Augment, eval_transform, train_transform
from mammocad.train.engine import RESUME_FREE, TrainConfig, TrainResult, train_classifier
from mammocad.train.fastpath import cpu_supports_bf16, resolve_channels_last, resolve_precision, resolve_workers
from mammocad.train.inference import load_classifier, predict_probabilities
from mammocad.train.schedule import Phase, Schedule, parse_phases
from mammocad.train.tasks import TASKS, Task, get_task, list_tasks

__all__ = [
    "RESUME_FREE", "TASKS", "Augment", "Phase", "Schedule", "Task", "TrainConfig", "TrainResult",
    "cpu_supports_bf16", "eval_transform", "get_task", "list_tasks", "load_classifier", "parse_phases",
    "predict_probabilities", "resolve_channels_last", "resolve_precision", "resolve_workers",
    "train_classifier", "train_transform",
]
