"""Patient-level k-fold cross-validation of any registry model on one patch set, and paired comparisons.

``cross_validate(TrainConfig, CrossValConfig)`` writes into ``train.out``::

    folds.json                 patient -> fold, and each fold's validation patients
    folds/fold<k>/view/        the fold's patch set view: only a patches.csv (absolute file paths)
                               with the fold in ``test``, its validation patients in ``val``, the rest in ``train``
    folds/fold<k>/member<m>/   the training run(s) of the fold (train_classifier run folders)
    folds/fold<k>/predictions.csv, done.json
    predictions_oof.csv        every patch's out-of-fold prediction (column ``fold``)
    crossval.json              the summary (below); comparison.json with ``compare``

Folds: scikit-learn's ``StratifiedGroupKFold`` over the task's patches, grouped by
``patient_id`` (a mini-MIAS left/right pair is one woman: one patient id), stratified by the
task's class, shuffled with ``fold_seed``: no patient is in two folds. Inside each training
fold, about ``val_fraction`` of the patients (grouped and stratified again, with both classes on
both sides) are its validation split: early stopping, the best checkpoint, the calibration and
the binary threshold are chosen there, never on the held-out fold.

Each fold trains ``members`` models (seeds ``seed + m``); each is calibrated on the fold's
validation split (``calibration``) and predicts the held-out fold with ``tta``; the fold's
prediction is the mean of the members' probabilities.

Resumable: a fold whose ``done.json`` holds the current fingerprints (training: the TrainConfig
except its operational fields, the patch set, the fold's patients, the members; prediction: tta
and calibration) is skipped; a changed prediction setting re-predicts without retraining; an
interrupted training run resumes (``train_classifier(resume=True)``).

Summary (``crossval.json``): pooled out-of-fold AUC with 95% CIs resampling PATIENTS (the honest
interval: patches of one woman are correlated) and patches, per-fold AUCs, Brier score,
accuracy/sensitivity/specificity at 0.5, and for ``lesion_vs_background`` the lesion-level AUC
(one score per abnormality, the ``lesion_score`` of its patches, against one per normal
mammogram, the same statistic of its background patches; patches of background tissue from
mammograms with a lesion are left out of it). ``compare_runs`` gives the paired difference of
two runs on the same folds (same patches), its CI resampling patients.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from mammocad import DISCLAIMER
from mammocad.evaluate.classifier import calibrate_checkpoint, predict_ensemble
from mammocad.evaluate.config import CrossValConfig
from mammocad.evaluate.metrics import (
    binary_metrics,
    bootstrap_ci,
    brier_score,
    paired_bootstrap_difference,
    weighted_auc,
    weighted_brier,
)
from mammocad.evaluate.predictions import class_names_of, probability_matrix, read_predictions, write_predictions
from mammocad.patches.store import MANIFEST, patch_set_fingerprint
from mammocad.train.config import RESUME_FREE, TrainConfig
from mammocad.train.inference import load_predictor
from mammocad.train.tasks import Task, get_task
from mammocad.utils.atomic import write_csv, write_json
from mammocad.utils.config import config_dict
from mammocad.utils.errors import DataError

OOF = "predictions_oof.csv"
SUMMARY = "crossval.json"
FOLDS = "folds.json"
_VAL_ATTEMPTS = 20
# Settings outside a fold's training fingerprint: those a resumed run may change, except the ones
# that change what a full run learns (when it stops, how much of each epoch it sees).
NOT_RECIPE = RESUME_FREE - {"early_stopping_patience", "limit_train_batches", "limit_val_batches"}


# ---- folds -------------------------------------------------------------------------------------
def task_frame(data: Path, task: Task) -> pd.DataFrame:
    """The manifest rows of ``task`` (verbatim text), ``file`` made absolute, plus the class index ``target``."""
    frame = pd.read_csv(Path(data) / MANIFEST, dtype=str, keep_default_na=False)
    frame = frame[frame["label"].isin(list(task.classes))].reset_index(drop=True)
    frame["file"] = [str((Path(data) / f).resolve()) for f in frame["file"]]
    frame["target"] = frame["label"].map(task.classes).astype(int)
    return frame


def patient_folds(frame: pd.DataFrame, folds: int, seed: int) -> list[set[str]]:
    """Test patients of each fold: ``StratifiedGroupKFold`` by ``patient_id``, stratified by ``target``."""
    if frame["patient_id"].nunique() < folds:
        raise DataError(None, f"{folds} folds need at least {folds} patients; the task has "
                              f"{frame['patient_id'].nunique()}")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [set(frame["patient_id"].iloc[test]) for _, test in
            splitter.split(frame, frame["target"], groups=frame["patient_id"])]


def validation_patients(frame: pd.DataFrame, fraction: float, seed: int) -> set[str]:
    """About ``fraction`` of the patients of ``frame`` (grouped, stratified), every class on both sides.

    DataError when no such cut is found (too few patients of a class).
    """
    classes = frame["target"].nunique()
    for attempt in range(_VAL_ATTEMPTS):
        splitter = StratifiedGroupKFold(n_splits=max(2, round(1 / fraction)), shuffle=True,
                                        random_state=seed + 1000 * attempt)
        for train, val in splitter.split(frame, frame["target"], groups=frame["patient_id"]):
            if frame["target"].iloc[val].nunique() == classes == frame["target"].iloc[train].nunique():
                return set(frame["patient_id"].iloc[val])
    raise DataError(None, "no validation cut of a training fold holds every class on both sides: too few patients")


def write_fold_view(frame: pd.DataFrame, test: set[str], val: set[str], out: Path) -> Path:
    """A patch set view at ``out`` (only ``patches.csv``): ``test`` patients in test, ``val`` in val, others train."""
    view = frame.drop(columns="target").copy()
    view["split"] = np.where(view["patient_id"].isin(test), "test",
                             np.where(view["patient_id"].isin(val), "val", "train"))
    write_csv(out / MANIFEST, view)
    return out


def _fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---- running --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CrossValResult:
    """Where the files are, the pooled out-of-fold predictions and the summary (``crossval.json``)."""

    out: Path
    predictions: pd.DataFrame
    summary: dict
    comparison: dict | None


def _run_fold(train: TrainConfig, cv: CrossValConfig, fold: int, view: Path, fold_dir: Path, train_key: str,
              predict_key: str, progress: bool, callbacks: Sequence) -> pd.DataFrame:
    """Train (or resume) the fold's members, calibrate, predict the held-out fold; write its predictions."""
    from mammocad.train.engine import train_classifier

    done_file, predictions_file = fold_dir / "done.json", fold_dir / "predictions.csv"
    done = json.loads(done_file.read_text()) if done_file.is_file() else {}
    if done.get("train") == train_key and done.get("predict") == predict_key:
        return read_predictions(predictions_file)[0]
    trained_file = fold_dir / "trained.json"
    members = [fold_dir / f"member{m}" for m in range(cv.members)]
    state = json.loads(trained_file.read_text()) if trained_file.is_file() else {}
    if not (state.get("train") == train_key and state.get("finished", True)):
        if state.get("train") != train_key:
            # Runs left by another recipe (finished or interrupted, or of unknown recipe) must not be resumed.
            for member in fold_dir.glob("member*"):
                shutil.rmtree(member)
            write_json(trained_file, {"train": train_key, "finished": False})
        for m, member in enumerate(members):  # an interrupted run of this recipe resumes
            train_classifier(replace(train, data=view, out=member, seed=train.seed + m, resume=True),
                             progress=progress, callbacks=callbacks)
        write_json(trained_file, {"train": train_key, "finished": True})
    members = [member / "checkpoints" / "best.ckpt" for member in members]
    predictors = []
    for checkpoint in members:
        calibration = None if cv.calibration == "none" else calibrate_checkpoint(
            checkpoint, view, cv.calibration, tta=cv.tta, workers=_workers(train))
        predictors.append((load_predictor(checkpoint), calibration))
    frame = predict_ensemble(predictors, view, "test", tta=cv.tta, workers=_workers(train))[0]
    frame["fold"] = str(fold)
    write_predictions(predictions_file, frame)
    write_json(done_file, {"train": train_key, "predict": predict_key})  # last: the fold is finished
    return frame


