"""Classifier commands: ``train-classifier`` and ``evaluate-classifier`` (layers train, evaluate)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.common import app, bootstrap_options, build_command_configs, clean_errors, recipe_option
from mammocad.evaluate.config import CALIBRATION_METHODS
from mammocad.train.config import TTA_MODES
from mammocad.utils.config import click_options, workers_callback
from mammocad.utils.quiet import third_party_warnings_hidden


# ---- classifiers --------------------------------------------------------------------------
def _train_classes() -> tuple[type, ...]:
    from mammocad.train.config import TrainConfig

    return (TrainConfig,)


@app.command("train-classifier")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@recipe_option
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="evaluate the best checkpoint on the test split afterwards (into OUT/evaluation)")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=1),
              help="bootstrap resamples for the evaluation's 95% CIs")
@click.option("--calibrate", default="temperature", show_default=True,
              type=click.Choice([*CALIBRATION_METHODS, "none"]),
              help="fit a probability calibration on the val split after training, stored beside the best "
                   "checkpoint and applied by evaluate-classifier (isotonic: binary tasks only)")
@click_options(*_train_classes())
@clean_errors
@third_party_warnings_hidden
def train_classifier_command(config_file: Path | None, recipe: str | None, evaluate: bool, bootstrap: int,
                             calibrate: str, **flags) -> None:
    """Train a patch classifier with staged fine-tuning (paper Tables 3-8).

    \b
    Tasks: five_class, mass_benign_malignant, calc_benign_malignant, benign_malignant,
    mass_vs_calc, any_benign_malignant, lesion_vs_background. Models: mobilenet_v2, inception_v3 (299 px), alexnet,
    googlenet, xception, medical_cnn, and the classical baselines classical (intensity, GLCM and
    LBP features -> gradient boosting) and classical_lr (-> logistic regression). --phases "head:3:1e-3,last_third:3:1e-4" trains the head on
    a frozen backbone, then unfreezes the last third of the convolutions, and so on
    (last_two_thirds, all). Checkpoints (best by val AUC, last), metrics.csv, TensorBoard logs
    and config.yaml go to --out; --resume continues an interrupted run. Multi-GPU:
    --devices 4 --strategy ddp (multi-node: --num-nodes N under torchrun/SLURM).
    Example: mammocad train-classifier --data data/patches-large --task mass_benign_malignant
    --model mobilenet_v2 --weights imagenet --out runs/mass
    """
    from mammocad.evaluate.classifier import calibrate_checkpoint, evaluate_classifier
    from mammocad.evaluate.recipes import load_recipe
    from mammocad.train.engine import train_classifier
    from mammocad.train.fastpath import resolve_workers

    (config,) = build_command_configs(_train_classes(), config_file, flags, recipe)
    if recipe is not None:
        values = load_recipe(recipe)
        cross_validation_only = sorted(set(values) - {f.name for f in dataclasses.fields(config)})
        if cross_validation_only:
            click.echo(f"recipe {recipe}: " + ", ".join(f"{k} {values[k]}" for k in cross_validation_only)
                       + " apply to cross-validate only (train-classifier trains one model)")
    result = train_classifier(config)  # unusable --weights: a WeightsError, i.e. a DataError
    click.echo(f"trained {result.epochs_run} epoch(s); best val AUC {result.best_val_auc:.3f} -> "
               f"{result.best_checkpoint}")
    workers = resolve_workers(config.workers, "cpu", 1)
    if calibrate != "none":
        fitted = calibrate_checkpoint(result.best_checkpoint, config.data, calibrate, workers=workers)
        click.echo(f"calibration ({fitted.method}) fitted on {fitted.n_fitted} val patches, stored beside the checkpoint")
    if evaluate:
        out = result.run_dir / "evaluation"
        print_evaluation(evaluate_classifier(result.best_checkpoint, config.data, out, workers=workers,
                                             n_resamples=bootstrap), out)


def print_evaluation(result, out: Path) -> None:
    metrics = result.metrics

    def with_ci(name: str) -> str:
        low, high = metrics[f"{name}_ci"]
        return f"{metrics[name]:.3f} [{low:.3f}, {high:.3f}]"

    click.echo(f"{result.task}: ACC {with_ci('accuracy')}  AUC {with_ci('auc')}  Brier {with_ci('brier')} "
               f"(95% bootstrap CI; threshold from {result.threshold_source})")
    click.echo("confusion matrix (rows: true, columns: predicted):")
    click.echo(result.confusion.to_string())
    click.echo(f"-> {out} (predictions CSV, metrics.json, confusion.csv, roc.png, reliability.png). {DISCLAIMER}")


@app.command("evaluate-classifier")
@click.option("--checkpoint", "checkpoints", required=True, multiple=True, type=click.Path(path_type=Path),
              help="a .ckpt written by train-classifier; repeat it for an ensemble (mean of the probabilities)")
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
@bootstrap_options()
@click.option("--tta", default="none", show_default=True, type=click.Choice(TTA_MODES),
              help="test-time augmentation: mean probability over flips (4 views) or flips and rotations (8)")
@click.option("--calibration", default="stored", show_default=True, type=click.Choice(["stored", "none"]),
              help="apply the calibration stored beside each checkpoint (by train-classifier --calibrate)")
@clean_errors
@third_party_warnings_hidden
def evaluate_classifier_command(checkpoints: tuple[Path, ...], data: Path, split: str, val_split: str,
                                out: Path | None, batch_size: int, workers: int, bootstrap: int, seed: int, tta: str,
                                calibration: str) -> None:
    """Evaluate a trained classifier: ACC, AUC with 95% CIs, confusion matrix, ROC, predictions CSV.

    Example (train on CBIS-DDSM patches, test on mini-MIAS patches):
    mammocad evaluate-classifier --checkpoint runs/mass/checkpoints/best.ckpt --data data/mias-large
    """
    from mammocad.evaluate.classifier import evaluate_classifier

    out = out or checkpoints[0].resolve().parent.parent / f"evaluation-{split}"
    result = evaluate_classifier(list(checkpoints), data, out, split=split,
                                 val_split=None if val_split.lower() == "none" else val_split,
                                 batch_size=batch_size, workers=workers, n_resamples=bootstrap, seed=seed, tta=tta,
                                 calibration=calibration)
    print_evaluation(result, out)
