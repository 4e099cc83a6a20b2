"""Throughput of `mammocad prepare` on full-resolution mammograms, with peak memory.

Two inputs: synthetic 16-bit 4000x3000 CBIS-DDSM DICOMs (generated here, with masks), and the
real full-size 8-bit PNGs in ../shared/data/cbis-ddsm/samples/full-png (no masks; skipped when
absent). For each, three runs side by side in this process:

- ``io_floor``: read every image and write it back as PNG (no preprocessing) — the baseline;
- ``prepare_w1``: the real per-image job with 1 worker;
- ``prepare_wN``: the same with N worker processes.

Printed as JSON lines: images/s, ratio to the I/O floor, and the peak memory (PSS of this
process and its workers, MiB) during that variant. The synthetic data is generated in a
separate process first, so its memory is not counted. Ratios are the comparable figure;
absolute times on a shared machine are noisy.

    python benchmarks/bench_prepare.py --patients 3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from mammocad.data.cbis_ddsm import load_cbis_ddsm
from mammocad.data.records import ImageRecord, Laterality, RecordTable, View
from mammocad.preprocess.pipeline import PreprocessConfig
from mammocad.preprocess.prepare import PrepareJob, prepare_table
from mammocad.utils.imageio import read_image, write_png
from mammocad.utils.parallel import map_items

from _common import PeakMemory, machine, synthesise

REAL_PNGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cbis-ddsm" / "samples" / "full-png"


def _copy_image(args: tuple[Path, Path]) -> None:
    source, target = args
    write_png(target, read_image(source))


def io_floor(table: RecordTable, out: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak MiB) to read every image and write it back as PNG."""
    items = [(im.image_path, out / f"{im.image_id}.png") for im in table.images]
    with PeakMemory() as peak:
        started = time.perf_counter()
        list(map_items(_copy_image, items, workers=workers, progress=False))
        elapsed = time.perf_counter() - started
    return elapsed, peak.mib


def timed_prepare(table: RecordTable, out: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak MiB) of the real prepare job."""
    with PeakMemory() as peak:
        started = time.perf_counter()
        summary = prepare_table(table, PrepareJob(out=out, workers=workers, figures=0, split_scheme="tfds"),
                                PreprocessConfig(), progress=False)
        elapsed = time.perf_counter() - started
    if summary.failures:
        raise SystemExit(f"prepare failed: {summary.failures}")
    return elapsed, peak.mib


def real_png_table() -> RecordTable | None:
    pngs = sorted(REAL_PNGS.glob("*.png"))
    if not pngs:
        return None
    images = []
    for p in pngs:  # e.g. Mass-Test_P_00016_LEFT_CC_FULL.png
        parts = p.stem.split("_")
        images.append(ImageRecord(p.stem, "cbis-ddsm", f"P_{parts[2]}", Laterality(parts[3]), View(parts[4]), p, "test"))
    return RecordTable(images, [])


def bench(name: str, table: RecordTable, workers: int, work: Path, repeats: int) -> None:
    results = {"io_floor": [], "prepare_w1": [], f"prepare_w{workers}": []}
    for r in range(repeats):  # interleaved, so drift on a shared machine hits every variant alike
        results["io_floor"].append(io_floor(table, work / f"io{r}", workers=1))
        results["prepare_w1"].append(timed_prepare(table, work / f"w1_{r}", workers=1))
        results[f"prepare_w{workers}"].append(timed_prepare(table, work / f"wN_{r}", workers=workers))
    n = len(table.images)
    best = {k: min(v) for k, v in results.items()}
    for variant, (seconds, _) in best.items():
        print(json.dumps({
            "benchmark": "prepare", "input": name, "variant": variant, "images": n,
            "images_per_s": round(n / seconds, 3), "seconds": round(seconds, 2),
            "ratio_to_io_floor": round(best["io_floor"][0] / seconds, 3),
            "peak_pss_mib": max(mib for _, mib in results[variant]),
            "machine": machine(),
        }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=3, help="synthetic patients at 4000x3000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        synth = work / "synth"
        synthesise(synth, args.patients, 4000, 3000, args.workers)
        table = load_cbis_ddsm(synth, progress=False)
        bench("synthetic 16-bit DICOM 4000x3000", table, args.workers, work / "s", args.repeats)
        real = real_png_table()
        if real is not None:
            bench("real CBIS-DDSM 8-bit PNG (full-png samples)", real, args.workers, work / "r", args.repeats)
        else:
            print(json.dumps({"benchmark": "prepare", "skipped": f"{REAL_PNGS} absent"}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
