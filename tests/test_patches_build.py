"""`mammocad patches` end to end on a prepared synthetic dataset: every kind, the manifest,
splits, determinism, incremental re-runs, bad sources, and the PyTorch datasets over it."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mammocad.patches.build import PatchJob, PatchKind, build_patches, kind_config_class
from mammocad.patches.datasets import PatchDataset, SegmentationDataset, detection_collate, make_loader
from mammocad.patches.large_context import LargeContextConfig
from mammocad.patches.config import TileConfig
from mammocad.patches.small_context import SmallContextConfig, resize_to_grid, tfds_breast_mask
from mammocad.patches.stats import patch_counts
from mammocad.patches.store import read_manifest
from mammocad.patches.types import LesionMask
from mammocad.preprocess.pipeline import original_frame
from mammocad.data.splits import image_split
from mammocad.preprocess.pipeline import PreprocessConfig
from mammocad.preprocess.prepare import PrepareJob, geometry_from_row, load_prepared, resplit, run_prepare
from mammocad.utils.errors import DataError
from mammocad.utils.stage import check_fresh
from mammocad.utils.imageio import read_image

# Smaller grids than the defaults keep these tests fast; the rules are the same.
SMALL = SmallContextConfig(image_size=(576, 448), patch_size=(112, 112), positives_per_lesion=4,
                           backgrounds_per_image=3)
TILES = TileConfig(tile_size=64, stride=32)  # the prepared test images are ~350 px across


def _build(prepared: Path, out: Path, kind: str, config=None, **job) -> object:
    config = config if config is not None else kind_config_class(kind)()
    job = PatchJob(prepared=prepared, out=out, kind=PatchKind(kind), workers=job.pop("workers", 1),
                   figure=job.pop("figure", False), **job)
    return build_patches(job, config, progress=False)


@pytest.fixture(scope="module")
def small_set(prepared_small: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    summary = _build(prepared_small, out, "small", SMALL, figure=True)
    assert not summary.failures
    return out


@pytest.fixture(scope="module")
def seg_set(prepared_small: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seg")
    summary = _build(prepared_small, out, "seg", TILES)
    assert not summary.failures
    return out


def _grid_lesions(prepared: Path, image_id: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The image and lesion masks in the small-context grid: unpadded, uncropped, resized."""
    table, images, _ = load_prepared(prepared)
    geometry = geometry_from_row(images.set_index("image_id").loc[image_id].to_dict())
    image = original_frame(read_image(next(im.image_path for im in table.images if im.image_id == image_id)), geometry)
    lesions = [LesionMask(a.key, "x", original_frame(read_image(a.roi_mask_path), geometry))
               for a in table.abnormalities if a.image_id == image_id]
    grid_image, grid_lesions = resize_to_grid(image, lesions, SMALL)
    return grid_image, {les.key: les.mask > 0 for les in grid_lesions}


