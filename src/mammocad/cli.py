"""The ``mammocad`` command line: thin wrappers that parse options and call the library.

Every command with a config accepts ``--config FILE`` (YAML) and one flag per config key;
flags given on the command line win over the file. Research software, not a medical device.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

from mammocad import DISCLAIMER, __version__
from mammocad.utils.config import build_configs, click_options, read_yaml
from mammocad.utils.config import workers_callback
from mammocad.utils.errors import INTERRUPTED, DataError
from mammocad.utils.quiet import third_party_warnings_hidden

if TYPE_CHECKING:
    from mammocad.utils.parallel import Failure


class _Refused(click.ClickException):
    """Bad input: nothing was done (exit 2, as a usage error)."""

    exit_code = 2


def _clean_errors(fn: Callable) -> Callable:
    """Bad input (a DataError) ends the command with its one-line message and exit code 1, no traceback.

    So does an OSError about a file (a full disk, a missing permission): its file and reason.
    """

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as err:
            raise _Refused(str(err)) from None
        except OSError as err:  # the machine's, not the input's: a full disk, a permission, ...
            if err.filename is None:
                raise
            raise click.ClickException(f"{err.filename}: {err.strerror or err}") from None

    return wrapper


def _configs(classes: tuple[type, ...], config_file: Path | None, flags: dict) -> tuple:
    """Build the command's configs; an impossible value is a usage error, not a traceback."""
    try:
        return build_configs(classes, config_file, flags)
    except (TypeError, ValueError) as err:
        raise click.UsageError(str(err)) from None


EXIT_ITEMS_FAILED = 1  # a batch command finished the rest, but some items failed (listed, and in failures.csv)
# Click's own codes: 2 for a usage error or refused input (nothing done); mammocad uses 130 for Ctrl-C.


def _report_failures(failures: list[Failure], warnings: list[Failure] = ()) -> None:
    if warnings:
        click.secho(f"{len(warnings)} warning(s) (also in warnings.csv):", fg="yellow", err=True)
        for w in warnings:
            click.echo(f"  - {w}", err=True)
    if not failures:
        return
    click.secho(f"{len(failures)} item(s) failed and were skipped:", fg="yellow", err=True)
    for f in failures:
        click.echo(f"  - {f}", err=True)


def _finish_batch(summary_line: str, done: int, failures: list[Failure], warnings: list[Failure] = ()) -> None:
    """Print a batch command's summary and report; exit 1 when any item failed (the rest is written)."""
    click.echo(summary_line)
    _report_failures(failures, warnings)
    if done == 0 and failures:
        click.secho("nothing was written: every item failed (see the list above)", fg="red", err=True)
    if failures:
        sys.exit(EXIT_ITEMS_FAILED)




class Interrupted(click.ClickException):
    """Ctrl-C: one line on stderr and exit code 130, no traceback (click's own says "Aborted!", exit 1)."""

    exit_code = INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted")

    def show(self, file=None) -> None:
        click.echo("\nmammocad: interrupted", err=True)


