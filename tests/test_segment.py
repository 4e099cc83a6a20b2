"""Segmenters: the registry (build, one training step, predict), stage freezing, weights, joint
augmentation, train-segmenter end to end with resume, and whole-image prediction. Tiny sizes, CPU."""

from __future__ import annotations

import json
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import pytest
import torch

from mammocad.models.weights import WeightsUnavailable
from mammocad.patches.build import PatchJob, PatchKind, build_patches, kind_config_class
from mammocad.patches.datasets import SegmentationDataset
from mammocad.patches.store import MANIFEST
from mammocad.segment.augment import SegmentationTransform, segmentation_transform
from mammocad.segment.config import SegmentTrainConfig
from mammocad.segment.instances import Instances
from mammocad.segment.models import build_segmenter, instances_from_probability, set_segmenter_trainable
from mammocad.segment.predict import load_segmenter
from mammocad.segment.training import train_segmenter, union_dice
from mammocad.utils.config import build_configs
from mammocad.utils.imageio import read_image
from test_cli import run  # tests/ is on sys.path (pytest rootdir-less "prepend" import mode)

CORAL = Path(__file__).resolve().parents[2] / "shared" / "weights" / "mobilenet_v2_imagenet_coral.pt"
FAST = {"rpn_proposals": 30, "rois_per_image": 16}  # Mask R-CNN options that keep a CPU step small
MODELS = [("maskrcnn_resnet50_fpn_v2", FAST), ("maskrcnn_resnet101_fpn", FAST), ("maskrcnn_mobilenet_v2_fpn", FAST),
          ("unet", {"encoder": "mobilenet_v2"}), ("unet", {"encoder": "resnet34"})]


def _lesion_sample(size: int = 64, discs=((20, 24, 8),)) -> tuple[torch.Tensor, dict]:
    """A dark image with bright discs (row, col, radius) and their masks/boxes as a dataset gives them."""
    rows, cols = np.mgrid[:size, :size]
    image = np.full((size, size), 0.15, np.float32)
    masks = []
    for r, c, radius in discs:
        inside = (rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2
        image[inside] = 0.9
        masks.append(inside)
    masks = np.stack(masks).astype(np.uint8)
    boxes = [[np.flatnonzero(m.any(0))[0], np.flatnonzero(m.any(1))[0], np.flatnonzero(m.any(0))[-1] + 1,
              np.flatnonzero(m.any(1))[-1] + 1] for m in masks]
    return torch.from_numpy(image).unsqueeze(0), {"masks": torch.from_numpy(masks),
                                                  "boxes": torch.tensor(boxes, dtype=torch.float32),
                                                  "labels": torch.ones(len(masks), dtype=torch.int64)}


# ---- models ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,options", MODELS, ids=[f"{n}-{o.get('encoder', '')}" for n, o in MODELS])
def test_segmenter_builds_trains_a_step_and_predicts(name: str, options: dict):
    torch.manual_seed(0)
    model = build_segmenter(name, 2, "none", image_size=64, **options)
    image, target = _lesion_sample()
    empty = {"masks": torch.zeros(0, 64, 64, dtype=torch.uint8), "boxes": torch.zeros(0, 4),
             "labels": torch.zeros(0, dtype=torch.int64)}
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.losses([image, image * 0.5], [target, empty])  # a negative image: empty target
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        assert set(model.losses([image], [target])) == set(losses)  # validation loss in eval mode
        found = model.detect([image, image])
    assert len(found) == 2
    for inst in found:
        assert isinstance(inst, Instances) and inst.shape == (64, 64) and inst.masks.dtype == bool
        assert np.all(np.diff(inst.scores) <= 0) and np.all((inst.labels == 1))


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name,options,stage4", [
    ("maskrcnn_resnet50_fpn_v2", {}, ("net.backbone.body.layer3.", "net.backbone.body.layer4.")),
    ("maskrcnn_resnet101_fpn", {}, ("net.backbone.body.layer3.", "net.backbone.body.layer4.")),
    ("maskrcnn_mobilenet_v2_fpn", {}, tuple(f"net.backbone.body.{i}." for i in range(7, 19))),
    ("unet", {"encoder": "resnet34"}, ("net.encoder.layer3.", "net.encoder.layer4.")),
    ("unet", {"encoder": "mobilenet_v2"}, tuple(f"net.encoder.features.{i}." for i in range(7, 19))),
])
def test_stage_freezing_matches_its_definition(name: str, options: dict, stage4: tuple[str, ...]):
    model = build_segmenter(name, 2, image_size=64, **options)
    names = {n for n, _ in model.named_parameters()}
    heads_prefixes = (("net.decoder.", "net.segmentation_head.") if name == "unet" else
                      ("net.backbone.fpn.", "net.rpn.", "net.roi_heads."))
    heads = {n for n in names if n.startswith(heads_prefixes)}
    later = {n for n in names if n.startswith(stage4)}
    assert heads and later and not heads & later
    counts = set_segmenter_trainable(model, "heads")
    assert _trainable(model) == heads and counts["frozen_params"] > 0
    set_segmenter_trainable(model, "stage4+")
    assert _trainable(model) == heads | later
    # stage 4+ holds exactly the backbone layers at output stride 16 and 32: the earlier ones stay frozen
    backbone = names - heads
    assert later < backbone and backbone - later
    set_segmenter_trainable(model, "all")
    assert _trainable(model) == names
    with pytest.raises(ValueError, match="stage4\\+"):
        set_segmenter_trainable(model, "last_third")


