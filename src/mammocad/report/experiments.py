"""Experiment configs: one YAML file per row of the paper's tables (shipped in ``mammocad/configs/``).

A file is flat, like every mammocad config: the keys of :class:`Experiment` (which paper table
and row, which kind of experiment, which patch set), plus the keys of the kind's own configs:

- ``kind: classifier`` (the default): the keys of :class:`mammocad.train.config.TrainConfig`
  (task, model, weights, phases, augment, seed, ...) and of the patch kind's settings
  (:func:`mammocad.patches.config.kind_config_class`, e.g. ``output_size`` of ``large``).
  ``data`` and ``out`` are left out: ``mammocad reproduce`` fills them in (the shared patch set,
  the experiment's run folder).
- ``kind: segmenter``, trained (``model`` and ``patches: seg`` or ``resize512``): the keys of
  :class:`mammocad.segment.config.SegmentTrainConfig` (model, weights, phases, anchor_sizes,
  lesion_type, ...) and of the patch kind's settings (``tile_size``/``stride``, ``size``); the
  run is evaluated on the prepared full images of its ``lesion_type``.
- ``kind: segmenter``, classical: ``segmenter`` names a baseline (``blob``) evaluated on the
  prepared folder, with the ground truth of ``lesion_types``; no patch set, no training keys.

:func:`load_experiment` reads a file through :func:`mammocad.utils.config.build_configs`, the
builder every command uses, so an unknown key or a bad value is refused the same way. A light
module (no torch at import), as the command line needs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from mammocad.patches.config import PatchKind, kind_config_class
from mammocad.utils.config import build_configs, read_yaml

CONFIGS_PACKAGE_FOLDER = "configs"
"""The experiment configs shipped with mammocad: the package's ``configs/`` folder (package data)."""
EXPERIMENT_FILE = "experiment.json"
"""Written by ``mammocad reproduce`` into each experiment's run folder; read back by the report."""


class ExperimentKind(str, enum.Enum):
    CLASSIFIER = "classifier"
    SEGMENTER = "segmenter"


