"""``mammocad prepare``: preprocess a whole dataset into images + masks + a manifest.

Output folder layout (paths in the manifests are relative to it)::

    images/<image_id>.png            preprocessed mammogram (8- or 16-bit PNG)
    breast/<image_id>.png            breast-region mask, 0/255
    masks/<image_id>_<abn_id>.png    one lesion mask per abnormality, 0/255, aligned with the image
    done/<image_id>.json             per-image record of a finished job (makes re-runs incremental)
    figures/<image_id>.png           before/after panels for a few cases (paper Figures 4-7)
    images.csv, abnormalities.csv    manifests linking every output to its record
    failures.csv                     one line per image that could not be prepared
    prepare.yaml                     the configuration that produced the folder

Each image is one job in a worker process: read, preprocess, write every output
atomically, then write its ``done/`` record last. A crash therefore leaves no partial
outputs that look finished, and a re-run skips exactly the images whose ``done/`` record
matches the current preprocessing fingerprint (a changed setting redoes everything).
Memory per worker is one full-resolution image and its masks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are written from worker processes; never open a window

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mammocad.data.masks import has_roi, load_roi_mask  # noqa: E402
from mammocad.data.records import AbnormalityRecord, ImageRecord, RecordTable  # noqa: E402
from mammocad.data.registry import load_dataset  # noqa: E402
from mammocad.data.splits import SplitScheme, image_split  # noqa: E402
from mammocad.preprocess.figures import before_after_figure  # noqa: E402
from mammocad.preprocess.pipeline import PreprocessConfig, preprocess  # noqa: E402
from mammocad.utils.atomic import atomic_path, write_csv, write_text  # noqa: E402
from mammocad.utils.config import dump_yaml  # noqa: E402
from mammocad.utils.done import is_done, read_done, write_done  # noqa: E402
from mammocad.utils.errors import DataError  # noqa: E402
from mammocad.utils.imageio import read_image, write_png  # noqa: E402
from mammocad.utils.parallel import Failure, map_items  # noqa: E402


@dataclass(frozen=True)
class PrepareJob:
    """What to prepare and where; the image operations themselves are :class:`PreprocessConfig`."""

    source: Path = field(default=Path("."), metadata={"help": "dataset folder (CBIS-DDSM/synthetic root or mini-MIAS folder)"})
    out: Path = field(default=Path("prepared"), metadata={"help": "output folder"})
    dataset: str = field(default="auto", metadata={"help": "adapter: auto, cbis-ddsm or mini-mias"})
    split_scheme: SplitScheme = field(default=SplitScheme.OFFICIAL, metadata={"help": "patient-level split written to the manifest"})
    seed: int = field(default=0, metadata={"help": "seed of the official scheme's train/val cut"})
    workers: int = field(default=2, metadata={"help": "worker processes"})
    figures: int = field(default=4, metadata={"help": "before/after figures to write (first N images)"})
    limit: int | None = field(default=None, metadata={"help": "prepare only the first N images (smoke runs); none: all"})


@dataclass(frozen=True)
class PrepareSummary:
    out: Path
    prepared: int
    skipped: int
    failures: list[Failure]
    figures: list[Path]


def fingerprint(config: PreprocessConfig) -> str:
    """Short hash of the preprocessing settings: outputs made with other settings are redone."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _ImageJob:
    image: ImageRecord
    abnormalities: list[AbnormalityRecord]
    split: str
    out: Path
    config: PreprocessConfig
    fingerprint: str
    figure: bool


def _is_done(job: _ImageJob) -> bool:
    return is_done(job.out, job.image.image_id, job.fingerprint)


def prepare_image(job: _ImageJob) -> dict[str, Any]:
    """Preprocess one mammogram and its masks, write every output; returns its done-record.

    Raises :class:`DataError` (one line naming the file) for bad input; nothing of this
    image's done-record is written then, so a re-run retries it.
    """
    image = read_image(job.image.image_path)
    with_roi = [a for a in job.abnormalities if has_roi(a)]
    masks = [load_roi_mask(a, image.shape) for a in with_roi]
    result = preprocess(image, masks, job.config, source=str(job.image.image_path))
    image_id = job.image.image_id

    image_rel = Path("images") / f"{image_id}.png"
    breast_rel = Path("breast") / f"{image_id}.png"
    write_png(job.out / image_rel, result.image)
    write_png(job.out / breast_rel, result.breast_mask)
    abnormality_rows = []
    for abnormality, mask in zip(with_roi, result.masks):
        mask_rel = Path("masks") / f"{abnormality.key}.png"
        write_png(job.out / mask_rel, mask)
        abnormality_rows.append({"key": abnormality.key, "prepared_mask": str(mask_rel), **_bbox(mask)})
    for abnormality in job.abnormalities:
        if not has_roi(abnormality):
            abnormality_rows.append({"key": abnormality.key, "prepared_mask": None})
    if job.figure:
        _write_figure(job, image, masks, result)

    g = result.geometry
    record = {
        "image_id": image_id,
        "fingerprint": job.fingerprint,
        "image": {
            "image_id": image_id,
            "split": job.split,
            "prepared_image": str(image_rel),
            "prepared_breast": str(breast_rel),
            "rows": int(result.image.shape[0]),
            "cols": int(result.image.shape[1]),
            "input_rows": g.input_shape[0],
            "input_cols": g.input_shape[1],
            "crop_top": g.crop_top,
            "crop_left": g.crop_left,
            "cropped_rows": g.cropped_shape[0],
            "cropped_cols": g.cropped_shape[1],
            "flipped": bool(g.flipped),
            "padded_rows": g.padded_shape[0],
            "padded_cols": g.padded_shape[1],
        },
        "abnormalities": abnormality_rows,
        "warnings": list(result.warnings),  # one line each, e.g. a lesion mask cut by the border crop
        "outputs": [str(image_rel), str(breast_rel)] + [r["prepared_mask"] for r in abnormality_rows if r["prepared_mask"]],
    }
    write_done(job.out, image_id, record)  # last: marks the image as finished
    return record


