"""``mammocad patches``: extract a patch set from a prepared folder, in parallel and incrementally.

Per source image, one job in a worker process reads the prepared image and its lesion masks,
calls a pure extractor (:mod:`small_context`, :mod:`large_context`, :mod:`segmentation`),
writes every patch atomically and finally its ``done/<image_id>.json`` record. A re-run skips
images whose record matches the current settings. Randomness comes from a generator seeded
by ``(seed, image_id)``, so the output is the same whatever the order or number of workers.

Segmentation tiles need one step across images: the 50/25/25 sampling is done per
sub-dataset (e.g. ``calcification-train``), so a first pass collects tile positions (no
pixels), the sampler picks positions, and a second pass writes only the picked tiles.

Splits are the prepared folder's (its ``splits.json``, decided once by ``prepare``), so every
patch inherits its patient's split and no patient's patches fall in two splits. The stage runner
(:mod:`mammocad.utils.stage`) makes it incremental: an image's fingerprint covers the patch
settings and the fingerprint of its prepared outputs, so re-preparing an image (or the whole
folder with other settings) redoes exactly its patches, and ``stage.json`` records the prepared
folder's fingerprint for :func:`mammocad.utils.stage.check_fresh`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mammocad.data.records import AbnormalityRecord, ImageRecord
from mammocad.patches import segmentation
from mammocad.patches.config import PatchJob, PatchKind, TileConfig, kind_config_class
from mammocad.patches.large_context import large_context_patches
from mammocad.patches.small_context import small_context_patches
from mammocad.patches.store import COLUMNS, MANIFEST, write_patch
from mammocad.patches.types import LesionMask, Patch
from mammocad.preprocess.pipeline import Geometry, original_frame
from mammocad.preprocess.prepare import STAGE as PREPARE_STAGE
from mammocad.preprocess.prepare import geometry_from_row, load_prepared
from mammocad.utils.atomic import check_output_folder, write_csv, write_text
from mammocad.utils.config import dump_yaml
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import read_image
from mammocad.utils.parallel import Failure, map_items
from mammocad.utils.seeding import generator
from mammocad.utils.stage import (
    StageItem,
    fingerprint,
    run_stage,
    stage_fingerprint,
    write_reports,
    write_stage,
)

STAGE = "patches"


@dataclass(frozen=True)
class PatchSummary:
    out: Path
    written: int
    skipped: int
    patches: int
    failures: list[Failure]
    warnings: list[Failure] = field(default_factory=list)


def patch_label(abnormality: AbnormalityRecord) -> str:
    """``MALIGNANT_MASS``, ``BENIGN_CALCIFICATION``, ... (BENIGN_WITHOUT_CALLBACK is benign).

    Other types (mini-MIAS) follow the same pattern: ``BENIGN_ARCHITECTURAL_DISTORTION``.
    """
    severity = "MALIGNANT" if abnormality.pathology.is_malignant else "BENIGN"
    return f"{severity}_{abnormality.abnormality_type.value.upper()}"


@dataclass(frozen=True)
class _Work:
    image: ImageRecord
    abnormalities: tuple[AbnormalityRecord, ...]
    breast_path: Path
    geometry: Geometry  # how the prepared image relates to the original mammogram
    prepared_fingerprint: str  # of the image's prepared outputs (images.csv)
    out: Path
    kind: PatchKind
    config: Any
    seed: int
    chosen: tuple[tuple[int, int], ...] | None = None  # seg: the sampled tile positions (row, col)


def _lesions(work: _Work, shape: tuple[int, int]) -> list[LesionMask]:
    lesions = []
    for a in work.abnormalities:
        if a.roi_mask_path is None:
            continue
        mask = read_image(a.roi_mask_path)
        if mask.shape != shape:
            raise DataError(a.roi_mask_path, f"mask {mask.shape} does not match its prepared image {shape}")
        lesions.append(LesionMask(a.key, patch_label(a), mask))
    return lesions


def _has_unlocated_lesion(work: _Work) -> bool:
    # A lesion without an outline (mini-MIAS rows without a centre) could sit under any
    # background tile, so such images give no background/normal samples.
    return any(a.roi_mask_path is None for a in work.abnormalities)


def _extract(work: _Work) -> list[tuple[str, Patch]]:
    """(patch_id, patch) pairs of one image for the work's kind."""
    image = read_image(work.image.image_path)
    lesions = _lesions(work, image.shape)
    source = str(work.image.image_path)
    image_id = work.image.image_id
    if work.kind is PatchKind.SMALL:
        # The TFDS builder resizes the ORIGINAL mammogram to its grid: undo the square padding (and
        # put back the cropped border as blank) so a patch covers the builder's amount of tissue.
        image = original_frame(image, work.geometry)
        lesions = [LesionMask(lesion.key, lesion.label, original_frame(lesion.mask, work.geometry))
                   for lesion in lesions]
        patches = small_context_patches(image, lesions, generator(work.seed, image_id), work.config, source=source)
        if _has_unlocated_lesion(work):
            patches = [p for p in patches if p.abnormality is not None]
        counters: dict[str, int] = {}
        named = []
        for p in patches:
            owner = p.abnormality or f"{image_id}_bg"  # e.g. Calc-Test_P_00038_LEFT_CC_1_3 or ..._bg_3
            counters[owner] = counters.get(owner, -1) + 1
            named.append((f"{owner}_{counters[owner]}", p))
        return named
    if work.kind is PatchKind.LARGE:
        return [(f"{p.abnormality}_large", p) for p in large_context_patches(image, lesions, work.config, source=source)]
    if work.kind is PatchKind.RESIZE512:
        patch = segmentation.resize_with_instances(image, lesions, size=work.config.size, source=source)
        return [(f"{image_id}_{work.config.size}", patch)]
    breast = read_image(work.breast_path)
    return [
        (f"{image_id}_r{row}_c{col}", segmentation.make_tile(image, breast, lesions, row, col, work.config))
        for row, col in work.chosen or ()
    ]


