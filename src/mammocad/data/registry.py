"""Dataset adapters by name: one place to add a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mammocad.data.cbis_ddsm import csv_folder, load_cbis_ddsm, read_case_csvs
from mammocad.data.mini_mias import load_mini_mias
from mammocad.data.records import RecordTable
from mammocad.utils.errors import DataError
from mammocad.utils.parallel import Failure

Loader = Callable[..., RecordTable]

ADAPTERS: dict[str, Loader] = {
    "cbis-ddsm": lambda root, failures, workers, progress: load_cbis_ddsm(
        root, failures=failures, workers=workers, progress=progress),
    "mini-mias": lambda root, failures, workers, progress: load_mini_mias(root, failures=failures),
}


def detect_dataset(root: str | Path) -> str:
    """Guess the adapter from a folder's content: ``Info.txt`` is mini-MIAS, CSVs are CBIS-DDSM."""
    root = Path(root)
    if (root / "Info.txt").is_file():
        return "mini-mias"
    if any(root.glob("*case_description*.csv")) or any(root.glob("csv/*case_description*.csv")):
        return "cbis-ddsm"
    raise DataError(root, "cannot tell the dataset: no mini-MIAS Info.txt and no CBIS-DDSM case-description CSVs")


def load_dataset(
    root: str | Path, dataset: str = "auto", *, failures: list[Failure] | None = None, workers: int = 1,
    progress: bool = True, resolve_files: bool = True,
) -> RecordTable:
    """Records of the dataset at ``root`` (``dataset``: ``auto``, ``cbis-ddsm`` or ``mini-mias``).

    Synthetic data from ``mammocad synth`` is in CBIS-DDSM format and loads as ``cbis-ddsm``.
    ``resolve_files=False`` reads the CBIS-DDSM CSVs only (enough for statistics; the images
    need not be on disk).
    """
    name = detect_dataset(root) if dataset == "auto" else dataset
    if name not in ADAPTERS:
        raise DataError(None, f"unknown dataset {name!r}; known: {sorted(ADAPTERS)}")
    if name == "cbis-ddsm" and not resolve_files:
        return read_case_csvs(csv_folder(root))
    return ADAPTERS[name](Path(root), failures, workers, progress)
