"""Segmentation evaluation: Dice/FROC on hand-computed cases, tile stitching, FP control, the blob baseline, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mammocad import DISCLAIMER
from mammocad.cli import app
from mammocad.evaluate.metrics import resampling_weights
from mammocad.evaluate.segmentation import (
    ImageResult,
    evaluate_image,
    froc_curve,
    iou_matrix,
    prefix_average_dice,
    read_image_results,
    summarise,
    write_image_results,
)
from mammocad.utils.geometry import dice
from mammocad.evaluate.segmentation_plots import froc_figure, loss_curves_figure, overlay_figure, save_figure
from mammocad.evaluate.segmenter import evaluate_segmenter
from mammocad.segment.baselines import baseline, blob_detector
from mammocad.segment.instances import Instances
from mammocad.segment.postprocess import choose_operating_point, keep_confident
from mammocad.segment.stitch import stitch_tiles
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import mask_box


def rect(shape, row0, col0, row1, col1) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[row0:row1, col0:col1] = True
    return mask


def disk(shape, row, col, radius) -> np.ndarray:
    rr, cc = np.ogrid[:shape[0], :shape[1]]
    return (rr - row) ** 2 + (cc - col) ** 2 <= radius ** 2


def instances(masks, scores) -> Instances:
    masks = np.asarray(masks, bool)
    boxes = np.array([mask_box(m).xyxy() for m in masks], np.float32).reshape(-1, 4)
    return Instances(masks, np.asarray(scores, np.float32), boxes, np.ones(len(masks), np.int64))


# ---- Dice and per-image measures ------------------------------------------------------------------
def test_dice_conventions_and_a_hand_case():
    empty = np.zeros((4, 4), bool)
    assert dice(empty, empty) == 1.0
    assert dice(rect((4, 4), 0, 0, 2, 2), empty) == 0.0 == dice(empty, rect((4, 4), 0, 0, 2, 2))
    # 4 px vs 8 px sharing 4: 2 * 4 / 12
    assert dice(rect((4, 4), 0, 0, 2, 2), rect((4, 4), 0, 0, 2, 4)) == pytest.approx(8 / 12)
    with pytest.raises(ValueError):
        dice(empty, np.zeros((3, 3)))


SHAPE = (10, 10)
LESION_A, LESION_B = rect(SHAPE, 0, 0, 4, 4), rect(SHAPE, 6, 6, 10, 10)  # 16 px each
TRUTH = np.stack([LESION_A, LESION_B])


def test_empty_prediction_and_empty_truth():
    missed = evaluate_image(Instances.empty(SHAPE), TRUTH)
    assert (missed.average_dice, missed.max_dice, missed.false_positives, missed.hits_iou_low) == (0.0, 0.0, 0, 0)
    assert np.isnan(missed.lesion_hit_scores).all() and len(missed.lesion_hit_scores) == 2
    normal_quiet = evaluate_image(Instances.empty(SHAPE), np.zeros((0, *SHAPE), bool))
    assert normal_quiet.average_dice == 1.0 and np.isnan(normal_quiet.max_dice) and normal_quiet.false_positives == 0
    normal_fp = evaluate_image(instances([LESION_A], [0.4]), np.zeros((0, *SHAPE), bool))
    assert normal_fp.average_dice == 0.0 and normal_fp.false_positives == 1
    assert normal_fp.false_positive_scores == pytest.approx((0.4,))


def test_several_instances_hand_computed():
    exact_a = LESION_A                       # IoU 1 with A
    half_b = rect(SHAPE, 6, 6, 8, 10)        # 8 px inside B: IoU 0.5, Dice 2/3
    elsewhere = rect(SHAPE, 0, 8, 2, 10)     # 4 px on no lesion
    result = evaluate_image(instances([exact_a, elsewhere, half_b], [0.9, 0.8, 0.6]), TRUTH, "img", "p1")
    # union of predictions 28 px, truth 32 px, overlap 24 px
    assert result.average_dice == pytest.approx(2 * 24 / 60)
    assert result.max_dice == pytest.approx(1.0)
    assert (result.false_positives, result.hits_iou_low, result.hits_iou_high) == (1, 2, 2)
    assert result.false_positive_scores == pytest.approx((0.8,))
    assert result.lesion_hit_scores == pytest.approx((0.9, 0.6))
    np.testing.assert_allclose(iou_matrix(np.stack([exact_a, elsewhere, half_b]), TRUTH),
                               [[1, 0], [0, 0], [0, 0.5]])
    # a region covering a quarter of B hits it at IoU 0.1 but not at 0.5
    quarter = evaluate_image(instances([rect(SHAPE, 6, 6, 8, 8)], [0.5]), TRUTH)
    assert (quarter.hits_iou_low, quarter.hits_iou_high, quarter.false_positives) == (1, 0, 0)
    assert quarter.max_dice == pytest.approx(2 * 4 / 20)


# ---- FROC and summaries -----------------------------------------------------------------------------
def result(patient: str, n_lesions: int, fp_scores=(), hit_scores=(), average_dice=0.0) -> ImageResult:
    hits = sum(np.isfinite(hit_scores))
    return ImageResult(f"{patient}-{len(fp_scores)}-{n_lesions}", patient, n_lesions, len(fp_scores) + hits,
                       average_dice, 0.5 if n_lesions else np.nan, len(fp_scores), hits, hits,
                       tuple(fp_scores), tuple(hit_scores))


THREE = [result("a", 1, fp_scores=(0.8,), hit_scores=(0.9,)),
         result("b", 1, hit_scores=(0.6,)),
         result("c", 0, fp_scores=(0.7, 0.5))]


def test_froc_on_three_images_hand_computed():
    froc = froc_curve(THREE)
    # thresholds 0.9, 0.8, 0.7, 0.6, 0.5: lesions found (of 2) and FPs (over 3 images) at or above each
    np.testing.assert_allclose(froc.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5])
    np.testing.assert_allclose(froc.sensitivity, [0, 0.5, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(froc.fp_per_image, [0, 0, 1 / 3, 2 / 3, 2 / 3, 1])
    # 0.5 FP: halfway between (1/3, 0.5) and (2/3, 1.0); 2 FP: beyond the curve, its last value
    assert froc.sensitivity_at() == pytest.approx({0.5: 0.75, 1.0: 1.0, 2.0: 1.0})
    # weights: image "a" twice, "b" dropped -> FP (2*1 + 2) / 3 images at the end; 1 lesion counted twice
    weighted = froc_curve(THREE, np.array([2.0, 0.0, 1.0]))
    assert weighted.fp_per_image[-1] == pytest.approx(4 / 3) and weighted.sensitivity[-1] == 1.0
    no_lesion = froc_curve([THREE[2]])
    assert np.isnan(no_lesion.sensitivity).all()


def test_summary_and_patient_bootstrap():
    results = [result("a", 1, hit_scores=(0.9,), average_dice=1.0), result("a", 1, hit_scores=(0.8,), average_dice=1.0),
               result("b", 1, hit_scores=(np.nan,), average_dice=0.0)]
    summary = summarise(results, n_resamples=200, seed=3)
    assert summary["average_dice"] == pytest.approx(2 / 3)
    assert summary["sensitivity_iou_0.1"] == pytest.approx(2 / 3)
    assert summary["froc_sensitivity_at_1_fp"] == pytest.approx(2 / 3)
    assert (summary["n_images"], summary["n_patients"], summary["n_lesions"]) == (3, 2, 3)
    low, high = summary["average_dice_ci"]
    assert low <= summary["average_dice"] <= high
    # images of one patient are drawn together: both "a" images always share their weight
    weights = np.vstack([*resampling_weights(["a", "a", "b"], 3, n_resamples=50, seed=0, chunk=7)])
    assert weights.shape == (50, 3)
    assert (weights[:, 0] == weights[:, 1]).all()
    assert (weights[:, 0] + weights[:, 2] == 2).all()  # two patients drawn per resample


def test_per_image_csv_round_trip(tmp_path: Path):
    path = write_image_results(tmp_path / "per_image.csv", THREE + [result("d", 2, hit_scores=(0.3, np.nan))])
    back = read_image_results(path)
    assert [r.image_id for r in back] == [r.image_id for r in THREE] + ["d-0-2"]
    assert np.isnan(back[2].max_dice) and np.isnan(back[3].lesion_hit_scores[1])
    assert froc_curve(back).sensitivity_at() == froc_curve(THREE + [result("d", 2, hit_scores=(0.3, np.nan))]).sensitivity_at()
    (tmp_path / "bad.csv").write_text("image_id\nx\n")
    with pytest.raises(DataError, match="bad.csv"):
        read_image_results(tmp_path / "bad.csv")


# ---- FP control ----------------------------------------------------------------------------------------
def test_operating_point_is_chosen_on_validation_prefixes():
    lesion = rect(SHAPE, 0, 0, 4, 4)
    with_fp = instances([rect(SHAPE, 8, 8, 10, 10), lesion], [0.8, 0.9])  # the FP scores lower
    prefix = prefix_average_dice(with_fp, lesion[None])
    np.testing.assert_allclose(prefix, [0.0, 1.0, 2 * 16 / 36])
    normal = instances([rect(SHAPE, 5, 5, 7, 7)], [0.3])
    point = choose_operating_point([(with_fp.scores, prefix), (normal.scores, prefix_average_dice(normal, lesion[None][:0]))])
    assert (point.top_k, point.min_score) == (1, pytest.approx(0.9))
    assert point.val_average_dice_before == pytest.approx((2 * 16 / 36 + 0.0) / 2)
    assert point.val_average_dice_after == pytest.approx(1.0)
    kept = point.apply(with_fp)
    assert len(kept) == 1 and kept.scores[0] == pytest.approx(0.9) and (kept.masks[0] == lesion).all()
    assert len(keep_confident(with_fp, None, 0.85)) == 1 and len(keep_confident(with_fp, 5, 0.0)) == 2
    assert len(choose_operating_point([]).apply(with_fp)) == 2


# ---- stitching --------------------------------------------------------------------------------------------
def tile_view(full_masks, scores, row, col, size=256) -> tuple[int, int, Instances]:
    """What an exact segmenter predicts on the tile at (row, col): each lesion cut to the tile, if visible."""
    crops = [m[row:row + size, col:col + size] for m in full_masks]
    seen = [(c, s) for c, s in zip(crops, scores) if c.any()]
    if not seen:
        return row, col, Instances.empty((size, size))
    return row, col, instances([c for c, _ in seen], [s for _, s in seen])


def test_stitching_one_lesion_seen_by_four_tiles_and_two_lesions():
    shape = (512, 512)
    lesion = disk(shape, 200, 200, 30)    # whole in tile (64, 64); cut by the edges of the three others
    other = disk(shape, 400, 400, 20)     # only in tile (192, 192)
    corners = [(64, 64), (64, 192), (192, 64), (192, 192)]
    tiles = [tile_view([lesion], [0.5 + 0.1 * k], r, c) for k, (r, c) in enumerate(corners)]
    one = stitch_tiles(tiles, shape)
    assert len(one) == 1 and (one.masks[0] == lesion).all()
    assert one.scores[0] == pytest.approx(0.8)
    np.testing.assert_array_equal(one.boxes[0], mask_box(lesion).xyxy())
    both = stitch_tiles([tile_view([lesion, other], [0.5 + 0.1 * k, 0.3], r, c) for k, (r, c) in enumerate(corners)],
                        shape)
    assert len(both) == 2
    assert (both.masks[0] == lesion).all() and (both.masks[1] == other).all()
    # the same region predicted twice in one tile is one instance
    r, c, inst = tiles[0]
    twice = Instances(np.concatenate([inst.masks, inst.masks]), np.array([0.9, 0.4], np.float32),
                      np.concatenate([inst.boxes, inst.boxes]), np.ones(2, np.int64))
    assert len(stitch_tiles([(r, c, twice)], shape)) == 1
    assert len(stitch_tiles([(0, 0, Instances.empty((256, 256)))], shape)) == 0


# ---- the blob baseline ------------------------------------------------------------------------------------
def test_blob_baseline_finds_a_bright_mass():
    rng = np.random.default_rng(0)
    shape = (256, 256)
    breast = disk(shape, 128, 0, 200)
    mass = disk(shape, 130, 90, 14)
    image = np.clip(0.35 + 0.03 * rng.normal(size=shape) + 0.3 * mass, 0, 1) * breast
    found = blob_detector((image * 65535).astype(np.uint16), breast.astype(np.uint8) * 255)
    assert len(found) >= 1 and found.shape == shape
    assert (np.diff(found.scores) <= 0).all() and ((found.scores >= 0) & (found.scores <= 1)).all()
    assert iou_matrix(found.masks[:1], mass[None])[0, 0] >= 0.3  # the best-scoring region is the mass
    assert len(baseline("blob")(image, np.zeros(shape, np.uint8))) == 0
    with pytest.raises(DataError, match="unknown baseline"):
        baseline("nope")


# ---- figures ------------------------------------------------------------------------------------------------
def test_floor_baselines_predict_nothing_or_the_whole_breast():
    image, breast = np.zeros((20, 30), np.uint8), rect((20, 30), 2, 0, 18, 12).astype(np.uint8) * 255
    whole = baseline("breast")(image, breast)
    assert len(whole) == 1 and np.array_equal(whole.masks[0], breast != 0)
    assert whole.boxes.tolist() == [[0, 2, 12, 18]] and whole.scores.tolist() == [1.0]
    assert len(baseline("breast")(image, np.zeros_like(breast))) == 0
    assert len(baseline("empty")(image, breast)) == 0 and baseline("empty")(image, breast).shape == (20, 30)


def test_figures_are_written(tmp_path: Path):
    metrics = pd.DataFrame({"epoch": [0, 0, 1, 1], "step": [1, 2, 3, 4], "train_loss_step": [3, 2, 2, 1],
                            "train_loss_epoch": [np.nan, 2.5, np.nan, 1.5], "val_loss": [np.nan, 2.8, np.nan, 2.0]})
    fig = loss_curves_figure(metrics)
    assert sorted(line.get_label() for line in fig.axes[0].get_lines()) == ["train_loss", "val_loss"]
    with pytest.raises(ValueError, match="no loss"):
        loss_curves_figure(pd.DataFrame({"epoch": [0], "val_auc": [0.5]}))
    paths = [save_figure(froc_figure({"raw": froc_curve(THREE)}), tmp_path / "froc.png"),
             save_figure(overlay_figure(np.zeros(SHAPE), LESION_A, LESION_B, "x"), tmp_path / "overlay.png")]
    assert all(p.stat().st_size > 1000 for p in paths)


# ---- end to end on a synthetic prepared folder ----------------------------------------------------------------
def run(*args, exit_code: int = 0):
    outcome = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert outcome.exit_code == exit_code, outcome.output
    return outcome


def test_evaluate_segmenter_blob_end_to_end(prepared_small: Path, tmp_path: Path):
    out = tmp_path / "blob"
    # masses of the train split (6 images), operating point from the val split (masses too)
    output = run("evaluate-segmenter", "--baseline", "blob", "--data", prepared_small, "--split", "train",
                 "--lesion-types", "mass", "--out", out, "--bootstrap", 50, "--overlays", 2).output
    assert DISCLAIMER in output and "average Dice" in output
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("per_image_train.csv", "per_image_train_raw.csv", "froc_train.csv", "froc_train.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "overlays").glob("*.png"))) == 2
    assert metrics["images_left_out"]["other_lesion_types_only"] == 4  # the calcification images of train
    per_image = read_image_results(out / "per_image_train_raw.csv")
    assert len(per_image) == metrics["raw"]["n_images"] == 6
    assert metrics["raw"]["average_dice"] == pytest.approx(np.mean([r.average_dice for r in per_image]))
    assert metrics["operating_point"]["n_val_images"] == 4
    assert metrics["operating_point"]["val_average_dice_after"] >= metrics["operating_point"]["val_average_dice_before"]

    nothing = evaluate_segmenter(lambda image, breast: Instances.empty(image.shape), prepared_small, "train",
                                 tmp_path / "empty", lesion_types=("mass",), n_resamples=20, n_overlays=0,
                                 progress=False)
    assert nothing.metrics["raw"]["average_dice"] == 0.0
    assert metrics["raw"]["average_dice"] > nothing.metrics["raw"]["average_dice"] + 0.1
    assert metrics["raw"]["sensitivity_iou_0.1"] > 0.5


def test_evaluate_segmenter_refuses_bad_requests(prepared_small: Path, tmp_path: Path):
    neither = run("evaluate-segmenter", "--data", prepared_small, "--out", tmp_path / "x", exit_code=2)
    assert "exactly one of --checkpoint" in neither.output and "Traceback" not in neither.output
    both = run("evaluate-segmenter", "--checkpoint", tmp_path / "a.ckpt", "--baseline", "blob", "--data",
               prepared_small, "--out", tmp_path / "x", exit_code=2)
    assert "exactly one of --checkpoint" in both.output
    no_val = run("evaluate-segmenter", "--baseline", "blob", "--data", prepared_small, "--val-split", "nosuch",
                 "--out", tmp_path / "y", exit_code=2)
    assert "nosuch" in no_val.output and len(no_val.output.strip().splitlines()) == 1
    assert not (tmp_path / "y").exists()


def test_evaluate_segmenter_checkpoint_path_uses_load_segmenter(prepared_small: Path, tmp_path: Path, monkeypatch):
    """--checkpoint goes through mammocad.segment.predict.load_segmenter (part A of issue 11; faked here)."""
    import sys
    import types

    loaded = []

    class Segmenter:
        def predict(self, image):
            return blob_detector(image, np.ones(image.shape, np.uint8))

    def load_segmenter(checkpoint):
        loaded.append(Path(checkpoint))
        return Segmenter()

    monkeypatch.setitem(sys.modules, "mammocad.segment.predict", types.SimpleNamespace(load_segmenter=load_segmenter))
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    checkpoint.write_text("fake")
    pd.DataFrame({"epoch": [0, 1], "train_loss_epoch": [2.0, 1.0], "val_loss": [2.5, 1.5]}).to_csv(
        run_dir / "metrics.csv", index=False)
    run("evaluate-segmenter", "--checkpoint", checkpoint, "--data", prepared_small, "--split", "train",
        "--lesion-types", "mass", "--out", tmp_path / "eval", "--bootstrap", 20, "--overlays", 0)
    assert loaded == [checkpoint]
    assert (tmp_path / "eval" / "loss_curves.png").is_file()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["segmenter"] == "best.ckpt"


def test_stitching_keeps_the_best_instances_when_capped():
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 0:2, 0:2] = masks[1, 4:6, 4:6] = masks[2, 0:2, 5:7] = True  # three separate regions in one tile
    tile = Instances(masks, np.array([0.2, 0.9, 0.5], np.float32), np.zeros((3, 4), np.float32), np.ones(3, np.int64))
    every = stitch_tiles([(0, 0, tile)], (8, 8))
    capped = stitch_tiles([(0, 0, tile)], (8, 8), max_instances=2)
    assert every.scores.tolist() == pytest.approx([0.9, 0.5, 0.2])
    assert capped.scores.tolist() == pytest.approx([0.9, 0.5])
    assert np.array_equal(capped.masks, every.masks[:2])
