"""Figures of a segmentation evaluation: FROC curve, prediction-vs-truth overlays (paper Figure 8),
loss curves of a training run (paper Figure 1). matplotlib's object API; each carries the research note."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mammocad.evaluate.plots import disclaimer_figure
from mammocad.evaluate.segmentation import Froc
from mammocad.utils.atomic import atomic_path

TRUTH_COLOUR = "#00c000"       # green: ground truth
PREDICTION_COLOUR = "#ff00ff"  # magenta: prediction (distinct from green for most colour vision)


def froc_figure(curves: dict[str, Froc], title: str = "FROC", fp_rates: Sequence[float] = (0.5, 1.0, 2.0)) -> Figure:
    """Sensitivity against mean false positives per image, one line per named curve through its operating
    points (linear between them, as ``Froc.sensitivity_at``); the sensitivities at ``fp_rates`` marked."""
    fig = disclaimer_figure(5.5, 4.5)
    ax = fig.subplots()
    for name, froc in curves.items():
        at = froc.sensitivity_at(fp_rates)
        line, = ax.plot(froc.fp_per_image, froc.sensitivity,
                        label=f"{name} (sens. at 1 FP/image {at.get(1.0, np.nan):.2f})")
        ax.plot(list(at), list(at.values()), "o", color=line.get_color(), markersize=4)
    for x in fp_rates:
        ax.axvline(x, color="0.8", linestyle=":", zorder=0)
    ax.set(xlabel="mean false-positive regions per image", ylabel="lesion sensitivity", ylim=(0, 1.02), title=title)
    ax.set_xlim(left=0)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def overlay_figure(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """The image (rows, cols) with the outlines of the ground truth (green) and the prediction (magenta).

    ``truth``/``predicted``: (rows, cols) masks, non-zero inside (e.g. the unions of lesions / regions).
    """
    fig = disclaimer_figure(5.5, 6.0)
    ax = fig.subplots()
    ax.imshow(image, cmap="gray", interpolation="nearest")
    for mask, colour in ((truth, TRUTH_COLOUR), (predicted, PREDICTION_COLOUR)):
        if np.any(mask):
            ax.contour(np.asarray(mask) != 0, levels=[0.5], colors=[colour], linewidths=1.2)
    ax.legend(handles=[Line2D([], [], color=TRUTH_COLOUR, label="ground truth"),
                       Line2D([], [], color=PREDICTION_COLOUR, label="prediction")], loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return fig


def loss_curves_figure(metrics: pd.DataFrame) -> Figure:
    """Every logged loss per epoch (paper Figure 1): a Lightning ``metrics.csv`` as a frame.

    Columns ending in ``loss`` or ``loss_epoch`` (e.g. ``train_loss_epoch``, ``val_loss``,
    ``train_loss_mask``) are averaged per ``epoch``, ignoring NaN; ``_step`` columns are left out.
    Raises ``ValueError`` when there is no ``epoch`` column or no loss.
    """
    if "epoch" not in metrics.columns:
        raise ValueError("training metrics need an 'epoch' column")
    per_epoch = metrics.dropna(subset=["epoch"]).groupby("epoch").mean(numeric_only=True)
    columns = [c for c in per_epoch.columns if "loss" in c and not c.endswith("_step") and per_epoch[c].notna().any()]
    if not columns:
        raise ValueError(f"no loss columns in the training metrics (columns: {list(metrics.columns)})")
    fig = disclaimer_figure(6.0, 4.0)
    ax = fig.subplots()
    for column in columns:
        values = per_epoch[column].dropna()
        ax.plot(values.index.to_numpy(), values.to_numpy(), marker="o", markersize=3,
                label=column.removesuffix("_epoch"))
    ax.set(xlabel="epoch", ylabel="loss", title="Training and validation losses")
    ax.legend(fontsize=8)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return Path(path)