def test_small_context_counts_labels_and_overlap_rules(small_set: Path, prepared_small: Path):
    manifest = read_manifest(small_set)
    table, _, _ = load_prepared(prepared_small)
    assert len(manifest) == 4 * len(table.abnormalities) + 3 * len(table.images)
    assert (manifest.groupby("abnormality").size() == 4).all()
    assert (manifest[manifest["abnormality"].isna()].groupby("image_id").size() == 3).all()
    expected = {a.key: f"{'MALIGNANT' if a.pathology.is_malignant else 'BENIGN'}_{a.abnormality_type.value.upper()}"
                for a in table.abnormalities}
    positives = manifest[manifest["abnormality"].notna()]
    assert (positives["label"] == positives["abnormality"].map(expected)).all()
    assert set(manifest.loc[manifest["abnormality"].isna(), "label"]) == {"BACKGROUND"}

    area = 112 * 112
    for image_id, rows in manifest.groupby("image_id"):
        grid_image, masks = _grid_lesions(prepared_small, image_id)
        breast = tfds_breast_mask(grid_image) > 0
        for row in rows.itertuples():
            window = np.s_[row.row:row.row + 112, row.col:row.col + 112]
            assert read_image(small_set / row.file).shape == (112, 112)
            np.testing.assert_array_equal(read_image(small_set / row.file), grid_image[window])
            # stored uncompressed (fast to decode every epoch): the file holds at least the raw pixels
            assert (small_set / row.file).stat().st_size >= grid_image[window].nbytes
            if row.abnormality:  # > threshold of the patch is lesion, or of the lesion is inside
                mask = masks[row.abnormality]
                threshold = 0.9 * 0.95 ** row.relaxations
                inside = mask[window].sum()
                assert inside / area > threshold or inside / mask.sum() > threshold, row.patch_id
            else:  # in the breast, away from every lesion
                assert breast[window].sum() / area > 0.75 * 0.95 ** row.relaxations
                for mask in masks.values():
                    inside = mask[window].sum()
                    bound = 0.35 * 1.05 ** row.relaxations
                    assert inside / area <= bound and inside / mask.sum() <= bound, row.patch_id


def test_large_context_window_holds_the_lesion_with_its_margin(prepared_small: Path, tmp_path: Path):
    summary = _build(prepared_small, tmp_path / "large", "large", LargeContextConfig(output_size=96))
    manifest = read_manifest(tmp_path / "large")
    _, images, abnormalities = load_prepared(prepared_small)
    assert summary.patches == len(abnormalities) == len(manifest)
    boxes = abnormalities.set_index("key")
    shapes = images.set_index("image_id")
    for row in manifest.itertuples():
        box = boxes.loc[row.abnormality]
        assert read_image(tmp_path / "large" / row.file).shape == (96, 96)
        # the whole ROI is inside the window...
        assert row.row <= box.row0 and row.col <= box.col0
        assert row.row + row.height >= box.row1 and row.col + row.width >= box.col1
        # ...with half the box's larger side of context on each axis (shifted, never lost, unless the
        # image is too small), and the window inside the image
        margin = 0.5 * max(box.row1 - box.row0, box.col1 - box.col0)
        rows, cols = shapes.loc[row.image_id, ["rows", "cols"]]
        assert row.height >= min(rows, box.row1 - box.row0 + 2 * margin - 1)
        assert row.width >= min(cols, box.col1 - box.col0 + 2 * margin - 1)
        assert row.row >= 0 and row.col >= 0 and row.row + row.height <= rows and row.col + row.width <= cols


def test_seg_tiles_keep_50_25_25_per_sub_dataset(seg_set: Path):
    manifest = read_manifest(seg_set)
    assert set(manifest["category"]) == {"lesion", "normal", "blank"}
    for _, group in manifest.groupby("split"):
        counts = group["category"].value_counts()
        total = counts.sum()
        for category, share in (("lesion", 0.5), ("normal", 0.25), ("blank", 0.25)):
            # summed over sub-datasets of a split, each rounding is off by at most one tile
            assert abs(counts.get(category, 0) - share * total) <= 2, counts
    for row in manifest.itertuples():
        assert read_image(seg_set / row.file).shape == (64, 64)
        masks = [read_image(seg_set / m) for m in row.masks]
        assert (row.category == "lesion") == bool(masks)
        for mask, (x0, y0, x1, y1) in zip(masks, row.boxes):
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)


