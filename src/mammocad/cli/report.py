"""Report commands: ``report`` (a folder of runs as one HTML page) and ``reproduce`` (the paper's grid, then its report)."""

from __future__ import annotations

from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.common import app, clean_errors


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
