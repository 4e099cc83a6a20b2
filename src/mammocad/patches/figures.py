"""Figure 9 of the paper: example patches with their labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mammocad.utils.atomic import atomic_path
from mammocad.utils.imageio import read_image


def write_examples_figure(root: Path, manifest: pd.DataFrame, per_label: int = 4, seed: int = 0) -> Path:
    """A grid with up to ``per_label`` random patches of each label (rows), saved to figures/examples.png."""
    labels = sorted(manifest["label"].unique())
    fig = Figure(figsize=(2.0 * per_label, 2.1 * len(labels) + 0.4), layout="constrained")
    axes = fig.subplots(len(labels), per_label, squeeze=False)
    rng = np.random.default_rng(seed)
    for r, label in enumerate(labels):
        rows = manifest[manifest["label"] == label]
        picked = rows.iloc[rng.permutation(len(rows))[:per_label]]
        for c in range(per_label):
            ax = axes[r][c]
            ax.set_axis_off()
            if c < len(picked):
                ax.imshow(read_image(root / picked.iloc[c]["file"]), cmap="gray")
                ax.set_title(label if c == 0 else "", fontsize=8, loc="left")
    fig.suptitle("Example patches (research software, not a medical device)", fontsize=9)
    target = root / "figures" / "examples.png"
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=80)
    return target
