"""The experiment configs and `mammocad reproduce --budget smoke`: runs, fills its tables, resumes, skips what is done."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd
import pytest

from mammocad.patches.config import PatchKind
from mammocad.report.experiments import EXPERIMENT_FILE, ExperimentKind, load_experiment, shipped_configs
from mammocad.report.paper import load_paper
from mammocad.utils.config import read_yaml
from test_cli import run  # tests/ is on sys.path (pytest rootdir-less "prepend" import mode)
from test_train import Interrupt, InterruptAt  # a crash at the start of an epoch

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "mammocad" / "configs"
SMOKE = ("table02_blob_baseline", "table02_unet_resize512", "table05_lesion_mobilenet_v2")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_loads_through_the_cli_builder(path: Path):
    """Each file is valid for build_configs (the builder every command uses: an unknown key or a bad value
    fails), names a row of paper.yaml of its kind and is listed in configs/README.md."""
    loaded = load_experiment(path)
    table = load_paper().tables[loaded.experiment.table]
    assert loaded.experiment.row in table.rows and table.kind == loaded.experiment.kind.value
    if loaded.experiment.trains:
        assert {"model", "weights", "phases", "augment", "seed", "patches"} <= set(read_yaml(path))
    if loaded.experiment.kind is ExperimentKind.CLASSIFIER:
        assert "task" in read_yaml(path)
    assert f"`{path.name}`" in (CONFIGS / "README.md").read_text()


def test_the_reproduce_configs_are_the_shipped_ones():
    """The folder the tests read is the one mammocad finds when installed (package data), whatever the cwd."""
    assert shipped_configs().resolve() == CONFIGS.resolve()


TABLE2_TRAINED = sorted(p for p in CONFIGS.glob("table02_*.yaml") if "model" in read_yaml(p))


def test_table2_has_the_four_mask_rcnn_rows_and_a_unet():
    assert [p.stem for p in TABLE2_TRAINED] == [
        "table02_mask_rcnn_resize512_2stage", "table02_mask_rcnn_resize512_3stage",
        "table02_mask_rcnn_tiles256_2stage", "table02_mask_rcnn_tiles256_3stage", "table02_unet_resize512"]


@pytest.mark.parametrize("path", TABLE2_TRAINED, ids=lambda p: p.stem)
def test_table2_trained_rows_follow_the_paper_schedule(path: Path):
    """Masses; 3-stage heads -> stage4+ -> all or 2-stage heads -> all, lr / 10 at each stage; the paper's
    anchors; the patch set of the row's input (resized whole images or 256 px tiles every 128 px)."""
    loaded = load_experiment(path)
    config, settings = loaded.configs
    assert config.lesion_type == "mass" and config.anchor_sizes == (16, 32, 64, 128, 256)
    stages = [item.split(":")[0] for item in config.phases.split(",")]
    assert stages in (["heads", "stage4+", "all"], ["heads", "all"])
    lrs = [float(item.split(":")[2]) for item in config.phases.split(",")]
    assert all(b == pytest.approx(a / 10) for a, b in zip(lrs, lrs[1:]))
    if loaded.experiment.patches is PatchKind.SEG:
        assert (settings.tile_size, settings.stride) == (256, 128) and "tiles256" in path.stem
    else:
        assert settings.size == 512 and "resize512" in path.stem


