"""Train a patch classifier on a patch set with Lightning: staged fine-tuning, checkpoints, resume, DDP.

``train_classifier(TrainConfig(...))`` trains ``config.model`` on ``config.task`` with the
train split of the patch set ``config.data``, validates on its val split after every epoch and
writes the run folder ``config.out``::

    config.yaml              the TrainConfig (mammocad.utils.config YAML; `--config` reads it back)
    run.json                 what this invocation resolved: precision, channels_last, device,
                             loader workers, CPU fast-path kernels and allocator, class
                             weights, patch counts, data fingerprint, resumed_from; software
                             versions, machine, started_at, and once training ends
                             finished_at and train_seconds (summed over the invocations that finished)
    metrics.csv              one row per epoch: epoch, phase, lr, train_loss, train_acc,
                             val_loss, val_acc, val_auc
    checkpoints/best.ckpt    the epoch with the highest val_auc (Lightning checkpoint)
    checkpoints/last.ckpt    the latest epoch (what a resume continues from)
    tensorboard/             TensorBoard event files of the same metrics (`tensorboard --logdir OUT`)

Read checkpoints with ``mammocad.train.load_classifier`` (no Lightning knowledge needed), or
``mammocad.train.load_predictor`` for either model family.

Classical models (registry entries that ``is_classical``: hand-crafted features -> scikit-learn)
are fitted by ``mammocad.train.classical`` instead of Lightning, into the same run-folder layout
(one row in metrics.csv; ``best.ckpt`` = ``last.ckpt``). The phases, precision and device
settings do not apply to them; ``resume`` on a finished classical run returns it as it is.

Resume: after an interruption, run the same command again with ``resume`` on: training
continues from ``checkpoints/last.ckpt`` at the next epoch, in the same run folder (same
metrics.csv, same best.ckpt), with the optimizer state, the fine-tuning phase, the
early-stopping and best-checkpoint state restored. Each epoch's shuffling and random draws
depend only on (seed, epoch, ...) (see ``mammocad.train.data``), so on the same machine with
the same settings the resumed run ends with the same weights and metrics as an uninterrupted
one, whatever the number of loader workers. ``resume`` on a folder without last.ckpt starts a
new run (so a preemptible job can always pass it); without ``resume`` a folder that already
holds checkpoints is refused. Settings that define the run (model, task, phases, seed, ...)
must not change on resume; operational ones (``RESUME_FREE``) may.

Multi-GPU / multi-node (Lightning's DDP; ``batch_size`` is per process, so the global batch is
``batch_size * devices * num_nodes``; each process trains on its own shard of every epoch)::

    # one machine, 4 GPUs (Lightning starts the 3 extra processes by re-running the command)
    mammocad train-classifier --config run.yaml --devices 4 --strategy ddp
    # 2 nodes x 4 GPUs with torchrun (run on every node, same rendezvous):
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        $(which mammocad) train-classifier --config run.yaml --devices 4 --num-nodes 2 --strategy ddp
    # SLURM: `#SBATCH --nodes=2 --ntasks-per-node=4 --gpus-per-node=4`, then
    srun mammocad train-classifier --config run.yaml --devices 4 --num-nodes 2 --strategy ddp

Lightning reads the ranks from torchrun's / SLURM's environment. On CPUs (testing), ``--accelerator
cpu --devices 2 --strategy ddp_spawn`` runs 2 processes over gloo. Fine-tuning phases stay
correct under DDP: at a phase switch the model is re-wrapped so the newly unfrozen layers'
gradients are synchronised too.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import lightning as L
import pandas as pd
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from mammocad.models import get_spec
from mammocad.patches.store import patch_set_fingerprint
from mammocad.train.allocator import keep_freed_memory
from mammocad.train.callbacks import EpochCsvLogger, LastPhaseEarlyStopping
from mammocad.train.data import EpochDataModule, EpochSeed, PatchDataModule, balanced_class_weights, class_counts
from mammocad.train.fastpath import (
    cpu_supports_bf16,
    device_type,
    resolve_channels_last,
    resolve_precision,
    resolve_workers,
    uses_strided_depthwise_kernel,
)
from mammocad.train.config import RESUME_FREE, TrainConfig
from mammocad.train.module import ClassifierModule, PhasedModule
from mammocad.train.tasks import get_task
from mammocad.utils.atomic import check_output_folder, read_json_object, write_json, write_text
from mammocad.utils.config import config_dict, dump_yaml
from mammocad.utils.errors import DataError
from mammocad.utils.provenance import machine_info, now_iso, software_versions

CHECKPOINTS = "checkpoints"
BEST, LAST = "best", "last"  # checkpoint file stems
METRICS = "metrics.csv"
@dataclass(frozen=True)
class TrainResult:
    """Where a run's files are and how it went (read from its metrics.csv, so the same on every launcher).

    ``epochs_run``: epochs completed by the run so far, resumed invocations included.
    ``monitor``: the validation metric that picks ``best_checkpoint`` (``val_auc`` for classifiers,
    ``val_dice`` for segmenters); ``best_value``: its highest value in metrics.csv.
    """

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_value: float
    epochs_run: int
    monitor: str = "val_auc"

    @property
    def best_val_auc(self) -> float:
        """A classifier run's ``best_value``."""
        if self.monitor != "val_auc":
            raise AttributeError(f"this run is selected by {self.monitor}, not val_auc")
        return self.best_value


