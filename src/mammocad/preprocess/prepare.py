"""``mammocad prepare``: preprocess a whole dataset into images + masks + a manifest.

Output folder layout (paths in the manifests are relative to it)::

    images/<image_id>.png            preprocessed mammogram (8- or 16-bit PNG)
    breast/<image_id>.png            breast-region mask, 0/255
    masks/<image_id>_<abn_id>.png    one lesion mask per abnormality, 0/255, aligned with the image
    done/<image_id>.json             per-image record of a finished job (makes re-runs incremental)
    figures/<image_id>.png           before/after panels for a few cases (paper Figures 4-7)
    images.csv, abnormalities.csv    manifests linking every output to its record (with its split and
                                     the fingerprint of the image's outputs)
    splits.json                      the patient-level split, decided on the first run (`mammocad split`
                                     changes it explicitly)
    failures.csv                     one line per image that could not be prepared
    warnings.csv                     prepared images with something to check (e.g. a lesion mask mostly outside the breast)
    prepare.yaml                     the configuration that produced the folder
    stage.json                       the folder's fingerprint and the source it was built from

A stage of :mod:`mammocad.utils.stage`: each image is one job in a worker process (read,
preprocess, write every output atomically, then its ``done/`` record last). An image's
fingerprint covers the preprocessing settings, its records and its input files' size and
modification time, so a re-run redoes exactly the images whose settings or inputs changed.
Memory per worker is one full-resolution image and its masks.
"""

from __future__ import annotations

import dataclasses
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
from mammocad.data.splits import SplitScheme, decide_split, images_split, write_split_file  # noqa: E402
from mammocad.preprocess.figures import before_after_figure  # noqa: E402
from mammocad.preprocess.config import PrepareJob, PreprocessConfig  # noqa: E402
from mammocad.preprocess.pipeline import Geometry, preprocess  # noqa: E402
from mammocad.utils.atomic import atomic_path, check_output_folder, write_csv, write_text  # noqa: E402
from mammocad.utils.config import dump_yaml  # noqa: E402
from mammocad.utils.errors import DataError  # noqa: E402
from mammocad.utils.imageio import read_image, write_png  # noqa: E402
from mammocad.utils.geometry import mask_box  # noqa: E402
from mammocad.utils.parallel import Failure  # noqa: E402
from mammocad.utils.stage import (  # noqa: E402
    StageItem,
    fingerprint,
    read_stage,
    run_stage,
    write_reports,
    write_stage,
)


@dataclass(frozen=True)
class PrepareSummary:
    out: Path
    prepared: int
    skipped: int
    failures: list[Failure]
    figures: list[Path]
    warnings: list[Failure] = field(default_factory=list)
    new_patients: int = 0  # patients added to an existing split (a dataset that grew)


STAGE = "prepare"


@dataclass(frozen=True)
class _ImageJob:
    image: ImageRecord
    abnormalities: list[AbnormalityRecord]
    out: Path
    config: PreprocessConfig
    figure: bool


def _file_stamp(path: Path | str | None) -> list | None:
    """(size, mtime) of an input file: a replaced or edited file changes the item's fingerprint."""
    if path is None:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return None  # missing: reading it fails and reports the item
    return [stat.st_size, stat.st_mtime_ns]


def _item_fingerprint(job: _ImageJob, settings: str) -> str:
    """What an image's outputs depend on: the settings, its records and its input files."""
    inputs = [job.image.image_path] + [a.roi_mask_path for a in job.abnormalities]
    return fingerprint([STAGE, settings, dataclasses.asdict(job.image), [dataclasses.asdict(a) for a in job.abnormalities],
                        [_file_stamp(p) for p in inputs]])


def prepare_image(job: _ImageJob) -> dict[str, Any]:
    """Preprocess one mammogram and its masks, write every output; returns its done-record.

    Raises :class:`DataError` (one line naming the file) for bad input; the stage runner then
    writes no done-record, so a re-run retries it.
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
        abnormality_rows.append({"key": abnormality.key, "prepared_mask": str(mask_rel), **_box_columns(mask)})
    for abnormality in job.abnormalities:
        if not has_roi(abnormality):
            abnormality_rows.append({"key": abnormality.key, "prepared_mask": None})
    if job.figure:
        _write_figure(job, image, masks, result)

    g = result.geometry
    record = {
        "image": {
            "image_id": image_id,
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
        "warnings": list(result.warnings),  # one line each, e.g. a lesion mask mostly outside the breast
        "outputs": [str(image_rel), str(breast_rel)] + [r["prepared_mask"] for r in abnormality_rows if r["prepared_mask"]],
    }
    return record


def _box_columns(mask: np.ndarray) -> dict[str, int]:
    """The manifest's box of a 0/255 mask, output pixels: rows [row0, row1), cols [col0, col1), and its area."""
    box = mask_box(mask)
    if box is None:
        return {"row0": -1, "col0": -1, "row1": -1, "col1": -1, "area_px": 0}
    return {**box._asdict(), "area_px": int(np.count_nonzero(mask))}


def _write_figure(job: _ImageJob, image: np.ndarray, masks: list[np.ndarray], result) -> None:
    fig = before_after_figure(image, masks, result, title=f"{job.image.image_id} (research use only)")
    with atomic_path(job.out / "figures" / f"{job.image.image_id}.png") as tmp:
        fig.savefig(tmp, dpi=100)