@pytest.mark.parametrize("extra, message", [
    ("segmenter: blob\nlesion_types: mass\n", "segmenter blob is classical and model unet is trained"),
    ("lesion_types: mass\n", "lesion_types is the ground truth of a classical segmenter"),
])
def test_a_segmenter_experiment_is_either_classical_or_trained(tmp_path: Path, extra: str, message: str):
    from mammocad.utils.errors import DataError

    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "table02_unet_resize512.yaml").read_text() + extra)
    with pytest.raises(DataError, match=message) as caught:
        load_experiment(bad)
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("patches: resize512\nsegmenter: blob\n", "drop the key patches"),
    ("patches: resize512\n", "names its model"),
    ("patches: large\nmodel: unet\n", "either trains a model"),
])
def test_segmenter_experiment_errors_are_one_line_naming_the_file(tmp_path: Path, text: str, message: str):
    from mammocad.utils.errors import DataError

    bad = tmp_path / "bad.yaml"
    bad.write_text('table: "2"\nrow: blob_baseline\nkind: segmenter\n' + text)
    with pytest.raises(DataError, match=message) as caught:
        load_experiment(bad)
    assert str(caught.value).startswith(f"{bad}: ") and "\n" not in str(caught.value)


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
    """A classical and a trained Table 2 row and a classifier; killed in the middle of the segmenter's training.

    Classifiers and segmenters resume through the same runner code (``reproduce._train``, ``resume`` on).
    Observed 2026-11-30 on the shared 2-core VM under a load of 5-10: 138-192 s wall, of which the U-Net row
    ~120 s (3 reproduce invocations); the same test without the U-Net row (before): 56-77 s."""
    import mammocad.segment.training as training
    from mammocad.report.config import Budget, ReproduceConfig
    from mammocad.report.reproduce import reproduce

    out = tmp_path / "paper"
    blob, segmenter, classifier = (out / "runs" / name for name in SMOKE)
    # 1. killed in the middle of the segmenter's training (after its first epoch)
    monkeypatch.setattr(training, "train_segmenter",
                        functools.partial(training.train_segmenter, callbacks=[InterruptAt(1)]))
    config = ReproduceConfig(data=synth40, out=out, configs=CONFIGS, only=",".join(SMOKE), budget=Budget.SMOKE,
                             seed=0)
    with pytest.raises(Interrupt):
        reproduce(config, progress=False)
    monkeypatch.undo()
    assert json.loads((segmenter / EXPERIMENT_FILE).read_text())["status"] == "running"
    assert pd.read_csv(segmenter / "metrics.csv")["epoch"].tolist() == [0]
    assert not classifier.exists()

    # 2. re-run from another folder, with the configs mammocad ships: the finished blob experiment is skipped,
    #    the segmenter resumes and finishes, the classifier runs
    monkeypatch.chdir(tmp_path)
    args = ("reproduce", "--data", synth40, "--out", out, "--only", ",".join(SMOKE), "--budget", "smoke")
    second = run(*args)
    assert "experiments: 2 done, 1 skipped, 0 failed" in second.output
    assert f"experiment {SMOKE[0]}: skipped" in second.output and f"experiment {SMOKE[1]}: done" in second.output
    assert json.loads((segmenter / "run.json").read_text())["resumed_from"]
    assert pd.read_csv(segmenter / "metrics.csv")["epoch"].tolist() == [0, 1]  # smoke: one epoch per phase
    record = json.loads((segmenter / EXPERIMENT_FILE).read_text())
    assert record["status"] == "done" and record["budget"] == "smoke"
    assert record["config"]["phases"] == "heads:1:0.001,all:1:0.0001" and record["config"]["weights"] == "none"
    metrics = json.loads((segmenter / "evaluation" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["val_split"] == "val" and metrics["lesion_types"] == ["mass"]
    assert (segmenter / "evaluation" / "loss_curves.png").is_file()
    record = json.loads((classifier / EXPERIMENT_FILE).read_text())
    assert record["status"] == "done" and record["config"]["input_size"] == 64

    # every table it ran is filled: the paper's tables 2 and 5, Table 9, Tables 11/12, results, provenance
    tables = {p.stem: pd.read_csv(p) for p in (out / "report_tables").glob("*.csv")}
    for key, row in (("paper_table_2", "brightest-blob detector"), ("paper_table_2", "U-Net"),
                     ("paper_table_5", "MobileNetV2")):
        ran = tables[key][tables[key]["row"].str.startswith(row)]
        assert len(ran) == 2 and ran[["ours", "ours CI low", "ours CI high"]].notna().all().all(), (key, row)
    assert tables["paper_table_2"]["paper"].notna().sum() == 2  # the paper's best Mask R-CNN row, not run here
    assert {"table9_prepared", "classifiers", "segmenters"} <= set(tables)
    assert any(key.startswith("patches_patches_large") for key in tables)
    assert any(key.startswith("patches_patches_resize512") for key in tables)
    assert tables["classifiers"][["ACC", "AUC", "AUC CI low", "AUC CI high"]].notna().all().all()
    report = {key: (out / "report_tables" / f"{key}.csv").read_text() for key in ("paper_table_2", "paper_table_5")}

    # 3. re-run again: nothing is trained or evaluated, the report is the same
    stamps = {p: p.stat().st_mtime_ns for p in (classifier / "checkpoints" / "last.ckpt",
                                                segmenter / "checkpoints" / "last.ckpt",
                                                classifier / "evaluation" / "metrics.json",
                                                segmenter / "evaluation" / "metrics.json",
                                                blob / "evaluation" / "metrics.json")}
    third = run(*args)
    assert "experiments: 0 done, 3 skipped, 0 failed" in third.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {key: (out / "report_tables" / f"{key}.csv").read_text() for key in report} == report


def test_reproduce_reads_the_configs_folder_it_is_given(tmp_path: Path):
    """--configs DIR: that folder's files, not the shipped ones (a bad key there is one line naming the file)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "table02_mine.yaml").write_text((CONFIGS / "table02_blob_baseline.yaml").read_text() + "colour: red\n")
    result = run("reproduce", "--data", tmp_path / "none", "--out", tmp_path / "out", "--configs", folder, ok=False)
    lines = [line for line in result.output.splitlines() if line.strip() and "medical device" not in line]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output  # refused: nothing done
    assert str(folder / "table02_mine.yaml") in lines[0] and "unknown config keys ['colour']" in lines[0]
    missing = run("reproduce", "--data", tmp_path / "none", "--out", tmp_path / "out", "--configs", tmp_path / "no",
                  ok=False)
    assert missing.exit_code == 2 and "no experiment configs folder" in missing.output
    no_data = run("reproduce", "--data", tmp_path / "none", "--out", tmp_path / "out2", "--tables", "2", ok=False)
    assert no_data.exit_code == 2 and "Traceback" not in no_data.output
    assert f"{tmp_path / 'none'}: not a folder" in no_data.output and "--source" not in no_data.output


def test_smoke_budget_makes_a_segmenter_tiny_and_records_the_swaps():
    from mammocad.report.config import Budget
    from mammocad.report.reproduce import SMOKE_SEGMENTER, patch_settings, smoke_segment_config

    resized = load_experiment(CONFIGS / "table02_mask_rcnn_resize512_3stage.yaml")
    config, settings = resized.configs
    smoke_size = patch_settings(PatchKind.RESIZE512, settings, Budget.SMOKE).size
    smoke, swapped = smoke_segment_config(config, settings.size, smoke_size)
    assert smoke_size == 64 and smoke.anchor_sizes == (2, 4, 8, 16, 32)  # the paper's 16-256 px, 512 -> 64 px
    assert swapped == {"anchor_sizes": {"configured": [16, 32, 64, 128, 256], "smoke": [2, 4, 8, 16, 32]}}
    assert smoke.phases == "heads:1:0.0001,stage4+:1:1e-05,all:1:1e-06" and smoke.weights == "none"
    assert all(getattr(smoke, key) <= value for key, value in SMOKE_SEGMENTER.items())
    assert (smoke.model, smoke.limit_train_batches, smoke.limit_val_batches) == (config.model, 2, 2)

    config, settings = load_experiment(CONFIGS / "table02_mask_rcnn_tiles256_2stage.yaml").configs
    smoke_tiles = patch_settings(PatchKind.SEG, settings, Budget.SMOKE)
    assert (smoke_tiles.tile_size, smoke_tiles.stride, smoke_tiles.max_tiles) == (256, 128, 32)
    smoke, swapped = smoke_segment_config(config, settings.tile_size, smoke_tiles.tile_size)
    assert swapped == {} and smoke.anchor_sizes == config.anchor_sizes  # tiles of the configured size

    unet, _ = load_experiment(CONFIGS / "table02_unet_resize512.yaml").configs
    smoke, swapped = smoke_segment_config(unet, 512, 64)
    assert unet.encoder == "resnet34" and smoke.encoder == "mobilenet_v2" and smoke.anchor_sizes == unet.anchor_sizes
    assert swapped == {"encoder": {"configured": "resnet34", "smoke": "mobilenet_v2"}}