def check_run_folder(config: Any, data_fingerprint: str, resume_free: frozenset[str] = RESUME_FREE) -> Path | None:
    """The checkpoint to resume from (None: a new run); DataError when the folder cannot be used.

    ``config``: a run config with ``out``, ``data`` and ``resume``; ``resume_free``: its fields
    that may change on resume.
    """
    out = check_output_folder(config.out)
    last = out / CHECKPOINTS / f"{LAST}.ckpt"
    if not config.resume:
        if any((out / CHECKPOINTS).glob("*.ckpt")):
            raise DataError(out, f"already holds a training run ({CHECKPOINTS}/*.ckpt); turn resume on to continue "
                                 f"it, or choose another out folder")
        return None
    if not last.is_file():
        return None
    previous = read_json_object(out / "run.json").get("data_fingerprint")
    if previous is not None and previous != data_fingerprint:
        raise DataError(config.data, f"the patch set changed since the run in {out} started; resuming would mix "
                                     f"two datasets: train into a new out folder instead")
    saved_path = out / "config.yaml"
    saved = yaml.safe_load(saved_path.read_text()) if saved_path.is_file() else {}
    current = config_dict(config)
    changed = [f"{key} (run: {saved.get(key)!r}, now: {value!r})" for key, value in current.items()
               if key not in resume_free and key in saved and saved[key] != value]
    if changed:
        raise DataError(saved_path, f"cannot resume with different settings: {'; '.join(changed)}")
    return last


@rank_zero_only
def _write_run_files(out: Path, config: Any, run: dict) -> None:
    write_text(out / "config.yaml", dump_yaml(config))
    write_json(out / "run.json", run)


def _result(out: Path, monitor: str) -> TrainResult:
    metrics = pd.read_csv(out / METRICS)
    return TrainResult(run_dir=out, best_checkpoint=out / CHECKPOINTS / f"{BEST}.ckpt",
                       last_checkpoint=out / CHECKPOINTS / f"{LAST}.ckpt", monitor=monitor,
                       best_value=float(metrics[monitor].max()), epochs_run=int(metrics["epoch"].max()) + 1)


