"""Breast area and lesion area kept by `preprocess` on mini-MIAS (border crop + breast mask).

For every image of a mini-MIAS folder (default ``../shared/data/mini-mias-dev``), run
``preprocess(image, lesion_masks, PreprocessConfig(**settings))`` and map every input pixel
to the output with the result's ``Geometry.to_output`` (nearest output pixel). Then:

- ``breast_kept``: of the pixels of a *reference* breast mask on the full, uncropped input,
  the fraction that lands inside the prepared breast mask (``1 - breast area lost``);
- ``lesion_kept``: per lesion mask (mini-MIAS circles as `prepare` draws them), the fraction
  of its input pixels that lands inside its prepared lesion mask (what the crop keeps);
- ``lesion_in_breast``: per lesion mask, the fraction of its input pixels that lands inside
  the prepared breast mask (lesion tissue still visible in the prepared image; circles often
  reach past the skin line, so below 1 is normal);
- ``iou_at_scale`` (with ``--scales``): the image is also shrunk by each factor (INTER_AREA)
  and prepared; its prepared breast region, mapped back to the shrunk input and enlarged
  (nearest) to full size, is compared with the full-resolution one (intersection over union):
  1.0 means the breast mask does not depend on the resolution.

The reference breast mask is defined here, independent of the code under test, so the same
script measures any version of mammocad: min-max normalise the full image, threshold at 0.1,
3x3 opening (noise), largest 8-connected component by pixel count, holes filled. It keeps
everything above threshold that touches the breast, so a label stuck on the skin line or a
film edge touching the breast counts as "breast" here: a mask that removes it loses those
pixels in this measure.

``--timing`` also times ``preprocess`` alone (default settings, best of 5, one process) on the
full-size CBIS-DDSM PNGs in ``../shared/data/cbis-ddsm/samples/full-png`` and one mini-MIAS
image, with the peak of numpy allocations during one call (``tracemalloc``; OpenCV's internal
buffers are not counted). Run it for two checkouts alternately to compare them.

Prints one JSON line per image with ``--per-image``, then one summary JSON line::

    PYTHONPATH=src python benchmarks/bench_crop_mask.py --scales 0.5 0.25
    PYTHONPATH=src python benchmarks/bench_crop_mask.py --set crop_top=0 --set crop_bottom=0

``--set KEY=VALUE`` overrides a ``PreprocessConfig`` field (VALUE parsed as YAML). Only the
public ``preprocess``/``PreprocessConfig``/``Geometry`` API is used, so the script runs against
older checkouts too (``PYTHONPATH=/tmp/before/src``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import yaml

from mammocad.data.masks import has_roi, load_roi_mask
from mammocad.data.mini_mias import load_mini_mias
from mammocad.preprocess.pipeline import PreprocessConfig, preprocess

from _common import machine

MIAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mini-mias-dev"
CBIS_PNGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cbis-ddsm" / "samples" / "full-png"


def reference_breast(image: np.ndarray) -> np.ndarray:
    """bool mask of the full image: threshold 0.1 of the min-max range, 3x3 opening, largest blob, holes filled."""
    norm = cv2.normalize(image.astype(np.float32), None, 0.0, 1.0, cv2.NORM_MINMAX)
    binary = cv2.morphologyEx((norm >= 0.1).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count < 2:
        return np.zeros(image.shape, bool)
    blob = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    # Fill holes: background reachable from outside the (1-px padded) image is not a hole.
    padded = cv2.copyMakeBorder(blob, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 2)
    return (outside[1:-1, 1:-1] != 2)


def to_output_pixels(result, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out_rows, out_cols, valid) for every input pixel, nearest output pixel."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    out_r, out_c = result.geometry.to_output(rows, cols)
    out_r, out_c = np.rint(out_r).astype(np.int64), np.rint(out_c).astype(np.int64)
    out_rows, out_cols = result.geometry.output_shape
    valid = (out_r >= 0) & (out_r < out_rows) & (out_c >= 0) & (out_c < out_cols)
    return np.clip(out_r, 0, out_rows - 1), np.clip(out_c, 0, out_cols - 1), valid


def prepared_breast(result, shape: tuple[int, int]) -> np.ndarray:
    """bool (input shape): input pixels that land inside the prepared breast mask."""
    out_r, out_c, valid = to_output_pixels(result, shape)
    return valid & (result.breast_mask[out_r, out_c] > 0)


def measure(image: np.ndarray, masks: list[np.ndarray], config: PreprocessConfig, name: str,
            scales: list[float]) -> dict:
    result = preprocess(image, masks, config, source=name)
    out_r, out_c, valid = to_output_pixels(result, image.shape)
    in_breast = valid & (result.breast_mask[out_r, out_c] > 0)
    reference = reference_breast(image)
    row = {
        "image": name,
        "breast_kept": round(float(in_breast[reference].mean()), 5),
        "reference_px": int(reference.sum()),
        "crop": [result.geometry.crop_top, result.geometry.crop_left, *result.geometry.cropped_shape],
        "lesions": [],
    }
    for k, (mask, prepared) in enumerate(zip(masks, result.masks), start=1):
        lesion = mask > 0
        kept = valid & (prepared[out_r, out_c] > 0)
        row["lesions"].append({
            "index": k, "area_px": int(lesion.sum()), "lesion_kept": round(float(kept[lesion].mean()), 5),
            "lesion_in_breast": round(float(in_breast[lesion].mean()), 5),
        })
    warnings = getattr(result, "warnings", None)
    if warnings is not None:
        row["warnings"] = list(warnings)
    rows, cols = image.shape
    row["iou_at_scale"] = {}
    for scale in scales:
        small = cv2.resize(image, (round(cols * scale), round(rows * scale)), interpolation=cv2.INTER_AREA)
        breast = prepared_breast(preprocess(small, [], config, source=f"{name} x{scale}"), small.shape)
        enlarged = cv2.resize(breast.view(np.uint8), (cols, rows), interpolation=cv2.INTER_NEAREST) > 0
        row["iou_at_scale"][str(scale)] = round(float((enlarged & in_breast).sum() / (enlarged | in_breast).sum()), 5)
    return row


def timing(mias: Path) -> dict:
    """{image: [best-of-5 seconds of preprocess, peak numpy MiB of one call]}."""
    out = {}
    for path in [*sorted(CBIS_PNGS.glob("*.png")), mias / "mdb274.pgm"]:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            preprocess(image)
            best = min(best, time.perf_counter() - started)
        tracemalloc.start()
        preprocess(image)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[f"{path.name} {image.shape[0]}x{image.shape[1]}"] = [round(best, 3), round(peak / 2**20, 1)]
    return out


def _stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 5), "worst": round(min(values), 5),
            "mean": round(statistics.fmean(values), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=MIAS, help="mini-MIAS folder (Info.txt + PGMs)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="PreprocessConfig field")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--per-image", action="store_true", help="also print one JSON line per image")
    parser.add_argument("--label", default="", help="free text copied into the summary (e.g. the commit)")
    parser.add_argument("--scales", type=float, nargs="*", default=[], help="also prepare at these scales (IoU)")
    parser.add_argument("--timing", action="store_true", help="only time preprocess on a few full-size images")
    args = parser.parse_args()
    if not (args.data / "Info.txt").is_file():
        raise SystemExit(f"{args.data} has no Info.txt (real data absent)")
    if args.timing:
        print(json.dumps({"benchmark": "preprocess_timing", "label": args.label,
                          "seconds_best_of_5_and_peak_numpy_mib": timing(args.data), "machine": machine()}))
        return
    settings = {key: yaml.safe_load(value) for key, value in (s.split("=", 1) for s in args.set)}
    config = PreprocessConfig(**settings)
    table = load_mini_mias(args.data)
    by_image = table.abnormalities_by_image()
    images = sorted(table.images, key=lambda im: im.image_id)[: args.limit]
    rows = []
    started = time.perf_counter()
    for record in images:
        image = cv2.imread(str(record.image_path), cv2.IMREAD_UNCHANGED)
        masks = [load_roi_mask(a, image.shape) for a in by_image[record.image_id] if has_roi(a)]
        row = measure(image, masks, config, record.image_id, args.scales)
        rows.append(row)
        if args.per_image:
            print(json.dumps(row), flush=True)
    elapsed = time.perf_counter() - started
    breast = [r["breast_kept"] for r in rows]
    lesions = [(r["image"], les) for r in rows for les in r["lesions"]]
    worst_breast = sorted(rows, key=lambda r: r["breast_kept"])[:5]
    summary = {
        "benchmark": "crop_mask", "label": args.label, "data": str(args.data), "settings": settings,
        "images": len(rows), "lesion_masks": len(lesions),
        "breast_kept": _stats(breast),
        "breast_lost_over_0.5pct": sum(b < 0.995 for b in breast),
        "worst_breast": [[r["image"], r["breast_kept"]] for r in worst_breast],
        "lesion_kept": _stats([les["lesion_kept"] for _, les in lesions]) if lesions else None,
        "lesion_masks_losing_area": [[name, les["index"], les["lesion_kept"]] for name, les in lesions
                                     if les["lesion_kept"] < 1.0],
        "lesion_in_breast": _stats([les["lesion_in_breast"] for _, les in lesions]) if lesions else None,
        "images_with_warnings": sum(bool(r.get("warnings")) for r in rows),
        "iou_at_scale": {str(scale): {**_stats([r["iou_at_scale"][str(scale)] for r in rows]),
                                      "worst_image": min(rows, key=lambda r: r["iou_at_scale"][str(scale)])["image"]}
                         for scale in args.scales},
        "seconds": round(elapsed, 1),
        "machine": machine(),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
