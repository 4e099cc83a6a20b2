"""Segmenter bundles: `mammocad export` of a (tiny) train-segmenter run, round trip, operating point, refusals,
and `predict` end to end with a segmenter bundle and a classifier bundle."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammocad.evaluate.segmenter import evaluate_segmenter
from mammocad.infer.bundle import export_run, read_bundle, write_bundle
from mammocad.preprocess.config import PreprocessConfig
from mammocad.segment.predict import load_segmenter
from mammocad.segment.training import train_segmenter
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import read_image
from test_cli import run  # tests/ is on sys.path
from test_infer_predict import LESION, tiny_bundle, write_case_dicom
import test_segment
from test_segment import _config

seg_sets = test_segment.seg_sets  # its fixture: the tiny resize512 and tile sets

# a low mask threshold: the 2-step U-Net's probabilities are still near 0.5, and the tests need regions
SEG_OVERRIDES = dict(phases="heads:1:1e-3", limit_train_batches=2, limit_val_batches=1, mask_threshold=0.3)


@pytest.fixture(scope="module")
def seg_run(seg_sets: dict[str, Path], tmp_path_factory) -> Path:
    """A U-Net run folder (resize512 at 64 px, 2 training steps)."""
    out = tmp_path_factory.mktemp("seg_run") / "run"
    train_segmenter(_config(seg_sets["resize512"], out, **SEG_OVERRIDES), progress=False)
    return out


@pytest.fixture(scope="module")
def seg_bundle(seg_run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seg_bundle") / "seg.mcad"
    result = run("export", "--run", seg_run, "--out", out)
    assert "segmenter unet" in result.output and "training_config" in result.output
    return out


def test_round_trip_gives_the_checkpoints_predictions(seg_run: Path, seg_bundle: Path, prepared_small: Path):
    bundle = read_bundle(seg_bundle, kind="segmenter")
    checkpoint = load_segmenter(seg_run / "checkpoints" / "best.ckpt")
    from_bundle = bundle.build_segmenter()
    images = sorted((prepared_small / "images").glob("*.png"))[:4]
    found_any = False
    for path in images:
        image = read_image(path)
        expected, got = checkpoint.predict(image), from_bundle.predict(image)
        assert np.array_equal(got.masks, expected.masks) and np.array_equal(got.scores, expected.scores)
        found_any |= len(got) > 0
    assert found_any  # the comparison is not between empty predictions
    assert (bundle.architecture, bundle.patch_kind, bundle.input_size, bundle.tile_stride) == ("unet", "resize512", 64,
                                                                                                None)
    assert bundle.task == "any" and bundle.preprocess == PreprocessConfig()  # conftest's prepared_small settings
    assert bundle.patch_config["size"] == 64
    # no evaluation in the run folder: the operating point is the run's score threshold, every region kept
    assert (bundle.threshold, bundle.top_k, bundle.threshold_source) == (0.05, None, "training_config")
    best = pd.read_csv(seg_run / "metrics.csv")["val_dice"].max()
    assert bundle.metrics["validation"]["val_dice"] == pytest.approx(best)


def test_export_takes_the_operating_point_chosen_on_validation(seg_run: Path, prepared_small: Path, tmp_path: Path):
    segmenter = load_segmenter(seg_run / "checkpoints" / "best.ckpt")
    evaluation = evaluate_segmenter(lambda image, breast: segmenter.predict(image), prepared_small, "test",
                                    seg_run / "eval-test", val_split="val", n_overlays=0, n_resamples=20,
                                    name="best.ckpt", progress=False)
    run("export", "--run", seg_run, "--out", tmp_path / "seg.mcad")
    bundle = read_bundle(tmp_path / "seg.mcad")
    chosen = evaluation.operating_point
    assert (bundle.top_k, bundle.threshold, bundle.threshold_source) == (chosen.top_k, chosen.min_score, "validation")
    assert (bundle.operating_point.top_k, bundle.operating_point.min_score) == (chosen.top_k, chosen.min_score)
    assert bundle.metrics["validation"]["val_average_dice_after_val"] == pytest.approx(chosen.val_average_dice_after)
    assert bundle.metrics["test"]["after_fp_control"]["n_images"] == len(evaluation.after)
    assert bundle.source["evaluation"] == str((seg_run / "eval-test" / "metrics.json").resolve())
    # another evaluation of the same checkpoint: which one is ambiguous, --evaluation chooses
    (seg_run / "eval-copy").mkdir()
    (seg_run / "eval-copy" / "metrics.json").write_text((seg_run / "eval-test" / "metrics.json").read_text())
    try:
        refused = run("export", "--run", seg_run, "--out", tmp_path / "x.mcad", ok=False)
        assert refused.exit_code == 2 and "choose one with --evaluation" in refused.output
        run("export", "--run", seg_run, "--out", tmp_path / "y.mcad", "--evaluation", seg_run / "eval-copy")
        assert read_bundle(tmp_path / "y.mcad").threshold_source == "validation"
        not_one = run("export", "--run", seg_run, "--out", tmp_path / "z.mcad", "--evaluation", tmp_path, ok=False)
        assert not_one.exit_code == 2 and "not an evaluation written by `mammocad evaluate-segmenter`" in not_one.output
    finally:  # the run folder is shared by the module's tests
        for name in ("eval-copy", "eval-test"):
            shutil.rmtree(seg_run / name)


def _one_line_refusal(result, message: str) -> None:
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_wrong_kind_corrupt_and_checkpoint_files_are_one_line(seg_run: Path, seg_bundle: Path, tmp_path: Path):
    classifier = tiny_bundle(tmp_path / "classifier.mcad")
    scans = tmp_path / "scans"
    scans.mkdir()
    write_case_dicom(scans / "case.dcm")
    out = tmp_path / "out"
    truncated = tmp_path / "truncated.mcad"
    truncated.write_bytes(seg_bundle.read_bytes()[:-100])
    cases = [
        (["--classifier", classifier, "--segmenter", classifier], "a classifier bundle where a segmenter bundle is needed"),
        (["--classifier", seg_bundle, "--baseline", "blob"], "a segmenter bundle where a classifier bundle is needed"),
        (["--classifier", classifier, "--segmenter", truncated], "truncated or corrupt bundle"),
        (["--classifier", classifier, "--segmenter", seg_run / "checkpoints" / "best.ckpt"],
         "not a mammocad model bundle"),
    ]
    for flags, message in cases:
        _one_line_refusal(run("predict", scans, *flags, "--out", out, ok=False), message)
    assert not out.exists()
    with pytest.raises(DataError, match="a segmenter bundle where a classifier bundle is needed"):
        read_bundle(seg_bundle, kind="classifier")


@pytest.mark.parametrize("classifier_size", [None, 128])
def test_predict_with_a_segmenter_bundle_and_a_classifier_bundle(seg_bundle: Path, tmp_path: Path,
                                                                 classifier_size: int | None):
    """A DICOM through both bundles. With the classifier prepared at another size than the segmenter,
    the image is prepared twice and the regions move between the grids through the original pixels."""
    scans = tmp_path / "scans"
    scans.mkdir()
    header = write_case_dicom(scans / "case.dcm")
    classifier = tiny_bundle(tmp_path / "classifier.mcad", classifier_size)
    # every region the model proposes, so the end-to-end run has regions whatever 2 training steps learnt
    segmenter = read_bundle(seg_bundle)
    assert segmenter.preprocess.size is None
    write_bundle(dataclasses.replace(segmenter, top_k=1), tmp_path / "seg-top1.mcad")
    result = run("predict", scans, "--classifier", classifier, "--segmenter", tmp_path / "seg-top1.mcad",
                 "--out", tmp_path / "out")
    assert "predicted 1 of 1" in result.output
    prediction = json.loads((tmp_path / "out" / "case.json").read_text())
    described = prediction["models"]["segmenter"]
    assert described["sha256"] == read_bundle(tmp_path / "seg-top1.mcad").checksum
    assert described["operating_point"] == {"top_k": 1, "min_score": 0.05, "source": "training_config"}
    (region,) = prediction["regions"]  # top-1 kept
    x0, y0, x1, y1 = region["box"]
    assert 0 <= x0 < x1 <= 220 and 0 <= y0 < y1 <= 300  # original pixels of the 300 x 220 DICOM
    import highdicom as hd

    seg = hd.seg.segread(tmp_path / "out" / prediction["files"]["dicom_seg"])
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == header.sop_uid
    mask = seg.get_pixels_by_source_instance([header.sop_uid], segment_numbers=[1])[0, ..., 0]
    rows, cols = np.nonzero(mask)
    assert mask.shape == (300, 220)
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == pytest.approx((x0, y0, x1, y1), abs=2.5)
    assert LESION  # (the test case's lesion: whether a 2-step model finds it is not under test)


def test_a_tile_segmenter_bundle_keeps_its_tile_grid(seg_sets: dict[str, Path], prepared_small: Path, tmp_path: Path):
    run_dir = tmp_path / "tiles"
    train_segmenter(_config(seg_sets["seg"], run_dir, **SEG_OVERRIDES), progress=False)
    bundle = write_bundle(export_run(run_dir), tmp_path / "tiles.mcad")
    again = read_bundle(tmp_path / "tiles.mcad", kind="segmenter")
    assert (again.patch_kind, again.input_size, again.tile_stride) == ("seg", 64, 32)
    assert again.patch_config == {**again.patch_config, "tile_size": 64, "stride": 32} and again.checksum == bundle.checksum
    image = read_image(sorted((prepared_small / "images").glob("*.png"))[0])
    expected = load_segmenter(run_dir / "checkpoints" / "best.ckpt").predict(image)
    got = again.build_segmenter().predict(image)
    assert np.array_equal(got.masks, expected.masks) and np.array_equal(got.scores, expected.scores)