class _App(click.Group):
    """The top-level group: a KeyboardInterrupt in any command becomes :class:`Interrupted`."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


@click.group(cls=_App, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mammocad")
def app() -> None:
    """mammocad: find and classify breast abnormalities in mammograms (CBIS-DDSM, mini-MIAS).

    Research software, not a medical device: not for clinical decisions.

    \b
    Typical run:
      mammocad synth data/synth --patients 60     # CBIS-DDSM-format synthetic data
      mammocad stats data/synth --split-scheme tfds
      mammocad prepare --source data/synth --out data/prepared
      mammocad patches --prepared data/prepared --out data/large --kind large
      mammocad train-classifier --data data/large --task benign_malignant --weights none --out runs/bm
      mammocad evaluate-classifier --checkpoint runs/bm/checkpoints/best.ckpt --data data/large
      mammocad demo                               # all of the above, end to end
    """


# ---- synth --------------------------------------------------------------------------------
@app.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--patients", default=24, show_default=True, help="number of patients")
@click.option("--seed", default=0, show_default=True, help="random seed (same seed, same bytes)")
@click.option("--rows", default=1024, show_default=True, help="full mammogram height in pixels")
@click.option("--cols", default=768, show_default=True, help="full mammogram width in pixels")
@click.option("--test-fraction", default=0.25, show_default=True, help="fraction of patients in the official test CSVs")
@click.option("--workers", default=2, show_default=True, callback=workers_callback, help="worker processes")
@_clean_errors
def synth(out: Path, patients: int, seed: int, rows: int, cols: int, test_fraction: float, workers: int) -> None:
    """Write a synthetic dataset in CBIS-DDSM format to OUT.

    Four official-format CSVs (OUT/csv) and DICOM files in the NBIA download layout
    (OUT/CBIS-DDSM/...): full mammograms, ROI masks and lesion crops, deterministic from
    --seed. Example: mammocad synth data/synth --patients 24
    """
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm

    try:
        config = SynthConfig(patients=patients, seed=seed, image_rows=rows, image_cols=cols,
                             test_fraction=test_fraction, workers=workers)
    except ValueError as err:  # the message names SynthConfig fields: say which flags they are
        flags = {"patients": "--patients", "seed": "--seed", "image_rows": "--rows", "image_cols": "--cols",
                 "test_fraction": "--test-fraction", "workers": "--workers"}
        raise click.UsageError(re.sub(r"\b[a-z_]+\b", lambda m: flags.get(m[0], m[0]), str(err))) from None
    summary = generate_cbis_ddsm(out, config)
    click.echo(f"wrote {summary.n_patients} patients, {summary.n_images} mammograms, "
               f"{summary.n_abnormalities} abnormalities to {out}")


# ---- stats --------------------------------------------------------------------------------
@app.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", default="auto", show_default=True, help="auto, cbis-ddsm or mini-mias")
@click.option("--split-scheme", type=click.Choice(["official", "tfds"]), default="tfds", show_default=True,
              help="patient-level split to count by")
@click.option("--seed", default=0, show_default=True, help="seed of the official scheme's train/val cut")
@_clean_errors
def stats(source: Path, dataset: str, split_scheme: str, seed: int) -> None:
    """Print the paper's Table 9 (patients, mammograms, abnormalities, % malignant per split).

    SOURCE is a dataset folder (CBIS-DDSM CSVs are enough, images need not be present), a
    folder written by `mammocad prepare` (its manifest's splits are used), or a patch set
    written by `mammocad patches`, for which it prints the paper's Tables 11/12 (patches per
    class and split). Example: mammocad stats ../shared/data/cbis-ddsm --split-scheme tfds
    """
    from mammocad.data.registry import load_dataset
    from mammocad.data.splits import image_split
    from mammocad.data.stats import split_statistics
    from mammocad.patches.stats import patch_counts
    from mammocad.patches.store import MANIFEST, read_manifest

    if (source / MANIFEST).is_file():
        manifest = read_manifest(source)
        kinds = ", ".join(sorted(manifest["kind"].unique()))
        click.echo(f"Tables 11/12 for patch set {source} ({kinds}): patches per class and split")
        click.echo(patch_counts(manifest).to_string())
        return
    if (source / "images.csv").is_file():
        click.echo(_prepared_table9(source))
        return
    table = load_dataset(source, dataset, resolve_files=False, progress=False)
    click.echo(f"Table 9 for {source} ({split_scheme} split):")
    click.echo(split_statistics(table, image_split(table, split_scheme, seed=seed)).to_string(index=False))


def _prepared_table9(prepared: Path) -> str:
    """Table 9 of a prepared folder, for the split recorded in it (the one patches and training use)."""
    from mammocad.data.splits import read_split_file
    from mammocad.data.stats import split_statistics
    from mammocad.preprocess.prepare import load_prepared

    table, images, _ = load_prepared(prepared)
    split = read_split_file(prepared) or {"scheme": "?", "seed": "?"}
    table9 = split_statistics(table, dict(zip(images["image_id"], images["split"]))).to_string(index=False)
    return f"Table 9 for prepared folder {prepared} ({split['scheme']} split, seed {split['seed']}):\n{table9}"


# ---- prepare ------------------------------------------------------------------------------
def _prepare_classes():
    from mammocad.preprocess.config import PrepareJob, PreprocessConfig

    return PrepareJob, PreprocessConfig


@app.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@click_options(*_prepare_classes())
@_clean_errors
def prepare(config_file: Path | None, **flags) -> None:
    """Preprocess every mammogram and lesion mask of a dataset (paper appendix 9.1).

    Normalisation, breast mask (threshold + morphology) removing labels and film edges,
    crop of the border rows/cols without breast, orientation flip, CLAHE, pad to square,
    optional resize; masks follow the image. Runs
    in worker processes, skips images already prepared with the same settings, writes
    images/, masks/, breast/, images.csv, abnormalities.csv, failures.csv and a few
    before/after figures. Example:
    mammocad prepare --source data/synth --out data/prepared --size 512
    """
    from mammocad.preprocess.prepare import run_prepare

    job, config = _configs(_prepare_classes(), config_file, flags)
    started = time.perf_counter()
    summary = run_prepare(job, config)
    if summary.new_patients:
        click.echo(f"{summary.new_patients} new patient(s) added to the recorded split ({summary.out}/splits.json)")
    _finish_batch(f"prepared {summary.prepared}, already done {summary.skipped}, failed {len(summary.failures)} "
                  f"in {time.perf_counter() - started:.1f}s -> {summary.out}",
                  summary.prepared + summary.skipped, summary.failures, summary.warnings)


@app.command()
@click.argument("prepared", type=click.Path(path_type=Path))
@click.option("--split-scheme", type=click.Choice(["official", "tfds"]), required=True, help="patient-level split")
@click.option("--seed", default=0, show_default=True, help="seed of the official scheme's train/val cut")
@_clean_errors
def split(prepared: Path, split_scheme: str, seed: int) -> None:
    """Re-decide the patient-level split of a prepared folder (the explicit way to change it).

    `prepare` decides the split once (PREPARED/splits.json); this rewrites it and the split
    columns of the manifests. Patch sets built from PREPARED are then out of date: re-run
    `mammocad patches` on them (only their manifests change, tile sampling excepted).
    Example: mammocad split data/prepared --split-scheme tfds
    """
    from mammocad.preprocess.prepare import resplit

    counts = resplit(prepared, split_scheme, seed)
    click.echo(f"{prepared}: split {split_scheme} (seed {seed}), patients " +
               ", ".join(f"{name} {counts.get(name, 0)}" for name in ("train", "val", "test")))


# ---- patches ------------------------------------------------------------------------------
def _patch_classes() -> tuple[type, ...]:
    from mammocad.patches.config import PatchJob, PatchKind, kind_config_class

    return (PatchJob, *(kind_config_class(kind) for kind in PatchKind))


@app.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@click_options(*_patch_classes())
@_clean_errors
def patches(config_file: Path | None, **flags) -> None:
    """Extract a patch set from a prepared folder (paper sections 3-4, Tables 11/12).

    \b
    --kind small      10 abnormal patches per lesion + 10 background per mammogram, 224x224
                      on the image resized to 1152x896 (TFDS CBIS-DDSM "patches" rules)
    --kind large      one patch per lesion: ROI box + half its larger side of tissue on
                      every side, shifted inside the image, resized to --output-size
    --kind seg        256x256 tiles, stride 128, sampled 50% lesion / 25% normal / 25% blank
                      per sub-dataset (e.g. mass-train), with instance masks and boxes
    --kind resize512  whole image resized to --size with instance masks and boxes

    Only the options of the chosen kind apply (others are refused). Patients keep their
    split; runs are parallel, incremental and deterministic from --seed. Writes images/,
    masks/, patches.csv (manifest), failures.csv, patches.yaml, figures/examples.png.
    Example: mammocad patches --prepared data/prepared --out data/large --kind large
    """
    from mammocad.patches.build import build_patches
    from mammocad.patches.config import PatchJob, PatchKind, kind_config_class

    kind = PatchKind(flags.get("kind") or read_yaml(config_file).get("kind", PatchJob.kind.value))
    classes = (PatchJob, kind_config_class(kind))
    own = {f.name for cls in classes for f in dataclasses.fields(cls)}
    foreign = sorted(name for name, value in flags.items() if value is not None and name not in own)
    if foreign:
        names = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise click.UsageError(f"{names} do(es) not apply to --kind {kind.value}")
    job, config = _configs(classes, config_file, {k: v for k, v in flags.items() if k in own})
    started = time.perf_counter()
    summary = build_patches(job, config)
    _finish_batch(f"{summary.patches} {kind.value} patches ({summary.written} images extracted, "
                  f"{summary.skipped} already done, {len(summary.failures)} failed) "
                  f"in {time.perf_counter() - started:.1f}s -> {summary.out}",
                  summary.written + summary.skipped, summary.failures, summary.warnings)


# ---- classifiers --------------------------------------------------------------------------
def _train_classes() -> tuple[type, ...]:
    from mammocad.train.config import TrainConfig

    return (TrainConfig,)


@app.command("train-classifier")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="evaluate the best checkpoint on the test split afterwards (into OUT/evaluation)")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=1),
              help="bootstrap resamples for the evaluation's 95% CIs")
@click_options(*_train_classes())
@_clean_errors
@third_party_warnings_hidden
def train_classifier_command(config_file: Path | None, evaluate: bool, bootstrap: int, **flags) -> None:
    """Train a patch classifier with staged fine-tuning (paper Tables 3-8).

    \b
    Tasks: five_class, mass_benign_malignant, calc_benign_malignant, benign_malignant,
    mass_vs_calc, any_benign_malignant, lesion_vs_background. Models: mobilenet_v2, inception_v3 (299 px), alexnet,
    googlenet, xception, medical_cnn. --phases "head:3:1e-3,last_third:3:1e-4" trains the head on
    a frozen backbone, then unfreezes the last third of the convolutions, and so on
    (last_two_thirds, all). Checkpoints (best by val AUC, last), metrics.csv, TensorBoard logs
    and config.yaml go to --out; --resume continues an interrupted run. Multi-GPU:
    --devices 4 --strategy ddp (multi-node: --num-nodes N under torchrun/SLURM).
    Example: mammocad train-classifier --data data/patches-large --task mass_benign_malignant
    --model mobilenet_v2 --weights imagenet --out runs/mass
    """
    from mammocad.evaluate.classifier import evaluate_classifier
    from mammocad.train.engine import train_classifier
    from mammocad.train.fastpath import resolve_workers

    (config,) = _configs(_train_classes(), config_file, flags)
    result = train_classifier(config)  # unusable --weights: a WeightsError, i.e. a DataError
    click.echo(f"trained {result.epochs_run} epoch(s); best val AUC {result.best_val_auc:.3f} -> "
               f"{result.best_checkpoint}")
    if evaluate:
        out = result.run_dir / "evaluation"
        _print_evaluation(evaluate_classifier(result.best_checkpoint, config.data, out,
                                              workers=resolve_workers(config.workers, "cpu", 1),
                                              n_resamples=bootstrap), out)


def _print_evaluation(result, out: Path) -> None:
    metrics = result.metrics

    def with_ci(name: str) -> str:
        low, high = metrics[f"{name}_ci"]
        return f"{metrics[name]:.3f} [{low:.3f}, {high:.3f}]"

    click.echo(f"{result.task}: ACC {with_ci('accuracy')}  AUC {with_ci('auc')} "
               f"(95% bootstrap CI; threshold from {result.threshold_source})")
    click.echo("confusion matrix (rows: true, columns: predicted):")
    click.echo(result.confusion.to_string())
    click.echo(f"-> {out} (predictions CSV, metrics.json, confusion.csv, roc.png). {DISCLAIMER}")


@app.command("evaluate-classifier")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="a .ckpt written by train-classifier")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="patch set to evaluate on (may differ from the training one)")
@click.option("--split", default="test", show_default=True, help="split to evaluate")
@click.option("--val-split", default="val", show_default=True,
              help="split that fixes the binary threshold (Youden); 'none' for 0.5")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="output folder [default: evaluation-<split> next to the checkpoint's run]")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=0, show_default=True, callback=workers_callback,
              help="data loader worker processes")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=1),
              help="bootstrap resamples for the 95% CIs")
@click.option("--seed", default=0, show_default=True, help="bootstrap seed")
@_clean_errors
@third_party_warnings_hidden
def evaluate_classifier_command(checkpoint: Path, data: Path, split: str, val_split: str, out: Path | None,
                                batch_size: int, workers: int, bootstrap: int, seed: int) -> None:
    """Evaluate a trained classifier: ACC, AUC with 95% CIs, confusion matrix, ROC, predictions CSV.

    Example (train on CBIS-DDSM patches, test on mini-MIAS patches):
    mammocad evaluate-classifier --checkpoint runs/mass/checkpoints/best.ckpt --data data/mias-large
    """
    from mammocad.evaluate.classifier import evaluate_classifier

    out = out or checkpoint.resolve().parent.parent / f"evaluation-{split}"
    result = evaluate_classifier(checkpoint, data, out, split=split,
                                 val_split=None if val_split.lower() == "none" else val_split,
                                 batch_size=batch_size, workers=workers, n_resamples=bootstrap, seed=seed)
    _print_evaluation(result, out)


# ---- demo ---------------------------------------------------------------------------------
@app.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-output"), show_default=True,
              help="folder for everything the demo writes")
@click.option("--patients", default=150, show_default=True,
              help="synthetic patients (at least 40, so that validation and test hold both classes)")
@click.option("--workers", default=2, show_default=True, callback=workers_callback, help="worker processes")
@click.option("--seed", default=0, show_default=True, help="random seed")
@_clean_errors
@third_party_warnings_hidden
def demo(out: Path, patients: int, workers: int, seed: int) -> None:
    """Run every stage end to end on a small synthetic CBIS-DDSM (CPU, a few minutes).

    Generates the data, prepares full images and masks, prints Table 9 for the split every
    later step uses, extracts every patch kind and prints Tables 11/12, trains a small benign-vs-malignant classifier on
    the large-context patches and evaluates it on the test split. Re-running reuses the
    data and patches (a new classifier run replaces the old one).
    """
    import shutil

    from mammocad.demo import MIN_PATIENTS, demo_train_config, split_class_problem

    if patients < MIN_PATIENTS:
        raise click.UsageError(f"--patients must be at least {MIN_PATIENTS}: fewer can leave the validation or "
                               f"test split without both benign and malignant lesions")
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm
    from mammocad.evaluate.classifier import evaluate_classifier
    from mammocad.patches.build import build_patches
    from mammocad.patches.config import PatchJob, PatchKind, kind_config_class
    from mammocad.patches.stats import patch_counts
    from mammocad.patches.store import read_manifest
    from mammocad.preprocess.config import PrepareJob, PreprocessConfig
    from mammocad.preprocess.prepare import run_prepare
    from mammocad.train.engine import train_classifier

    click.secho(DISCLAIMER, fg="yellow")
    synth_dir, prepared_dir, patches_dir, run_dir = out / "synthetic", out / "prepared", out / "patches", out / "run"
    click.echo(f"[1/5] synthetic CBIS-DDSM ({patients} patients) -> {synth_dir}")
    if not (synth_dir / "csv").is_dir():
        generate_cbis_ddsm(synth_dir, SynthConfig(patients=patients, seed=seed, workers=workers))
    click.echo(f"[2/5] preprocessing -> {prepared_dir}")
    summary = run_prepare(PrepareJob(source=synth_dir, out=prepared_dir, workers=workers), PreprocessConfig())
    failures = list(summary.failures)
    click.echo(_prepared_table9(prepared_dir))
    click.echo(f"[3/5] patch sets -> {patches_dir}/{{small,large,seg,resize512}}")
    for kind in PatchKind:
        job = PatchJob(prepared=prepared_dir, out=patches_dir / kind.value, kind=kind, workers=workers, seed=seed)
        failures += build_patches(job, kind_config_class(kind)()).failures
    click.echo("Table 11/12 (small-context patches per class and split):")
    click.echo(patch_counts(read_manifest(patches_dir / "small")).to_string())
    click.echo(f"[4/5] benign vs malignant classifier on large-context patches -> {run_dir}")
    problem = split_class_problem(read_manifest(patches_dir / "large"))
    if problem:  # rare above MIN_PATIENTS, but then AUC is undefined: say so instead of a traceback
        raise click.ClickException(f"{patches_dir / 'large'}: {problem} (seed {seed}, {patients} patients); "
                                   f"use more --patients or another --seed")
    # A small CNN from scratch (mammocad.demo.demo_train_config): minutes on a CPU, no download.
    # The paper's set-up is `mammocad train-classifier --model mobilenet_v2 --weights imagenet`.
    shutil.rmtree(run_dir, ignore_errors=True)
    config = demo_train_config(patches_dir / "large", run_dir, seed=seed)
    result = train_classifier(config)  # one progress bar line per epoch
    evaluation = evaluate_classifier(result.best_checkpoint, config.data, run_dir / "evaluation")
    click.echo("[5/5] evaluation on the test split:")
    _print_evaluation(evaluation, run_dir / "evaluation")
    _report_failures(failures)
    click.echo("\nOutputs:")
    click.echo(f"  synthetic dataset   {synth_dir}/csv, {synth_dir}/CBIS-DDSM")
    click.echo(f"  prepared images     {prepared_dir}/images, masks in {prepared_dir}/masks")
    click.echo(f"  manifests           {prepared_dir}/images.csv, {prepared_dir}/abnormalities.csv")
    click.echo(f"  before/after plots  {prepared_dir}/figures ({len(summary.figures)} files)")
    click.echo(f"  patch sets          {patches_dir}/<kind>/patches.csv, example grid in <kind>/figures/examples.png")
    click.echo(f"  classifier run      {run_dir}/checkpoints, metrics.csv, evaluation/ (ROC, confusion, predictions)")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    app()