def test_options_are_applied_and_bad_ones_refused():
    model = build_segmenter("maskrcnn_mobilenet_v2_fpn", 3, image_size=256, anchor_sizes=(8, 16, 32, 64, 128),
                            detections_per_image=7, score_threshold=0.3, nms_threshold=0.4)
    net = model.net
    assert net.transform.min_size == (256,) and net.transform.max_size == 256  # a 256 input is not rescaled
    assert net.rpn.anchor_generator.sizes == ((8,), (16,), (32,), (64,), (128,))
    assert (net.roi_heads.detections_per_img, net.roi_heads.score_thresh, net.roi_heads.nms_thresh) == (7, 0.3, 0.4)
    assert net.roi_heads.box_predictor.cls_score.out_features == 3
    for bad in ({"anchor_sizes": (16, 32)}, {"nonsense": 1}):
        with pytest.raises(ValueError):
            build_segmenter("maskrcnn_resnet50_fpn_v2", 2, **bad)
    with pytest.raises(ValueError, match="unknown segmenter"):
        build_segmenter("yolo", 2)
    with pytest.raises(ValueError, match="num_classes must be 2"):
        build_segmenter("unet", 3)


def test_instances_from_probability_are_the_thresholded_components():
    probability = np.zeros((20, 30), np.float32)
    probability[2:6, 3:8] = 0.9          # 20 px, mean 0.9
    probability[10:12, 20:30] = 0.6      # 20 px, mean 0.6 -> max 0.99 below
    probability[11, 29] = 0.99
    probability[15, 2] = 0.7             # 1 px
    found = instances_from_probability(probability, threshold=0.5, min_area=2)
    assert len(found) == 2 and found.shape == (20, 30)
    assert found.boxes.tolist() == [[3, 2, 8, 6], [20, 10, 30, 12]]
    assert found.scores == pytest.approx([0.9, (19 * 0.6 + 0.99) / 20])
    by_max = instances_from_probability(probability, threshold=0.5, score="max", max_instances=1)
    assert len(by_max) == 1 and by_max.scores[0] == pytest.approx(0.99) and by_max.masks[0, 11, 29]
    assert len(instances_from_probability(probability, threshold=0.5, score_threshold=0.8)) == 1
    assert len(instances_from_probability(np.zeros((4, 4)))) == 0


def test_union_dice():
    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:6] = True
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 2:6, 2:4] = True
    masks[1, 8:10, 8:10] = True
    found = Instances(masks, np.array([0.9, 0.8], np.float32), np.zeros((2, 4), np.float32), np.ones(2, np.int64))
    assert union_dice(found, truth) == pytest.approx(2 * 8 / (12 + 16))
    assert union_dice(Instances.empty((10, 10)), np.zeros((10, 10), bool)) == 1.0
    assert union_dice(Instances.empty((10, 10)), truth) == 0.0


@pytest.mark.parametrize("name,options,module", [
    ("maskrcnn_mobilenet_v2_fpn", {}, lambda m: m.net.backbone.body),
    ("unet", {"encoder": "mobilenet_v2"}, lambda m: m.net.encoder.features),
])
def test_mobilenet_v2_backbones_load_the_real_imagenet_file(name: str, options: dict, module):
    if not CORAL.is_file():
        pytest.skip(f"shared weights not available: {CORAL} is absent (never shipped with mammocad)")
    state = torch.load(CORAL, map_location="cpu", weights_only=True)
    random_init = build_segmenter(name, 2, **options)
    loaded = build_segmenter(name, 2, CORAL, input_norm="minus_one_one", **options)
    ours = module(loaded).state_dict()
    expected = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    assert ours.keys() == expected.keys()
    assert all(torch.equal(ours[k], expected[k]) for k in expected)
    assert not torch.equal(module(random_init).state_dict()["0.0.weight"], ours["0.0.weight"])
    assert loaded.input_adapter.norm == "minus_one_one"