def _write_manifests(out: Path, table: RecordTable, records: list[dict[str, Any]], split_of: dict[str, str]) -> None:
    """images.csv / abnormalities.csv: the records joined with what prepare wrote for them."""
    images = table.subset([r["id"] for r in records])
    done = pd.DataFrame([{**r["image"], "fingerprint": r["fingerprint"], "split": split_of[r["id"]]} for r in records])
    image_frame = images.images_frame().merge(done, on="image_id", how="inner", validate="one_to_one")
    abn_frame = images.abnormalities_frame()
    abn_frame["key"] = abn_frame["image_id"] + "_" + abn_frame["abnormality_id"].astype(str)
    prepared = pd.DataFrame([row for r in records for row in r["abnormalities"]])
    if prepared.empty:
        prepared = pd.DataFrame(columns=["key", "prepared_mask"])
    abn_frame = abn_frame.merge(prepared, on="key", how="left", validate="one_to_one")
    abn_frame["split"] = abn_frame["image_id"].map(split_of)
    write_csv(out / "images.csv", image_frame)
    write_csv(out / "abnormalities.csv", abn_frame)


def run_prepare(job: PrepareJob, config: PreprocessConfig, *, progress: bool = True) -> PrepareSummary:
    """Prepare every image of ``job.source`` into ``job.out`` (incremental, parallel)."""
    check_output_folder(Path(job.out))
    if not Path(job.source).is_dir():
        raise DataError(job.source, "not a folder (expected a CBIS-DDSM root or a mini-MIAS folder)")
    failures: list[Failure] = []
    table = load_dataset(job.source, job.dataset, failures=failures, workers=job.workers, progress=progress)
    if job.limit is not None:
        table = table.subset([im.image_id for im in table.images[: job.limit]])
    return prepare_table(table, job, config, failures=failures, progress=progress)


def prepare_table(
    table: RecordTable, job: PrepareJob, config: PreprocessConfig, *,
    failures: list[Failure] | None = None, progress: bool = True,
) -> PrepareSummary:
    """Prepare the images of an already loaded record table (``job.source`` is not read).

    The split is decided once per output folder (``splits.json``, see
    :func:`mammocad.data.splits.decide_split`). When no image at all could be prepared the
    summary has ``prepared == skipped == 0`` and no output folder is left behind.
    """
    out = Path(job.out)
    split, new_patients = decide_split(out, table, job.split_scheme, job.seed)
    settings = fingerprint(dataclasses.asdict(config))
    by_image = table.abnormalities_by_image()
    figure_ids = {im.image_id for im in sorted(table.images, key=lambda im: im.image_id)[: job.figures]}
    items = []
    for im in table.images:
        work = _ImageJob(im, by_image[im.image_id], out, config, im.image_id in figure_ids)
        items.append(StageItem(im.image_id, _item_fingerprint(work, settings), work))
    run = run_stage(out, items, prepare_image, workers=job.workers, desc="prepare", progress=progress,
                    failures=failures)
    if run.records:
        split_of = images_split(table, split)
        _write_manifests(out, table, run.records, split_of)
        write_split_file(out, split)
        write_text(out / "prepare.yaml", dump_yaml(job, config))
        write_reports(out, run)
        finished = {r["id"] for r in run.records}
        done_items = [i for i in items if i.id in finished]
        write_stage(out, STAGE, {"preprocess": dataclasses.asdict(config), "split": _split_settings(split)},
                    Path(job.source) if job.source else None, fingerprint(table.images_frame().to_csv()), done_items)
    figures = sorted((out / "figures").glob("*.png"))
    return PrepareSummary(out, run.done_now, run.skipped, run.failures, figures, run.warnings, len(new_patients))


def _split_settings(split: dict) -> dict:
    return {"scheme": split["scheme"], "seed": split["seed"], "fingerprint": fingerprint(split["patients"])}


def resplit(prepared: Path, scheme: SplitScheme | str, seed: int = 0) -> dict[str, int]:
    """Re-decide the split of a prepared folder (the explicit way to change it); patients per split.

    Rewrites ``splits.json``, the split columns of images.csv / abnormalities.csv and the
    folder's fingerprint, so patch sets built from it are redone by their next ``patches`` run.
    """
    stage = read_stage(prepared)
    if stage is None or stage.get("stage") != STAGE:
        raise DataError(prepared, "not a finished prepared folder (run `mammocad prepare` first)")
    table, images, abnormalities = load_prepared(prepared)
    split, _ = decide_split(prepared, table, scheme, seed, resplit=True)
    split_of = images_split(table, split)
    images["split"] = images["image_id"].map(split_of)
    abnormalities["split"] = abnormalities["image_id"].map(split_of)
    write_csv(prepared / "images.csv", images)
    write_csv(prepared / "abnormalities.csv", abnormalities)
    write_split_file(prepared, split)
    settings = {**stage["settings"], "split": _split_settings(split)}
    items = [StageItem(i, fp, None) for i, fp in zip(images["image_id"], images["fingerprint"])]
    upstream = stage.get("upstream") or {}
    write_stage(prepared, STAGE, settings, upstream.get("path"), upstream.get("fingerprint"), items)
    return pd.Series(list(split["patients"].values())).value_counts().to_dict()


def geometry_from_row(row: dict[str, Any]) -> Geometry:
    """The :class:`Geometry` of a prepared image from its images.csv row."""
    def pair(a: str, b: str) -> tuple[int, int]:
        return int(row[a]), int(row[b])

    return Geometry(input_shape=pair("input_rows", "input_cols"), crop_top=int(row["crop_top"]),
                    crop_left=int(row["crop_left"]), cropped_shape=pair("cropped_rows", "cropped_cols"),
                    flipped=bool(row["flipped"]), padded_shape=pair("padded_rows", "padded_cols"),
                    output_shape=pair("rows", "cols"))


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