def _trainer(config: Any, out: Path, module: PhasedModule, device: str, precision: str, *,
             resumed: bool, callbacks: Sequence[Callback], progress: bool, monitor_name: str) -> L.Trainer:
    """The Lightning Trainer of a run: checkpoints, seeding, early stopping, CSV + TensorBoard logs."""
    monitor = {"monitor": monitor_name, "mode": "max"}
    # Two checkpoint callbacks: Lightning's save_last only writes last.ckpt in epochs that improve
    # the monitored metric, and resume needs every epoch's.
    run_callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=out / CHECKPOINTS, filename=name, save_top_k=1, enable_version_counter=False,
                        **(monitor if name == BEST else {}))
        for name in (BEST, LAST)]
    run_callbacks.append(EpochSeed(config.seed))
    if config.early_stopping_patience:
        run_callbacks.append(LastPhaseEarlyStopping(patience=config.early_stopping_patience, **monitor))
    return L.Trainer(
        accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes, strategy=config.strategy,
        precision=precision, benchmark=device == "cuda", max_epochs=module.schedule.total_epochs,
        callbacks=[*run_callbacks, *callbacks],
        logger=[EpochCsvLogger(out / METRICS, keep_existing=resumed),
                TensorBoardLogger(out, name="tensorboard", version="", default_hp_metric=False)],
        use_distributed_sampler=False,  # the data module shards (see mammocad.train.data)
        limit_train_batches=config.limit_train_batches, limit_val_batches=config.limit_val_batches,
        log_every_n_steps=1, enable_progress_bar=progress, enable_model_summary=progress, default_root_dir=out,
    )


# Loggers of Lightning's rank_zero_info lines: "GPU available: ...", "TPU available: ...", the
# "💡 Tip: ... litlogger / litmodels" adverts, "`Trainer.fit` stopped: ..." (which, printed
# while the progress bar's last line is open, makes that line appear twice), "Detected
# KeyboardInterrupt, ...". Lightning's warnings go through the warnings module, not these.
LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


