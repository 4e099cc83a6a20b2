"""Training: tasks, augmentation, phase schedules, staged fine-tuning inside one Lightning fit,
the run folder, checkpoint round trips, exact resume, fast paths, DDP and a real learning check.

Everything runs on a synthetic CBIS-DDSM (240 patients, 512x384 mammograms) cut into 64 px
large-context patches, with small models at 64 px input."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from sklearn.metrics import roc_auc_score

from mammocad.models import WeightsUnavailable, build_classifier, set_trainable
from mammocad.patches.datasets import PatchDataset
from mammocad.preprocess.steps import resize_square
from mammocad.patches.store import MANIFEST, read_manifest
from mammocad.train import (
    TASKS,
    TrainConfig,
    cpu_supports_bf16,
    eval_transform,
    get_task,
    load_classifier,
    parse_phases,
    predict_probabilities,
    resolve_channels_last,
    resolve_precision,
    resolve_workers,
    train_classifier,
    train_transform,
)
from mammocad.utils.config import build_configs
from mammocad.utils.errors import DataError

@pytest.fixture(scope="module")
def patch_set(tmp_path_factory) -> Path:
    """64 px large-context patches of a 240-patient synthetic set (~530 train, 40 val, 170 test lesions)."""
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm
    from mammocad.patches.build import PatchJob, PatchKind, build_patches
    from mammocad.patches.large_context import LargeContextConfig
    from mammocad.preprocess.pipeline import PreprocessConfig
    from mammocad.preprocess.prepare import PrepareJob, run_prepare

    root = tmp_path_factory.mktemp("train_data")
    generate_cbis_ddsm(root / "synth", SynthConfig(patients=240, seed=0, image_rows=512, image_cols=384, workers=2),
                       progress=False)
    summary = run_prepare(PrepareJob(source=root / "synth", out=root / "prepared", workers=2, figures=0),
                          PreprocessConfig(), progress=False)
    assert not summary.failures
    summary = build_patches(PatchJob(prepared=root / "prepared", out=root / "large", kind=PatchKind.LARGE,
                                     workers=2, figure=False), LargeContextConfig(output_size=64), progress=False)
    assert not summary.failures
    return root / "large"


def _config(patch_set: Path, out: Path, **overrides) -> TrainConfig:
    """A small, fast run: medical_cnn from scratch at 64 px, no workers."""
    settings = dict(data=patch_set, out=out, task="benign_malignant", model="medical_cnn", weights="none",
                    input_size=64, phases="all:1:1e-3", batch_size=32, workers=0, augment="full", seed=0)
    return TrainConfig(**{**settings, **overrides})


# ---- tasks -----------------------------------------------------------------------------------------
def test_tasks_map_patch_labels_to_classes():
    five = get_task("five_class")
    assert five.class_names == ("BACKGROUND", "BENIGN_CALCIFICATION", "BENIGN_MASS", "MALIGNANT_CALCIFICATION",
                                "MALIGNANT_MASS")
    assert dict(five.classes) == {name: i for i, name in enumerate(five.class_names)}
    assert dict(get_task("mass_benign_malignant").classes) == {"BENIGN_MASS": 0, "MALIGNANT_MASS": 1}
    assert dict(get_task("calc_benign_malignant").classes) == {"BENIGN_CALCIFICATION": 0,
                                                               "MALIGNANT_CALCIFICATION": 1}
    assert dict(get_task("benign_malignant").classes) == {"BENIGN_CALCIFICATION": 0, "BENIGN_MASS": 0,
                                                          "MALIGNANT_CALCIFICATION": 1, "MALIGNANT_MASS": 1}
    assert dict(get_task("mass_vs_calc").classes) == {"BENIGN_CALCIFICATION": 0, "MALIGNANT_CALCIFICATION": 0,
                                                      "BENIGN_MASS": 1, "MALIGNANT_MASS": 1}
    for name in ("mass_benign_malignant", "calc_benign_malignant", "benign_malignant"):
        assert get_task(name).class_names == ("BENIGN", "MALIGNANT")  # positive class at index 1
    assert get_task("mass_vs_calc").class_names == ("CALCIFICATION", "MASS")
    assert all(task.is_binary for name, task in TASKS.items() if name != "five_class")
    with pytest.raises(ValueError, match="unknown task 'triage'.*five_class, mass_benign_malignant"):
        get_task("triage")


def test_task_dataset_reads_only_the_task_labels(patch_set: Path):
    task = get_task("mass_benign_malignant")
    dataset = PatchDataset(patch_set, "train", classes=task.classes)
    manifest = read_manifest(patch_set)
    masses = manifest[(manifest["split"] == "train") & manifest["label"].str.endswith("_MASS")]
    assert len(dataset) == len(masses)
    assert dataset.targets == [int(label == "MALIGNANT_MASS") for label in masses["label"]]


# ---- augmentation ----------------------------------------------------------------------------------
def test_augment_presets_change_images_as_specified_and_resize():
    image = torch.rand(1, 48, 48)
    resized = eval_transform(64)(image)
    assert resized.shape == (1, 64, 64) and resized.dtype == torch.float32
    assert torch.equal(resized[0], torch.from_numpy(resize_square(image[0].numpy(), 64)))  # the patches' resampling
    with pytest.raises(ValueError, match="one image"):
        eval_transform(64)(torch.rand(5, 1, 48, 48))

    torch.manual_seed(0)
    assert all(torch.equal(train_transform("none", 64)(image), resized) for _ in range(5))

    outputs = [train_transform("simple", 64)(image) for _ in range(20)]
    flipped = [torch.allclose(out, resized.flip(-1), atol=1e-6) for out in outputs]
    assert all(f or torch.equal(out, resized) for f, out in zip(flipped, outputs))  # only horizontal flips
    assert 0 < sum(flipped) < 20

    full = train_transform("full", 64)
    outputs = [full(image) for _ in range(10)]
    assert all(out.shape == (1, 64, 64) for out in outputs)
    plain_flips = [resized, resized.flip(-1), resized.flip(-2), resized.flip(-1).flip(-2)]
    assert not any(torch.allclose(out, flip, atol=1e-3) for out in outputs for flip in plain_flips)  # affine always moves
    assert all(out.min() >= 0 and out.max() <= 1 for out in outputs)
    # Rotated/shifted away from the patch, a white patch shows black (0) where nothing was.
    white = [full(torch.ones(1, 48, 48)) for _ in range(10)]
    assert sum(bool((out == 0).any()) for out in white) >= 8

    jittered = train_transform("none", 64, intensity=0.3)
    outputs = [jittered(image) for _ in range(5)]
    assert not any(torch.allclose(out, resized) for out in outputs)
    assert all(out.min() >= 0 and out.max() <= 1 for out in outputs)

    torch.manual_seed(3)
    first = full(image)
    torch.manual_seed(3)
    assert torch.equal(full(image), first)  # seeded through torch's RNG
    assert not torch.equal(full(image), first)
    with pytest.raises(ValueError):
        train_transform("heavy", 64)
    with pytest.raises(ValueError, match="intensity"):
        train_transform("none", 64, intensity=1.5)


# ---- schedule and config ---------------------------------------------------------------------------
def test_parse_phases():
    schedule = parse_phases("head:3:1e-3, last_third:2:1e-4,last_two_thirds:1:1e-5")
    assert [(p.name, p.epochs, p.lr) for p in schedule.phases] == [
        ("head", 3, 1e-3), ("last_third", 2, 1e-4), ("last_two_thirds", 1, 1e-5)]
    assert schedule.total_epochs == 6
    assert [schedule.index_at(e) for e in range(8)] == [0, 0, 0, 1, 1, 2, 2, 2]
    assert parse_phases("all:30:0.001").phases[0].name == "all"


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ("head:3", "is not phase:epochs:lr"),
    ("head:3:1e-3,backbone:2:1e-4", "unknown phase 'backbone'"),
    ("head:three:1e-3", "not a whole number"),
    ("head:3:fast", "not a number"),
    ("head:0:1e-3", "at least 1 epoch"),
    ("head:2:-1e-3", "learning rate > 0"),
])
def test_parse_phases_errors(text: str, problem: str):
    with pytest.raises(ValueError, match=problem) as err:
        parse_phases(text)
    assert "phase:epochs:lr" in str(err.value) and "last_two_thirds" in str(err.value)


@pytest.mark.parametrize("overrides, problem", [
    ({"task": "triage"}, "unknown task"),
    ({"model": "resnet9000"}, "unknown model"),
    ({"phases": "head:1"}, "phase:epochs:lr"),
    ({"input_size": 16}, "input_size of medical_cnn must be >= 32"),
    ({"precision": "8-mixed"}, "precision must be one of"),
    ({"augment": "heavy"}, "heavy"),
    ({"input_norm": "zscore"}, "input_norm"),
    ({"batch_size": 0}, "batch_size"),
])
def test_train_config_rejects_bad_settings(tmp_path: Path, overrides: dict, problem: str):
    with pytest.raises(ValueError, match=problem):
        _config(tmp_path, tmp_path / "run", **overrides)


# ---- fast paths ------------------------------------------------------------------------------------
def test_precision_auto_resolves_to_the_documented_fast_path():
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if cpu_supports_bf16() else "32")
    assert resolve_precision("auto", "mps") == "32"
    assert resolve_precision("16-mixed", "cpu") == "16-mixed"  # explicit values pass through
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8", "cpu")
    assert resolve_channels_last(None, "cpu", "bf16-mixed") and resolve_channels_last(None, "cuda", "16-mixed")
    assert not resolve_channels_last(None, "cpu", "32")
    assert not resolve_channels_last(False, "cuda", "bf16-mixed")


def test_workers_auto_loads_in_process_on_cpu_and_scales_with_cores_per_gpu(monkeypatch):
    assert resolve_workers(None, "cpu", 1) == 0 and resolve_workers(3, "cpu", 1) == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert resolve_workers(None, "cuda", 1) == 8  # capped
    assert resolve_workers(None, "cuda", 4) == 3  # 16 cores / 4 GPUs, one left for the training process
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert resolve_workers(None, "cuda", 1) == 1


# ---- one staged fit: phases, run folder, checkpoints --------------------------------------------
class PhaseProbe(Callback):
    """Per epoch: the phase, which parameters the optimizer holds, which ones changed, BN modes."""

    def __init__(self):
        self.epochs: list[dict] = []
        self.module = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx:
            return
        model = pl_module.model
        in_optimizer = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
        frozen_bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and not m.weight.requires_grad]
        self.epochs.append({
            "phase": pl_module.phase_index,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "trainable": {name for name, p in model.named_parameters() if p.requires_grad},
            "optimizer_is_trainable": in_optimizer == {id(p) for p in model.parameters() if p.requires_grad},
            "frozen_bn_in_eval": all(not m.training for m in frozen_bn),
            "start": {k: v.detach().clone() for k, v in model.state_dict().items()},
        })

    def on_train_epoch_end(self, trainer, pl_module):
        end = pl_module.model.state_dict()
        record = self.epochs[-1]
        record["changed"] = {k for k, v in record.pop("start").items() if not torch.equal(v, end[k])}
        self.module = pl_module


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_batchnorm_keeps_every_running_statistic_while_the_weights_train(patch_set: Path, tmp_path: Path,
                                                                               frozen: bool):
    config = _config(patch_set, tmp_path / "run", model="mobilenet_v2", phases="all:1:1e-3", limit_train_batches=2,
                     frozen_batchnorm=frozen)
    probe = PhaseProbe()
    train_classifier(config, progress=False, callbacks=[probe])
    changed = probe.epochs[0]["changed"]
    bn_weights = {name for name, m in build_classifier("mobilenet_v2", 2).named_modules()
                  if isinstance(m, torch.nn.BatchNorm2d)}
    assert {f"{name}.weight" for name in bn_weights} <= changed  # the affine parameters learn either way
    stats_changed = {k for k in changed if k.endswith(("running_mean", "running_var"))}
    assert (stats_changed == set()) if frozen else (len(stats_changed) == 2 * len(bn_weights))


def test_staged_fit_switches_trainable_layers_and_writes_the_run_folder(patch_set: Path, tmp_path: Path):
    out = tmp_path / "run"
    phases = "head:1:1e-3,last_third:1:5e-4,all:1:1e-4"
    config = _config(patch_set, out, model="mobilenet_v2", phases=phases, limit_train_batches=2,
                     precision="bf16-mixed", class_weights=True, workers=None)
    probe = PhaseProbe()
    result = train_classifier(config, progress=False, callbacks=[probe])

    # Each epoch trains exactly its phase's parameters, with a fresh optimizer at its lr.
    reference = build_classifier("mobilenet_v2", 2)
    for epoch, (phase, lr) in enumerate([("head", 1e-3), ("last_third", 5e-4), ("all", 1e-4)]):
        record = probe.epochs[epoch]
        set_trainable(reference, phase)
        expected = {name for name, p in reference.named_parameters() if p.requires_grad}
        assert record["phase"] == epoch and record["lr"] == lr
        assert record["trainable"] == expected and record["optimizer_is_trainable"]
        assert record["frozen_bn_in_eval"]
        changed_params = {k for k in record["changed"] if k in dict(reference.named_parameters())}
        assert changed_params == expected, phase  # every trainable parameter moved, no frozen one did
        changed_stats = {k.removesuffix(".running_mean") for k in record["changed"] if k.endswith("running_mean")}
        trainable_bn = {name for name, m in reference.named_modules()
                        if isinstance(m, torch.nn.BatchNorm2d) and m.weight.requires_grad}
        assert changed_stats == trainable_bn, phase  # frozen BatchNorm layers keep their statistics
    assert len(probe.epochs[0]["trainable"]) == 2  # head only: Linear weight and bias
    assert len(probe.epochs[0]["trainable"]) < len(probe.epochs[1]["trainable"]) < len(probe.epochs[2]["trainable"])

    # Run folder.
    assert result.run_dir == out and result.epochs_run == 3
    assert result.best_checkpoint == out / "checkpoints" / "best.ckpt" and result.best_checkpoint.is_file()
    assert result.last_checkpoint == out / "checkpoints" / "last.ckpt" and result.last_checkpoint.is_file()
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:8]) == ["epoch", "phase", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                                         "val_auc"]
    assert metrics["epoch"].tolist() == [0, 1, 2] and metrics["phase"].tolist() == [0, 1, 2]
    assert metrics["lr"].tolist() == pytest.approx([1e-3, 5e-4, 1e-4])  # logged as float32
    assert metrics[["train_loss", "val_loss", "val_acc", "val_auc"]].notna().all().all()
    assert result.best_val_auc == pytest.approx(metrics["val_auc"].max())
    (saved,) = build_configs((TrainConfig,), out / "config.yaml", {})
    assert saved == config
    run = json.loads((out / "run.json").read_text())
    assert run["precision"] == "bf16-mixed" and run["channels_last"] is True and run["device"] == "cpu"
    assert run["workers"] == 0  # auto on the CPU: loading in the training process
    assert run["strided_depthwise_layers"] == 4  # CPU bf16: MobileNetV2's stride-2 depthwise layers swapped
    assert run["cpu_allocator_keeps_freed_memory"] is (platform.libc_ver()[0] == "glibc")
    counts = read_manifest(patch_set).query("split == 'train'")["label"].str.startswith("MALIGNANT").value_counts()
    assert run["class_weights"] == pytest.approx([counts.sum() / (2 * counts[False]), counts.sum() / (2 * counts[True])])
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    # Checkpoint round trip: the plain model predicts exactly what the trained module predicts.
    model, meta = load_classifier(result.last_checkpoint)
    assert meta["task"] == "benign_malignant" and meta["class_names"] == ["BENIGN", "MALIGNANT"]
    assert meta["classes"] == get_task("benign_malignant").classes
    assert meta["model"] == "mobilenet_v2" and meta["input_size"] == 64 and meta["input_norm"] == "imagenet"
    assert meta["epoch"] == 2 and meta["config"]["phases"] == phases
    assert not model.training
    val = PatchDataset(patch_set, "val", classes=get_task("benign_malignant").classes)
    probs, targets = predict_probabilities(model, val, input_size=64, batch_size=16)
    trained_model = probe.module.model.to(memory_format=torch.contiguous_format)  # it trained channels-last
    trained, _ = predict_probabilities(trained_model, val, input_size=64, batch_size=16)
    np.testing.assert_array_equal(probs, trained)
    assert probs.shape == (len(val), 2) and np.allclose(probs.sum(axis=1), 1)
    assert targets.tolist() == val.targets
    with pytest.raises(ValueError, match=r"eval_transform\(32\)"):
        predict_probabilities(model, val, input_size=32)  # 64 px patches, not resized for the model

    # The best checkpoint reproduces the val_auc it was selected for (training validated in bf16).
    best, _ = load_classifier(result.best_checkpoint)
    probs, targets = predict_probabilities(best, val, input_size=64, precision="bf16-mixed")
    assert roc_auc_score(targets, probs[:, 1]) == pytest.approx(result.best_val_auc, abs=1e-4)

    # A used run folder is not silently overwritten.
    with pytest.raises(DataError, match="already holds a training run"):
        train_classifier(config, progress=False)


# ---- resume ----------------------------------------------------------------------------------------
class Interrupt(Exception):
    pass


class InterruptAt(Callback):
    """Simulates a crash at the start of ``epoch`` (after the previous epoch's checkpoint)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise Interrupt(f"simulated crash at epoch {self.epoch}")


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_after_interruption_ends_like_an_uninterrupted_run(patch_set: Path, tmp_path: Path):
    # A phase switch at epoch 1; the crash comes at epoch 2, so the resumed run must restore the
    # second phase and its Adam state, and replay epoch 2's shuffling, augmentation and dropout.
    # The resumed invocation also uses loader workers: per-sample seeding makes that irrelevant.
    settings = dict(phases="head:1:1e-3,all:2:1e-3", limit_train_batches=3, intensity_jitter=0.2)
    whole = train_classifier(_config(patch_set, tmp_path / "whole", **settings), progress=False)

    with pytest.raises(Interrupt):
        train_classifier(_config(patch_set, tmp_path / "split", **settings), progress=False,
                         callbacks=[InterruptAt(2)])
    assert pd.read_csv(tmp_path / "split" / "metrics.csv")["epoch"].tolist() == [0, 1]
    resumed = train_classifier(_config(patch_set, tmp_path / "split", resume=True, workers=2, **settings),
                               progress=False)

    assert resumed.epochs_run == whole.epochs_run == 3
    assert json.loads((tmp_path / "split" / "run.json").read_text())["resumed_from"] == str(resumed.last_checkpoint)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "split" / "metrics.csv"),
                                  pd.read_csv(tmp_path / "whole" / "metrics.csv"), check_exact=True)
    for name in ("last", "best"):
        a, b = (_weights(tmp_path / run / "checkpoints" / f"{name}.ckpt") for run in ("whole", "split"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert resumed.best_val_auc == whole.best_val_auc


def test_resume_refuses_changed_settings_and_starts_fresh_without_a_checkpoint(patch_set: Path, tmp_path: Path):
    out = tmp_path / "run"
    fresh = train_classifier(_config(patch_set, out, resume=True, limit_train_batches=1), progress=False)
    run = json.loads((out / "run.json").read_text())
    assert fresh.epochs_run == 1 and run["resumed_from"] is None
    precision = resolve_precision("auto", "cpu")  # the config's "auto": bf16-mixed on bf16-capable CPUs
    assert run["precision"] == precision and run["channels_last"] == resolve_channels_last(None, "cpu", precision)
    with pytest.raises(DataError, match=r"config.yaml: cannot resume with different settings: seed \(run: 0, now: 1\)"):
        train_classifier(_config(patch_set, out, resume=True, limit_train_batches=1, seed=1), progress=False)


def test_early_stopping_watches_the_last_phase_only(patch_set: Path, tmp_path: Path):
    # lr 1e-12 on the head alone leaves the model, hence val_auc, unchanged: plain early stopping
    # with patience 1 would stop after epoch 1; here the 2 head epochs run, the last phase's
    # first epoch sets its best, and its second (no better) stops the run: 4 of 5 epochs.
    config = _config(patch_set, tmp_path / "run", phases="head:2:1e-12,head:3:1e-12", early_stopping_patience=1,
                     limit_train_batches=1)
    result = train_classifier(config, progress=False)
    assert result.epochs_run == 4
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["phase"].tolist() == [0, 0, 1, 1] and metrics["val_auc"].nunique() == 1


# ---- bad input -------------------------------------------------------------------------------------
def _patch_set_without(patch_set: Path, dest: Path, drop) -> Path:
    """A copy of the patch set's manifest without the rows ``drop(frame)`` selects (images are not needed)."""
    dest.mkdir()
    frame = pd.read_csv(patch_set / MANIFEST, keep_default_na=False)
    frame[~drop(frame)].to_csv(dest / MANIFEST, index=False)
    return dest


def test_stale_or_changed_patch_sets_are_refused(patch_set: Path, tmp_path: Path):
    """A patch set older than its prepared folder is refused; so is resuming on a changed patch set."""
    data = tmp_path / "large"
    shutil.copytree(patch_set, data)
    fake_prepared = tmp_path / "prepared"
    fake_prepared.mkdir()
    (fake_prepared / "stage.json").write_text(json.dumps({"stage": "prepare", "fingerprint": "rebuilt"}))
    stage = json.loads((data / "stage.json").read_text())
    (data / "stage.json").write_text(json.dumps({**stage, "upstream": {"path": str(fake_prepared),
                                                                       "fingerprint": "original"}}))
    with pytest.raises(DataError, match="out of date"):
        train_classifier(_config(data, tmp_path / "stale"), progress=False)
    (data / "stage.json").write_text(json.dumps(stage))

    train_classifier(_config(data, tmp_path / "run", phases="all:2:1e-3", limit_train_batches=1,
                             limit_val_batches=1), progress=False)
    (tmp_path / "run" / "checkpoints" / "best.ckpt").unlink()
    manifest = pd.read_csv(data / MANIFEST, keep_default_na=False)
    manifest.iloc[:-5].to_csv(data / MANIFEST, index=False)
    with pytest.raises(DataError, match="patch set changed"):
        train_classifier(_config(data, tmp_path / "run", phases="all:2:1e-3", resume=True), progress=False)


def test_data_errors_name_the_patch_set(patch_set: Path, tmp_path: Path):
    no_val = _patch_set_without(patch_set, tmp_path / "no_val", lambda f: f["split"] == "val")
    with pytest.raises(DataError, match=f"^{no_val}: no 'val' patches for task benign_malignant"):
        train_classifier(_config(no_val, tmp_path / "a"), progress=False)
    no_malignant_calc = _patch_set_without(patch_set, tmp_path / "no_mc",
                                           lambda f: f["label"] == "MALIGNANT_CALCIFICATION")
    with pytest.raises(DataError, match="'train' split has no patches of class MALIGNANT "
                                        r"\(MALIGNANT_CALCIFICATION\), which task calc_benign_malignant needs"):
        train_classifier(_config(no_malignant_calc, tmp_path / "b", task="calc_benign_malignant"), progress=False)
    with pytest.raises(DataError, match="BACKGROUND"):  # large-context sets hold lesions only
        train_classifier(_config(patch_set, tmp_path / "c", task="five_class"), progress=False)
    with pytest.raises(DataError, match="not a patch set"):
        train_classifier(_config(tmp_path, tmp_path / "d"), progress=False)


def test_unavailable_imagenet_weights_pass_through(patch_set: Path, tmp_path: Path, monkeypatch):
    def offline(url, path):
        raise OSError("network unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr("mammocad.models.weights.download_url", offline)
    with pytest.raises(WeightsUnavailable, match="not cached and could not be downloaded"):
        train_classifier(_config(patch_set, tmp_path / "run", model="mobilenet_v2", weights="imagenet"),
                         progress=False)


def test_load_classifier_rejects_foreign_files(tmp_path: Path):
    with pytest.raises(DataError, match="no such checkpoint"):
        load_classifier(tmp_path / "missing.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(DataError, match="not a mammocad training checkpoint"):
        load_classifier(tmp_path / "other.ckpt")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_classifier(tmp_path / "junk.ckpt")


# ---- learning ----------------------------------------------------------------------------------------
def test_training_learns_benign_vs_malignant(patch_set: Path, tmp_path: Path):
    """A from-scratch CNN separates benign from malignant synthetic lesions well above chance.

    The thresholds are well below what this config reaches on the synthetic data (the demo's
    measurements are in benchmarks/RESULTS.md), leaving room for other CPUs' numerics.
    """
    result = train_classifier(_config(patch_set, tmp_path / "run", phases="all:8:1e-3"), progress=False)
    assert result.best_val_auc >= 0.68
    model, meta = load_classifier(result.best_checkpoint)
    test = PatchDataset(patch_set, "test", classes=get_task("benign_malignant").classes)
    probs, targets = predict_probabilities(model, test, input_size=meta["input_size"])
    assert roc_auc_score(targets, probs[:, 1]) >= 0.56


# ---- DDP ---------------------------------------------------------------------------------------------
class RanksInSync(Callback):
    """After training, every process must hold the same weights (checked with an all-gather)."""

    def on_train_end(self, trainer, pl_module):
        flat = torch.cat([p.detach().float().flatten() for p in pl_module.model.parameters()])
        gathered = pl_module.all_gather(flat)
        assert gathered.shape[0] == trainer.world_size == 2
        assert torch.equal(gathered[0], gathered[1]), "DDP processes diverged"


def test_ddp_two_cpu_processes_across_a_phase_switch(patch_set: Path, tmp_path: Path):
    config = _config(patch_set, tmp_path / "run", phases="head:1:1e-3,all:1:1e-3", accelerator="cpu", devices=2,
                     strategy="ddp_spawn", limit_train_batches=2, precision="32")
    result = train_classifier(config, progress=False, callbacks=[RanksInSync()])
    assert result.epochs_run == 2 and result.best_checkpoint.is_file()
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["phase"].tolist() == [0, 1] and metrics["val_auc"].notna().all()
    # Validation is sharded without duplicates: the synced AUC equals the checkpoint's on the whole val split.
    model, _ = load_classifier(result.last_checkpoint)
    val = PatchDataset(patch_set, "val", classes=get_task("benign_malignant").classes)
    probs, targets = predict_probabilities(model, val, input_size=64)
    assert roc_auc_score(targets, probs[:, 1]) == pytest.approx(metrics["val_auc"].iloc[-1], abs=1e-6)
