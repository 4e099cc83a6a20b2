"""Segmenter bundles: `mammocad export` of a (tiny) train-segmenter run, round trip, operating point, refusals,
and `predict` end to end with a segmenter bundle and a classifier bundle."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammocad.evaluate.segmenter import evaluate_segmenter
from mammocad.infer.bundle import read_bundle, write_bundle
from mammocad.preprocess.config import PreprocessConfig
from mammocad.segment.predict import load_segmenter
from mammocad.segment.training import train_segmenter
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import read_image
from test_cli import run  # tests/ is on sys.path
from test_infer_predict import LESION, tiny_bundle, write_case_dicom
from test_segment import _config, seg_sets  # noqa: F401 - seg_sets is a fixture used here

# a low mask threshold: the 2-step U-Net's probabilities are still near 0.5, and the tests need regions
SEG_OVERRIDES = dict(phases="heads:1:1e-3", limit_train_batches=2, limit_val_batches=1, mask_threshold=0.3)


@pytest.fixture(scope="module")
def seg_run(seg_sets: dict[str, Path], tmp_path_factory) -> Path:  # noqa: F811 - the imported fixture
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
