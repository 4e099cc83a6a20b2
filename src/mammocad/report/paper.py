"""The paper's reference numbers (``paper.yaml``, shipped with the package) and their comparison with ours."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

MEASURE_LABELS = {"accuracy": "ACC", "auc": "AUC", "average_dice": "average Dice", "max_dice": "max Dice"}


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper: ``rows`` maps a row id to its label and the paper's values (absent: not recorded)."""

    key: str
    title: str
    kind: str
    measures: tuple[str, ...]
    rows: dict[str, dict[str, Any]]

    def label(self, row: str) -> str:
        return self.rows.get(row, {}).get("label", row)

    def value(self, row: str, measure: str) -> float | None:
        """The paper's number for ``row``/``measure``, or None when it is not recorded."""
        return (self.rows.get(row, {}).get("paper") or {}).get(measure)


@dataclass(frozen=True)
class Paper:
    source: str
    tables: dict[str, PaperTable]


@cache
def load_paper() -> Paper:
    """``mammocad/report/paper.yaml``: the one file holding the paper's numbers."""
    raw = yaml.safe_load(resources.files("mammocad.report").joinpath("paper.yaml").read_text())
    tables = {str(key): PaperTable(str(key), t["title"], t["kind"], tuple(t["measures"]), t["rows"])
              for key, t in raw["tables"].items()}
    return Paper(raw["source"], tables)
