"""Quality on real data: patient-level 5-fold cross-validation on mini-MIAS, every row on the same folds (issue 13).

Rows (``--rows``, each a recipe run by ``mammocad.evaluate.crossval.cross_validate``, the library
behind ``mammocad cross-validate``):

- (a) ``lesion_vs_background`` on small-context patches (TFDS rules: 10 patches per located
  abnormality, ``--backgrounds`` normal-tissue patches per mammogram): patch-level AUC and
  lesion-level AUC (max patch score per abnormality vs per normal mammogram);
- (b) ``any_benign_malignant`` on large-context patches (one per located abnormality; every
  mini-MIAS type).

Row names: ``a_classical`` / ``b_classical`` (intensity + GLCM + LBP features -> gradient
boosting, the floor), ``a_mobilenet`` / ``b_mobilenet`` (today's ImageNet MobileNetV2 recipe,
``../shared/weights/mobilenet_v2_imagenet_coral.pt``, input in [-1, 1], BatchNorm statistics
frozen), ``a_mobilenet_tta`` (the same trained folds, flips TTA), ``a_probe`` (frozen ImageNet
features + linear head), ``a_classical_lr`` (logistic regression on the same features), and
``a_fusion`` / ``b_fusion`` (late fusion: the mean of the classical and MobileNetV2
out-of-fold probabilities). Every row is compared with its task's classical row: paired AUC
difference on the same out-of-fold patches, 95% CI resampling patients.

mini-MIAS (``../shared/data/mini-mias-dev``) is prepared once into ``--work``; prepare, patches and
finished folds are reused by a second run with the same ``--work``. Output: JSON lines on stdout
(one ``summary`` and one ``comparison`` per row, minutes and peak PSS); each row's out-of-fold
predictions and summary in ``<work>/rows/<row>/``.

Research software, not a medical device.

    python benchmarks/bench_quality_mias.py --work /tmp/mias-q13
    python benchmarks/bench_quality_mias.py --work /tmp/mias-q13 --rows a_classical,b_classical --folds 2   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from torch import nn

from mammocad import DISCLAIMER
from mammocad.evaluate.config import CrossValConfig
from mammocad.evaluate.crossval import OOF, SUMMARY, compare_runs, cross_validate, summarise
from mammocad.evaluate.predictions import average_predictions, read_predictions, write_predictions
from mammocad.patches.build import PatchJob, PatchKind, build_patches
from mammocad.patches.large_context import LargeContextConfig
from mammocad.patches.small_context import SmallContextConfig
from mammocad.preprocess.pipeline import PreprocessConfig
from mammocad.preprocess.prepare import PrepareJob, run_prepare
from mammocad.train.config import TrainConfig
from mammocad.train.tasks import get_task
from mammocad.utils.atomic import write_json

from _common import PeakMemory, machine

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = SHARED / "data" / "mini-mias-dev"
DEFAULT_WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_coral.pt"
TASKS = {"a": ("lesion_vs_background", "small"), "b": ("any_benign_malignant", "large")}
FUSIONS = {"a_fusion": ("a_classical", "a_mobilenet"), "b_fusion": ("b_classical", "b_mobilenet")}
DEFAULT_ROWS = "a_classical,b_classical,a_mobilenet,b_mobilenet,a_mobilenet_tta,a_fusion,b_fusion"


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


def recipes(args) -> dict[str, tuple[dict, dict, bool]]:
    """Row name -> (TrainConfig fields, CrossValConfig fields, frozen BatchNorm statistics)."""
    imagenet = {"model": "mobilenet_v2", "weights": str(args.weights.resolve()), "input_norm": "minus_one_one",
                "batch_size": 32, "augment": "full"}
    classical = {"model": "classical", "workers": args.workers}
    return {
        "a_classical": (classical, {}, False),
        "a_classical_lr": ({**classical, "model": "classical_lr"}, {}, False),
        "b_classical": (classical, {}, False),
        "a_mobilenet": ({**imagenet, "input_size": args.input_small, "phases": args.phases_small}, {}, True),
        "a_mobilenet_tta": ({**imagenet, "input_size": args.input_small, "phases": args.phases_small},
                            {"tta": "flips"}, True),
        "a_probe": ({**imagenet, "input_size": args.input_small, "phases": args.probe_small}, {}, True),
        "b_mobilenet": ({**imagenet, "input_size": args.input_large, "phases": args.phases_large}, {}, True),
    }


def run_row(name: str, args, sets: dict[str, Path], work: Path) -> dict:
    """Run one row; its out-of-fold predictions and summary are kept in ``work/rows/<name>/``."""
    task_name, kind = TASKS[name[0]]
    cv = CrossValConfig(folds=args.folds, fold_seed=args.seed, bootstrap=args.n_resamples)
    if name in FUSIONS:  # late fusion of two finished rows' out-of-fold predictions
        predictions = average_predictions([read_predictions(work / "rows" / row / OOF)[0] for row in FUSIONS[name]])
        summary = summarise(predictions, get_task(task_name), cv)
    else:
        fields, cv_fields, frozen_bn = recipes(args)[name]
        # TTA is a prediction setting: the TTA row re-predicts the folds its base row trained (same folder)
        train = TrainConfig(data=sets[kind], task=task_name, class_weights=True, seed=args.seed,
                            out=work / "cv" / name.removesuffix("_tta"), **fields)
        result = cross_validate(train, replace(cv, **cv_fields),
                                callbacks=[FrozenBatchNormStats()] if frozen_bn else [],
                                log=lambda line: log({"kind": "fold", "row": name, "line": line}))
        predictions, summary = result.predictions, result.summary
    write_predictions(work / "rows" / name / OOF, predictions)
    write_json(work / "rows" / name / SUMMARY, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="mini-MIAS folder (Info.txt + PGMs)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                        help="ImageNet MobileNetV2 state_dict (input in [-1, 1])")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one, kept)")
    parser.add_argument("--rows", default=DEFAULT_ROWS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--backgrounds", type=int, default=2, help="small-context background patches per mammogram")
    parser.add_argument("--input-small", type=int, default=128, help="model input side for (a), px (patches: 224)")
    parser.add_argument("--input-large", type=int, default=224, help="model input side for (b), px (patches: 224)")
    parser.add_argument("--phases-small", default="head:3:1e-3,last_third:9:1e-4",
                        help="MobileNetV2 schedule for (a) (default: the 2026-11-26 recipe)")
    parser.add_argument("--phases-large", default="head:5:1e-3,last_third:20:1e-4",
                        help="MobileNetV2 schedule for (b) (default: the 2026-11-26 recipe)")
    parser.add_argument("--probe-small", default="head:10:1e-3", help="linear-probe schedule for (a)")
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for prepare / patches / features")
    args = parser.parse_args()

    if not (args.data / "Info.txt").is_file():
        raise SystemExit(f"mini-MIAS not found at {args.data} (expected Info.txt and the PGMs); pass --data")
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in recipes(args) and r not in FUSIONS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {sorted([*recipes(args), *FUSIONS])}")
    if any("mobilenet" in r or "probe" in r for r in rows) and not args.weights.is_file():
        raise SystemExit(f"ImageNet weights not found at {args.weights}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-quality-mias-"))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    log({"kind": "settings", "work": str(work), "data": str(args.data), "machine": machine(), "rows": rows,
         "folds": args.folds, "backgrounds_per_image": args.backgrounds, "input_small": args.input_small,
         "input_large": args.input_large, "n_resamples": args.n_resamples, "seed": args.seed,
         "torch_threads": torch.get_num_threads(), "note": DISCLAIMER})
    started = time.perf_counter()
    with PeakMemory() as peak:
        sets = prepare_patch_sets(args.data, work, args.backgrounds, args.workers, args.seed)
    log({"kind": "prepare", "seconds": round(time.perf_counter() - started, 1), "peak_pss_mib": peak.mib})
    for name in rows:
        started = time.perf_counter()
        with PeakMemory(interval=0.5) as peak:
            summary = run_row(name, args, sets, work)
        log({"kind": "summary", "row": name, "minutes": round((time.perf_counter() - started) / 60, 2),
             "peak_pss_mib": peak.mib, **{k: v for k, v in summary.items() if k != "recipe"}})
        floor = f"{name[0]}_classical"
        if name != floor and (work / "rows" / floor / OOF).is_file():
            log({"kind": "comparison", "row": name, "against": floor,
                 **compare_runs(work / "rows" / floor, work / "rows" / name, n_resamples=args.n_resamples,
                                seed=args.seed)})


if __name__ == "__main__":
    main()
