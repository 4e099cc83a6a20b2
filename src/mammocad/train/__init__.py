"""Training of the patch classifiers (Lightning): tasks, augmentation, staged fine-tuning, runs, checkpoints.

- ``tasks``: task names -> class names and {patch label: class index}.
- ``augment``: the none / simple / full augmentation presets and the evaluation resize.
- ``schedule``: the ``phase:epochs:lr`` fine-tuning schedule.
- ``data``: a task's train/val loaders over a patch set (epoch-seeded, DDP-sharded).
- ``module``: the LightningModule (loss, metrics, phase switching).
- ``fastpath``: which precision, memory format and loader workers a run uses ("auto" rules).
- ``strided_depthwise``, ``allocator``: the CPU fast path's faster strided depthwise backward and
  its allocator setting (freed memory kept in the process while training).
- ``engine``: ``TrainConfig`` and ``train_classifier`` (run folder, resume, DDP, fast paths).
- ``inference``: ``load_classifier`` and ``predict_probabilities`` for the layers above.
"""

from mammocad.train.allocator import keep_freed_memory
from mammocad.train.augment import Augment, eval_transform, train_transform
from mammocad.train.engine import RESUME_FREE, TrainConfig, TrainResult, train_classifier
from mammocad.train.fastpath import cpu_supports_bf16, resolve_channels_last, resolve_precision, resolve_workers
from mammocad.train.inference import load_classifier, predict_probabilities
from mammocad.train.schedule import Phase, Schedule, parse_phases
from mammocad.train.strided_depthwise import StridedDepthwiseConv2d, use_fast_strided_depthwise
from mammocad.train.tasks import TASKS, Task, get_task, list_tasks

__all__ = [
    "RESUME_FREE", "TASKS", "Augment", "Phase", "Schedule", "StridedDepthwiseConv2d", "Task", "TrainConfig",
    "TrainResult", "cpu_supports_bf16", "eval_transform", "get_task", "keep_freed_memory", "list_tasks",
    "load_classifier", "parse_phases", "predict_probabilities", "resolve_channels_last", "resolve_precision",
    "resolve_workers", "train_classifier", "train_transform", "use_fast_strided_depthwise",
]
