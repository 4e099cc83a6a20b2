"""What a run was made with: software versions and the machine (recorded in run files, shown in the report).

Light at import: torch and Lightning are imported inside the functions, and only when the
caller's process already uses them (a report on a laptop without a GPU still reads them back
from the run files instead).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Any

from mammocad import __version__


def software_versions() -> dict[str, str]:
    """Versions of mammocad, Python and, when importable, torch, torchvision and Lightning."""
    versions = {"mammocad": __version__, "python": platform.python_version()}
    for name, module in (("torch", "torch"), ("torchvision", "torchvision"), ("lightning", "lightning")):
        try:
            versions[name] = __import__(module).__version__
        except ImportError:
            continue
    return versions


def machine_info() -> dict[str, Any]:
    """The machine in words: OS, CPU architecture and count, and the GPUs torch sees (names only)."""
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                            "cpus": os.cpu_count()}
    torch = sys.modules.get("torch")  # only a process that already uses torch asks it about GPUs
    if torch is not None and torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def now_iso() -> str:
    """The current time, UTC, ISO 8601 to the second (``2026-11-29T10:00:00+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
