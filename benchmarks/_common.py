"""Shared by the benchmarks: peak memory of a process tree, the machine line, synthetic data.

Peak memory is measured while a block runs (benchmarks report it beside speed).

Forked workers share the parent's pages copy-on-write, so summing their RSS would count
shared pages several times; the proportional set size (PSS: shared pages divided among the
processes that map them) sums to the real footprint. Sampled every ``interval`` seconds from
a background thread, so very short spikes can be missed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import psutil


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.mib`` = peak PSS of this process + children, MiB."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        root = psutil.Process()
        total = 0
        for proc in [root, *root.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._sample())

    @property
    def mib(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


def machine() -> str:
    """Architecture and the CPUs this process may use (the benchmarks' machine column)."""
    return f"{platform.machine()} {len(os.sched_getaffinity(0))} cpus"


def synthesise(out: Path, patients: int, rows: int, cols: int, workers: int) -> None:
    """A synthetic CBIS-DDSM in a separate process, so its memory never counts in a measurement."""
    subprocess.run([sys.executable, "-m", "mammocad.cli", "synth", str(out), "--patients", str(patients),
                    "--rows", str(rows), "--cols", str(cols), "--workers", str(workers)], check=True,
                   stdout=subprocess.DEVNULL)
