"""The paper's Tables 11 and 12: patch counts per class and split."""

from __future__ import annotations

import pandas as pd

from mammocad.data.splits import SPLITS


def patch_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Label x split counts (splits in train/val/test order) with a ``total`` row and column."""
    table = pd.crosstab(manifest["label"], manifest["split"])
    table = table.reindex(columns=[s for s in SPLITS if s in table.columns])
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.columns.name = None
    return table
