"""Report commands: ``report`` (a folder of runs as one HTML page) and ``reproduce`` (the paper's grid, then its report)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.common import EXIT_ITEMS_FAILED, app, build_command_configs, clean_errors, report_failures
from mammocad.utils.config import click_options
from mammocad.utils.quiet import third_party_warnings_hidden


@app.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the HTML file [default: RUN_DIR/report.html]; its .md and _tables/ CSVs go beside it")
@click.option("--title", default="mammocad report", show_default=True, help="the page's title")
@clean_errors
def report(run_dir: Path, out: Path | None, title: str) -> None:
    """Write one self-contained HTML report of everything RUN_DIR holds, with its tables as CSV and Markdown.

    Finds, by their files: prepared folders (Table 9, preprocessing figures), patch sets
    (Tables 11/12, example patches), classifier evaluations (ACC, AUC with 95% CIs, confusion
    matrix, ROC, training curves), segmenter evaluations (Dice, FROC, overlays), and the paper's
    tables for runs made by `mammocad reproduce` (the paper's numbers beside ours and the
    difference); for each run its config, software versions, machine, time and data
    fingerprint. Images are embedded: the page opens from disk, offline.
    Example: mammocad report runs/ --out runs/report.html
    """
    from mammocad.report import build_report

    path = build_report(run_dir, out, title)
    click.echo(f"report -> {path} (tables: {path.with_suffix('.md')}, {path.with_name(path.stem + '_tables')}/). "
               f"{DISCLAIMER}")


def _reproduce_classes() -> tuple[type, ...]:
    from mammocad.report.config import ReproduceConfig

    return (ReproduceConfig,)


@app.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@click_options(*_reproduce_classes())
@clean_errors
@third_party_warnings_hidden
def reproduce(config_file: Path | None, **flags) -> None:
    """Reproduce the paper's tables: prepare DATA once, build the patch sets once, train and evaluate every
    experiment (one YAML per table row), and write OUT/report.html.

    The experiment files are installed with mammocad (mammocad/configs/, found from any folder);
    --configs DIR runs another folder's files. Classifier rows train on their patch set and are
    evaluated on its test split; Table 2's rows train segmenters (Mask R-CNN, U-Net) and are
    scored, like the blob baseline, on the prepared full test images (average and max Dice with
    95% CIs, FROC; false-positive control chosen on val).

    Resumable: a finished experiment is skipped by its fingerprint (config and data), an
    interrupted one resumes from its last checkpoint. --budget smoke runs the same grid with
    tiny images and epochs, on a CPU. One experiment per GPU or cluster job: --data-only
    first, then --only NAME --no-report per job, then `mammocad report OUT` (the SLURM loop
    is in mammocad/report/reproduce.py and mammocad/configs/README.md).

    Example: mammocad reproduce --data /data/CBIS-DDSM --tables 2,3 --out runs/paper
    """
    from mammocad.report.reproduce import reproduce as run_reproduce

    (config,) = build_command_configs(_reproduce_classes(), config_file, flags)
    click.secho(DISCLAIMER, fg="yellow")

    def echo(outcome) -> None:
        detail = {"done": f"done in {outcome.seconds:.0f}s", "skipped": "skipped (finished before, same fingerprint)",
                  "failed": f"FAILED: {outcome.problem}"}[outcome.status]
        click.echo(f"experiment {outcome.name}: {detail}")

    outcomes, failures = run_reproduce(config, on_outcome=echo)
    failed = [o for o in outcomes if o.status == "failed"]
    report_failures(failures)
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    line = f"experiments: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    if config.report:
        line += f"; report -> {config.out / 'report.html'}"
    click.echo(line)
    if failed or failures:
        sys.exit(EXIT_ITEMS_FAILED)