@contextlib.contextmanager
def _lightning_info_off() -> Iterator[None]:
    """Lightning's informational lines off for the duration (the model summary and progress bar stay)."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_INFO_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _fit(trainer: L.Trainer, module: PhasedModule, data: EpochDataModule, ckpt_path: Path | None) -> None:
    """``trainer.fit``, with a Ctrl-C left a KeyboardInterrupt.

    Lightning catches the KeyboardInterrupt, shuts down gracefully (the last finished epoch's
    checkpoints stay: ``resume`` continues from them), ignores SIGINT from then on and calls
    ``sys.exit(1)``. Here that becomes a KeyboardInterrupt again, so the caller (the CLI: one line,
    exit code 130) can tell it from other exits, and the SIGINT handler is put back.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if in_main_thread else None
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def train_classifier(config: TrainConfig, *, progress: bool = True, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train (or resume) the run ``config`` describes; see the module docstring for the run folder.

    ``progress``: Lightning's progress bar and model summary. ``callbacks``: extra Lightning
    callbacks (e.g. monitoring). Errors: ``DataError`` (one line, naming the folder) for a patch
    set without the task's train or val patches, a used run folder or a changed resumed config;
    ``ValueError`` for bad settings; ``mammocad.models.WeightsUnavailable`` unchanged when the
    ImageNet weights are neither cached nor downloadable; ``KeyboardInterrupt`` after a Ctrl-C
    (the checkpoints of the epochs finished so far stay, for ``resume``).
    """
    data_fingerprint = patch_set_fingerprint(config.data)  # refuses a patch set older than its prepared folder
    resume_from = check_run_folder(config, data_fingerprint)
    if get_spec(config.model).is_classical:
        out = Path(config.out)
        if resume_from is None:  # a classical fit is one step: a run with checkpoints is finished
            from mammocad.train.classical import fit_classical

            fitted = fit_classical(config, progress=progress)
            _write_run_files(out, config, {**fitted.run, "resumed_from": None, "data_fingerprint": data_fingerprint})
            fitted.save(out / CHECKPOINTS, out / METRICS)
        return _result(out, "val_auc")
    task = get_task(config.task)
    input_size = config.model_input_size
    device = device_type(config.accelerator)
    workers = resolve_workers(config.workers, device, config.devices)
    data = PatchDataModule(config.data, task, input_size=input_size, augment=config.augment,
                           intensity=config.intensity_jitter, batch_size=config.batch_size, workers=workers,
                           seed=config.seed)
    precision = resolve_precision(config.precision, device)
    channels_last = resolve_channels_last(config.channels_last, device, precision)
    weights = (balanced_class_weights(class_counts(data.train_set, task.num_classes))
               if config.class_weights else None)

    L.seed_everything(config.seed, workers=True, verbose=False)
    module = ClassifierModule(model=config.model, task=config.task, input_size=input_size, phases=config.phases,
                              weights=config.weights, dropout=config.dropout, input_norm=config.input_norm,
                              weight_decay=config.weight_decay, class_weights=weights, channels_last=channels_last,
                              fast_strided_depthwise=uses_strided_depthwise_kernel(device, precision),
                              frozen_batchnorm=config.frozen_batchnorm, run_config=config_dict(config))
    return fit_run(config, module, data, device=device, precision=precision, resume_from=resume_from,
                   data_fingerprint=data_fingerprint, monitor="val_auc", callbacks=callbacks, progress=progress,
                   run_info={"channels_last": channels_last, "workers": workers,
                             "strided_depthwise_layers": module.strided_depthwise_layers,
                             "input_size": input_size, "class_weights": weights,
                             "train_patches": len(data.train_set), "val_patches": len(data.val_set)})


def fit_run(config: Any, module: PhasedModule, data: EpochDataModule, *, device: str, precision: str,
            resume_from: Path | None, data_fingerprint: str, monitor: str, run_info: dict,
            callbacks: Sequence[Callback] = (), progress: bool = True) -> TrainResult:
    """Fit ``module`` on ``data`` into the run folder ``config.out``; the part every kind of run shares.

    ``config``: the run's config (``out``, ``seed``, the Lightning settings ``accelerator``,
    ``devices``, ``num_nodes``, ``strategy``, ``early_stopping_patience``, ``limit_*_batches``),
    written to config.yaml; ``monitor``: the logged validation metric (higher is better) that
    picks best.ckpt and drives early stopping; ``run_info``: the caller's entries of run.json,
    beside the device, precision, allocator, resume and library ones added here.
    """
    out = Path(config.out)
    previous_seconds = read_json_object(out / "run.json").get("train_seconds", 0.0) if resume_from else 0.0
    # On the CPU a step frees and re-allocates the same activations; keeping that memory in the
    # process saves re-mapping it every step (mammocad.train.allocator).
    with keep_freed_memory(enabled=device == "cpu") as keeps_freed_memory, _lightning_info_off():
        try:  # before the first file is written: settings this machine cannot run leave no run folder
            trainer = _trainer(config, out, module, device, precision, resumed=resume_from is not None,
                               callbacks=callbacks, progress=progress, monitor_name=monitor)
        except (MisconfigurationException, ValueError) as err:  # e.g. --accelerator gpu without a GPU
            raise DataError(None, f"cannot train with accelerator {config.accelerator!r}, devices {config.devices}, "
                                  f"strategy {config.strategy!r} here: {err}") from None
        _write_run_files(out, config, {
            "precision": precision, "device": device, "cpu_bf16": cpu_supports_bf16(), **run_info,
            "cpu_allocator_keeps_freed_memory": keeps_freed_memory,
            "accelerator": config.accelerator, "devices": config.devices, "num_nodes": config.num_nodes,
            "strategy": config.strategy,
            "resumed_from": None if resume_from is None else str(resume_from),
            "data_fingerprint": data_fingerprint,
            "software": software_versions(), "machine": machine_info(), "started_at": now_iso(),
        })
        started = time.perf_counter()
        _fit(trainer, module, data, resume_from)
    _record_finish(out, time.perf_counter() - started, previous_seconds)
    return _result(out, monitor)


@rank_zero_only
def _record_finish(out: Path, seconds: float, previous_seconds: float) -> None:
    """Add finished_at and train_seconds (this invocation plus the ones it resumed) to run.json."""
    run = read_json_object(out / "run.json")
    write_json(out / "run.json", {**run, "finished_at": now_iso(), "train_seconds": round(previous_seconds + seconds, 1)})