def _workers(train: TrainConfig) -> int:
    return train.workers or 0


def cross_validate(train: TrainConfig, cv: CrossValConfig, *, progress: bool = False,
                   log: Callable[[str], None] = lambda line: None, callbacks: Sequence = ()) -> CrossValResult:
    """Cross-validate ``train`` (model, task, recipe; ``train.data`` the patch set, ``train.out`` the
    output folder) as ``cv`` says; see the module docstring. ``log`` receives one line per fold;
    ``callbacks``: extra Lightning callbacks of every network's training (``train_classifier``)."""
    out, data = Path(train.out), Path(train.data)
    task = get_task(train.task)
    source = patch_set_fingerprint(data)  # refuses a stale patch set
    frame = task_frame(data, task)
    if frame["target"].nunique() < 2:
        raise DataError(data, f"the patch set has patches of one class only of task {task.name}")
    fold_patients = patient_folds(frame, cv.folds, cv.fold_seed)
    val_sets = [validation_patients(frame[~frame["patient_id"].isin(test)], cv.val_fraction, cv.fold_seed + k)
                for k, test in enumerate(fold_patients)]
    write_json(out / FOLDS, {"folds": {p: k for k, test in enumerate(fold_patients) for p in sorted(test)},
                             "val": [sorted(v) for v in val_sets], "fold_seed": cv.fold_seed, "n_folds": cv.folds})
    recipe = {k: v for k, v in config_dict(train).items() if k not in NOT_RECIPE}
    frames = []
    for k, (test, val) in enumerate(zip(fold_patients, val_sets)):
        fold_dir = out / "folds" / f"fold{k}"
        view = write_fold_view(frame, test, val, fold_dir / "view")
        train_key = _fingerprint({"recipe": recipe, "source": source, "test": sorted(test), "val": sorted(val),
                                  "members": cv.members})
        predict_key = _fingerprint({"tta": cv.tta, "calibration": cv.calibration})
        frames.append(_run_fold(train, cv, k, view, fold_dir, train_key, predict_key, progress, callbacks))
        log(f"fold {k}: {len(test)} test patients, AUC {_auc(frames[-1]):.3f}")
    pooled = pd.concat(frames, ignore_index=True)
    write_predictions(out / OOF, pooled)
    summary = summarise(pooled, task, cv)
    summary["recipe"] = recipe
    write_json(out / SUMMARY, summary)
    comparison = None
    if cv.compare is not None:
        comparison = compare_runs(cv.compare, out, n_resamples=cv.bootstrap, seed=cv.fold_seed,
                                  lesion_score=cv.lesion_score)
        write_json(out / "comparison.json", comparison)
    return CrossValResult(out, pooled, summary, comparison)


