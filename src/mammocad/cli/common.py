"""What every ``mammocad`` command shares: the top-level group, one-line errors, exit codes, batch reports.

The commands live beside this module, one module per layer they drive (``data``, ``classify``,
``demo``, ...); :mod:`mammocad.cli` imports them all so that they register on :data:`app`.
"""

from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

from mammocad import __version__
from mammocad.utils.config import build_configs
from mammocad.utils.errors import INTERRUPTED, DataError

if TYPE_CHECKING:
    from mammocad.utils.parallel import Failure


class Refused(click.ClickException):
    """Bad input: nothing was done (exit 2, as a usage error)."""

    exit_code = 2


def clean_errors(fn: Callable) -> Callable:
    """Bad input (a DataError) ends the command with its one-line message and exit code 1, no traceback.

    So does an OSError about a file (a full disk, a missing permission): its file and reason.
    """

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as err:
            raise Refused(str(err)) from None
        except OSError as err:  # the machine's, not the input's: a full disk, a permission, ...
            if err.filename is None:
                raise
            raise click.ClickException(f"{err.filename}: {err.strerror or err}") from None

    return wrapper


recipe_option = click.option(
    "--recipe", default=None, metavar="NAME|YAML",
    help="a named recipe (mias-lesion) or a recipe YAML: its settings replace the defaults; --config and flags "
         "still override them")


def build_command_configs(classes: tuple[type, ...], config_file: Path | None, flags: dict,
                          recipe: str | None = None) -> tuple:
    """Build the command's configs from defaults < ``recipe`` (``mammocad.evaluate.recipes``) < the YAML
    file < the flags; an impossible value is a usage error, not a traceback."""
    base = None
    if recipe is not None:
        from mammocad.evaluate.recipes import load_recipe

        base = load_recipe(recipe)
    try:
        return build_configs(classes, config_file, flags, base, f"recipe {recipe}")
    except (TypeError, ValueError) as err:
        raise click.UsageError(str(err)) from None


def bootstrap_options(what: str = "bootstrap resamples for the 95% CIs") -> Callable:
    """``--bootstrap N`` and ``--seed S`` of the evaluation commands."""

    def decorate(fn: Callable) -> Callable:
        fn = click.option("--seed", default=0, show_default=True, help="bootstrap seed")(fn)
        return click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=1), help=what)(fn)

    return decorate


EXIT_ITEMS_FAILED = 1  # a batch command finished the rest, but some items failed (listed, and in failures.csv)
# Click's own codes: 2 for a usage error or refused input (nothing done); mammocad uses 130 for Ctrl-C.


def report_failures(failures: list[Failure], warnings: list[Failure] = ()) -> None:
    if warnings:
        click.secho(f"{len(warnings)} warning(s) (also in warnings.csv):", fg="yellow", err=True)
        for w in warnings:
            click.echo(f"  - {w}", err=True)
    if not failures:
        return
    click.secho(f"{len(failures)} item(s) failed and were skipped:", fg="yellow", err=True)
    for f in failures:
        click.echo(f"  - {f}", err=True)


def finish_batch(summary_line: str, done: int, failures: list[Failure], warnings: list[Failure] = ()) -> None:
    """Print a batch command's summary and report; exit 1 when any item failed (the rest is written)."""
    click.echo(summary_line)
    report_failures(failures, warnings)
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


class App(click.Group):
    """The top-level group: a KeyboardInterrupt in any command becomes :class:`Interrupted`."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


@click.group(cls=App, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
      mammocad train-segmenter --data data/r512 --out runs/seg   # after `patches --kind resize512`
      mammocad evaluate-segmenter --checkpoint runs/seg/checkpoints/best.ckpt --data data/prepared --out runs/seg/eval
      mammocad export --run runs/bm --out bm.mcad && mammocad predict scans/ --classifier bm.mcad --baseline blob --out pred
      mammocad report runs                        # one HTML page of every run below runs/
    """
