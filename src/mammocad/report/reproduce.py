"""``mammocad reproduce``: the paper's experiment grid (``mammocad/configs/``) on one dataset, resumably, then its report.

Steps, all into ``OUT``::

    OUT/prepared/                      the dataset prepared once (mammocad prepare)
    OUT/patches/<kind>-<fingerprint>/  each patch set the chosen experiments need, built once and shared
    OUT/runs/<experiment>/             one run per experiment file: training run + evaluation/ + experiment.json
    OUT/superseded/                    runs whose config or data changed since (moved aside, never deleted)
    OUT/report.html (+ .md, _tables/)  mammocad report OUT

The experiment files are the ones shipped with mammocad (:func:`mammocad.report.experiments.shipped_configs`,
whatever the current directory) or those of ``--configs DIR``.

**Kinds.** A classifier trains on its patch set (``train_classifier``) and is evaluated on its
test split (``evaluate_classifier``). A trained segmenter (Table 2's Mask R-CNN and U-Net rows)
trains on its ``seg`` or ``resize512`` patch set (``train_segmenter``); its best checkpoint is
then evaluated on the prepared FULL images of the test split (``evaluate_segmenter``, tiles
stitched back, the false-positive control chosen on the val split) into ``run/evaluation``. A
classical segmenter (``blob``) is evaluated the same way, without training or patch set.

**Resumable.** Every stage skips what it already did: prepare and patches per image (their done
records), an experiment by its fingerprint (its config after the budget's overrides, and the
fingerprint of the patch set or prepared folder it reads), recorded in ``experiment.json`` when
it finishes. An experiment that was interrupted resumes (``resume``: from its last checkpoint,
same weights as an uninterrupted run); one whose fingerprint changed is moved to
``OUT/superseded/`` and redone.

**Budgets.** ``full``: the configs as written. ``smoke``: the same grid made tiny so that it
finishes on a CPU (:data:`SMOKE_PATCHES`, :func:`smoke_train_config`, :func:`smoke_segment_config`):
prepared images at 512 px, 64 px patches and resized images, 256 px tiles every 128 px, random initial
weights, one epoch per phase on two batches, few Mask R-CNN proposals, RoIs and detections, anchors
scaled like the input, 50 bootstrap resamples. A classifier whose smallest input is above 64 px
(InceptionV3) is swapped for MobileNetV2; both swaps are recorded in experiment.json
(``smoke_substitutions``). Smoke numbers check the machinery, not the paper.

**Several GPUs, a cluster.** One experiment per process, each on its own device::

    mammocad reproduce --data ROOT --out OUT --data-only             # prepare + patch sets, once
    # one GPU each on this machine
    for name in table03_mass_mobilenet_v2 table03_mass_inception_v3; do
        CUDA_VISIBLE_DEVICES=$((i++)) mammocad reproduce --data ROOT --out OUT --only $name --no-report &
    done; wait
    # SLURM: one job per experiment, then the report
    for f in $(python -c "from mammocad.report.experiments import shipped_configs; print(shipped_configs())")/*.yaml; do
        sbatch --gpus=1 --wrap "mammocad reproduce --data ROOT --out OUT --only $(basename $f .yaml) --no-report"
    done
    mammocad report OUT                                                # when every job has finished

An experiment that needs several GPUs itself sets ``devices``/``strategy`` in its config file
(Lightning DDP; launched as in ``mammocad.train.engine``).

**Plugging in a kind.** A new kind adds its config classes to
:data:`mammocad.report.experiments.KIND_CLASSES` and its runner to :data:`RUNNERS`.
Research software, not a medical device.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mammocad.patches.config import PatchJob, PatchKind
from mammocad.preprocess.config import PrepareJob, PreprocessConfig
from mammocad.report.collect import read_json
from mammocad.report.config import Budget, ReproduceConfig
from mammocad.report.experiments import (
    EXPERIMENT_FILE,
    ExperimentConfig,
    ExperimentKind,
    load_experiments,
    shipped_configs,
)
from mammocad.utils.atomic import write_json
from mammocad.utils.config import config_dict
from mammocad.utils.errors import DataError
from mammocad.utils.parallel import Failure
from mammocad.utils.provenance import machine_info, now_iso, software_versions
from mammocad.utils.stage import fingerprint


# ---- budgets -----------------------------------------------------------------------------------------
SMOKE_INPUT = 64
SMOKE_PREPARED_SIZE = 512
SMOKE_PATCHES: dict[PatchKind, dict[str, Any]] = {
    PatchKind.SMALL: {"image_size": (288, 224), "patch_size": (56, 56)},
    PatchKind.LARGE: {"output_size": SMOKE_INPUT},
    # the paper's 256 px tiles every 128 px: 9 per 512 px prepared image to predict and stitch, overlaps
    # included. Mask R-CNN's CPU time is per tile (its heads), so smaller tiles cost more: 64 px every 32 px
    # would be 225 tiles an image, 128 every 64 px 49 (~45 s an image on the loaded 2-core VM).
    PatchKind.SEG: {"tile_size": 256, "stride": 128, "max_tiles": 32},
    PatchKind.RESIZE512: {"size": SMOKE_INPUT},
}
"""Patch settings the smoke budget overrides, per kind (the rest stays as configured)."""
SMOKE_MODEL = "mobilenet_v2"
SMOKE_SEGMENTER = {"batch_size": 4, "rpn_proposals": 8, "rois_per_image": 8, "detections_per_image": 3}
"""Segmenter settings the smoke budget caps: Mask R-CNN's CPU time at these sizes is in its box and mask
heads (four 256-channel convolutions per proposal and per detection in the v2 heads), not in its pixels."""
SMOKE_RESAMPLES = 50
FULL_RESAMPLES = 1000


def _one_epoch_per_phase(phases: str, names: tuple[str, ...] | None = None) -> str:
    from mammocad.train.schedule import parse_phases

    schedule = parse_phases(phases) if names is None else parse_phases(phases, names)
    return ",".join(f"{p.name}:1:{p.lr:g}" for p in schedule.phases)


def smoke_train_config(config: Any) -> tuple[Any, dict[str, Any]]:
    """The smoke version of a TrainConfig, and what was substituted (model swaps) for the record."""
    from mammocad.models import get_spec

    swapped = {}
    model = config.model
    if get_spec(model).min_input_size > SMOKE_INPUT:
        swapped = {"model": {"configured": model, "smoke": SMOKE_MODEL}}
        model = SMOKE_MODEL
    return dataclasses.replace(config, model=model, weights="none", input_norm=None, input_size=SMOKE_INPUT,
                               phases=_one_epoch_per_phase(config.phases), batch_size=8, workers=0,
                               early_stopping_patience=0, limit_train_batches=2, limit_val_batches=2), swapped


def smoke_segment_config(config: Any, input_side: int, smoke_side: int) -> tuple[Any, dict[str, Any]]:
    """The smoke version of a SegmentTrainConfig whose images (or tiles) go from ``input_side`` to ``smoke_side`` px.

    Random initial weights, one epoch per phase on two batches, few RPN proposals, RoIs and
    detections (:data:`SMOKE_SEGMENTER`), the anchors scaled like the input (``smoke_side /
    input_side``, at least 1 px) for the models that use them, and a U-Net's encoder swapped for
    the small ``SMOKE_MODEL`` (a ResNet-34 U-Net's checkpoints are ~200 MB each); each change
    recorded as a substitution.
    """
    from mammocad.segment.models import SEGMENTER_PHASES

    anchors, encoder, swapped = config.anchor_sizes, config.encoder, {}
    options = config.model_options(smoke_side)
    if "anchor_sizes" in options:  # Mask R-CNN
        anchors = tuple(max(1, round(size * smoke_side / input_side)) for size in config.anchor_sizes)
    if "encoder" in options:  # the U-Net
        encoder = SMOKE_MODEL
    if anchors != config.anchor_sizes:
        swapped["anchor_sizes"] = {"configured": list(config.anchor_sizes), "smoke": list(anchors)}
    if encoder != config.encoder:
        swapped["encoder"] = {"configured": config.encoder, "smoke": encoder}
    capped = {key: min(getattr(config, key), value) for key, value in SMOKE_SEGMENTER.items()}
    return dataclasses.replace(config, weights="none", phases=_one_epoch_per_phase(config.phases, SEGMENTER_PHASES),
                               anchor_sizes=anchors, encoder=encoder, workers=0, early_stopping_patience=0, limit_train_batches=2,
                               limit_val_batches=2, **capped), swapped


def patch_settings(kind: PatchKind, settings: Any, budget: Budget) -> Any:
    """A patch kind's settings under ``budget``."""
    return dataclasses.replace(settings, **SMOKE_PATCHES.get(kind, {})) if budget is Budget.SMOKE else settings


# ---- experiments -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What happened to one experiment: ``status`` done (now), skipped (done before) or failed."""

    name: str
    status: str
    seconds: float = 0.0
    problem: str = ""


@dataclass
class Workspace:
    """The shared inputs of the experiments: the prepared folder and the patch sets by (kind, settings)."""

    config: ReproduceConfig
    prepared: Path
    progress: bool = True
    patch_sets: dict[str, Path] = field(default_factory=dict)

    @property
    def resamples(self) -> int:
        return SMOKE_RESAMPLES if self.config.budget is Budget.SMOKE else FULL_RESAMPLES


def _patch_key(kind: PatchKind, settings: Any) -> str:
    return f"{kind.value}-{fingerprint(settings)}"


def _input_side(kind: PatchKind, settings: Any) -> int:
    """Side of a segmentation patch set's images (resize512) or tiles (seg), px, from its settings."""
    return settings.tile_size if kind is PatchKind.SEG else settings.size


def _trained_inputs(experiment: ExperimentConfig, workspace: Workspace) -> tuple[Any, Path, dict[str, Any]]:
    """(the training config to run, its patch set, smoke substitutions) of an experiment that trains a model."""
    train, settings = experiment.configs
    kind = PatchKind(experiment.experiment.patches)
    budget_settings = patch_settings(kind, settings, workspace.config.budget)
    data = workspace.patch_sets[_patch_key(kind, budget_settings)]
    swapped: dict[str, Any] = {}
    if workspace.config.budget is Budget.SMOKE:
        if experiment.experiment.kind is ExperimentKind.SEGMENTER:
            train, swapped = smoke_segment_config(train, _input_side(kind, settings), _input_side(kind, budget_settings))
        else:
            train, swapped = smoke_train_config(train)
    return train, data, swapped


def _trained_fingerprint(experiment: ExperimentConfig, workspace: Workspace) -> tuple[str, str]:
    """The fingerprint of what a trained experiment learns and is evaluated on, and its patch set's fingerprint."""
    from mammocad.patches.store import patch_set_fingerprint
    from mammocad.train.config import RESUME_FREE

    train, data, _ = _trained_inputs(experiment, workspace)
    data_fingerprint = patch_set_fingerprint(data)
    learnt = {k: v for k, v in config_dict(train).items() if k not in RESUME_FREE}
    return fingerprint([dataclasses.asdict(experiment.experiment), learnt, data_fingerprint]), data_fingerprint


def _train(experiment: ExperimentConfig, workspace: Workspace, run_dir: Path,
           train: Callable[..., Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Train (or resume: ``resume`` is on) an experiment's model into ``run_dir``: (config, TrainResult, record)."""
    config, data, swapped = _trained_inputs(experiment, workspace)
    config = dataclasses.replace(config, data=data, out=run_dir, resume=True)
    result = train(config, progress=workspace.progress)
    return config, result, {"config": config_dict(config), "smoke_substitutions": swapped}


def _run_classifier(experiment: ExperimentConfig, workspace: Workspace, run_dir: Path) -> dict[str, Any]:
    from mammocad.evaluate.classifier import evaluate_classifier
    from mammocad.train import engine
    from mammocad.train.fastpath import resolve_workers

    config, result, record = _train(experiment, workspace, run_dir, engine.train_classifier)
    evaluate_classifier(result.best_checkpoint, config.data, run_dir / "evaluation",
                        workers=resolve_workers(config.workers, "cpu", 1), n_resamples=workspace.resamples)
    return record


def _run_trained_segmenter(experiment: ExperimentConfig, workspace: Workspace, run_dir: Path) -> dict[str, Any]:
    """Train the segmenter, then evaluate its best checkpoint on the prepared test images (FP control from val)."""
    from mammocad.evaluate.segmenter import evaluate_segmenter
    from mammocad.segment import training
    from mammocad.segment.config import EVALUATED_TYPES
    from mammocad.segment.predict import load_segmenter

    config, result, record = _train(experiment, workspace, run_dir, training.train_segmenter)
    segmenter = load_segmenter(result.best_checkpoint)
    evaluate_segmenter(lambda image, breast: segmenter.predict(image), workspace.prepared, "test",
                       run_dir / "evaluation", lesion_types=EVALUATED_TYPES[config.lesion_type],
                       n_resamples=workspace.resamples, seed=config.seed, training_metrics=result.run_dir / "metrics.csv",
                       name=f"{config.model} ({experiment.name})", progress=workspace.progress)
    return record


def _baseline_fingerprint(experiment: ExperimentConfig, workspace: Workspace) -> tuple[str, str]:
    from mammocad.utils.stage import stage_fingerprint

    data_fingerprint = stage_fingerprint(workspace.prepared, "prepare", "mammocad reproduce")
    return fingerprint([dataclasses.asdict(experiment.experiment), workspace.resamples, data_fingerprint]), \
        data_fingerprint


def _run_baseline(experiment: ExperimentConfig, workspace: Workspace, run_dir: Path) -> dict[str, Any]:
    from mammocad.evaluate.segmenter import evaluate_segmenter
    from mammocad.segment.baselines import baseline

    spec = experiment.experiment
    types = None if spec.lesion_types.strip().lower() == "all" else tuple(
        t.strip() for t in spec.lesion_types.split(",") if t.strip())
    evaluate_segmenter(baseline(spec.segmenter), workspace.prepared, "test", run_dir / "evaluation",
                       lesion_types=types, n_resamples=workspace.resamples, name=f"baseline {spec.segmenter}",
                       progress=workspace.progress)
    return {"config": {"segmenter": spec.segmenter, "lesion_types": spec.lesion_types,
                       "prepared": str(workspace.prepared)}}


Runner = tuple[Callable[[ExperimentConfig, Workspace], tuple[str, str]],
               Callable[[ExperimentConfig, Workspace, Path], dict[str, Any]]]
RUNNERS: dict[tuple[ExperimentKind, bool], Runner] = {
    (ExperimentKind.CLASSIFIER, True): (_trained_fingerprint, _run_classifier),
    (ExperimentKind.SEGMENTER, True): (_trained_fingerprint, _run_trained_segmenter),
    (ExperimentKind.SEGMENTER, False): (_baseline_fingerprint, _run_baseline),
}
"""Per (experiment kind, trains a model): (fingerprint and data fingerprint, run into a folder -> what to record)."""


def run_experiment(experiment: ExperimentConfig, workspace: Workspace) -> Outcome:
    """Run one experiment into ``OUT/runs/<name>`` unless it finished before with the same fingerprint."""
    fingerprint_of, run = RUNNERS[(experiment.experiment.kind, experiment.experiment.trains)]
    out = workspace.config.out
    run_dir = out / "runs" / experiment.name
    own, data_fingerprint = fingerprint_of(experiment, workspace)
    record = read_json(run_dir / EXPERIMENT_FILE)
    if record.get("fingerprint") == own and record.get("status") == "done":
        return Outcome(experiment.name, "skipped")
    if run_dir.exists() and record.get("fingerprint") not in (None, own):  # changed since: keep the old run aside
        (out / "superseded").mkdir(parents=True, exist_ok=True)
        os.replace(run_dir, out / "superseded" / f"{experiment.name}-{record['fingerprint']}")
    spec = experiment.experiment
    record = {"name": experiment.name, "table": spec.table, "row": spec.row, "kind": spec.kind.value,
              "description": spec.description, "config_file": str(experiment.path),
              "budget": workspace.config.budget.value, "fingerprint": own, "data_fingerprint": data_fingerprint,
              "software": software_versions(), "machine": machine_info(), "started_at": now_iso(),
              "status": "running"}
    write_json(run_dir / EXPERIMENT_FILE, record)
    started = time.perf_counter()
    record.update(run(experiment, workspace, run_dir))
    seconds = round(time.perf_counter() - started, 1)
    write_json(run_dir / EXPERIMENT_FILE, {**record, "status": "done", "finished_at": now_iso(), "seconds": seconds,
                                           "software": software_versions(), "machine": machine_info()})
    return Outcome(experiment.name, "done", seconds)


# ---- data --------------------------------------------------------------------------------------------
def prepare_workspace(config: ReproduceConfig, experiments: list[ExperimentConfig],
                      progress: bool = True) -> tuple[Workspace, list[Failure]]:
    """Prepare the dataset once and build every patch set the experiments need, once (both incremental)."""
    from mammocad.patches.build import build_patches
    from mammocad.preprocess.prepare import run_prepare

    smoke = config.budget is Budget.SMOKE
    prepared = config.out / "prepared"
    summary = run_prepare(PrepareJob(source=config.data, out=prepared, dataset=config.dataset, workers=config.workers,
                                     figures=2),
                          PreprocessConfig(size=SMOKE_PREPARED_SIZE if smoke else None), progress=progress)
    failures = list(summary.failures)
    workspace = Workspace(config, prepared, progress)
    for experiment in experiments:
        if not experiment.experiment.trains:
            continue
        kind = PatchKind(experiment.experiment.patches)
        settings = patch_settings(kind, experiment.configs[1], config.budget)
        key = _patch_key(kind, settings)
        if key not in workspace.patch_sets:
            folder = config.out / "patches" / key
            job = PatchJob(prepared=prepared, out=folder, kind=kind, seed=config.seed, workers=config.workers)
            failures += build_patches(job, settings, progress=progress).failures
            workspace.patch_sets[key] = folder
    return workspace, failures


def reproduce(config: ReproduceConfig, progress: bool = True,
              on_outcome: Callable[[Outcome], None] = lambda outcome: None) -> tuple[list[Outcome], list[Failure]]:
    """Run the chosen experiments (see the module docstring); returns their outcomes and the data failures.

    An experiment that fails (bad input: a DataError) is reported as failed and the others still
    run; ``on_outcome`` is called after each experiment. The report is written at the end when
    ``config.report`` is on and there is something to report.
    """
    from mammocad.report import build_report

    experiments = load_experiments(config.configs, config.names(config.tables), config.names(config.only))
    if not experiments:
        raise DataError(config.configs or shipped_configs(), f"no experiment config for tables {config.tables or 'all'}")
    workspace, failures = prepare_workspace(config, experiments, progress)
    outcomes = []
    if not config.data_only:
        for experiment in experiments:
            try:
                outcome = run_experiment(experiment, workspace)
            except DataError as err:
                outcome = Outcome(experiment.name, "failed", problem=str(err))
            outcomes.append(outcome)
            on_outcome(outcome)
    if config.report:
        build_report(config.out, config.out / "report.html", title="mammocad: the paper reproduced")
    return outcomes, failures