def test_offline_coco_weights_name_the_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, path):
        raise OSError("network unreachable")

    monkeypatch.setattr("mammocad.models.weights.download_url", offline)
    with pytest.raises(WeightsUnavailable) as err:
        build_segmenter("maskrcnn_resnet50_fpn_v2", 2, "coco")
    message = str(err.value)
    assert "COCO weights" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "maskrcnn_resnet50_fpn_v2_coco" in message and "\n" not in message
    with pytest.raises(WeightsUnavailable, match="ImageNet weights"):
        build_segmenter("unet", 2, "imagenet", encoder="resnet34")


# ---- augmentation ----------------------------------------------------------------------------
def test_joint_augmentation_keeps_masks_and_boxes_on_the_lesions():
    transform = segmentation_transform("full", (64, 64))
    for seed in range(40):
        torch.manual_seed(seed)
        image, target = _lesion_sample(64, ((20, 24, 8), (44, 40, 6)))
        out_image, out = transform(image, target)
        assert out_image.shape == (1, 64, 64) and 0 <= out_image.min() and out_image.max() <= 1
        assert len(out["masks"]) == len(out["boxes"]) == len(out["labels"]) >= 1
        pixels = out_image[0].numpy()
        for mask, box in zip(out["masks"].numpy().astype(bool), out["boxes"].tolist()):
            ys, xs = np.nonzero(mask)
            assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]  # the tight box of its mask
            inner = mask.copy()
            inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
            if inner.sum() >= 4:  # away from the outline, where resampling mixes lesion and background
                assert np.median(pixels[inner]) > 0.6, seed
        union = out["masks"].numpy().any(axis=0)
        assert np.median(pixels[~union]) < 0.4, seed  # the bright lesion did not move out of the masks


def test_an_instance_that_leaves_the_image_is_dropped():
    image, target = _lesion_sample(64, ((20, 8, 5), (40, 50, 6)))
    shift_right = SegmentationTransform([A.Affine(translate_px={"x": 30, "y": 0}, p=1.0)])
    _, out = shift_right(image, target)
    assert len(out["masks"]) == len(out["boxes"]) == len(out["labels"]) == 1
    assert out["boxes"].tolist() == [[33.0, 15.0, 44.0, 26.0]]  # the first disc (cols 3-13), moved 30 px right
    _, same = segmentation_transform("none", (64, 64))(image, target)
    assert torch.equal(same["masks"], target["masks"])


# ---- data, training, prediction ----------------------------------------------------------------
@pytest.fixture(scope="module")
def seg_sets(prepared_small: Path, tmp_path_factory) -> dict[str, Path]:
    """resize512 at 64 px and 64 px tiles (stride 32) of the tiny prepared set; splits re-dealt so
    train and val both hold lesions (six patients are too few for the patient-level split)."""
    sets = {}
    for kind, config in (("resize512", kind_config_class("resize512")(size=64)),
                         ("seg", kind_config_class("seg")(tile_size=64, stride=32))):
        out = tmp_path_factory.mktemp(kind)
        build_patches(PatchJob(prepared=prepared_small, out=out, kind=PatchKind(kind), workers=1, figure=False),
                      config, progress=False)
        manifest = pd.read_csv(out / MANIFEST, keep_default_na=False)
        manifest["split"] = [("train", "train", "val", "test")[i % 4] for i in range(len(manifest))]
        manifest.to_csv(out / MANIFEST, index=False)
        sets[kind] = out
    return sets


def test_segmentation_dataset_filters_instances_and_negatives(seg_sets: dict[str, Path]):
    root = seg_sets["seg"]
    every = SegmentationDataset(root, "train")
    masses = SegmentationDataset(root, "train", instance_classes={"BENIGN_MASS": 1, "MALIGNANT_MASS": 1},
                                 negatives=False)
    assert 0 < len(masses) < len(every) and masses.instance_count() > 0
    for index in range(len(masses)):
        _, target = masses[index]
        assert len(target["masks"]) >= 1 and set(target["labels"].tolist()) == {1}
    transformed = SegmentationDataset(root, "train", transform=lambda image, target: (image * 0, target))
    assert transformed[0][0].max() == 0


def _config(data: Path, out: Path, **overrides) -> SegmentTrainConfig:
    settings = dict(data=data, out=out, model="unet", encoder="mobilenet_v2", phases="heads:1:1e-3,all:2:1e-3",
                    batch_size=4, workers=0, lesion_type="any", precision="32", limit_train_batches=2, limit_val_batches=2, seed=0)
    return SegmentTrainConfig(**{**settings, **overrides})


class _Crash(Exception):
    pass


