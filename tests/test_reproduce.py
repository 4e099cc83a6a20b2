"""The experiment configs and `mammocad reproduce --budget smoke`: runs, fills its tables, resumes, skips what is done."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd
import pytest

from mammocad.report.experiments import EXPERIMENT_FILE, ExperimentKind, load_experiment
from mammocad.report.paper import load_paper
from mammocad.utils.config import read_yaml
from test_cli import run  # tests/ is on sys.path (pytest rootdir-less "prepend" import mode)
from test_train import Interrupt, InterruptAt  # a crash at the start of an epoch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMOKE = ("table02_blob_baseline", "table05_lesion_mobilenet_v2")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_loads_through_the_cli_builder(path: Path):
    """Each file is valid for build_configs (the builder every command uses: an unknown key or a bad value
    fails), names a row of paper.yaml of its kind and is listed in configs/README.md."""
    loaded = load_experiment(path)
    table = load_paper().tables[loaded.experiment.table]
    assert loaded.experiment.row in table.rows and table.kind == loaded.experiment.kind.value
    if loaded.experiment.kind is ExperimentKind.CLASSIFIER:
        assert {"task", "model", "weights", "phases", "augment", "seed", "patches"} <= set(read_yaml(path))
    assert f"`{path.name}`" in (CONFIGS / "README.md").read_text()


def test_the_grid_covers_the_papers_tables():
    tables = {load_experiment(p).experiment.table for p in CONFIGS.glob("*.yaml")}
    assert tables == {"2", "3", "4", "5", "6", "7", "8", "13", "14"}


def test_an_experiment_file_may_not_set_what_reproduce_sets(tmp_path: Path):
    from mammocad.utils.errors import DataError

    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "table03_mass_mobilenet_v2.yaml").read_text() + "out: somewhere\n")
    with pytest.raises(DataError, match=r"keys \['out'\] are set by `mammocad reproduce`"):
        load_experiment(bad)


@pytest.fixture(scope="module")
def synth40(tmp_path_factory) -> Path:
    """40 synthetic patients (the demo's minimum for benign/malignant in every split), small mammograms."""
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm

    out = tmp_path_factory.mktemp("synth40")
    generate_cbis_ddsm(out, SynthConfig(patients=40, seed=0, image_rows=384, image_cols=288, workers=2),
                       progress=False)
    return out


def test_reproduce_smoke_resumes_fills_its_tables_and_skips_everything_when_rerun(synth40: Path, tmp_path: Path,
                                                                                  monkeypatch):
    """Observed 2026-11-29 on the shared, loaded 2-core VM: ~90 s wall, ~45 s CPU (3 reproduce invocations)."""
    import mammocad.train.engine as engine
    from mammocad.report.config import Budget, ReproduceConfig
    from mammocad.report.reproduce import reproduce

    out = tmp_path / "paper"
    # 1. killed in the middle of the classifier's training (after its first epoch)
    monkeypatch.setattr(engine, "train_classifier",
                        functools.partial(engine.train_classifier, callbacks=[InterruptAt(1)]))
    config = ReproduceConfig(data=synth40, out=out, configs=CONFIGS, only=",".join(SMOKE), budget=Budget.SMOKE,
                             seed=0)
    with pytest.raises(Interrupt):
        reproduce(config, progress=False)
    monkeypatch.undo()
    classifier = out / "runs" / SMOKE[1]
    assert json.loads((classifier / EXPERIMENT_FILE).read_text())["status"] == "running"
    assert pd.read_csv(classifier / "metrics.csv")["epoch"].tolist() == [0]

    # 2. re-run: the finished segmenter experiment is skipped, the classifier resumes and finishes
    args = ("reproduce", "--data", synth40, "--out", out, "--configs", CONFIGS, "--only", ",".join(SMOKE),
            "--budget", "smoke")
    second = run(*args)
    assert f"experiment {SMOKE[0]}: skipped" in second.output and f"experiment {SMOKE[1]}: done" in second.output
    run_info = json.loads((classifier / "run.json").read_text())
    assert run_info["resumed_from"] and pd.read_csv(classifier / "metrics.csv")["epoch"].tolist() == [0, 1, 2]
    record = json.loads((classifier / EXPERIMENT_FILE).read_text())
    assert record["status"] == "done" and record["budget"] == "smoke" and record["config"]["input_size"] == 64

    # every table it ran is filled: the paper's tables 2 and 5, Table 9, Tables 11/12, results, provenance
    tables = {p.stem: pd.read_csv(p) for p in (out / "report_tables").glob("*.csv")}
    for key, row in (("paper_table_2", "brightest-blob detector"), ("paper_table_5", "MobileNetV2")):
        ran = tables[key][tables[key]["row"].str.startswith(row)]
        assert len(ran) == 2 and ran[["ours", "ours CI low", "ours CI high"]].notna().all().all(), key
    assert tables["paper_table_2"]["paper"].notna().sum() == 2  # the Mask R-CNN row: recorded, not run here
    assert {"table9_prepared", "classifiers", "segmenters"} <= set(tables)
    assert any(key.startswith("patches_patches_large") for key in tables)
    assert tables["classifiers"][["ACC", "AUC", "AUC CI low", "AUC CI high"]].notna().all().all()
    report = (out / "report_tables" / "paper_table_5.csv").read_text()

    # 3. re-run again: nothing is trained or evaluated, the report is the same
    checkpoint = classifier / "checkpoints" / "last.ckpt"
    stamps = {p: p.stat().st_mtime_ns for p in (checkpoint, classifier / "evaluation" / "metrics.json",
                                                out / "runs" / SMOKE[0] / "evaluation" / "metrics.json")}
    third = run(*args)
    assert "experiments: 0 done, 2 skipped, 0 failed" in third.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (out / "report_tables" / "paper_table_5.csv").read_text() == report
