"""Quality on real data: patient-level 5-fold cross-validation on mini-MIAS, every row on the same folds (issue 13).

Rows (``--rows``, each a recipe run by ``mammocad.evaluate.crossval.cross_validate``, the library
behind ``mammocad cross-validate``):

- (a) ``lesion_vs_background`` on small-context patches (TFDS rules: 10 patches per located
  abnormality, ``--backgrounds`` normal-tissue patches per mammogram): patch-level AUC and
  lesion-level AUC (max patch score per abnormality vs per normal mammogram);
- (b) ``any_benign_malignant`` on large-context patches (one per located abnormality; every
  mini-MIAS type).

Row names: ``a_classical`` / ``b_classical`` (intensity + GLCM + LBP features -> gradient
boosting) and ``a_classical_lr`` (logistic regression on the same features): the floors;
``a_mobilenet`` / ``b_mobilenet`` (today's ImageNet MobileNetV2 recipe,
``../shared/weights/mobilenet_v2_imagenet_coral.pt``, input in [-1, 1], BatchNorm statistics
frozen) and its variants: ``a_mobilenet_tta`` (the same trained folds, flips TTA),
``a_mobilenet_full`` (the full 224 px patch resolution instead of ``--input-small``),
``a_mobilenet_deep`` (every layer fine-tuned, a longer schedule with early stopping on the
patient-grouped validation split), ``a_mobilenet_seeds`` (``--members`` seeds per fold, their
mean), ``a_mobilenet_wide`` (the same windows cut with twice the context), ``a_probe`` (frozen
ImageNet features + a trained linear head); for (b) ``b_classical_lr``, ``b_mobilenet_tta`` and
``b_probe`` likewise; late fusions (the mean of two finished rows'
out-of-fold probabilities): ``a_fusion`` / ``a_fusion_lr`` / ``b_fusion`` (classical + MobileNetV2)
and ``a_multiscale`` (small + wide context). Every row is compared with each classical floor of
its task: paired AUC difference on the same out-of-fold patches, 95% CI resampling patients.

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

import torch

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
FUSIONS = {"a_fusion": ("a_classical", "a_mobilenet"), "a_fusion_lr": ("a_classical_lr", "a_mobilenet"),
           "a_multiscale": ("a_mobilenet", "a_mobilenet_wide"), "b_fusion": ("b_classical", "b_mobilenet")}
ROW_SETS = {"a_mobilenet_wide": "wide"}
FLOORS = ("a_classical", "a_classical_lr", "b_classical", "b_classical_lr")  # rows on another patch set than their task's (TASKS)
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
    # "wide": the same small-context windows (same seed) cut with twice the side around the same centres
    for name, kind, config in (("small", "small", SmallContextConfig(backgrounds_per_image=backgrounds)),
                               ("wide", "small", SmallContextConfig(backgrounds_per_image=backgrounds,
                                                                    context_scale=2.0)),
                               ("large", "large", LargeContextConfig())):
        out = {"small": work / f"patches-small-bg{backgrounds}", "wide": work / f"patches-small-bg{backgrounds}-x2",
               "large": work / "patches-large"}[name]
        result = build_patches(PatchJob(prepared=prepared, out=out, kind=PatchKind(kind), workers=workers,
                                        figure=False, seed=seed), config, progress=False)
        if result.failures:
            raise SystemExit(f"{name} patches failed for {len(result.failures)} images: {result.failures[:3]}")
        sets[name] = out
    return sets


def recipes(args) -> dict[str, tuple[dict, dict]]:
    """Row name -> (TrainConfig fields, CrossValConfig fields)."""
    # frozen_batchnorm: the coral file has BatchNorm folded into its convolutions (identity BN layers); training
    # them with batch statistics changed the pretrained features at once (fold 0 of (a): val AUC 0.79 -> 0.5)
    imagenet = {"model": "mobilenet_v2", "weights": str(args.weights.resolve()), "input_norm": "minus_one_one",
                "batch_size": 32, "augment": "full", "frozen_batchnorm": True}
    classical = {"model": "classical", "workers": args.workers}
    a_base = {**imagenet, "input_size": args.input_small, "phases": args.phases_small}
    b_base = {**imagenet, "input_size": args.input_large, "phases": args.phases_large}
    return {
        "a_classical": (classical, {}),
        "a_classical_lr": ({**classical, "model": "classical_lr"}, {}),
        "b_classical": (classical, {}),
        "b_classical_lr": ({**classical, "model": "classical_lr"}, {}),
        "a_mobilenet": (a_base, {}),
        "a_mobilenet_tta": (a_base, {"tta": "flips"}),
        "a_mobilenet_full": ({**a_base, "input_size": 224}, {}),
        "a_mobilenet_deep": ({**a_base, "phases": args.phases_deep, "early_stopping_patience": args.patience}, {}),
        "a_mobilenet_seeds": (a_base, {"members": args.members}),
        "a_mobilenet_wide": (a_base, {}),
        "a_probe": ({**a_base, "phases": args.probe_small}, {}),
        "b_mobilenet": (b_base, {}),
        "b_mobilenet_tta": (b_base, {"tta": "flips"}),
        "b_probe": ({**b_base, "phases": args.probe_large}, {}),
    }


def run_row(name: str, args, sets: dict[str, Path], work: Path) -> dict:
    """Run one row; its out-of-fold predictions and summary are kept in ``work/rows/<name>/``."""
    task_name, kind = TASKS[name[0]]
    cv = CrossValConfig(folds=args.folds, fold_seed=args.seed, bootstrap=args.n_resamples)
    if name in FUSIONS:  # late fusion of two finished rows' out-of-fold predictions
        predictions = average_predictions([read_predictions(work / "rows" / row / OOF)[0] for row in FUSIONS[name]])
        summary = summarise(predictions, get_task(task_name), cv)
    else:
        fields, cv_fields = recipes(args)[name]
        # TTA is a prediction setting: the TTA row re-predicts the folds its base row trained (same folder)
        train = TrainConfig(data=sets[ROW_SETS.get(name, kind)], task=task_name, class_weights=True, seed=args.seed,
                            out=work / "cv" / name.removesuffix("_tta"), **fields)
        result = cross_validate(train, replace(cv, **cv_fields),
                                log=lambda line: log({"kind": "fold", "row": name, "line": line}))
        predictions, summary = result.predictions, result.summary
    write_predictions(work / "rows" / name / OOF, predictions)
    write_json(work / "rows" / name / SUMMARY, summary)
    return summary


def _interval(values) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]"


def markdown_table(work: Path, n_resamples: int, seed: int) -> str:
    """Every finished row of ``work/rows`` as a Markdown table, with its paired AUC differences to each floor
    and to today's MobileNetV2 recipe (``a_mobilenet`` / ``b_mobilenet``)."""
    lines = ["| task | row | AUC [95% CI, patients] | per-fold AUC | lesion-level AUC [CI] | Brier | "
             "Δ AUC vs classical (GB) [paired CI] | Δ AUC vs classical (LR) [paired CI] | "
             "Δ lesion-level AUC vs classical (LR) [paired CI] | Δ AUC vs today's MobileNetV2 recipe [paired CI] |",
             "|---" * 10 + "|"]
    for task in sorted({path.name[0] for path in (work / "rows").iterdir()}):
        for row in sorted((work / "rows").glob(f"{task}_*"), key=lambda path: (path.name not in FLOORS, path.name)):
            summary = json.loads((row / SUMMARY).read_text())
            lesion = summary.get("lesion_level")
            cells = [task, row.name, f"{summary['auc']:.3f} {_interval(summary['auc_ci_patients'])}",
                     f"{summary['fold_auc_mean']:.3f} ± {summary['fold_auc_sd']:.3f}",
                     f"{lesion['auc']:.3f} {_interval(lesion['auc_ci_patients'])}" if lesion else "–",
                     f"{summary['brier']:.3f}"]
            for floor, level in ((f"{task}_classical", "patch_level"), (f"{task}_classical_lr", "patch_level"),
                                 (f"{task}_classical_lr", "lesion_level"), (f"{task}_mobilenet", "patch_level")):
                if row.name == floor or not (work / "rows" / floor / OOF).is_file() or (level == "lesion_level"
                                                                                          and not lesion):
                    cells.append("–")
                    continue
                compared = compare_runs(work / "rows" / floor, row, n_resamples=n_resamples, seed=seed)[level]
                cells.append(f"{compared['difference']:+.3f} {_interval(compared['ci_patients'])}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="mini-MIAS folder (Info.txt + PGMs)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                        help="ImageNet MobileNetV2 state_dict (input in [-1, 1])")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one, kept)")
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="rows to run, comma separated ('' for none)")
    parser.add_argument("--table", action="store_true",
                        help="at the end, print a Markdown table of every finished row in WORK/rows")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--backgrounds", type=int, default=2, help="small-context background patches per mammogram")
    parser.add_argument("--input-small", type=int, default=128, help="model input side for (a), px (patches: 224)")
    parser.add_argument("--input-large", type=int, default=224, help="model input side for (b), px (patches: 224)")
    parser.add_argument("--phases-small", default="head:3:1e-3,last_third:9:1e-4",
                        help="MobileNetV2 schedule for (a) (default: the 2026-11-26 recipe)")
    parser.add_argument("--phases-large", default="head:5:1e-3,last_third:20:1e-4",
                        help="MobileNetV2 schedule for (b) (default: the 2026-11-26 recipe)")
    parser.add_argument("--probe-small", default="head:10:1e-3", help="linear-probe schedule for (a)")
    parser.add_argument("--probe-large", default="head:25:1e-3", help="linear-probe schedule for (b)")
    parser.add_argument("--phases-deep", default="head:3:1e-3,all:30:1e-4",
                        help="deeper, longer schedule for a_mobilenet_deep (every layer; early stopping)")
    parser.add_argument("--patience", type=int, default=5,
                        help="a_mobilenet_deep: epochs of the last phase without a better val AUC before stopping")
    parser.add_argument("--members", type=int, default=3, help="a_mobilenet_seeds: models (seeds) per fold")
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for prepare / patches / features")
    args = parser.parse_args()

    if not (args.data / "Info.txt").is_file():
        raise SystemExit(f"mini-MIAS not found at {args.data} (expected Info.txt and the PGMs); pass --data")
    rows = [row for row in args.rows.split(",") if row]
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
        for floor in (f"{name[0]}_classical", f"{name[0]}_classical_lr"):  # both classical floors
            if name != floor and (work / "rows" / floor / OOF).is_file():
                log({"kind": "comparison", "row": name, "against": floor,
                     **compare_runs(work / "rows" / floor, work / "rows" / name, n_resamples=args.n_resamples,
                                    seed=args.seed)})
    if args.table:
        print(markdown_table(work, args.n_resamples, args.seed), flush=True)


if __name__ == "__main__":
    main()