@dataclass(frozen=True)
class Experiment:
    """Where an experiment belongs in the paper and what it needs (the experiment keys of a config file)."""

    table: str = field(default="", metadata={"help": "paper table the experiment fills, e.g. 3"})
    row: str = field(default="", metadata={"help": "row id in that table (a key of mammocad/report/paper.yaml)"})
    kind: ExperimentKind = field(default=ExperimentKind.CLASSIFIER, metadata={"help": "classifier or segmenter"})
    patches: PatchKind | None = field(default=None, metadata={
        "help": "patch set a classifier or a trained segmenter trains on: small, large (classifiers), seg or "
                "resize512 (segmenters)"})
    segmenter: str | None = field(default=None, metadata={
        "help": "classical segmenter evaluated without training: blob (a trained one names its model instead)"})
    lesion_types: str = field(default="mass", metadata={
        "help": "classical segmenter's ground truth: comma-separated abnormality types, or all"})
    description: str = field(default="", metadata={"help": "one line on what the row tests"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ExperimentKind(self.kind))
        if self.patches is not None:
            object.__setattr__(self, "patches", PatchKind(self.patches))
        if not self.table or not self.row:
            raise ValueError("an experiment needs its paper table and row (keys table, row)")
        if self.kind is ExperimentKind.CLASSIFIER and self.patches is None:
            raise ValueError("a classifier experiment needs its patch set (key patches: small, large, ...)")
        if self.kind is ExperimentKind.SEGMENTER:
            if self.segmenter is None and self.patches not in SEGMENTER_PATCHES:
                raise ValueError("a segmenter experiment either trains a model (keys model and patches: seg or "
                                 "resize512) or evaluates a classical segmenter (key segmenter: blob)")
            if self.segmenter is not None and self.patches is not None:
                raise ValueError(f"segmenter {self.segmenter} is evaluated on the prepared images without "
                                 "training: drop the key patches (or drop segmenter and name a model to train)")

    @property
    def trains(self) -> bool:
        """True when the experiment trains a model on a patch set (every classifier, a segmenter with a model)."""
        return self.patches is not None


SEGMENTER_PATCHES = (PatchKind.SEG, PatchKind.RESIZE512)
"""The patch sets a segmenter trains on."""


def _classifier_classes(raw: dict[str, Any]) -> tuple[type, ...]:
    from mammocad.train.config import TrainConfig

    return (TrainConfig, kind_config_class(PatchKind(raw.get("patches") or PatchKind.LARGE.value)))


def _segmenter_classes(raw: dict[str, Any]) -> tuple[type, ...]:
    """A trained segmenter's (SegmentTrainConfig, patch kind config); nothing for a classical one."""
    from mammocad.segment.config import SegmentTrainConfig

    if raw.get("segmenter") is not None:
        if "model" in raw:
            raise ValueError(f"segmenter {raw['segmenter']} is classical and model {raw['model']} is trained: keep "
                             "one of the two keys")
        return ()
    if "model" not in raw:
        raise ValueError("a trained segmenter experiment names its model (key model: maskrcnn_resnet50_fpn_v2, "
                         "unet, ...), or a classical one its segmenter (key segmenter: blob)")
    if "lesion_types" in raw:
        raise ValueError("lesion_types is the ground truth of a classical segmenter; a trained one is evaluated on "
                         "its lesion_type")
    return (SegmentTrainConfig, kind_config_class(PatchKind(raw.get("patches") or PatchKind.RESIZE512.value)))


KIND_CLASSES: dict[ExperimentKind, Callable[[dict[str, Any]], tuple[type, ...]]] = {
    ExperimentKind.CLASSIFIER: _classifier_classes,
    ExperimentKind.SEGMENTER: _segmenter_classes,
}
"""The config classes of each experiment kind, after :class:`Experiment` (from the file's raw keys)."""

RUNNER_KEYS = frozenset({"data", "out", "resume"})
"""TrainConfig keys that ``mammocad reproduce`` sets itself: an experiment file must not."""


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment file, loaded: ``name`` (the file stem), its :class:`Experiment` and the kind's configs."""

    name: str
    path: Path
    experiment: Experiment
    configs: tuple[Any, ...]


def shipped_configs() -> Path:
    """The folder of the experiment configs installed with mammocad (``mammocad/configs/``)."""
    return Path(str(resources.files("mammocad").joinpath(CONFIGS_PACKAGE_FOLDER)))


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment file (see the module docstring); a DataError naming the file for any bad key or value."""
    from mammocad.utils.errors import DataError

    path = Path(path)
    raw = read_yaml(path)
    taken = sorted(RUNNER_KEYS & set(raw))
    if taken:
        raise DataError(path, f"keys {taken} are set by `mammocad reproduce`, not by an experiment file")
    try:
        kind = ExperimentKind(raw.get("kind", ExperimentKind.CLASSIFIER.value))
        experiment, *configs = build_configs((Experiment, *KIND_CLASSES[kind](raw)), path, {})
    except ValueError as err:
        raise DataError(path, str(err)) from None
    return ExperimentConfig(path.stem, path, experiment, tuple(configs))


def load_experiments(folder: str | Path | None = None, tables: set[str] | None = None,
                     only: set[str] | None = None) -> list[ExperimentConfig]:
    """Every ``*.yaml`` experiment of ``folder`` (None: :func:`shipped_configs`), by name, optionally only those
    of ``tables`` / named in ``only``."""
    from mammocad.utils.errors import DataError

    folder = shipped_configs() if folder is None else Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no experiment configs folder (leave --configs out for the ones shipped with "
                                "mammocad)")
    experiments = [load_experiment(path) for path in sorted(folder.glob("*.yaml"))]
    if only:
        unknown = sorted(only - {e.name for e in experiments})
        if unknown:
            raise DataError(folder, f"no experiment named {', '.join(unknown)}")
        experiments = [e for e in experiments if e.name in only]
    if tables:
        experiments = [e for e in experiments if e.experiment.table in tables]
    return experiments
