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

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): ``mammocad.train.config`` and ``tasks`` import neither torch nor
# Lightning, so the CLI can define its options without them.
_EXPORTS = {
    "keep_freed_memory": "allocator",
    "Augment": "augment", "eval_transform": "augment", "train_transform": "augment",
    "RESUME_FREE": "config", "TrainConfig": "config",
    "TrainResult": "engine", "train_classifier": "engine",
    "cpu_supports_bf16": "fastpath", "resolve_channels_last": "fastpath", "resolve_precision": "fastpath",
    "resolve_workers": "fastpath",
    "load_classifier": "inference", "predict_probabilities": "inference",
    "Phase": "schedule", "Schedule": "schedule", "parse_phases": "schedule",
    "StridedDepthwiseConv2d": "strided_depthwise", "use_fast_strided_depthwise": "strided_depthwise",
    "TASKS": "tasks", "Task": "tasks", "get_task": "tasks", "list_tasks": "tasks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mammocad.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mammocad.train.{_EXPORTS[name]}"), name)
