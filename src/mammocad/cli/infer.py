"""Second-reader commands: ``export``, ``predict``, ``second-read`` (layer infer)."""

from __future__ import annotations

from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.common import app, build_command_configs, clean_errors, finish_batch
from mammocad.infer.config import ExportConfig, PredictConfig, SecondReadConfig
from mammocad.utils.config import click_options
from mammocad.utils.quiet import third_party_warnings_hidden

CONFIG_OPTION = click.option("--config", "config_file", type=click.Path(path_type=Path),
                             help="YAML file with any of the options below")


@app.command("export")
@CONFIG_OPTION
@click_options(ExportConfig)
@clean_errors
@third_party_warnings_hidden
def export_command(config_file: Path | None, **flags) -> None:
    """Pack a trained classifier or segmenter into one model bundle file (.mcad).

    The bundle holds the weights, architecture, task and class names, the preprocessing and
    patch settings the model was trained on (from the patch set's and prepared folder's
    stage.json), its validation metrics and operating point, the mammocad version and a
    SHA-256 checksum: `mammocad predict` needs nothing else. The run folder says which kind:
    a train-classifier run gives a classifier bundle (threshold from RUN/evaluation), a
    train-segmenter run a segmenter bundle (input kind, image size, tile stride, lesion type;
    the false-positive control, top-k and least score, from the evaluate-segmenter output of
    the checkpoint under RUN, chosen there on the validation split; without one, every region
    the model predicts above its training --score-threshold).

    \b
    Examples:
      mammocad export --run runs/mass --out mass.mcad
      mammocad evaluate-segmenter --checkpoint runs/seg/checkpoints/best.ckpt --data data/prepared --out runs/seg/eval
      mammocad export --run runs/seg --out seg.mcad
    """
    from mammocad.infer.bundle import export_run, write_bundle

    (config,) = build_command_configs((ExportConfig,), config_file, flags)
    bundle = write_bundle(export_run(config.run, config.checkpoint, config.patches, config.evaluation), config.out)
    threshold = "none" if bundle.threshold is None else f"{bundle.threshold:.4f}"
    if bundle.kind == "segmenter":
        threshold = f"top-k {bundle.top_k or 'all'}, score >= {threshold}"
    click.echo(f"{config.out}: {bundle.kind} {bundle.architecture}, task {bundle.task}, threshold {threshold} "
               f"({bundle.threshold_source}), sha256 {bundle.checksum}")


@app.command("predict")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@CONFIG_OPTION
@click_options(PredictConfig)
@clean_errors
@third_party_warnings_hidden
def predict_command(paths: tuple[Path, ...], config_file: Path | None, **flags) -> None:
    """Find and score regions on mammograms: PATHS are DICOM/PNG/PGM/JPEG files or folders.

    \b
    Per image, into --out: NAME.json (regions: box and outline in original pixels, area in mm²
    when the DICOM has a pixel spacing, type, malignancy probability, model checksums),
    NAME_overlay.png (outlined regions beside the classifier's Grad-CAM) and, for DICOM input,
    NAME_seg.dcm (a DICOM Segmentation referencing the source image). summary.csv lists every
    input; a file that cannot be read is reported and skipped (exit code 1).
    Regions come from --segmenter, a segmenter bundle (`mammocad export` of a train-segmenter
    run: the image is prepared as that model was trained, and its false-positive control is
    applied), or --baseline blob. The overlay is a display size (--overlay-side); coordinates
    stay in original pixels.

    \b
    Examples:
      mammocad predict scans/ --classifier mass.mcad --segmenter seg.mcad --out predictions
      mammocad predict scans/ --classifier mass.mcad --baseline blob --out predictions
    """
    from mammocad.infer.predict import predict_batch

    (config,) = build_command_configs((PredictConfig,), config_file, flags)
    summary = predict_batch(paths, config)
    finish_batch(f"predicted {summary.done} of {len(summary.rows)} image(s) -> {config.out} (summary.csv). "
                 f"{DISCLAIMER}", summary.done, summary.failures)


@app.command("second-read")
@CONFIG_OPTION
@click_options(SecondReadConfig)
@clean_errors
def second_read_command(config_file: Path | None, **flags) -> None:
    """Compare predictions with a radiologist's readings and flag discrepancies.

    A region at or above the classifier's operating threshold where the reading is BI-RADS 1-3
    is a possible false negative (call-back candidate); BI-RADS 4-6 without such a region is a
    reading the model does not support. Writes discrepancies.csv and second_read.html.
    Example: mammocad second-read --predictions predictions --readings readings.csv --out second-read
    """
    from mammocad.infer.second_read import FLAGS, second_read

    (config,) = build_command_configs((SecondReadConfig,), config_file, flags)
    table = second_read(config.predictions, config.readings, config.out)
    counts = table["finding"].value_counts()
    click.echo(f"{len(table)} image(s); " + ", ".join(f"{counts.get(flag, 0)} {flag}" for flag in FLAGS)
               + f" -> {config.out} (discrepancies.csv, second_read.html). {DISCLAIMER}")
