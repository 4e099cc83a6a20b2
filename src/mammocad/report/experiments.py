"""Experiment configs: one YAML file per row of the paper's tables (the repository's ``configs/`` folder).

A file is flat, like every mammocad config: the keys of :class:`Experiment` (which paper table
and row, which kind of experiment, which patch set), plus the keys of the kind's own configs:

- ``kind: classifier`` (the default): the keys of :class:`mammocad.train.config.TrainConfig`
  (task, model, weights, phases, augment, seed, ...) and of the patch kind's settings
  (:func:`mammocad.patches.config.kind_config_class`, e.g. ``output_size`` of ``large``).
  ``data`` and ``out`` are left out: ``mammocad reproduce`` fills them in (the shared patch set,
  the experiment's run folder).
- ``kind: segmenter``: ``segmenter`` names a classical baseline (``blob``) evaluated on the
  prepared folder; trained segmenters plug in here as another entry of :data:`KIND_CLASSES`.

:func:`load_experiment` reads a file through :func:`mammocad.utils.config.build_configs`, the
builder every command uses, so an unknown key or a bad value is refused the same way. A light
module (no torch at import), as the command line needs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mammocad.patches.config import PatchKind, kind_config_class
from mammocad.utils.config import build_configs, read_yaml

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
        "help": "patch set a classifier trains on: small, large, seg or resize512"})
    segmenter: str | None = field(default=None, metadata={"help": "segmenter kind: the classical baseline blob"})
    lesion_types: str = field(default="mass", metadata={
        "help": "segmenter ground truth: comma-separated abnormality types, or all"})
    description: str = field(default="", metadata={"help": "one line on what the row tests"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ExperimentKind(self.kind))
        if not self.table or not self.row:
            raise ValueError("an experiment needs its paper table and row (keys table, row)")
        if self.kind is ExperimentKind.CLASSIFIER and self.patches is None:
            raise ValueError("a classifier experiment needs its patch set (key patches: small, large, ...)")
        if self.kind is ExperimentKind.SEGMENTER and self.segmenter is None:
            raise ValueError("a segmenter experiment needs its segmenter (key segmenter, e.g. blob)")


def _classifier_classes(raw: dict[str, Any]) -> tuple[type, ...]:
    from mammocad.train.config import TrainConfig

    return (TrainConfig, kind_config_class(PatchKind(raw.get("patches") or PatchKind.LARGE.value)))


KIND_CLASSES: dict[ExperimentKind, Callable[[dict[str, Any]], tuple[type, ...]]] = {
    ExperimentKind.CLASSIFIER: _classifier_classes,
    ExperimentKind.SEGMENTER: lambda raw: (),
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


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment file (see the module docstring); DataError / ValueError as ``build_configs`` raises."""
    from mammocad.utils.errors import DataError

    path = Path(path)
    raw = read_yaml(path)
    kind = ExperimentKind(raw.get("kind", ExperimentKind.CLASSIFIER.value))
    taken = sorted(RUNNER_KEYS & set(raw))
    if taken:
        raise DataError(path, f"keys {taken} are set by `mammocad reproduce`, not by an experiment file")
    experiment, *configs = build_configs((Experiment, *KIND_CLASSES[kind](raw)), path, {})
    return ExperimentConfig(path.stem, path, experiment, tuple(configs))


def load_experiments(folder: str | Path, tables: set[str] | None = None,
                     only: set[str] | None = None) -> list[ExperimentConfig]:
    """Every ``*.yaml`` experiment of ``folder`` (by name), optionally only those of ``tables`` / named in ``only``."""
    from mammocad.utils.errors import DataError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no experiment configs folder (the repository's configs/; see configs/README.md)")
    experiments = [load_experiment(path) for path in sorted(folder.glob("*.yaml"))]
    if only:
        unknown = sorted(only - {e.name for e in experiments})
        if unknown:
            raise DataError(folder, f"no experiment named {', '.join(unknown)}")
        experiments = [e for e in experiments if e.name in only]
    if tables:
        experiments = [e for e in experiments if e.experiment.table in tables]
    return experiments
