"""``mammocad demo``: every stage end to end on synthetic data (the README's first command)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.classify import print_evaluation
from mammocad.cli.common import app, clean_errors, report_failures
from mammocad.cli.data import prepared_table9
from mammocad.cli.segment_eval import checkpoint_predictor, print_segmenter_evaluation
from mammocad.utils.config import workers_callback
from mammocad.utils.quiet import third_party_warnings_hidden


# ---- demo ---------------------------------------------------------------------------------
@app.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-output"), show_default=True,
              help="folder for everything the demo writes")
@click.option("--patients", default=150, show_default=True,
              help="synthetic patients (at least 40, so that validation and test hold both classes)")
@click.option("--workers", default=2, show_default=True, callback=workers_callback, help="worker processes")
@click.option("--seed", default=0, show_default=True, help="random seed")
@clean_errors
@third_party_warnings_hidden
def demo(out: Path, patients: int, workers: int, seed: int) -> None:
    """Run every stage end to end on a small synthetic CBIS-DDSM (CPU, a few minutes).

    Generates the data, prepares full images and masks, prints Table 9 for the split every
    later step uses, extracts every patch kind and prints Tables 11/12, trains a small benign-vs-malignant classifier on
    the large-context patches and evaluates it on the test split, trains a small U-Net to find masses on the
    whole images (resized to 128 px) and evaluates it on the full test images (Dice, false positives, FROC), and
    writes OUT/report.html. Re-running reuses the data and patches (new classifier and segmenter runs replace
    the old ones).
    """
    import shutil

    from mammocad.demo import (
        MIN_PATIENTS,
        SEGMENT_LESION_TYPE,
        SEGMENT_SIZE,
        demo_checkpoint,
        demo_segment_config,
        demo_train_config,
        split_class_problem,
        split_lesion_problem,
    )

    if patients < MIN_PATIENTS:
        raise click.UsageError(f"--patients must be at least {MIN_PATIENTS}: fewer can leave the validation or "
                               f"test split without both benign and malignant lesions")
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm
    from mammocad.evaluate.classifier import evaluate_classifier
    from mammocad.evaluate.segmenter import evaluate_segmenter
    from mammocad.patches.build import build_patches
    from mammocad.patches.config import PatchJob, PatchKind, kind_config_class
    from mammocad.patches.stats import patch_counts
    from mammocad.patches.store import read_manifest
    from mammocad.preprocess.config import PrepareJob, PreprocessConfig
    from mammocad.preprocess.prepare import run_prepare
    from mammocad.segment.training import train_segmenter
    from mammocad.train.engine import train_classifier

    click.secho(DISCLAIMER, fg="yellow")
    synth_dir, prepared_dir, patches_dir, run_dir = out / "synthetic", out / "prepared", out / "patches", out / "run"
    segmenter_dir = out / "segmenter"
    click.echo(f"[1/7] synthetic CBIS-DDSM ({patients} patients) -> {synth_dir}")
    if not (synth_dir / "csv").is_dir():
        generate_cbis_ddsm(synth_dir, SynthConfig(patients=patients, seed=seed, workers=workers))
    click.echo(f"[2/7] preprocessing -> {prepared_dir}")
    summary = run_prepare(PrepareJob(source=synth_dir, out=prepared_dir, workers=workers), PreprocessConfig())
    failures = list(summary.failures)
    click.echo(prepared_table9(prepared_dir))
    click.echo(f"[3/7] patch sets -> {patches_dir}/{{small,large,seg,resize512}} (resize512 at {SEGMENT_SIZE} px, "
               f"the segmenter's input)")
    settings = {PatchKind.RESIZE512: {"size": SEGMENT_SIZE}}  # every other kind at its defaults
    for kind in PatchKind:
        job = PatchJob(prepared=prepared_dir, out=patches_dir / kind.value, kind=kind, workers=workers, seed=seed)
        failures += build_patches(job, kind_config_class(kind)(**settings.get(kind, {}))).failures
    click.echo("Table 11/12 (small-context patches per class and split):")
    click.echo(patch_counts(read_manifest(patches_dir / "small")).to_string())
    click.echo(f"[4/7] benign vs malignant classifier on large-context patches -> {run_dir}")
    for kind, problem in (("large", split_class_problem(read_manifest(patches_dir / "large"))),
                          ("resize512", split_lesion_problem(read_manifest(patches_dir / "resize512")))):
        if problem:  # rare above MIN_PATIENTS, but then AUC or Dice is undefined: say so instead of a traceback
            raise click.ClickException(f"{patches_dir / kind}: {problem} (seed {seed}, {patients} patients); "
                                       f"use more --patients or another --seed")
    # A small CNN from scratch (mammocad.demo.demo_train_config): minutes on a CPU, no download.
    # The paper's set-up is `mammocad train-classifier --model mobilenet_v2 --weights imagenet`.
    shutil.rmtree(run_dir, ignore_errors=True)
    config = demo_train_config(patches_dir / "large", run_dir, seed=seed)
    result = train_classifier(config)  # one progress bar line per epoch
    evaluation = evaluate_classifier(demo_checkpoint(result), config.data, run_dir / "evaluation")
    click.echo("[5/7] classifier evaluation on the test split:")
    print_evaluation(evaluation, run_dir / "evaluation")
    click.echo(f"[6/7] segmenter (U-Net) on resize patches ({SEGMENT_SIZE} px, lesion type "
               f"{SEGMENT_LESION_TYPE}) -> {segmenter_dir}")
    # A small U-Net from scratch (mammocad.demo.demo_segment_config); the paper's Table 2 runs are configs/table2.
    shutil.rmtree(segmenter_dir, ignore_errors=True)
    segment_config = demo_segment_config(patches_dir / "resize512", segmenter_dir, seed=seed)
    segment_result = train_segmenter(segment_config)
    click.echo("[7/7] segmenter evaluation on the full test images (FP control chosen on val):")
    predict, training_metrics = checkpoint_predictor(demo_checkpoint(segment_result))
    segmentation = evaluate_segmenter(predict, prepared_dir, "test", segmenter_dir / "evaluation",
                                      lesion_types=(SEGMENT_LESION_TYPE,), training_metrics=training_metrics,
                                      name="U-Net (demo, last checkpoint)", seed=seed)
    print_segmenter_evaluation(segmentation, segmenter_dir / "evaluation")
    from mammocad.report import build_report

    report = build_report(out)  # Tables 9/11/12, ROC, curves, confusion, Dice, FROC, overlays, provenance: one page
    report_failures(failures)
    click.echo("\nOutputs:")
    click.echo(f"  synthetic dataset   {synth_dir}/csv, {synth_dir}/CBIS-DDSM")
    click.echo(f"  prepared images     {prepared_dir}/images, masks in {prepared_dir}/masks")
    click.echo(f"  manifests           {prepared_dir}/images.csv, {prepared_dir}/abnormalities.csv")
    click.echo(f"  before/after plots  {prepared_dir}/figures ({len(summary.figures)} files)")
    click.echo(f"  patch sets          {patches_dir}/<kind>/patches.csv, example grid in <kind>/figures/examples.png")
    click.echo(f"  classifier run      {run_dir}/checkpoints, metrics.csv, evaluation/ (ROC, confusion, predictions)")
    click.echo(f"  segmenter run       {segmenter_dir}/checkpoints, metrics.csv, evaluation/ (per-image Dice CSVs, "
               f"FROC, overlays)")
    click.echo(f"  report              {report} (open it in a browser; tables also as .md and CSV)")
    if failures:
        sys.exit(1)
