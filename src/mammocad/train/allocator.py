"""Keep freed memory in the process while training on the CPU (glibc ``mallopt``), scoped to a block.

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` when freed. A training step allocates and frees the same
activation tensors every step, so the kernel maps and zero-fills them again page by page. On the
2-core development VM a bare float32 MobileNetV2 loop (224 px, batch 32) took 0.26-1.36 million
minor page faults per step, a few thousand with freed memory kept; under bf16 the largest
activations (77 MB) still cross the threshold (benchmarks/RESULTS.md, bench_train.py).
Launchers such as ``torch.backends.xeon.run_cpu`` reach the same end by preloading jemalloc or
tcmalloc; this needs no extra library and no restart.

``keep_freed_memory()`` sets ``M_MMAP_MAX = 0`` (no mmap for allocations: all come from the
heap) and a trim threshold of -1 (trimming off: freed heap memory is not returned to the OS) for the
duration of the block. Cost: the process holds its peak heap (about one training step's working
set) until the block ends. On exit it hands the free heap memory back (``malloc_trim(0)``) and
restores mmap (``M_MMAP_MAX`` 65536, glibc's default) with a 32 MiB mmap threshold and 64 MiB
trim threshold: glibc cannot switch its dynamic thresholds back on once they are set, and these
are the values the dynamic scheme reaches once a 32 MiB block has been freed, the closest to
its defaults. Free blocks left inside the heap stay reusable address space (as with any glibc
heap), so a later allocation that fits one is served from it rather than from mmap.

Elsewhere than Linux with glibc the block does nothing (``enabled`` is False inside it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

KEEP = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: -1}  # -1: never trim (mallopt(3))
RESTORE = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _mallopt(libc: ctypes.CDLL, settings: dict[int, int]) -> bool:
    return all(libc.mallopt(param, value) == 1 for param, value in settings.items())


@contextmanager
def keep_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Within the block, freed memory stays in the process (see the module docstring).

    Yields whether the setting took effect (False when ``enabled`` is False or the C library is
    not glibc).
    """
    libc = _glibc() if enabled else None
    active = libc is not None and _mallopt(libc, KEEP)
    try:
        yield active
    finally:
        if active:
            _mallopt(libc, RESTORE)
            libc.malloc_trim(0)
