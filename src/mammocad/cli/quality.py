"""Quality commands: ``cross-validate`` (layer evaluate: patient-level k-fold CV and paired comparisons)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.common import app, build_command_configs, clean_errors, recipe_option
from mammocad.utils.config import click_options
from mammocad.utils.quiet import third_party_warnings_hidden


def _classes() -> tuple[type, ...]:
    from mammocad.evaluate.config import CrossValConfig
    from mammocad.train.config import TrainConfig

    return (TrainConfig, CrossValConfig)


@app.command("cross-validate")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@recipe_option
@click_options(*_classes())
@clean_errors
@third_party_warnings_hidden
def cross_validate_command(config_file: Path | None, recipe: str | None, **flags) -> None:
    """Patient-level k-fold cross-validation of a classifier recipe on one patch set.

    \b
    Folds are grouped by patient (a mini-MIAS left/right pair is one woman) and stratified by
    class; inside each training fold a patient-grouped validation split picks the checkpoint,
    the calibration and the threshold. Takes every train-classifier option (the recipe) and
    writes into --out: out-of-fold predictions (predictions_oof.csv), crossval.json (pooled
    AUC with 95% CIs resampling patients, per-fold AUCs, Brier score, lesion-level AUC for
    lesion_vs_background). --compare RUN_DIR: the paired AUC difference against another run on
    the same folds. Re-running skips finished folds (by fingerprint). --recipe mias-lesion: the
    recipe chosen on mini-MIAS (see benchmarks/RESULTS.md).
    Example: mammocad cross-validate --data data/mias-small --task lesion_vs_background
    --model classical --folds 5 --out cv/classical
    """
    from mammocad.evaluate.crossval import cross_validate

    train, cv = build_command_configs(_classes(), config_file, flags, recipe)
    result = cross_validate(train, cv, progress=False, log=click.echo)
    summary = result.summary
    click.echo(f"{summary['task']}: pooled out-of-fold AUC {summary['auc']:.3f} "
               f"{summary['auc_ci_patients']} (95% CI, patients resampled); per fold "
               f"{summary['fold_auc_mean']:.3f} +- {summary['fold_auc_sd'] or 0:.3f}; Brier {summary['brier']:.3f}")
    if "lesion_level" in summary:
        lesion = summary["lesion_level"]
        click.echo(f"lesion level ({lesion['n_lesions']} lesions vs {lesion['n_normal_images']} normal images, "
                   f"{lesion['score']}): AUC {lesion['auc']:.3f} {lesion['auc_ci_patients']}")
    if result.comparison is not None:
        click.echo(f"paired comparison (this - {cv.compare}): {json.dumps(result.comparison['patch_level'])}")
    click.echo(f"-> {result.out} (predictions_oof.csv, crossval.json). {DISCLAIMER}")
