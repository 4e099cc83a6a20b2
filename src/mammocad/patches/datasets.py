"""PyTorch datasets over a patch set folder: lazy (one file per ``__getitem__``), worker-safe.

Only the manifest (a small table) is held in memory; pixels are read when an item is asked
for, so memory does not grow with the dataset and the objects pickle cheaply into
DataLoader workers. Images come back as float32 tensors of shape (1, H, W) scaled to [0, 1]
from the file's bit depth (8- or 16-bit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mammocad.patches.store import read_manifest
from mammocad.utils.imageio import read_image


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W) uint8/uint16 -> (1, H, W) float32 in [0, 1]."""
    scale = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind == "u" else 1.0
    return torch.from_numpy(pixels.astype(np.float32) / scale).unsqueeze(0)


def _select(frame: pd.DataFrame, split: str | None, kind: str | None) -> pd.DataFrame:
    if split is not None:
        frame = frame[frame["split"] == split]
    if kind is not None:
        frame = frame[frame["kind"] == kind]
    return frame.reset_index(drop=True)


class PatchDataset(Dataset):
    """Classification patches: ``(image, target)`` with image (1, H, W) float32 in [0, 1].

    ``classes`` maps manifest labels to target indices; patches whose label is not in it are
    left out. This is how tasks are defined, e.g. benign vs malignant masses:
    ``{"BENIGN_MASS": 0, "MALIGNANT_MASS": 1}``. Default: every label present, sorted.
    ``transform`` is applied to the image tensor (e.g. an augmentation pipeline ending in a resize).
    """

    def __init__(self, root: str | Path, split: str | None = None, classes: Mapping[str, int] | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, kind: str | None = None):
        self.root = Path(root)
        frame = _select(read_manifest(self.root), split, kind)
        if classes is None:
            classes = {label: i for i, label in enumerate(sorted(frame["label"].unique()))}
        self.classes = dict(classes)
        self.frame = frame[frame["label"].isin(list(self.classes))].reset_index(drop=True)
        self.targets = [self.classes[label] for label in self.frame["label"]]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = to_tensor(read_image(self.root / self.frame.at[index, "file"]))
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


class SegmentationDataset(Dataset):
    """Segmentation samples (``seg`` tiles or ``resize512`` images) in torchvision detection format.

    Returns ``(image, target)``: image (1, H, W) float32 in [0, 1]; target ``{"masks": uint8
    (N, H, W) 0/1, "boxes": float32 (N, 4) x0, y0, x1, y1, "labels": int64 (N,), "patch_id": str}``
    with N lesion instances (0 for normal/blank tiles). ``instance_classes`` maps an
    instance's label (e.g. ``MALIGNANT_MASS``) to its class id (>= 1; 0 is background);
    instances whose label it does not map are left out of the target. Default: every mass is 1
    and every calcification 2. ``negatives=False`` leaves out the samples with no instance left
    (normal and blank tiles; images without a lesion of the mapped kinds). ``transform``, called
    as ``transform(image, target)``, returns the sample to use (e.g. a joint augmentation,
    ``mammocad.segment.augment``).
    """

    def __init__(self, root: str | Path, split: str | None = None, instance_classes: Mapping[str, int] | None = None,
                 kind: str | None = None, *, negatives: bool = True,
                 transform: Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]] | None = None):
        self.root = Path(root)
        self.instance_classes = dict(instance_classes or {
            "BENIGN_MASS": 1, "MALIGNANT_MASS": 1, "BENIGN_CALCIFICATION": 2, "MALIGNANT_CALCIFICATION": 2,
        })
        frame = _select(read_manifest(self.root), split, kind)
        if not negatives:
            frame = frame[[any(label in self.instance_classes for label in labels)
                           for labels in frame["instance_labels"]]].reset_index(drop=True)
        self.frame = frame
        self.transform = transform

    def __len__(self) -> int:
        return len(self.frame)

    def instance_count(self) -> int:
        """Instances of the mapped labels over all samples (from the manifest; nothing is read)."""
        return sum(label in self.instance_classes for labels in self.frame["instance_labels"] for label in labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        row = self.frame.iloc[index]
        image = read_image(self.root / row["file"])
        kept = [k for k, label in enumerate(row["instance_labels"]) if label in self.instance_classes]
        masks = [read_image(self.root / row["masks"][k]) > 0 for k in kept]
        stacked = np.stack(masks) if masks else np.zeros((0, *image.shape), bool)
        target = {
            "masks": torch.from_numpy(stacked.astype(np.uint8)),
            "boxes": torch.tensor([row["boxes"][k] for k in kept], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([self.instance_classes[row["instance_labels"][k]] for k in kept],
                                   dtype=torch.int64),
            "patch_id": row["patch_id"],
        }
        sample = to_tensor(image), target
        return self.transform(*sample) if self.transform is not None else sample


# Workers start from a clean forkserver process, not a fork of the caller: a fork inherits
# the state of the caller's thread pools (OpenCV's, OpenMP's) and deadlocks in the first
# parallel call when the caller had used them, e.g. after resizing an image. The price is a
# one-off import of torch per worker (about a second), paid once per loader with persistent
# workers; the dataset objects are small and pickle cheaply.
LOADER_CONTEXT = "forkserver"


def _worker_init(worker_id: int) -> None:
    # OpenCV's own thread pool multiplies with DataLoader workers; one thread each is fastest.
    cv2.setNumThreads(1)
    np.random.seed(torch.initial_seed() % 2**32)


def detection_collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Segmentation batches stay lists: images and instance counts differ per sample."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool = False, workers: int = 0, seed: int = 0,
                collate_fn: Callable | None = None) -> DataLoader:
    """A DataLoader that is reproducible (seeded shuffling and worker seeds) and worker-safe."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, generator=generator,
        worker_init_fn=_worker_init, persistent_workers=workers > 0, collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available(), multiprocessing_context=LOADER_CONTEXT if workers > 0 else None,
    )
