"""Throughput of `mammocad patches` for every kind on prepared full-resolution mammograms.

A synthetic CBIS-DDSM at 4000x3000 (rows x cols, 16-bit) is generated in a separate process
and prepared at full resolution (16-bit PNG, padded to 4000x4000). Then, side by side in this
process, for 1 and N workers:

- ``read_floor``: read every prepared image and its lesion masks (what every kind must do);
- ``small``, ``large``, ``seg``, ``resize512``: the real patch job of that kind (default settings).

Printed as JSON lines: images/s, patches/s, ratio of images/s to the read floor, and the
peak memory (PSS of this process and its workers, MiB) during that variant.

    python benchmarks/bench_patches.py --patients 3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from mammocad.patches.build import PatchJob, PatchKind, build_patches, kind_config_class
from mammocad.preprocess.pipeline import PreprocessConfig
from mammocad.preprocess.prepare import PrepareJob, load_prepared, run_prepare
from mammocad.utils.imageio import read_image
from mammocad.utils.parallel import map_items

from _common import PeakMemory, machine, synthesise


def _read_image_and_masks(paths: tuple[Path, ...]) -> int:
    return sum(read_image(p).size for p in paths)


def read_floor(prepared: Path, workers: int) -> tuple[float, int, float]:
    """(seconds, images, peak MiB) to read every prepared image with its masks."""
    table, _, _ = load_prepared(prepared)
    by_image = table.abnormalities_by_image()
    items = [(Path(im.image_path), *(Path(a.roi_mask_path) for a in by_image[im.image_id] if a.roi_mask_path))
             for im in table.images]
    with PeakMemory() as peak:
        started = time.perf_counter()
        list(map_items(_read_image_and_masks, items, workers=workers, progress=False))
        elapsed = time.perf_counter() - started
    return elapsed, len(items), peak.mib


def timed_patches(prepared: Path, out: Path, kind: PatchKind, workers: int) -> tuple[float, int, int, float]:
    """(seconds, images, patches, peak MiB) of one patch job."""
    job = PatchJob(prepared=prepared, out=out, kind=kind, workers=workers, figure=False)
    with PeakMemory() as peak:
        started = time.perf_counter()
        summary = build_patches(job, kind_config_class(kind)(), progress=False)
        elapsed = time.perf_counter() - started
    if summary.failures:
        raise SystemExit(f"{kind.value} failed: {summary.failures}")
    return elapsed, summary.written, summary.patches, peak.mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=3, help="synthetic patients at 4000x3000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-patches-"))
    try:
        synthesise(work / "synth", args.patients, 4000, 3000, args.workers)
        prepared = work / "prepared"
        run_prepare(PrepareJob(source=work / "synth", out=prepared, workers=args.workers, figures=0),
                    PreprocessConfig(), progress=False)
        results: dict[tuple[str, int], list[tuple[float, int, int, float]]] = {}
        for r in range(args.repeats):  # interleaved, so drift on a shared machine hits every variant alike
            for workers in sorted({1, args.workers}):
                seconds, images, mib = read_floor(prepared, workers)
                results.setdefault(("read_floor", workers), []).append((seconds, images, 0, mib))
                for kind in PatchKind:
                    out = work / f"{kind.value}-w{workers}-r{r}"
                    results.setdefault((kind.value, workers), []).append(timed_patches(prepared, out, kind, workers))
        for (variant, workers), runs in results.items():
            seconds, images, patches, _ = min(runs)
            floor_seconds = min(results[("read_floor", workers)])[0]
            print(json.dumps({
                "benchmark": "patches", "variant": variant, "workers": workers, "images": images,
                "patches": patches, "seconds": round(seconds, 2), "images_per_s": round(images / seconds, 3),
                "patches_per_s": round(patches / seconds, 2), "ratio_to_read_floor": round(floor_seconds / seconds, 3),
                "peak_pss_mib": max(run[3] for run in runs), "machine": machine(),
                "input": "synthetic 16-bit 4000x3000, prepared at full resolution",
            }), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
