"""Issue 11's acceptance check: a short training on synthetic 512-px mammograms finds the synthetic masses.

The demo's own segmenter recipe (:func:`mammocad.demo.demo_segment_config`, fewer epochs and a
smaller resize, through its arguments) is trained on a small synthetic CBIS-DDSM and scored on
the full prepared TEST images by ``evaluate_segmenter``, with the false-positive control
(top-k, score threshold) chosen on the VAL split. Two predictors that do not look at the image,
an empty prediction and the whole breast as one region, go through the same function on the
same images: the trained model must be clearly above both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.demo import SEGMENT_LESION_TYPE, demo_checkpoint, demo_segment_config
from mammocad.evaluate.segmenter import evaluate_segmenter
from mammocad.segment.baselines import baseline

PATIENTS, SEED = 80, 1  # 512 x 384 mammograms
SIZE, EPOCHS = 128, 12
"""The demo's own size; 12 epochs at lr 1e-3 instead of its 8 (fewer steps per epoch). Chosen
after a fresh-clone run failed: a 40-patient set at 64 px with 24 + 2 epochs reached average Dice
0.219 in one run and 0.082 in another (another thread count); the same set at 128 px with 12 + 2
epochs cleared the margin but not its CI. Masses a few pixels across at 64 px and ~28 training
mass images left learning at the edge; 80 patients give twice the training images. The margin
and the assertions did not change (benchmarks/RESULTS.md)."""
MARGIN = 0.1
"""Average Dice above each floor, at least. Whole-breast's is about twice the masses' share of the
breast (a few hundredths): a margin of several times that, on average over the test images, is
reached only by outlining the masses, not by a blob somewhere near them."""


@pytest.fixture(scope="module")
def mass_set(tmp_path_factory) -> tuple[Path, Path]:
    """(prepared folder, resize patch set at SIZE px) of a small synthetic CBIS-DDSM of 512-px mammograms."""
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm
    from mammocad.patches.build import PatchJob, PatchKind, build_patches, kind_config_class
    from mammocad.preprocess.pipeline import PreprocessConfig
    from mammocad.preprocess.prepare import PrepareJob, run_prepare

    root = tmp_path_factory.mktemp("segment_learns")
    generate_cbis_ddsm(root / "synth", SynthConfig(patients=PATIENTS, seed=SEED, image_rows=512, image_cols=384,
                                                   workers=2), progress=False)
    summary = run_prepare(PrepareJob(source=root / "synth", out=root / "prepared", workers=2, figures=0, seed=SEED),
                          PreprocessConfig(), progress=False)
    assert not summary.failures
    job = PatchJob(prepared=root / "prepared", out=root / "resize", kind=PatchKind.RESIZE512, workers=2, figure=False,
                   seed=SEED)
    assert not build_patches(job, kind_config_class(PatchKind.RESIZE512)(size=SIZE), progress=False).failures
    return root / "prepared", root / "resize"


@pytest.mark.slow  # ~2 min on 2 cores with nothing else running (benchmarks/RESULTS.md)
def test_a_short_training_finds_the_synthetic_masses(mass_set: tuple[Path, Path], tmp_path: Path):
    from mammocad.segment.predict import load_segmenter
    from mammocad.segment.training import train_segmenter

    prepared, patches = mass_set
    result = train_segmenter(demo_segment_config(patches, tmp_path / "run", seed=0, epochs=EPOCHS), progress=False)
    segmenter = load_segmenter(demo_checkpoint(result))

    def evaluate(predict, name: str):
        return evaluate_segmenter(predict, prepared, "test", tmp_path / name, val_split="val",
                                  lesion_types=(SEGMENT_LESION_TYPE,), n_overlays=0, n_resamples=200, progress=False,
                                  name=name)

    trained = evaluate(lambda image, breast: segmenter.predict(image), "unet")
    floors = {name: evaluate(baseline(name), name) for name in ("empty", "breast")}

    op = trained.metrics["operating_point"]
    assert op["n_val_images"] >= 1  # chosen on validation images with a mass, never on the test split
    assert all(f.metrics["raw"]["n_images"] == trained.metrics["raw"]["n_images"] for f in floors.values())
    assert floors["empty"].metrics["after_fp_control"]["average_dice"] == 0.0
    assert 0 < floors["breast"].metrics["after_fp_control"]["average_dice"] < MARGIN  # the floor is below the margin
    ours = trained.metrics["after_fp_control"]
    for name, floor in floors.items():
        value = floor.metrics["after_fp_control"]["average_dice"]
        assert ours["average_dice"] >= value + MARGIN, name
        assert ours["average_dice_ci"][0] > value, name  # patient-bootstrap 95% CI clear of the floor
    assert ours["sensitivity_iou_0.1"] > 0  # the floors hit no mass (IoU >= 0.1); the model some
