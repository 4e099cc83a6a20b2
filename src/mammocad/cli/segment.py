"""Segmenter commands: ``train-segmenter`` (layer segment)."""

from __future__ import annotations

from pathlib import Path

import click

from mammocad.cli.common import app, build_command_configs, clean_errors
from mammocad.utils.config import click_options
from mammocad.utils.quiet import third_party_warnings_hidden


def _train_classes() -> tuple[type, ...]:
    from mammocad.segment.config import SegmentTrainConfig

    return (SegmentTrainConfig,)


@app.command("train-segmenter")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with any of the options below")
@click_options(*_train_classes())
@clean_errors
@third_party_warnings_hidden
def train_segmenter_command(config_file: Path | None, **flags) -> None:
    """Train a lesion segmenter (Mask R-CNN or U-Net) with staged training (paper Table 2).

    \b
    Data: a `mammocad patches --kind seg` (256 px tiles) or `--kind resize512` patch set.
    Models: maskrcnn_resnet50_fpn_v2, maskrcnn_resnet101_fpn, maskrcnn_mobilenet_v2_fpn, unet
    (--encoder mobilenet_v2, resnet34, ...). --phases "heads:2:1e-4,stage4+:2:1e-5,all:2:1e-6" is the
    paper's 3-stage schedule (heads, then backbone stride 16/32 layers too, then all layers);
    "heads:2:1e-4,all:4:1e-5" its 2-stage one. Checkpoints (best by val Dice, last), metrics.csv,
    TensorBoard logs and config.yaml go to --out; --resume continues an interrupted run.
    Example: mammocad train-segmenter --data data/r512 --weights coco --out runs/seg
    (Table 2's rows as experiment files: mammocad reproduce --tables 2)
    """
    from mammocad.segment.training import train_segmenter

    (config,) = build_command_configs(_train_classes(), config_file, flags)
    result = train_segmenter(config)  # unusable --weights: a WeightsError, i.e. a DataError
    click.echo(f"trained {result.epochs_run} epoch(s); best val Dice {result.best_value:.3f} -> "
               f"{result.best_checkpoint}")