def _item_fingerprint(work: _Work) -> str:
    """What an image's patches depend on: kind, settings, seed, its prepared outputs and (seg) the tiles chosen."""
    return fingerprint([STAGE, work.kind.value, dataclasses.asdict(work.config), work.seed, work.prepared_fingerprint,
                        None if work.chosen is None else list(work.chosen)])


def extract_image(work: _Work) -> dict[str, Any]:
    """Extract and write one image's patches; returns the done-record: their manifest rows and files."""
    context = {
        "kind": work.kind.value,
        "image_id": work.image.image_id,
        "patient_id": work.image.patient_id,
        "source": str(work.image.image_path),
    }
    by_key = {a.key: a for a in work.abnormalities}
    rows = []
    for patch_id, patch in _extract(work):
        a = by_key.get(patch.abnormality) if patch.abnormality else None
        row_context = {
            **context,
            "abnormality_type": a.abnormality_type.value if a else None,
            "pathology": a.pathology.value if a else None,
            "instance_labels": json.dumps([patch_label(by_key[k]) for k in patch.instance_keys]),
        }
        rows.append(write_patch(work.out, patch_id, patch, row_context))
    outputs = [row["file"] for row in rows] + [m for row in rows for m in json.loads(row["masks"])]
    return {"rows": rows, "outputs": outputs}


def tile_candidates(work: _Work) -> tuple[str, list[tuple[int, int, str]]]:
    """Pass 1 of ``seg``: (image_id, [(row, col, category), ...]) without reading tile pixels."""
    image = read_image(work.image.image_path)
    breast = read_image(work.breast_path)
    lesions = _lesions(work, image.shape)
    positions = segmentation.tile_positions(breast, lesions, work.config, source=str(work.image.image_path))
    if _has_unlocated_lesion(work):
        positions = [p for p in positions if p[2] == "lesion"]
    return work.image.image_id, positions


