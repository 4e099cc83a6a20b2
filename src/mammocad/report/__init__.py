"""The report of a folder of runs (paper tables beside ours, data statistics, results, provenance) and
the experiment grid that reproduces the paper (``mammocad reproduce``).

Layer: above ``evaluate`` (it reads what evaluations wrote, and ``reproduce`` trains and
evaluates), below ``cli``. :func:`build_report` is ``mammocad report``. Research software, not a
medical device.
"""

from __future__ import annotations

from pathlib import Path

from mammocad.utils.errors import DataError


def build_report(root: str | Path, out: str | Path | None = None, title: str = "mammocad report") -> Path:
    """Write the report of everything under ``root`` to ``out`` (default ``root/report.html``); returns its path.

    DataError when ``root`` holds nothing to report (no prepared folder, patch set or evaluation).
    """
    from mammocad.report.collect import collect
    from mammocad.report.render import write_report

    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a folder")
    sections = collect(root)
    if not sections:
        raise DataError(root, "nothing to report: no prepared folder, patch set or evaluation (metrics.json) in it")
    return write_report(root, sections, Path(out) if out is not None else root / "report.html", title)
