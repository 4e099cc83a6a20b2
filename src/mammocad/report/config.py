"""Settings of ``mammocad reproduce`` (each a YAML key and a CLI flag): a light module, for the command line.

The runner is :mod:`mammocad.report.reproduce`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from mammocad.utils.config import check_workers


class Budget(str, enum.Enum):
    FULL = "full"
    SMOKE = "smoke"


@dataclass(frozen=True)
class ReproduceConfig:
    """Settings of ``mammocad reproduce`` (each a YAML key and a CLI flag)."""

    data: Path = field(default=Path("data"), metadata={
        "help": "dataset root (CBIS-DDSM, or any dataset an adapter reads)"})
    out: Path = field(default=Path("reproduce"), metadata={"help": "output folder (prepared data, patches, runs, report)"})
    configs: Path | None = field(default=None, metadata={
        "help": "folder of experiment configs (one YAML per table row); none: the ones shipped with mammocad "
                "(mammocad/configs/, found wherever the command runs)"})
    tables: str | None = field(default=None, metadata={"help": "paper tables to run, e.g. 3,4; none: all"})
    only: str | None = field(default=None, metadata={
        "help": "experiments to run by name (config file stem), comma separated; none: all of --tables"})
    budget: Budget = field(default=Budget.FULL, metadata={
        "help": "full: the configs as written; smoke: tiny images and epochs, finishes on a CPU"})
    dataset: str = field(default="auto", metadata={"help": "adapter: auto, cbis-ddsm or mini-mias"})
    workers: int = field(default=2, metadata={"help": "worker processes for prepare and patches"})
    seed: int = field(default=0, metadata={"help": "seed of the patch sets (experiment seeds are in their configs)"})
    data_only: bool = field(default=False, metadata={
        "help": "prepare the data and build the patch sets, run no experiment (before one job per experiment)"})
    report: bool = field(default=True, metadata={"help": "write OUT/report.html at the end"})

    def __post_init__(self) -> None:
        check_workers(self.workers)
        object.__setattr__(self, "budget", Budget(self.budget))

    def names(self, text: str | None) -> set[str] | None:
        return {item.strip() for item in text.split(",") if item.strip()} if text else None