def _sub_dataset(image: ImageRecord, abnormalities: tuple[AbnormalityRecord, ...], split: str) -> str:
    """The paper samples tiles per sub-dataset: calc-train, calc-test, mass-train, mass-test.

    Images without abnormalities (mini-MIAS normals) form ``normal-<split>``, which has no lesion
    tiles, so the 50/25/25 rule takes no tile from them (CBIS-DDSM has no such images).
    """
    types = sorted({a.abnormality_type.value for a in abnormalities}) or ["normal"]
    return f"{'+'.join(types)}-{split}"


def _sample_seg(works: list[_Work], split_of: dict[str, str], job: PatchJob, config: TileConfig,
                failures: list[Failure], progress: bool) -> list[_Work]:
    candidates: dict[str, dict[str, list[tuple[str, int, int]]]] = {}
    by_id = {w.image.image_id: w for w in works}
    for image_id, positions in map_items(
        tile_candidates, works, workers=job.workers, name=lambda w: w.image.image_id, desc="tile positions",
        failures=failures, progress=progress,
    ):
        w = by_id[image_id]
        group = candidates.setdefault(_sub_dataset(w.image, w.abnormalities, split_of[image_id]), {})
        for row, col, category in positions:
            group.setdefault(category, []).append((image_id, row, col))
    chosen: dict[str, list[tuple[int, int]]] = {}
    for name in sorted(candidates):
        rng = generator(job.seed, name)
        for image_id, row, col in segmentation.sample_tiles(candidates[name], rng, config):
            chosen.setdefault(image_id, []).append((row, col))
    return [dataclasses.replace(w, chosen=tuple(sorted(chosen[w.image.image_id])))
            for w in works if w.image.image_id in chosen]


def build_patches(job: PatchJob, config: Any, *, progress: bool = True) -> PatchSummary:
    """Build the ``job.kind`` patch set of ``job.prepared`` into ``job.out`` with ``config``.

    Raises :class:`DataError` when ``job.prepared`` is not a finished prepared folder or
    ``job.out`` is a file. When no image at all yields patches, the summary has
    ``written == skipped == 0`` and no output folder is left behind.
    """
    kind = PatchKind(job.kind)
    expected = kind_config_class(kind)
    if not isinstance(config, expected):
        raise TypeError(f"{kind.value} patches need a {expected.__name__}, got {type(config).__name__}")
    out = Path(job.out)
    check_output_folder(out)
    prepared_fingerprint = stage_fingerprint(Path(job.prepared), PREPARE_STAGE,
                                             f"mammocad prepare --out {job.prepared}")
    table, images_frame, _ = load_prepared(job.prepared)
    split_of = dict(zip(images_frame["image_id"], images_frame["split"]))
    by_image = table.abnormalities_by_image()
    rows_of = {row["image_id"]: row for row in images_frame.to_dict("records")}
    works = [
        _Work(im, tuple(by_image[im.image_id]), Path(job.prepared) / rows_of[im.image_id]["prepared_breast"],
              geometry_from_row(rows_of[im.image_id]), rows_of[im.image_id]["fingerprint"], out, kind, config, job.seed)
        for im in table.images
    ]
    failures: list[Failure] = []
    if kind is PatchKind.SEG:
        works = _sample_seg(works, split_of, job, config, failures, progress)
    items = [StageItem(w.image.image_id, _item_fingerprint(w), w) for w in works]
    run = run_stage(out, items, extract_image, workers=job.workers, desc=f"{kind.value} patches",
                    progress=progress, failures=failures)
    manifest = pd.DataFrame([{**row, "split": split_of[r["id"]]} for r in run.records for row in r["rows"]],
                            columns=COLUMNS)
    if run.records:
        write_csv(out / MANIFEST, manifest)
        write_text(out / "patches.yaml", dump_yaml(job, config))
        write_reports(out, run)
        if job.figure and len(manifest):
            from mammocad.patches.figures import write_examples_figure

            write_examples_figure(out, manifest)
        finished = {r["id"] for r in run.records}
        write_stage(out, STAGE, {"kind": kind.value, "config": dataclasses.asdict(config), "seed": job.seed},
                    Path(job.prepared), prepared_fingerprint, [i for i in items if i.id in finished])
    return PatchSummary(out, run.done_now, run.skipped, len(manifest), run.failures, run.warnings)