def test_resize512_masks_and_boxes_stay_on_the_lesions(prepared_small: Path, tmp_path: Path):
    config = kind_config_class("resize512")(size=128)
    _build(prepared_small, tmp_path / "r", "resize512", config)
    table, _, _ = load_prepared(prepared_small)
    manifest = read_manifest(tmp_path / "r").set_index("image_id")
    assert len(manifest) == len(table.images)
    for a in table.abnormalities:
        row = manifest.loc[a.image_id]
        k = row["instance_keys"].index(a.key)
        mask = read_image(tmp_path / "r" / row["masks"][k]) > 0
        original = read_image(a.roi_mask_path) > 0
        assert mask.shape == (128, 128)
        # the centroid moves with the scale factor
        scale = 128 / original.shape[0]
        expected = (np.argwhere(original).mean(0) + 0.5) * scale - 0.5
        assert np.abs(np.argwhere(mask).mean(0) - expected).max() < 1.5
        ys, xs = np.nonzero(mask)
        assert list(row["boxes"][k]) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_patches_take_the_prepared_split_and_follow_an_explicit_resplit(small_set: Path, prepared_small: Path,
                                                                        tmp_path: Path):
    manifest = read_manifest(small_set)
    assert manifest.groupby("patient_id")["split"].nunique().max() == 1
    _, images, _ = load_prepared(prepared_small)
    recorded = dict(zip(images["image_id"], images["split"]))
    assert dict(zip(manifest["image_id"], manifest["split"])) == {i: recorded[i] for i in manifest["image_id"]}

    prepared = tmp_path / "prepared"
    shutil.copytree(prepared_small, prepared)
    first = _build(prepared, tmp_path / "large", "large")
    resplit(prepared, "tfds")
    with pytest.raises(DataError, match="out of date"):
        check_fresh(tmp_path / "large", "patches", "mammocad patches")
    again = _build(prepared, tmp_path / "large", "large")
    assert again.written == 0 and again.skipped == first.written  # a new split rewrites the manifest only
    table, _, _ = load_prepared(prepared)
    tfds = read_manifest(tmp_path / "large")
    assert dict(zip(tfds["image_id"], tfds["split"])) == {
        k: v for k, v in image_split(table, "tfds").items() if k in set(tfds["image_id"])}
    check_fresh(tmp_path / "large", "patches", "mammocad patches")


def test_re_preparing_with_another_size_redoes_the_patches(synth_small: Path, tmp_path: Path):
    """The reproduced bug: prepare again with --size, then patches kept windows of the old size."""
    prepared = tmp_path / "prepared"
    run_prepare(PrepareJob(source=synth_small, out=prepared, workers=1, figures=0, limit=2), PreprocessConfig(),
                progress=False)
    first = _build(prepared, tmp_path / "large", "large")
    run_prepare(PrepareJob(source=synth_small, out=prepared, workers=1, figures=0, limit=2),
                PreprocessConfig(size=128), progress=False)
    with pytest.raises(DataError, match="out of date"):
        check_fresh(tmp_path / "large", "patches", "mammocad patches")
    again = _build(prepared, tmp_path / "large", "large")
    assert (again.written, again.skipped) == (first.written, 0)
    for row in read_manifest(tmp_path / "large").itertuples():  # every window lies in the new 128 px images
        assert row.row + row.height <= 128 and row.col + row.width <= 128
    assert check_fresh(tmp_path / "large", "patches", "mammocad patches")


def test_bad_prepared_or_out_folder_is_one_clear_error(prepared_small: Path, tmp_path: Path):
    with pytest.raises(DataError, match="prepared folder|mammocad prepare"):
        _build(tmp_path / "missing", tmp_path / "out", "large")
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        _build(prepared_small, target, "large")
    assert not (tmp_path / "out").exists()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "images").iterdir())}


def test_same_seed_same_bytes_whatever_the_workers_and_another_seed_differs(
        prepared_small: Path, small_set: Path, tmp_path: Path):
    _build(prepared_small, tmp_path / "w2", "small", SMALL, workers=2)
    assert _files(tmp_path / "w2") == _files(small_set)
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "w2").drop(columns="source"),
                                  read_manifest(small_set).drop(columns="source"))
    _build(prepared_small, tmp_path / "s1", "small", SMALL, seed=1)
    assert _files(tmp_path / "s1") != _files(small_set)


