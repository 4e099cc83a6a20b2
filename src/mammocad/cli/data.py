"""Data commands: ``synth``, ``stats``, ``prepare``, ``split``, ``patches`` (layers data, preprocess, patches)."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import click

from mammocad.cli.common import app, build_command_configs, clean_errors, finish_batch
from mammocad.utils.config import click_options, read_yaml, workers_callback


# ---- synth --------------------------------------------------------------------------------
@app.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--patients", default=24, show_default=True, help="number of patients")
@click.option("--seed", default=0, show_default=True, help="random seed (same seed, same bytes)")
@click.option("--rows", default=1024, show_default=True, help="full mammogram height in pixels")
@click.option("--cols", default=768, show_default=True, help="full mammogram width in pixels")
@click.option("--test-fraction", default=0.25, show_default=True, help="fraction of patients in the official test CSVs")
@click.option("--workers", default=2, show_default=True, callback=workers_callback, help="worker processes")
@clean_errors
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
@clean_errors
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
        click.echo(prepared_table9(source))
        return
    table = load_dataset(source, dataset, resolve_files=False, progress=False)
    click.echo(f"Table 9 for {source} ({split_scheme} split):")
    click.echo(split_statistics(table, image_split(table, split_scheme, seed=seed)).to_string(index=False))


def prepared_table9(prepared: Path) -> str:
    """Table 9 of a prepared folder, for the split recorded in it (the one patches and training use)."""
    from mammocad.preprocess.stats import prepared_statistics

    table9, split = prepared_statistics(prepared)
    return (f"Table 9 for prepared folder {prepared} ({split['scheme']} split, seed {split['seed']}):\n"
            f"{table9.to_string(index=False)}")


# ---- prepare ------------------------------------------------------------------------------
def _prepare_classes():
    from mammocad.preprocess.config import PrepareJob, PreprocessConfig

    return PrepareJob, PreprocessConfig


@app.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@click_options(*_prepare_classes())
@clean_errors
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

    job, config = build_command_configs(_prepare_classes(), config_file, flags)
    started = time.perf_counter()
    summary = run_prepare(job, config)
    if summary.new_patients:
        click.echo(f"{summary.new_patients} new patient(s) added to the recorded split ({summary.out}/splits.json)")
    finish_batch(f"prepared {summary.prepared}, already done {summary.skipped}, failed {len(summary.failures)} "
                  f"in {time.perf_counter() - started:.1f}s -> {summary.out}",
                  summary.prepared + summary.skipped, summary.failures, summary.warnings)


@app.command()
@click.argument("prepared", type=click.Path(path_type=Path))
@click.option("--split-scheme", type=click.Choice(["official", "tfds"]), required=True, help="patient-level split")
@click.option("--seed", default=0, show_default=True, help="seed of the official scheme's train/val cut")
@clean_errors
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
@clean_errors
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
    job, config = build_command_configs(classes, config_file, {k: v for k, v in flags.items() if k in own})
    started = time.perf_counter()
    summary = build_patches(job, config)
    finish_batch(f"{summary.patches} {kind.value} patches ({summary.written} images extracted, "
                  f"{summary.skipped} already done, {len(summary.failures)} failed) "
                  f"in {time.perf_counter() - started:.1f}s -> {summary.out}",
                  summary.written + summary.skipped, summary.failures, summary.warnings)
