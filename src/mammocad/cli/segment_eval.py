"""Segmentation evaluation command: ``evaluate-segmenter`` (layers segment, evaluate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.common import Refused, app, bootstrap_options, clean_errors
from mammocad.utils.quiet import third_party_warnings_hidden


def _with_ci(summary: dict, name: str) -> str:
    value, (low, high) = summary[name], summary[f"{name}_ci"]
    if value is None:
        return "n/a"
    return f"{value:.3f} [{'n/a' if low is None else f'{low:.3f}'}, {'n/a' if high is None else f'{high:.3f}'}]"


def checkpoint_predictor(checkpoint: Path) -> tuple[Callable, Path | None]:
    """(``predict(image, breast)`` of a train-segmenter checkpoint, its run's metrics.csv or None)."""
    from mammocad.segment.predict import load_segmenter

    segmenter = load_segmenter(checkpoint)

    def predict(image, breast):
        return segmenter.predict(image)

    run_metrics = Path(checkpoint).resolve().parent.parent / "metrics.csv"  # RUN/checkpoints/<name>.ckpt
    return predict, run_metrics if run_metrics.is_file() else None


def print_segmenter_evaluation(result, out: Path) -> None:
    """What ``evaluate_segmenter`` measured, before and after the FP control, with patient-bootstrap CIs."""
    metrics, op = result.metrics, result.operating_point
    click.echo(f"{metrics['segmenter']} on {metrics['split']}: {metrics['raw']['n_images']} images, "
               f"{metrics['raw']['n_lesions']} lesions, {metrics['raw']['n_patients']} patients "
               f"(95% CIs from resampling patients)")
    if metrics["val_split"] is not None:
        click.echo(f"FP control chosen on {metrics['val_split']}: top-k {op.top_k or 'all'}, "
                   f"score >= {op.min_score:.3g}")
    for label, key in (("before FP control", "raw"), ("after FP control", "after_fp_control")):
        s = metrics[key]
        click.echo(f"  {label}: average Dice {_with_ci(s, 'average_dice')}  max Dice {_with_ci(s, 'max_dice')}  "
                   f"FP/image {_with_ci(s, 'false_positives_per_image')}")
        click.echo(f"    sensitivity IoU>=0.1 {_with_ci(s, 'sensitivity_iou_0.1')}  IoU>=0.5 "
                   f"{_with_ci(s, 'sensitivity_iou_0.5')}  FROC at 1 FP/image {_with_ci(s, 'froc_sensitivity_at_1_fp')}")
    click.echo(f"-> {out} (per-image CSVs, metrics.json, FROC, overlays). {DISCLAIMER}")


@app.command("evaluate-segmenter")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="a segmenter checkpoint written by train-segmenter")
@click.option("--baseline", default=None, metavar="NAME",
              help="a classical detector instead of a checkpoint: blob (brightest blob), or a floor: empty (nothing), "
                   "breast (the whole breast as one region)")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="a prepared folder (mammocad prepare)")
@click.option("--split", default="test", show_default=True, help="split to evaluate")
@click.option("--val-split", default="val", show_default=True,
              help="split that fixes the FP control (top-k, score threshold); 'none' keeps every prediction")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="output folder")
@click.option("--lesion-types", default="all", show_default=True,
              help="ground truth: comma-separated abnormality types (e.g. mass) or all")
@click.option("--iou", "iou_threshold", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="IoU at which a predicted region hits a lesion (false positives, FROC)")
@click.option("--overlays", default=4, show_default=True, type=click.IntRange(min=0),
              help="prediction-vs-truth overlay figures to write")
@bootstrap_options("patient bootstrap resamples for the 95% CIs")
@clean_errors
@third_party_warnings_hidden
def evaluate_segmenter_command(checkpoint: Path | None, baseline: str | None, data: Path, split: str, val_split: str,
                               out: Path, lesion_types: str, iou_threshold: float, overlays: int, bootstrap: int,
                               seed: int) -> None:
    """Evaluate a lesion segmenter on full prepared images: Dice, FP/image, sensitivity, FROC (paper Table 2).

    Average Dice (all predicted regions against all lesions) and max Dice (best single region),
    false-positive regions per image, lesion sensitivity at IoU 0.1 and 0.5, FROC sensitivity at
    0.5/1/2 FP per image, each with a 95% CI from resampling patients; before and after the
    false-positive control (top-k and score threshold chosen on --val-split).

    \b
    Examples:
      mammocad evaluate-segmenter --checkpoint runs/seg/checkpoints/best.ckpt --data data/prepared --out runs/seg/eval
      mammocad evaluate-segmenter --baseline blob --data data/prepared --lesion-types mass --out runs/blob-eval
    """
    if (checkpoint is None) == (baseline is None):
        raise Refused("give exactly one of --checkpoint CKPT or --baseline blob")
    from mammocad.evaluate.segmenter import evaluate_segmenter

    training_metrics = None
    if checkpoint is not None:
        predict, training_metrics = checkpoint_predictor(checkpoint)
        name = checkpoint.name
    else:
        from mammocad.segment.baselines import baseline as get_baseline

        predict, name = get_baseline(baseline), f"baseline {baseline}"
    types = None if lesion_types.strip().lower() == "all" else tuple(t.strip() for t in lesion_types.split(",") if t.strip())
    result = evaluate_segmenter(predict, data, split, out, val_split=None if val_split.lower() == "none" else val_split,
                                lesion_types=types, iou_threshold=iou_threshold, n_overlays=overlays,
                                n_resamples=bootstrap, seed=seed, training_metrics=training_metrics, name=name)
    print_segmenter_evaluation(result, out)
