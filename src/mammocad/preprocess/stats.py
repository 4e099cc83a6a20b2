"""The paper's Table 9 for a prepared folder, counted on the split recorded in it (the one patches and training use)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mammocad.data.splits import read_split_file
from mammocad.data.stats import split_statistics
from mammocad.preprocess.prepare import load_prepared


def prepared_statistics(prepared: str | Path) -> tuple[pd.DataFrame, dict]:
    """(Table 9 as :func:`mammocad.data.stats.split_statistics` returns it, the split's ``scheme`` and ``seed``).

    The split is the one in ``prepared/splits.json``; ``"?"`` for a folder without one.
    """
    table, images, _ = load_prepared(prepared)
    split = read_split_file(Path(prepared)) or {"scheme": "?", "seed": "?"}
    return (split_statistics(table, dict(zip(images["image_id"], images["split"]))),
            {"scheme": split["scheme"], "seed": split["seed"]})