# ---- metrics ---------------------------------------------------------------------------------------
def _scores(frame: pd.DataFrame) -> np.ndarray:
    """(N,) class-1 scores of a binary frame, (N, C) probabilities otherwise."""
    probs = probability_matrix(frame, class_names_of(frame))
    return probs[:, 1] if probs.shape[1] == 2 else probs


def _auc(frame: pd.DataFrame) -> float:
    return float(weighted_auc(frame["target"].to_numpy(), _scores(frame), np.ones((1, len(frame))))[0])


def lesion_level(frame: pd.DataFrame, score: str = "max") -> pd.DataFrame:
    """One row per unit of a lesion_vs_background predictions frame: an abnormality (target 1) or a
    normal mammogram (target 0, one without any lesion patch); its ``score`` is the ``max`` or
    ``mean`` of its patches' LESION probabilities. Columns: unit, target, score, patient_id."""
    lesion_images = set(frame.loc[frame["target"] == 1, "image_id"])
    kept = frame[(frame["target"] == 1) | ~frame["image_id"].isin(lesion_images)]
    kept = kept.assign(unit=np.where(kept["target"] == 1, "lesion:" + kept["abnormality"],
                                     "normal:" + kept["image_id"]), score=_scores(kept))
    return kept.groupby("unit", sort=True).agg(target=("target", "first"), score=("score", score),
                                               patient_id=("patient_id", "first")).reset_index()


