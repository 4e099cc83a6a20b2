"""The ``mammocad`` command line: thin wrappers that parse options and call the library.

Every command with a config accepts ``--config FILE`` (YAML) and one flag per config key;
flags given on the command line win over the file. Research software, not a medical device.
"""

from __future__ import annotations

import sys
import time
from functools import wraps
from pathlib import Path
from typing import Callable

import click

from mammocad import DISCLAIMER, __version__
from mammocad.utils.config import build_configs, click_options
from mammocad.utils.errors import DataError
from mammocad.utils.parallel import Failure


def _clean_errors(fn: Callable) -> Callable:
    """Bad input ends the command with its one-line message and exit code 2, no traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as err:
            raise click.ClickException(str(err)) from None

    return wrapper


def _report_failures(failures: list[Failure]) -> None:
    if not failures:
        return
    click.secho(f"{len(failures)} item(s) failed and were skipped:", fg="yellow", err=True)
    for f in failures:
        click.echo(f"  - {f}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mammocad")
def app() -> None:
    """mammocad: find and classify breast abnormalities in mammograms (CBIS-DDSM, mini-MIAS).

    Research software, not a medical device: not for clinical decisions.

    \b
    Typical run:
      mammocad synth data/synth --patients 24     # CBIS-DDSM-format synthetic data
      mammocad stats data/synth --split-scheme tfds
      mammocad prepare --source data/synth --out data/prepared
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
@click.option("--workers", default=2, show_default=True, help="worker processes")
@_clean_errors
def synth(out: Path, patients: int, seed: int, rows: int, cols: int, test_fraction: float, workers: int) -> None:
    """Write a synthetic dataset in CBIS-DDSM format to OUT.

    Four official-format CSVs (OUT/csv) and DICOM files in the NBIA download layout
    (OUT/CBIS-DDSM/...): full mammograms, ROI masks and lesion crops, deterministic from
    --seed. Example: mammocad synth data/synth --patients 24
    """
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm

    config = SynthConfig(patients=patients, seed=seed, image_rows=rows, image_cols=cols,
                         test_fraction=test_fraction, workers=workers)
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

    SOURCE is a dataset folder (CBIS-DDSM CSVs are enough, images need not be present) or a
    folder written by `mammocad prepare` (its manifest's splits are used).
    Example: mammocad stats ../shared/data/cbis-ddsm --split-scheme tfds
    """
    from mammocad.data.registry import load_dataset
    from mammocad.data.splits import image_split
    from mammocad.data.stats import split_statistics
    from mammocad.preprocess.prepare import load_prepared

    if (source / "images.csv").is_file():
        table, images, _ = load_prepared(source)
        split_of = dict(zip(images["image_id"], images["split"]))
        where = f"prepared folder {source}"
    else:
        table = load_dataset(source, dataset, resolve_files=False, progress=False)
        split_of = image_split(table, split_scheme, seed=seed)
        where = f"{source} ({split_scheme} split)"
    click.echo(f"Table 9 for {where}:")
    click.echo(split_statistics(table, split_of).to_string(index=False))


# ---- prepare ------------------------------------------------------------------------------
def _prepare_classes():
    from mammocad.preprocess.pipeline import PreprocessConfig
    from mammocad.preprocess.prepare import PrepareJob

    return PrepareJob, PreprocessConfig


@app.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@click_options(*_prepare_classes())
@_clean_errors
def prepare(config_file: Path | None, **flags) -> None:
    """Preprocess every mammogram and lesion mask of a dataset (paper appendix 9.1).

    Border crop, normalisation, breast mask (threshold + morphology) removing labels,
    orientation flip, CLAHE, pad to square, optional resize; masks follow the image. Runs
    in worker processes, skips images already prepared with the same settings, writes
    images/, masks/, breast/, images.csv, abnormalities.csv, failures.csv and a few
    before/after figures. Example:
    mammocad prepare --source data/synth --out data/prepared --size 512
    """
    from mammocad.preprocess.prepare import run_prepare

    job, config = build_configs(_prepare_classes(), config_file, flags)
    started = time.perf_counter()
    summary = run_prepare(job, config)
    click.echo(f"prepared {summary.prepared}, already done {summary.skipped}, failed {len(summary.failures)} "
               f"in {time.perf_counter() - started:.1f}s -> {summary.out}")
    _report_failures(summary.failures)


# ---- demo ---------------------------------------------------------------------------------
@app.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-output"), show_default=True,
              help="folder for everything the demo writes")
@click.option("--patients", default=24, show_default=True, help="synthetic patients")
@click.option("--workers", default=2, show_default=True, help="worker processes")
@click.option("--seed", default=0, show_default=True, help="random seed")
@_clean_errors
def demo(out: Path, patients: int, workers: int, seed: int) -> None:
    """Run every stage end to end on a small synthetic CBIS-DDSM (CPU, a few minutes).

    Generates the data, prints Table 9, prepares full images and masks. Re-running reuses
    what is already there.
    """
    from mammocad.data.registry import load_dataset
    from mammocad.data.splits import image_split
    from mammocad.data.stats import split_statistics
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm
    from mammocad.preprocess.pipeline import PreprocessConfig
    from mammocad.preprocess.prepare import PrepareJob, run_prepare

    click.secho(DISCLAIMER, fg="yellow")
    synth_dir, prepared_dir = out / "synthetic", out / "prepared"
    click.echo(f"[1/3] synthetic CBIS-DDSM ({patients} patients) -> {synth_dir}")
    if not (synth_dir / "csv").is_dir():
        generate_cbis_ddsm(synth_dir, SynthConfig(patients=patients, seed=seed, workers=workers))
    table = load_dataset(synth_dir, "cbis-ddsm", resolve_files=False, progress=False)
    click.echo("[2/3] Table 9 (tfds split):")
    click.echo(split_statistics(table, image_split(table, "tfds")).to_string(index=False))
    click.echo(f"[3/3] preprocessing -> {prepared_dir}")
    summary = run_prepare(PrepareJob(source=synth_dir, out=prepared_dir, workers=workers, seed=seed),
                          PreprocessConfig())
    _report_failures(summary.failures)
    click.echo("\nOutputs:")
    click.echo(f"  synthetic dataset   {synth_dir}/csv, {synth_dir}/CBIS-DDSM")
    click.echo(f"  prepared images     {prepared_dir}/images, masks in {prepared_dir}/masks")
    click.echo(f"  manifests           {prepared_dir}/images.csv, {prepared_dir}/abnormalities.csv")
    click.echo(f"  before/after plots  {prepared_dir}/figures ({len(summary.figures)} files)")
    if summary.failures:
        sys.exit(1)


if __name__ == "__main__":
    app()
