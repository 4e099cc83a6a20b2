"""Quality on real data: patient-level cross-validation on mini-MIAS (issue 5 acceptance).

Two tasks, each with a random initialisation and, when the file is present, the ImageNet
MobileNetV2 weights (``../shared/weights/mobilenet_v2_imagenet_coral.pt``, input in [-1, 1]):

- (a) ``lesion_vs_background`` on small-context patches (TFDS rules: 10 patches per located
  abnormality, ``--backgrounds`` normal-tissue patches per mammogram);
- (b) ``any_benign_malignant`` on large-context patches (one per located abnormality; benign vs
  malignant over every mini-MIAS type: masses, calcifications, distortions, asymmetries).

mini-MIAS (``../shared/data/mini-mias-dev``) is prepared once into ``--work`` (default: a new
temporary folder, kept and printed; prepare and patches are incremental, so a second run
with the same ``--work`` reuses them). Folds: ``StratifiedGroupKFold`` over patches, grouped by
patient (a left/right pair of mammograms is one woman), stratified by the task's label,
shuffled with ``--seed``; the same folds serve both initialisations. Per fold, a *view* patch
set (a folder holding only a ``patches.csv`` whose ``file`` column points at the real patches
by absolute path) puts the held-out fold in ``test``, about ``--val-fraction`` of the other
patients (grouped and stratified again) in ``val`` and the rest in ``train``; no patient is in
two of them (asserted). ``train_classifier`` trains MobileNetV2, the best-val-AUC checkpoint
predicts the held-out fold, and the out-of-fold predictions are pooled per (task, init).

Reported per (task, init), as JSON lines on stdout: pooled out-of-fold AUC with the bootstrap
95% CI of ``evaluate_predictions`` (resampling PATCHES), the same AUC with a 95% CI from
resampling PATIENTS (patches of one lesion/patient are correlated, so this is the honest
interval), per-fold AUCs (mean +- sd), accuracy / sensitivity / specificity at the fixed 0.5
threshold (class-weighted loss, so 0.5 is a sensible operating point), the AUC of the LAST
checkpoint too (the val sets are tiny, so "best" is a noisy choice), for task (a) a
lesion-level AUC (mean lesion-patch score per abnormality vs mean background-patch score per
mammogram), counts, minutes and peak memory (PSS of this process and its loader workers).
Pooled predictions are saved as ``<work>/predictions/<task>__<init>.csv``.

Research software, not a medical device.

    python benchmarks/bench_quality_mias.py --work /tmp/mias-quality             # full run (~30 min)
    python benchmarks/bench_quality_mias.py --folds 2 --input-small 64 --input-large 64 --smoke   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import nn
from sklearn.model_selection import StratifiedGroupKFold

from mammocad import DISCLAIMER
from mammocad.evaluate.metrics import binary_metrics, evaluate_predictions, weighted_auc
from mammocad.evaluate.predictions import predictions_frame, write_predictions
from mammocad.patches.build import PatchJob, PatchKind, build_patches
from mammocad.patches.datasets import PatchDataset
from mammocad.patches.large_context import LargeContextConfig
from mammocad.patches.small_context import SmallContextConfig
from mammocad.patches.store import MANIFEST
from mammocad.preprocess.pipeline import PreprocessConfig
from mammocad.preprocess.prepare import PrepareJob, run_prepare
from mammocad.train.engine import TrainConfig, train_classifier
from mammocad.train.augment import eval_transform
from mammocad.train.inference import load_classifier, predict_probabilities
from mammocad.train.tasks import get_task

from _common import PeakMemory, machine

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = SHARED / "data" / "mini-mias-dev"
DEFAULT_WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_coral.pt"
TASK_KIND = {"lesion_vs_background": "small", "any_benign_malignant": "large"}
PASSTHROUGH = ("patient_id", "image_id", "abnormality", "label")


@dataclass(frozen=True)
class Init:
    name: str  # "random" or "imagenet"
    weights: str
    input_norm: str | None
    phases: dict[str, str]  # task -> schedule
    frozen_bn: bool = False  # BatchNorm statistics fixed while fine-tuning (see FrozenBatchNormStats)


def log(record: dict) -> None:
    print(json.dumps({"benchmark": "quality_mias", **record}), flush=True)


# ---- data ------------------------------------------------------------------------------------------
def prepare_patch_sets(data: Path, work: Path, backgrounds: int, workers: int, seed: int) -> dict[str, Path]:
    """Prepared mini-MIAS and its small/large patch sets under ``work`` (incremental)."""
    prepared = work / "prepared"
    summary = run_prepare(PrepareJob(source=data, out=prepared, workers=workers, figures=0, seed=seed),
                          PreprocessConfig(), progress=False)
    if summary.failures:
        raise SystemExit(f"prepare failed for {len(summary.failures)} images: {summary.failures[:3]}")
    sets = {}
    for kind, config in (("small", SmallContextConfig(backgrounds_per_image=backgrounds)),
                         ("large", LargeContextConfig())):
        out = work / f"patches-{kind}-bg{backgrounds}" if kind == "small" else work / f"patches-{kind}"
        result = build_patches(PatchJob(prepared=prepared, out=out, kind=PatchKind(kind), workers=workers,
                                        figure=False, seed=seed), config, progress=False)
        if result.failures:
            raise SystemExit(f"{kind} patches failed for {len(result.failures)} images: {result.failures[:3]}")
        sets[kind] = out
    return sets


def task_manifest(patch_set: Path, task_name: str) -> pd.DataFrame:
    """The patch set's manifest rows of the task, verbatim text, ``file`` made absolute, plus ``target``."""
    task = get_task(task_name)
    frame = pd.read_csv(patch_set / MANIFEST, dtype=str, keep_default_na=False)
    frame = frame[frame["label"].isin(list(task.classes))].reset_index(drop=True)
    frame["file"] = [str((patch_set / f).resolve()) for f in frame["file"]]
    frame["target"] = frame["label"].map(task.classes).astype(int)
    return frame


