"""``TrainConfig``: every setting of a classifier training run (a YAML key and a CLI flag each).

A light module on purpose: it imports neither torch nor Lightning, so the command line can
define its options (and answer ``--help``) at once; the model registry and the phase parser are
imported when a config is validated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from mammocad.models.norms import INPUT_NORMS
from mammocad.train.tasks import TASKS, get_task
from mammocad.utils.config import check_workers

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
TTA_MODES = ("none", "flips", "d4")  # test-time augmentation views, see mammocad.train.augment.tta_views
DEFAULT_PHASES = "head:3:1e-3,last_third:3:1e-4,last_two_thirds:3:1e-5"


class Augment(str, enum.Enum):
    """Augmentation presets (see :mod:`mammocad.train.augment`)."""

    NONE = "none"
    SIMPLE = "simple"
    FULL = "full"


RESUME_FREE = frozenset({"data", "out", "resume", "workers", "precision", "channels_last", "accelerator", "devices",
                         "strategy", "num_nodes", "early_stopping_patience", "limit_train_batches",
                         "limit_val_batches"})
"""TrainConfig fields that may differ between a run and its resumption (they do not change what is learnt)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; every field is a YAML key and a CLI flag."""

    data: Path = field(default=Path("patches"), metadata={"help": "patch set folder (written by `mammocad patches`)"})
    task: str = field(default="mass_benign_malignant", metadata={"help": f"task: {', '.join(TASKS)}"})
    model: str = field(default="mobilenet_v2", metadata={"help": "registry model name"})
    weights: str = field(default="imagenet", metadata={
        "help": "initial weights: none (random), imagenet, or a state_dict file"})
    input_norm: str | None = field(default=None, metadata={
        "help": f"input normalisation ({', '.join(INPUT_NORMS)}); none: the model's default"})
    dropout: float = field(default=0.2, metadata={"help": "dropout before the final dense layer, [0, 1)"})
    input_size: int | None = field(default=None, metadata={
        "help": "model input side, px (patches are resized to it); none: the model's (224, 299 for InceptionV3)"})
    phases: str = field(default=DEFAULT_PHASES, metadata={
        "help": "fine-tuning schedule: phase:epochs:lr items, comma separated; phases: head, last_third, "
                "last_two_thirds, all (e.g. all:30:1e-3 end to end)"})
    frozen_batchnorm: bool = field(default=False, metadata={
        "help": "keep every BatchNorm layer's running statistics at the initial weights' values while training "
                "(affine parameters still learn): for weights with BatchNorm folded into the convolutions, such as "
                "../shared's MobileNetV2, whose BN layers are identities that batch statistics would overwrite"})
    batch_size: int = field(default=32, metadata={"help": "patches per step per process"})
    workers: int | None = field(default=None, metadata={
        "help": "data loader worker processes per training process (default: 0 on the CPU, where loading "
                "in the training process is fastest; up to 8 per GPU)"})
    augment: Augment = field(default=Augment.FULL, metadata={
        "help": "augmentation: none, simple (horizontal flip), full (flips, rotation, zoom, translation)"})
    intensity_jitter: float = field(default=0.0, metadata={
        "help": "brightness/contrast/gamma jitter strength in [0, 1); 0: off"})
    class_weights: bool = field(default=False, metadata={"help": "weight the loss by inverse class frequency"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay (L2)"})
    precision: str = field(default="auto", metadata={
        "help": f"{', '.join(PRECISIONS)}; auto: bf16-mixed on bf16-capable CPUs and GPUs, 16-mixed on older "
                f"GPUs, else 32"})
    channels_last: bool | None = field(default=None, metadata={
        "help": "channels-last memory format; none: on for GPUs and the CPU bf16 path"})
    accelerator: str = field(default="auto", metadata={"help": "Lightning accelerator: auto, cpu, gpu, ..."})
    devices: int = field(default=1, metadata={"help": "devices (GPUs / CPU processes) per node"})
    strategy: str = field(default="auto", metadata={"help": "Lightning strategy: auto, ddp, ddp_spawn, ..."})
    num_nodes: int = field(default=1, metadata={"help": "machines (DDP)"})
    early_stopping_patience: int = field(default=0, metadata={
        "help": "stop after this many epochs of the last phase without a better val_auc; 0: off"})
    seed: int = field(default=0, metadata={"help": "random seed (init, shuffling, augmentation, dropout)"})
    out: Path = field(default=Path("runs/classifier"), metadata={"help": "run folder"})
    resume: bool = field(default=False, metadata={
        "help": "continue the run in OUT from checkpoints/last.ckpt (a new run when there is none)"})
    limit_train_batches: int | None = field(default=None, metadata={
        "help": "train on at most this many batches per epoch (smoke runs); none: all"})
    limit_val_batches: int | None = field(default=None, metadata={
        "help": "validate on at most this many batches (smoke runs); none: all"})

    def __post_init__(self) -> None:
        # The model registry and the phase parser need torch: imported here, not at module level.
        from mammocad.models import get_spec
        from mammocad.train.schedule import parse_phases

        check_workers(self.workers)
        get_task(self.task)
        spec = get_spec(self.model)
        parse_phases(self.phases)
        object.__setattr__(self, "augment", Augment(self.augment))
        problems = [
            *engine_problems(self),
            (self.input_norm is not None and self.input_norm not in INPUT_NORMS,
             f"input_norm must be one of {', '.join(INPUT_NORMS)} or none, got {self.input_norm!r}"),
            (self.input_size is not None and self.input_size < spec.min_input_size,
             f"input_size of {self.model} must be >= {spec.min_input_size}, got {self.input_size}"),
            (not 0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (not 0.0 <= self.intensity_jitter < 1.0, f"intensity_jitter must be in [0, 1), got {self.intensity_jitter}"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)

    @property
    def model_input_size(self) -> int:
        """``input_size``, or the model's own when None."""
        from mammocad.models import get_spec

        return self.input_size if self.input_size is not None else get_spec(self.model).input_size


def engine_field(name: str, help_text: str | None = None):
    """A dataclass ``field`` like TrainConfig's ``name`` (its default and help; ``help_text`` replaces
    the help), for another run config (the segmenters') with the same engine setting."""
    original = TrainConfig.__dataclass_fields__[name]
    return field(default=original.default, metadata={**original.metadata, **({"help": help_text} if help_text else {})})


def engine_problems(config) -> list[tuple[bool, str]]:
    """``(failed, message)`` checks of the settings every run config has (``mammocad.train.engine.fit_run``'s:
    precision, weight_decay, batch_size, workers, devices, num_nodes, early_stopping_patience, limit_*_batches)."""
    return [
        (config.precision not in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}"),
        (config.weight_decay < 0, f"weight_decay must be >= 0, got {config.weight_decay}"),
        (config.batch_size < 1, f"batch_size must be >= 1, got {config.batch_size}"),
        (config.workers is not None and config.workers < 0, f"workers must be >= 0, got {config.workers}"),
        (config.devices < 1 or config.num_nodes < 1, f"devices and num_nodes must be >= 1, got {config.devices}, "
                                                     f"{config.num_nodes}"),
        (config.early_stopping_patience < 0, f"early_stopping_patience must be >= 0, got "
                                             f"{config.early_stopping_patience}"),
        (any(n is not None and n < 1 for n in (config.limit_train_batches, config.limit_val_batches)),
         "limit_train_batches and limit_val_batches must be >= 1 or none"),
    ]