def _bbox(mask: np.ndarray) -> dict[str, int]:
    """Bounding box of a 0/255 mask in output pixels: rows [row0, row1), cols [col0, col1)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return {"row0": -1, "col0": -1, "row1": -1, "col1": -1, "area_px": 0}
    return {
        "row0": int(rows[0]), "col0": int(cols[0]), "row1": int(rows[-1]) + 1, "col1": int(cols[-1]) + 1,
        "area_px": int(np.count_nonzero(mask)),
    }


def _write_figure(job: _ImageJob, image: np.ndarray, masks: list[np.ndarray], result) -> None:
    fig = before_after_figure(image, masks, result, title=f"{job.image.image_id} (research use only)")
    with atomic_path(job.out / "figures" / f"{job.image.image_id}.png") as tmp:
        fig.savefig(tmp, dpi=100)


def _write_manifests(out: Path, table: RecordTable, finished: list[str]) -> None:
    """images.csv / abnormalities.csv: the records joined with what prepare wrote for them."""
    done = {image_id: read_done(out, image_id) for image_id in finished}
    images = table.subset(finished)
    image_frame = images.images_frame().merge(
        pd.DataFrame([d["image"] for d in done.values()]), on="image_id", how="inner", validate="one_to_one"
    )
    abn_frame = images.abnormalities_frame()
    abn_frame["key"] = abn_frame["image_id"] + "_" + abn_frame["abnormality_id"].astype(str)
    prepared = pd.DataFrame([row for d in done.values() for row in d["abnormalities"]])
    if prepared.empty:
        prepared = pd.DataFrame(columns=["key", "prepared_mask"])
    abn_frame = abn_frame.merge(prepared, on="key", how="left", validate="one_to_one")
    abn_frame["split"] = abn_frame["image_id"].map(dict(zip(image_frame["image_id"], image_frame["split"])))
    write_csv(out / "images.csv", image_frame)
    write_csv(out / "abnormalities.csv", abn_frame)


def run_prepare(job: PrepareJob, config: PreprocessConfig, *, progress: bool = True) -> PrepareSummary:
    """Prepare every image of ``job.source`` into ``job.out`` (incremental, parallel)."""
    failures: list[Failure] = []
    table = load_dataset(job.source, job.dataset, failures=failures, workers=job.workers, progress=progress)
    if job.limit is not None:
        table = table.subset([im.image_id for im in table.images[: job.limit]])
    split_of = image_split(table, job.split_scheme, seed=job.seed)
    return prepare_table(table, split_of, job, config, failures=failures, progress=progress)


def prepare_table(
    table: RecordTable, split_of: dict[str, str], job: PrepareJob, config: PreprocessConfig, *,
    failures: list[Failure] | None = None, progress: bool = True,
) -> PrepareSummary:
    """Prepare the images of an already loaded record table (``job.source`` is not read)."""
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = failures if failures is not None else []
    fp = fingerprint(config)
    by_image = table.abnormalities_by_image()
    figure_ids = {im.image_id for im in sorted(table.images, key=lambda im: im.image_id)[: job.figures]}
    jobs = [
        _ImageJob(im, by_image[im.image_id], split_of[im.image_id], out, config, fp, im.image_id in figure_ids)
        for im in table.images
    ]
    todo = [j for j in jobs if not _is_done(j)]
    finished = {j.image.image_id for j in jobs} - {j.image.image_id for j in todo}
    prepared = 0
    for record in map_items(
        prepare_image, todo, workers=job.workers, name=lambda j: j.image.image_id, desc="prepare", failures=failures,
        progress=progress,
    ):
        finished.add(record["image_id"])
        prepared += 1
    _write_manifests(out, table, [im.image_id for im in table.images if im.image_id in finished])
    write_csv(out / "failures.csv", pd.DataFrame(
        [dataclasses.asdict(f) for f in failures], columns=["item", "path", "problem"]
    ))
    write_text(out / "prepare.yaml", dump_yaml(job, config))
    figures = sorted((out / "figures").glob("*.png"))
    return PrepareSummary(out, prepared, len(jobs) - len(todo), failures, figures)


def load_prepared(out: str | Path) -> tuple[RecordTable, pd.DataFrame, pd.DataFrame]:
    """Read a prepared folder back: (records pointing at the prepared files, images.csv, abnormalities.csv).

    In the returned table ``image_path`` is the preprocessed image and ``roi_mask_path`` the
    aligned lesion mask (``None`` where the abnormality has no outline).
    """
    out = Path(out)
    for name in ("images.csv", "abnormalities.csv"):
        if not (out / name).is_file():
            raise DataError(out / name, "not a prepared folder (run `mammocad prepare` first)")
    images = pd.read_csv(out / "images.csv")
    abnormalities = pd.read_csv(out / "abnormalities.csv")
    im = images.copy()
    im["image_path"] = [str(out / p) for p in im["prepared_image"]]
    ab = abnormalities.copy()
    ab["roi_mask_path"] = [str(out / p) if isinstance(p, str) else None for p in ab["prepared_mask"]]
    ab["crop_path"] = None
    # Circles described the original image; the prepared mask file replaces them.
    ab[["roi_row", "roi_col", "roi_radius"]] = None
    return RecordTable.from_frames(im, ab), images, abnormalities