def patient_folds(frame: pd.DataFrame, folds: int, seed: int) -> list[set[str]]:
    """Test patients of each fold: StratifiedGroupKFold by patient, stratified by target."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [set(frame["patient_id"].iloc[test]) for _, test in
            splitter.split(frame, frame["target"], groups=frame["patient_id"])]


def val_patients(frame: pd.DataFrame, fraction: float, seed: int) -> set[str]:
    """About ``fraction`` of the patients of ``frame`` (grouped, stratified), with both classes in val and train."""
    splits = max(2, round(1 / fraction))
    for attempt in range(20):
        splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed + 1000 * attempt)
        for train, val in splitter.split(frame, frame["target"], groups=frame["patient_id"]):
            if frame["target"].iloc[val].nunique() == 2 and frame["target"].iloc[train].nunique() == 2:
                return set(frame["patient_id"].iloc[val])
    raise SystemExit("could not find a validation cut with both classes")


def write_view(frame: pd.DataFrame, test: set[str], val: set[str], out: Path) -> dict[str, int]:
    """A fold view patch set at ``out``: only patches.csv, splits rewritten; returns patch counts per split."""
    view = frame.drop(columns="target").copy()
    view["split"] = np.where(view["patient_id"].isin(test), "test",
                             np.where(view["patient_id"].isin(val), "val", "train"))
    by_split = {s: set(view.loc[view["split"] == s, "patient_id"]) for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["val"]), "a patient is in train and val"
    assert not (by_split["train"] & by_split["test"]), "a patient is in train and test"
    assert not (by_split["val"] & by_split["test"]), "a patient is in val and test"
    assert by_split["test"] == test and by_split["val"] == val
    out.mkdir(parents=True, exist_ok=True)
    view.to_csv(out / MANIFEST, index=False)
    return {s: int((view["split"] == s).sum()) for s in ("train", "val", "test")}


# ---- training and prediction ---------------------------------------------------------------------
class FrozenBatchNormStats(L.Callback):
    """Keep every BatchNorm layer in eval mode while training (running statistics fixed, affine still learnt).

    The ImageNet file has BatchNorm folded into the convolutions: its BN layers are identities
    (mean 0, var 1). When the engine unfreezes a BN layer it trains in train mode, normalising
    with batch statistics instead, which changes the pretrained features at once (val AUC fell
    from ~0.79 to ~0.5 at the head -> last_third switch on fold 0 of task (a)). Applied before
    every training batch, i.e. after the module's own ``model.train()`` at epoch start.
    """

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for module in pl_module.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def predict(checkpoint: Path, view: Path, fold: int, batch_size: int) -> pd.DataFrame:
    model, meta = load_classifier(checkpoint)
    dataset = PatchDataset(view, "test", classes=meta["classes"], transform=eval_transform(meta["input_size"]))
    probs, targets = predict_probabilities(model, dataset, input_size=meta["input_size"], batch_size=batch_size,
                                           precision="auto")
    extra = {c: dataset.frame[c].astype(str).tolist() for c in PASSTHROUGH}
    extra["fold"] = [fold] * len(targets)
    return predictions_frame(dataset.frame["patch_id"].tolist(), targets, probs, meta["class_names"], "test", extra)


def run_fold(args, task_name: str, init: Init, fold: int, view: Path, run_dir: Path) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    config = TrainConfig(
        data=view, task=task_name, model="mobilenet_v2", weights=init.weights, input_norm=init.input_norm,
        input_size=args.input_small if TASK_KIND[task_name] == "small" else args.input_large,
        phases=init.phases[task_name], batch_size=args.batch_size,
        workers=args.loader_workers, class_weights=True, seed=args.seed + fold, out=run_dir,
        limit_train_batches=1 if args.smoke else None, limit_val_batches=1 if args.smoke else None,
    )
    started = time.perf_counter()
    callbacks = [FrozenBatchNormStats()] if init.frozen_bn else []
    result = train_classifier(config, progress=False, callbacks=callbacks)
    train_s = time.perf_counter() - started
    best = predict(result.best_checkpoint, view, fold, args.batch_size * 2)
    last = predict(result.last_checkpoint, view, fold, args.batch_size * 2)
    predict_s = time.perf_counter() - started - train_s
    metrics = pd.read_csv(run_dir / "metrics.csv")
    best_epoch = int(metrics.loc[metrics["val_auc"].idxmax(), "epoch"])
    return {"best": best, "last": last, "train_s": train_s, "predict_s": predict_s,
            "seconds": time.perf_counter() - started, "best_epoch": best_epoch, "best_val_auc": result.best_val_auc,
            "epochs": result.epochs_run}


# ---- metrics -----------------------------------------------------------------------------------------
def cluster_bootstrap_auc(targets: np.ndarray, scores: np.ndarray, groups, n_resamples: int, seed: int) -> list:
    """95% percentile CI of the AUC when whole patients (``groups``) are resampled with replacement."""
    codes, uniques = pd.factorize(np.asarray(groups))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(uniques), np.full(len(uniques), 1 / len(uniques)), size=n_resamples)
    weights = counts[:, codes].astype(np.float64)  # (R, N): each patch weighs its patient's draw count
    keep = ((weights @ (targets == 1)) > 0) & ((weights @ (targets == 0)) > 0)
    values = weighted_auc(targets, scores, weights[keep])
    return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]


def paired_difference(task_name: str, a: pd.DataFrame, b: pd.DataFrame, n_resamples: int, seed: int) -> dict:
    """AUC(b) - AUC(a) on the same out-of-fold patches, with a 95% CI from resampling patients (paired)."""
    positive = f"prob_{get_task(task_name).class_names[1]}"
    b = b.set_index("sample_id").loc[a["sample_id"]].reset_index()
    targets = a["target"].to_numpy()
    codes, uniques = pd.factorize(a["patient_id"].to_numpy())
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(uniques), np.full(len(uniques), 1 / len(uniques)), size=n_resamples)
    weights = counts[:, codes].astype(np.float64)
    weights = weights[((weights @ (targets == 1)) > 0) & ((weights @ (targets == 0)) > 0)]
    deltas = (weighted_auc(targets, b[positive].to_numpy(), weights)
              - weighted_auc(targets, a[positive].to_numpy(), weights))
    point = (binary_metrics(targets, b[positive].to_numpy())["auc"]
             - binary_metrics(targets, a[positive].to_numpy())["auc"])
    return {"auc_difference": round(float(point), 4),
            "auc_difference_ci_patients": [round(float(v), 4) for v in np.percentile(deltas, [2.5, 97.5])],
            "fraction_of_resamples_above_0": round(float((deltas > 0).mean()), 4)}


def lesion_level(frame: pd.DataFrame) -> pd.DataFrame:
    """Task (a) per unit: mean lesion-patch score per abnormality (target 1), mean background score per image (0)."""
    frame = frame.assign(score=frame["prob_LESION"],
                         unit=np.where(frame["target"] == 1, frame["abnormality"], frame["image_id"] + "_bg"))
    return frame.groupby("unit").agg(target=("target", "first"), score=("score", "mean"),
                                     patient_id=("patient_id", "first")).reset_index()


def summarise(task_name: str, init: str, folds: list[dict], args, minutes: float, peak_mib: float,
              out: Path, folds_pooled: dict) -> dict:
    task = get_task(task_name)
    pooled = pd.concat([f["best"] for f in folds], ignore_index=True)
    pooled_last = pd.concat([f["last"] for f in folds], ignore_index=True)
    write_predictions(out / f"{task_name}__{init}.csv", pooled)
    folds_pooled[(task_name, init)] = pooled
    write_predictions(out / f"{task_name}__{init}__last.csv", pooled_last)
    result = evaluate_predictions(pooled, task.class_names, n_resamples=args.n_resamples, seed=args.seed).metrics
    targets = pooled["target"].to_numpy()
    scores = pooled[f"prob_{task.class_names[1]}"].to_numpy()
    fold_aucs = [binary_metrics(f["best"]["target"].to_numpy(),
                                f["best"][f"prob_{task.class_names[1]}"].to_numpy())["auc"] for f in folds]
    last_scores = pooled_last[f"prob_{task.class_names[1]}"].to_numpy()
    record = {
        "kind": "summary", "task": task_name, "init": init, "folds": len(folds),
        "auc": round(result["auc"], 4), "auc_ci_patches": [round(v, 4) for v in result["auc_ci"]],
        "auc_ci_patients": cluster_bootstrap_auc(targets, scores, pooled["patient_id"], args.n_resamples, args.seed),
        "fold_auc_mean": round(float(np.mean(fold_aucs)), 4),
        "fold_auc_sd": round(float(np.std(fold_aucs, ddof=1)), 4) if len(fold_aucs) > 1 else None,
        "fold_aucs": [round(a, 4) for a in fold_aucs],
        "accuracy_at_0.5": round(result["accuracy"], 4), "accuracy_ci": [round(v, 4) for v in result["accuracy_ci"]],
        "sensitivity_at_0.5": round(result["sensitivity"], 4), "specificity_at_0.5": round(result["specificity"], 4),
        "auc_last_checkpoint": round(binary_metrics(targets, last_scores)["auc"], 4),
        "best_epochs": [f["best_epoch"] for f in folds],
        "n_patches": int(len(pooled)), "n_positive": int(targets.sum()),
        "n_patients": int(pooled["patient_id"].nunique()), "minutes": round(minutes, 2), "peak_pss_mib": peak_mib,
    }
    if task_name == "lesion_vs_background":
        units = lesion_level(pooled)
        unit_targets, unit_scores = units["target"].to_numpy(), units["score"].to_numpy()
        record.update(
            lesion_level_auc=round(binary_metrics(unit_targets, unit_scores)["auc"], 4),
            lesion_level_auc_ci_patients=cluster_bootstrap_auc(unit_targets, unit_scores, units["patient_id"],
                                                               args.n_resamples, args.seed),
            lesion_level_n=f"{int(unit_targets.sum())} lesions vs {int((unit_targets == 0).sum())} images",
        )
    return record


def pooled_inits(pooled: dict, task_name: str) -> set[str]:
    return {init for task, init in pooled if task == task_name}


# ---- main --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="mini-MIAS folder (Info.txt + PGMs)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                        help="ImageNet MobileNetV2 state_dict (input in [-1, 1]); skipped when absent")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one, kept)")
    parser.add_argument("--tasks", default="lesion_vs_background,any_benign_malignant")
    parser.add_argument("--inits", default="random,imagenet")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--run-folds", type=int, default=None,
                        help="train only the first N folds (timing extrapolation); metrics then cover those only")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--backgrounds", type=int, default=2, help="small-context background patches per mammogram")
    parser.add_argument("--input-small", type=int, default=128,
                        help="model input side for task (a), px (small-context patches are 224)")
    parser.add_argument("--input-large", type=int, default=224,
                        help="model input side for task (b), px (large-context patches are 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loader-workers", type=int, default=0)
    parser.add_argument("--random-small", default="all:8:1e-3", help="phases, random init, task (a)")
    parser.add_argument("--random-large", default="all:25:1e-3", help="phases, random init, task (b)")
    parser.add_argument("--imagenet-small", default="head:3:1e-3,last_third:9:1e-4",
                        help="phases, ImageNet init, task (a)")
    parser.add_argument("--imagenet-large", default="head:5:1e-3,last_third:20:1e-4",
                        help="phases, ImageNet init, task (b)")
    parser.add_argument("--imagenet-bn", choices=("frozen", "train"), default="frozen",
                        help="ImageNet init: BatchNorm statistics frozen (default; the file's BN is folded) or "
                             "trained in unfrozen layers (the engine's behaviour)")
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for prepare / patches")
    parser.add_argument("--smoke", action="store_true", help="one batch per epoch (checks the plumbing only)")
    args = parser.parse_args()

    if not (args.data / "Info.txt").is_file():
        raise SystemExit(f"mini-MIAS not found at {args.data} (expected Info.txt and the PGMs); pass --data")
    inits = []
    for name in args.inits.split(","):
        if name == "random":
            inits.append(Init("random", "none", None, {"lesion_vs_background": args.random_small,
                                                       "any_benign_malignant": args.random_large}))
        elif name == "imagenet":
            if not args.weights.is_file():
                log({"kind": "note", "message": f"ImageNet weights not found at {args.weights}: imagenet init skipped"})
                continue
            inits.append(Init("imagenet", str(args.weights.resolve()), "minus_one_one",
                              {"lesion_vs_background": args.imagenet_small,
                               "any_benign_malignant": args.imagenet_large}, args.imagenet_bn == "frozen"))
        else:
            raise SystemExit(f"unknown init {name!r} (random, imagenet)")
    tasks = args.tasks.split(",")
    for name in tasks:
        if name not in TASK_KIND:
            raise SystemExit(f"unknown task {name!r} ({', '.join(TASK_KIND)})")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-quality-mias-"))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(len(os.sched_getaffinity(0)))

    log({"kind": "settings", "work": str(work), "data": str(args.data), "weights": str(args.weights),
         "machine": machine(), "torch_threads": torch.get_num_threads(), "model": "mobilenet_v2",
         "tasks": tasks, "inits": [i.name for i in inits], "folds": args.folds, "run_folds": args.run_folds,
         "val_fraction": args.val_fraction, "backgrounds_per_image": args.backgrounds, "positives_per_lesion": 10,
         "patch_size": 224,
         "input_size": {"lesion_vs_background": args.input_small, "any_benign_malignant": args.input_large},
         "batch_size": args.batch_size,
         "loader_workers": args.loader_workers, "phases": {i.name: i.phases for i in inits},
         "imagenet_bn": args.imagenet_bn,
         "augment": "full", "class_weights": True, "precision": "auto", "checkpoint": "best val_auc",
         "threshold": 0.5, "n_resamples": args.n_resamples, "seed": args.seed, "smoke": args.smoke,
         "note": DISCLAIMER})

    total_started = time.perf_counter()
    with PeakMemory(interval=1.0) as total_peak:
        started = time.perf_counter()
        with PeakMemory() as peak:
            sets = prepare_patch_sets(args.data, work, args.backgrounds, args.workers, args.seed)
        log({"kind": "prepare", "seconds": round(time.perf_counter() - started, 1), "peak_pss_mib": peak.mib,
             "patch_sets": {k: str(v) for k, v in sets.items()}})
        predictions_dir = work / "predictions"
        pooled: dict[tuple[str, str], pd.DataFrame] = {}
        for task_name in tasks:
            frame = task_manifest(sets[TASK_KIND[task_name]], task_name)
            fold_patients = patient_folds(frame, args.folds, args.seed)
            assert set().union(*fold_patients) == set(frame["patient_id"])
            assert sum(len(p) for p in fold_patients) == frame["patient_id"].nunique()
            views = []
            for fold, test in enumerate(fold_patients[: args.run_folds]):
                rest = frame[~frame["patient_id"].isin(test)]
                val = val_patients(rest, args.val_fraction, args.seed + fold)
                view = work / "folds" / task_name / f"fold{fold}"
                counts = write_view(frame, test, val, view)
                views.append(view)
                log({"kind": "fold_split", "task": task_name, "fold": fold, "patches": counts,
                     "patients": {"train": frame["patient_id"].nunique() - len(test) - len(val), "val": len(val),
                                  "test": len(test)}})
            for init in inits:
                started = time.perf_counter()
                results = []
                with PeakMemory(interval=0.5) as peak:
                    for fold, view in enumerate(views):
                        run_dir = work / "runs" / task_name / init.name / f"fold{fold}"
                        r = run_fold(args, task_name, init, fold, view, run_dir)
                        results.append(r)
                        scores = r["best"][f"prob_{get_task(task_name).class_names[1]}"].to_numpy()
                        log({"kind": "fold", "task": task_name, "init": init.name, "fold": fold,
                             "auc": round(binary_metrics(r["best"]["target"].to_numpy(), scores)["auc"], 4),
                             "best_epoch": r["best_epoch"], "best_val_auc": round(r["best_val_auc"], 4),
                             "epochs": r["epochs"], "train_s": round(r["train_s"], 1),
                             "predict_s": round(r["predict_s"], 1), "seconds": round(r["seconds"], 1)})
                minutes = (time.perf_counter() - started) / 60
                log(summarise(task_name, init.name, results, args, minutes, peak.mib, predictions_dir, pooled))
            if ("random" in pooled_inits(pooled, task_name)) and ("imagenet" in pooled_inits(pooled, task_name)):
                log({"kind": "comparison", "task": task_name, "what": "AUC(imagenet) - AUC(random), same patches",
                     **paired_difference(task_name, pooled[(task_name, "random")], pooled[(task_name, "imagenet")],
                                         args.n_resamples, args.seed)})
    log({"kind": "total", "minutes": round((time.perf_counter() - total_started) / 60, 2),
         "peak_pss_mib": total_peak.mib, "predictions": str(predictions_dir), "machine": machine()})


if __name__ == "__main__":
    main()