def _ci(values: list[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def summarise(pooled: pd.DataFrame, task: Task, cv: CrossValConfig) -> dict:
    """The summary of pooled out-of-fold predictions (see the module docstring)."""
    targets, scores, patients = pooled["target"].to_numpy(), _scores(pooled), pooled["patient_id"].to_numpy()

    def ci(metric, t=targets, s=scores, groups=patients):
        result = bootstrap_ci(t, s, metric, n_resamples=cv.bootstrap, seed=cv.fold_seed, groups=groups)
        return _ci([result.low, result.high])

    fold_aucs = [_auc(f) for _, f in pooled.groupby("fold", sort=True) if f["target"].nunique() > 1]
    summary = {
        "task": task.name, "folds": cv.folds, "n_patches": int(len(pooled)),
        "n_patients": int(pooled["patient_id"].nunique()),
        "n_per_class": {n: int((targets == k).sum()) for k, n in enumerate(task.class_names)},
        "auc": round(_auc(pooled), 4), "auc_ci_patients": ci(weighted_auc),
        "auc_ci_patches": ci(weighted_auc, groups=None),
        "fold_aucs": _ci(fold_aucs), "fold_auc_mean": round(float(np.mean(fold_aucs)), 4),
        "fold_auc_sd": round(float(np.std(fold_aucs, ddof=1)), 4) if len(fold_aucs) > 1 else None,
        "brier": round(brier_score(targets, scores), 4), "brier_ci_patients": ci(weighted_brier),
        "tta": cv.tta, "members": cv.members, "calibration": cv.calibration,
        "bootstrap": {"n_resamples": cv.bootstrap, "seed": cv.fold_seed, "resampling": "patients"},
        "note": DISCLAIMER,
    }
    if task.is_binary:
        at_half = binary_metrics(targets, scores)
        summary.update({f"{k}_at_0.5": round(at_half[k], 4) for k in ("accuracy", "sensitivity", "specificity")})
    if task.name == "lesion_vs_background":
        units = lesion_level(pooled, cv.lesion_score)
        unit_targets, unit_scores = units["target"].to_numpy(), units["score"].to_numpy()
        summary["lesion_level"] = {
            "score": cv.lesion_score, "n_lesions": int(unit_targets.sum()),
            "n_normal_images": int((unit_targets == 0).sum()),
            "auc": round(float(binary_metrics(unit_targets, unit_scores)["auc"]), 4),
            "auc_ci_patients": ci(weighted_auc, unit_targets, unit_scores, units["patient_id"].to_numpy()),
        }
    return summary


def _oof(run: Path) -> pd.DataFrame:
    path = Path(run) / OOF
    if not path.is_file():
        raise DataError(run, f"not a cross-validate output folder (no {OOF})")
    return read_predictions(path)[0]


def compare_runs(a: str | Path, b: str | Path, *, n_resamples: int = 1000, seed: int = 0,
                 lesion_score: str = "max") -> dict:
    """Paired comparison of two cross-validation runs on the same folds: AUC(b) - AUC(a), 95% CI resampling patients.

    Both folders must hold out-of-fold predictions of the same patches, each in the same fold
    (DataError otherwise: a paired difference needs the same folds). For lesion_vs_background
    the lesion-level AUC difference is given too.
    """
    frame_a, frame_b = _oof(a), _oof(b)
    key = ["sample_id"]
    b_aligned = frame_b.set_index(key).reindex(frame_a[key[0]])
    if len(frame_a) != len(frame_b) or b_aligned["target"].isna().any():
        raise DataError(b, f"does not hold the same patches as {a}: not comparable")
    if (b_aligned["fold"].to_numpy() != frame_a["fold"].to_numpy()).any():
        raise DataError(b, f"uses other folds than {a}: a paired comparison needs the same folds")
    b_aligned = b_aligned.reset_index()
    targets, patients = frame_a["target"].to_numpy(), frame_a["patient_id"].to_numpy()

    def paired(t, sa, sb, groups) -> dict:
        d = paired_bootstrap_difference(t, sa, sb, weighted_auc, n_resamples=n_resamples, seed=seed, groups=groups)
        return {"auc_a": round(float(weighted_auc(t, sa, np.ones((1, len(t))))[0]), 4),
                "auc_b": round(float(weighted_auc(t, sb, np.ones((1, len(t))))[0]), 4),
                "difference": round(d.difference, 4), "ci_patients": _ci([d.low, d.high]),
                "fraction_above_0": round(d.fraction_above_0, 4)}

    result = {"a": str(a), "b": str(b), "what": "AUC(b) - AUC(a) on the same out-of-fold patches",
              "patch_level": paired(targets, _scores(frame_a), _scores(b_aligned), patients)}
    if set(class_names_of(frame_a)) == {"BACKGROUND", "LESION"}:
        units_a, units_b = lesion_level(frame_a, lesion_score), lesion_level(b_aligned, lesion_score)
        result["lesion_level"] = paired(units_a["target"].to_numpy(), units_a["score"].to_numpy(),
                                        units_b["score"].to_numpy(), units_a["patient_id"].to_numpy())
    return result