def test_resume_after_interruption_ends_like_an_uninterrupted_run(seg_sets: dict[str, Path], tmp_path: Path,
                                                                   monkeypatch):
    from lightning.pytorch.callbacks import Callback

    class CrashAt(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 2:
                raise _Crash()

    data = seg_sets["seg"]
    whole = train_segmenter(_config(data, tmp_path / "whole"), progress=False)
    with pytest.raises(_Crash):
        train_segmenter(_config(data, tmp_path / "split"), progress=False, callbacks=[CrashAt()])
    resumed = train_segmenter(_config(data, tmp_path / "split", resume=True), progress=False)
    assert resumed.epochs_run == whole.epochs_run == 3 and resumed.monitor == "val_dice"
    metrics = pd.read_csv(tmp_path / "whole" / "metrics.csv")
    assert list(metrics.columns[:5]) == ["epoch", "phase", "lr", "train_loss", "val_loss"]
    assert {"val_dice", "train_loss_bce", "train_loss_dice"} <= set(metrics.columns)
    assert metrics["phase"].tolist() == [0, 1, 1] and metrics["lr"].tolist() == pytest.approx([1e-3] * 3)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "split" / "metrics.csv"), metrics, check_exact=True)
    for name in ("last", "best"):
        a, b = (torch.load(tmp_path / run / "checkpoints" / f"{name}.ckpt", weights_only=True)["state_dict"]
                for run in ("whole", "split"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert resumed.best_value == pytest.approx(metrics["val_dice"].max())

    # the checkpoint predicts on a whole prepared image through the tile path and the real stitcher
    segmenter = load_segmenter(resumed.best_checkpoint, batch_size=3)
    assert segmenter.input_kind == "seg" and segmenter.image_size == 64 and segmenter.tile_stride == 32
    image = np.random.default_rng(0).integers(0, 255, (100, 130), dtype=np.uint8)
    assert segmenter.predict(image).shape == (100, 130)
    # every tile found as a whole: the stitched regions then cover exactly the pixels the tiles covered
    tiles = []

    def whole_tile(batch):
        tiles.extend(tile.shape for tile in batch)
        return [Instances(np.ones((1, 64, 64), bool), np.ones(1, np.float32), np.array([[0, 0, 64, 64]], np.float32),
                          np.ones(1, np.int64)) for _ in batch]

    monkeypatch.setattr(segmenter.model, "detect", whole_tile)
    covered = segmenter.predict(image)
    assert tiles == [(1, 64, 64)] * 12  # row starts 0, 32, 36 x col starts 0, 32, 64, 66 (last tiles flush)
    assert covered.shape == (100, 130) and covered.union().all()


def test_train_segmenter_cli_end_to_end_and_predict(seg_sets: dict[str, Path], prepared_small: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = run("train-segmenter", "--data", seg_sets["resize512"], "--model", "maskrcnn_mobilenet_v2_fpn",
                 "--weights", "none", "--phases", "heads:1:1e-4", "--batch-size", 2, "--lesion-type", "any",
                 "--rpn-proposals", 30, "--rois-per-image", 16, "--limit-train-batches", 2, "--limit-val-batches", 2,
                 "--out", out,
                 "--anchor-sizes", 8, 16, 32, 64, 128, "--val-score-threshold", 0.0)
    assert "best val Dice" in result.output
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv", "config.yaml", "run.json"):
        assert (out / name).is_file(), name
    (saved,) = build_configs((SegmentTrainConfig,), out / "config.yaml", {})
    assert saved.anchor_sizes == (8, 16, 32, 64, 128) and saved.model == "maskrcnn_mobilenet_v2_fpn"
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["input_kind"] == "resize512" and run_info["image_size"] == 64

    segmenter = load_segmenter(out / "checkpoints" / "last.ckpt")
    assert segmenter.model.net.rpn.anchor_generator.sizes == ((8,), (16,), (32,), (64,), (128,))
    image = read_image(next((prepared_small / "images").glob("*.png")))
    found = segmenter.predict(image)
    assert found.shape == image.shape
    for mask, box in zip(found.masks, found.boxes):
        assert mask.any() and 0 <= box[0] < box[2] <= image.shape[1] and 0 <= box[1] < box[3] <= image.shape[0]
    assert "already holds a training run" in run("train-segmenter", "--config", out / "config.yaml",
                                                  ok=False).output


def test_offline_coco_through_the_cli_is_one_line(seg_sets: dict[str, Path], tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("mammocad.models.weights.download_url",
                        lambda url, path: (_ for _ in ()).throw(OSError("network unreachable")))
    result = run("train-segmenter", "--data", seg_sets["resize512"], "--weights", "coco", "--out", tmp_path / "r",
                 ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output
    assert "COCO weights for maskrcnn_resnet50_fpn_v2" in lines[0] and str(tmp_path / "torch") in lines[0]
