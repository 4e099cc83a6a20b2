"""A task's train/val data from a patch set, with epoch randomness that makes runs repeatable and resumable.

Samples are ``(image, target)``: image float32 (1, S, S) in [0, 1] with S the model input size
(after augmentation / resizing), target the task's class index (int).

Every random draw of an epoch is a function of (seed, epoch, ...) only, never of what ran
before, so a run resumed from a checkpoint replays exactly what the uninterrupted run did, with
any number of loader workers:

- order: epoch e trains on ``DistributedSampler(shuffle=True, seed=seed)`` at epoch e (one
  shard per process, equal lengths, so DDP processes run the same number of steps);
- augmentation: each sample is augmented under torch's RNG seeded from (seed, epoch, sample
  index), whichever worker loads it;
- dropout and anything else on torch's global RNG in the training process: reseeded from
  (seed, epoch, rank) at the start of each epoch (``EpochSeed``).

The epoch lives in a shared-memory tensor of ``EpochView``, so the loaders (and their
persistent workers) are built once per fit. Validation: every process evaluates its own stride
of the val split (rank, rank + world, ...), so each sample is scored exactly once and the
(synced) metrics equal a single-process run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from mammocad.patches.datasets import PatchDataset, make_loader
from mammocad.train.augment import Augment, eval_transform, train_transform
from mammocad.train.tasks import Task
from mammocad.utils.errors import DataError
from mammocad.utils.seeding import derived_seed


def task_dataset(root: Path, split: str, task: Task, transform=None) -> PatchDataset:
    """The ``split`` patches of ``task``; DataError naming the patch set when a class has none."""
    dataset = PatchDataset(root, split, classes=task.classes, transform=transform)
    counts = class_counts(dataset, task.num_classes)
    if not counts.sum():
        raise DataError(root, f"no {split!r} patches for task {task.name} "
                              f"(it reads labels {', '.join(task.classes)})")
    missing = [f"{task.class_names[i]} ({', '.join(task.labels_of(i))})" for i in np.flatnonzero(counts == 0)]
    if missing:
        raise DataError(root, f"the {split!r} split has no patches of class {'; '.join(missing)}, "
                              f"which task {task.name} needs")
    return dataset


def class_counts(dataset: PatchDataset, num_classes: int) -> np.ndarray:
    """Patches per class index: int64 (num_classes,)."""
    return np.bincount(np.asarray(dataset.targets, dtype=np.int64), minlength=num_classes)


def balanced_class_weights(counts: np.ndarray) -> list[float]:
    """Cross-entropy weights ``n / (C * n_c)`` (scikit-learn's "balanced"): a rare class weighs more."""
    return [float(counts.sum() / (len(counts) * c)) for c in counts]


_SAMPLE_STREAM, _PROCESS_STREAM = 0, 1  # keep per-sample and per-process seeds apart


def sampler_epoch(trainer: L.Trainer) -> int:
    """The epoch the trainer is in or about to start: the value Lightning gives samplers' ``set_epoch``.

    Unlike ``trainer.current_epoch``, it is already right when the loaders are built for a run
    resumed from an end-of-epoch checkpoint (the fit loop marks that epoch complete only later).
    """
    return trainer.fit_loop.epoch_progress.current.processed


class EpochView(Dataset):
    """This process's shard of ``dataset`` for the current epoch, in that epoch's order.

    Item ``i`` is ``dataset[indices(epoch)[i]]`` loaded under torch's RNG seeded from
    (seed, epoch, index): its augmentation does not depend on which process or worker loads it.
    ``set_epoch`` writes the epoch into shared memory, which the loader's workers read. The length
    is the same every epoch (``DistributedSampler`` pads to equal shards), less a trailing batch of
    one sample, which BatchNorm layers cannot train on.
    """

    def __init__(self, dataset: Dataset, *, seed: int, rank: int, world: int, batch_size: int):
        self.dataset = dataset
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.seed = seed
        shard = len(self.sampler)
        self.length = shard - 1 if shard % batch_size == 1 and shard > 1 else shard
        self.epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._order: tuple[int, list[int]] = (-1, [])  # (epoch, indices), per process

    def set_epoch(self, epoch: int) -> None:
        self.epoch[0] = epoch

    def indices(self, epoch: int) -> list[int]:
        if self._order[0] != epoch:
            self.sampler.set_epoch(epoch)
            self._order = (epoch, list(self.sampler)[:self.length])
        return self._order[1]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, position: int):
        epoch = int(self.epoch[0])
        index = self.indices(epoch)[position]
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only (what the transforms draw from): torch.manual_seed would also
            # queue a CUDA seed with a formatted stack trace: ~0.5 ms a sample, a fifth of loading.
            torch.default_generator.manual_seed(derived_seed(self.seed, epoch, _SAMPLE_STREAM, index))
            return self.dataset[index]


class EpochDataModule(L.LightningDataModule):
    """Train and val loaders over two datasets: the train one through ``EpochView`` (epoch-seeded, sharded).

    ``batch_size``: samples per step per process; ``collate_fn``: the loaders' (None: default
    stacking; ``detection_collate`` for segmentation samples). The per-process views are made on
    ``setup``. Train with ``EpochSeed`` among the trainer's callbacks.
    """

    def __init__(self, train_set: Dataset, val_set: Dataset, *, batch_size: int, workers: int, seed: int,
                 collate_fn: Callable | None = None):
        super().__init__()
        self.train_set, self.val_set = train_set, val_set
        self.batch_size = batch_size
        self.workers = workers
        self.seed = seed
        self.collate_fn = collate_fn
        self.train_view: EpochView | None = None

    def setup(self, stage: str) -> None:
        self.train_view = EpochView(self.train_set, seed=self.seed, rank=self.trainer.global_rank,
                                    world=self.trainer.world_size, batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        # The loader's first iterator (and its workers' first items) is created right after this
        # call, before any epoch-start hook: set the epoch a run starts or resumes at here.
        self.train_view.set_epoch(sampler_epoch(self.trainer))
        return make_loader(self.train_view, batch_size=self.batch_size, shuffle=False, workers=self.workers,
                           collate_fn=self.collate_fn)

    def val_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        return make_loader(Subset(self.val_set, range(rank, len(self.val_set), world)), batch_size=self.batch_size,
                           shuffle=False, workers=self.workers, collate_fn=self.collate_fn)


class PatchDataModule(EpochDataModule):
    """Train (augmented) and val (resize only) loaders of ``task`` over the patch set at ``root``.

    ``input_size``: side S of the model input, px. ``batch_size``: samples per step per process.
    Datasets are opened (and checked: every class present in train and val) on construction;
    the per-process views on ``setup``. Train with ``EpochSeed`` among the trainer's callbacks.
    """

    def __init__(self, root: Path, task: Task, *, input_size: int, augment: Augment | str, intensity: float,
                 batch_size: int, workers: int, seed: int):
        root = Path(root)
        super().__init__(task_dataset(root, "train", task, train_transform(augment, input_size, intensity)),
                         task_dataset(root, "val", task, eval_transform(input_size)),
                         batch_size=batch_size, workers=workers, seed=seed)
        self.root = root


class EpochSeed(Callback):
    """At each epoch start: the train view's epoch, and torch's global RNG seeded from (seed, epoch, rank)."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = sampler_epoch(trainer)
        trainer.datamodule.train_view.set_epoch(epoch)
        torch.manual_seed(derived_seed(self.seed, epoch, _PROCESS_STREAM, trainer.global_rank))