def test_rerun_skips_finished_images_and_a_changed_setting_redoes_them(prepared_small: Path, tmp_path: Path):
    first = _build(prepared_small, tmp_path / "p", "large")
    again = _build(prepared_small, tmp_path / "p", "large")
    assert first.written > 0 and (again.written, again.skipped) == (0, first.written)
    assert again.patches == first.patches
    changed = _build(prepared_small, tmp_path / "p", "large", LargeContextConfig(context=0.25))
    assert changed.written == first.written


def test_seg_rerun_is_incremental_too(prepared_small: Path, seg_set: Path, tmp_path: Path):
    shutil.copytree(seg_set, tmp_path / "seg")
    again = _build(prepared_small, tmp_path / "seg", "seg", TILES)
    assert again.written == 0 and again.patches == len(read_manifest(seg_set))


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_bad_source_image_is_reported_and_the_rest_written(prepared_small: Path, tmp_path: Path, damage: str):
    prepared = tmp_path / "prepared"
    shutil.copytree(prepared_small, prepared)
    _, images, _ = load_prepared(prepared)
    victim = images["image_id"].iloc[0]
    path = prepared / images["prepared_image"].iloc[0]
    path.unlink() if damage == "missing" else path.write_bytes(b"\x89PNG broken")
    summary = _build(prepared, tmp_path / "out", "large")
    assert [f.item for f in summary.failures] == [victim]
    assert str(path) in str(summary.failures[0]) and "\n" not in str(summary.failures[0])
    manifest = read_manifest(tmp_path / "out")
    assert victim not in set(manifest["image_id"]) and manifest["image_id"].nunique() == len(images) - 1
    assert list(pd.read_csv(tmp_path / "out" / "failures.csv")["item"]) == [victim]
    assert not list((tmp_path / "out").rglob(f"{victim}*")) and not list((tmp_path / "out").rglob("*.tmp*"))


def test_tables_11_12_and_figure_9(small_set: Path):
    manifest = read_manifest(small_set)
    table = patch_counts(manifest)
    assert table.loc["total", "total"] == len(manifest)
    assert table.loc["BACKGROUND", "total"] == (manifest["label"] == "BACKGROUND").sum()
    assert list(table.columns)[-1] == "total"
    assert (small_set / "figures" / "examples.png").stat().st_size > 1000


def test_patch_dataset_reads_lazily_and_defines_tasks(small_set: Path):
    dataset = PatchDataset(small_set, split="train", classes={"BENIGN_MASS": 0, "MALIGNANT_MASS": 1})
    manifest = read_manifest(small_set)
    expected = manifest[(manifest["split"] == "train") & manifest["label"].isin(["BENIGN_MASS", "MALIGNANT_MASS"])]
    assert len(dataset) == len(expected) > 0
    image, target = dataset[0]
    assert image.shape == (1, 112, 112) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert target == (dataset.frame.at[0, "label"] == "MALIGNANT_MASS")
    flipped = PatchDataset(small_set, split="train", classes=dataset.classes, transform=partial(torch.flip, dims=(-1,)))
    torch.testing.assert_close(flipped[0][0], image.flip(-1))
    loader = make_loader(dataset, batch_size=4, shuffle=True, workers=2, seed=0)
    batches = [(x.shape, y.tolist()) for x, y in loader]
    assert sum(len(y) for _, y in batches) == len(dataset)
    again = [(x.shape, y.tolist()) for x, y in make_loader(dataset, batch_size=4, shuffle=True, workers=2, seed=0)]
    assert batches == again


def test_segmentation_dataset_returns_aligned_masks_and_boxes(seg_set: Path):
    dataset = SegmentationDataset(seg_set)
    images, targets = detection_collate([dataset[i] for i in range(len(dataset))])
    lesion_items = [t for t in targets if len(t["masks"])]
    assert lesion_items and any(len(t["masks"]) == 0 for t in targets)
    for image, target in zip(images, targets):
        assert image.shape == (1, 64, 64)
        for mask, box, label in zip(target["masks"], target["boxes"], target["labels"]):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert label.item() in (1, 2)
