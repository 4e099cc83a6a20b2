"""The demo's benign-vs-malignant test AUC over several seeds, for one or more training recipes.

For each ``--seeds`` value: synthesise ``--patients`` patients as the demo does, prepare them and
cut the large-context patch set (the demo's inputs; other patch kinds are skipped), then train
every ``--recipe`` (a ``TrainConfig`` override, YAML, on top of ``mammocad.demo.demo_train_config``)
and score its best-by-validation and its last checkpoint on the test split. Prints one JSON line
per (seed, recipe, checkpoint) and a summary line per recipe. Data is cached under ``--work``.

    PYTHONPATH=src python benchmarks/bench_demo_seeds.py --seeds 100 101 102 \
        --recipe '{}' --recipe '{phases: "all:12:1e-3,all:8:1e-4"}'

Choose a recipe on seeds that the demo never uses by default (e.g. 100+), then confirm it on
the demo's seeds: the demo's own test split must not pick its recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import yaml

from _common import machine


def _data(work: Path, seed: int, patients: int) -> Path:
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm
    from mammocad.patches.build import build_patches
    from mammocad.patches.config import LargeContextConfig, PatchJob, PatchKind
    from mammocad.preprocess.config import PrepareJob, PreprocessConfig
    from mammocad.preprocess.prepare import run_prepare

    root = work / f"seed{seed}-p{patients}"
    if not (root / "synthetic" / "csv").is_dir():
        generate_cbis_ddsm(root / "synthetic", SynthConfig(patients=patients, seed=seed, workers=2))
    run_prepare(PrepareJob(source=root / "synthetic", out=root / "prepared", workers=2), PreprocessConfig(),
                progress=False)
    build_patches(PatchJob(prepared=root / "prepared", out=root / "large", kind=PatchKind.LARGE, workers=2, seed=seed),
                  LargeContextConfig(), progress=False)
    return root / "large"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--patients", type=int, default=150)
    parser.add_argument("--recipe", action="append", default=None, help="YAML mapping of TrainConfig overrides")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-demo-seeds"))
    args = parser.parse_args()
    recipes = args.recipe or ["{}"]

    from mammocad.demo import demo_train_config
    from mammocad.evaluate.classifier import evaluate_classifier
    from mammocad.train.engine import train_classifier

    results: dict[str, dict[str, list[float]]] = {r: {"best": [], "last": []} for r in recipes}
    for seed in args.seeds:
        data = _data(args.work, seed, args.patients)
        for k, recipe in enumerate(recipes):
            run = args.work / f"seed{seed}-p{args.patients}" / f"run{k}"
            config = dataclasses.replace(demo_train_config(data, run, seed=seed), **(yaml.safe_load(recipe) or {}))
            started = time.perf_counter()
            result = train_classifier(config, progress=False)
            seconds = time.perf_counter() - started
            for which, ckpt in (("best", result.best_checkpoint), ("last", run / "checkpoints" / "last.ckpt")):
                auc = evaluate_classifier(ckpt, data, run / f"evaluation-{which}").metrics["auc"]
                results[recipe][which].append(auc)
                print(json.dumps({"seed": seed, "recipe": recipe, "checkpoint": which, "test_auc": round(auc, 4),
                                  "train_seconds": round(seconds, 1)}), flush=True)
    for recipe, by in results.items():
        for which, aucs in by.items():
            print(json.dumps({"summary": recipe, "checkpoint": which, "seeds": args.seeds,
                              "test_auc": [round(a, 3) for a in aucs], "mean": round(statistics.mean(aucs), 3),
                              "min": round(min(aucs), 3), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
