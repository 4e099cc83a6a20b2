"""`mammocad report`: the page, its CSV/Markdown tables, the paper comparison, and a real headless browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from mammocad import DISCLAIMER
from mammocad.report import build_report
from mammocad.report.collect import comparison_sections, discover
from mammocad.report.experiments import EXPERIMENT_FILE
from mammocad.report.paper import load_paper
from mammocad.report.render import formatted
from test_cli import run  # tests/ is on sys.path (pytest rootdir-less "prepend" import mode)


@pytest.fixture(scope="module")
def run_root(prepared_small: Path, tmp_path_factory) -> Path:
    """A folder holding what the report reads: a prepared folder, a patch set, a trained and evaluated
    classifier (1 epoch, 64 px) and a brightest-blob segmenter evaluation. Seconds on a CPU."""
    from mammocad.evaluate.classifier import evaluate_classifier
    from mammocad.evaluate.segmenter import evaluate_segmenter
    from mammocad.patches.build import PatchJob, PatchKind, build_patches
    from mammocad.patches.large_context import LargeContextConfig
    from mammocad.patches.store import MANIFEST
    from mammocad.segment.baselines import baseline
    from mammocad.train.config import TrainConfig
    from mammocad.train.engine import train_classifier

    root = tmp_path_factory.mktemp("report_root")
    patches = root / "large"
    build_patches(PatchJob(prepared=prepared_small, out=patches, kind=PatchKind.LARGE, workers=1),
                  LargeContextConfig(output_size=64), progress=False)
    manifest = pd.read_csv(patches / MANIFEST, keep_default_na=False)  # both classes in every split (as in
    malignant = manifest["label"].str.startswith("MALIGNANT")          # test_classifier_cli's patch_set)
    for group in (manifest[malignant], manifest[~malignant]):
        manifest.loc[group.index, "split"] = [("train", "train", "val", "test")[i % 4] for i in range(len(group))]
    manifest.to_csv(patches / MANIFEST, index=False)
    config = TrainConfig(data=patches, out=root / "runs" / "bm", task="benign_malignant", model="medical_cnn",
                         weights="none", input_size=64, phases="all:1:1e-3", batch_size=8, workers=0)
    result = train_classifier(config, progress=False)
    evaluate_classifier(result.best_checkpoint, patches, result.run_dir / "evaluation", n_resamples=20)
    evaluate_segmenter(baseline("blob"), prepared_small, "test", root / "runs" / "blob", val_split=None,
                       n_resamples=20, n_overlays=1, progress=False)
    (root / "prepared").symlink_to(prepared_small, target_is_directory=True)
    return root


def test_run_json_records_software_machine_time_and_data(run_root: Path):
    info = json.loads((run_root / "runs" / "bm" / "run.json").read_text())
    assert info["software"]["mammocad"] and info["software"]["torch"] and info["software"]["python"]
    assert info["machine"]["cpus"] >= 1 and info["machine"]["platform"]
    assert info["train_seconds"] > 0 and info["finished_at"] >= info["started_at"]
    assert re.fullmatch(r"[0-9a-f]{12}", info["data_fingerprint"])


def test_report_writes_html_markdown_and_csv_of_every_run(run_root: Path, tmp_path: Path):
    out = build_report(run_root, tmp_path / "r.html")
    tables = {p.stem: pd.read_csv(p) for p in (tmp_path / "r_tables").glob("*.csv")}
    assert {"table9_prepared", "patches_large", "classifiers", "confusion_runs_bm_evaluation", "segmenters",
            "provenance_runs_bm_evaluation", "provenance_runs_blob"} <= set(tables)
    metrics = json.loads((run_root / "runs" / "bm" / "evaluation" / "metrics.json").read_text())["metrics"]
    row = tables["classifiers"].iloc[0]
    assert row["task"] == "benign_malignant" and row["model"] == "medical_cnn"
    assert row["AUC"] == pytest.approx(metrics["auc"], abs=1e-4)
    assert (row["AUC CI low"], row["AUC CI high"]) == pytest.approx(metrics["auc_ci"], abs=1e-4)
    assert tables["table9_prepared"]["split"].tolist()[-1] == "all"
    assert set(tables["segmenters"]["setting"]) == {"raw", "after FP control"}
    provenance = dict(zip(*tables["provenance_runs_bm_evaluation"][["item", "value"]].T.to_numpy()))
    assert "mammocad" in provenance["software"] and provenance["training time"].endswith(" s")

    html = out.read_text()
    assert DISCLAIMER in html and DISCLAIMER in out.with_suffix(".md").read_text()
    sources = re.findall(r'(?:src|href)="([^"#]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # self-contained
    assert "<script" not in html and "<link" not in html
    assert html.count("<table") == sum(1 for p in (tmp_path / "r_tables").glob("*.csv"))
    assert "| benign_malignant" in out.with_suffix(".md").read_text()


def test_paper_comparison_puts_ours_beside_the_paper(tmp_path: Path):
    """Table 2's recorded cells get ours - paper; unknown paper cells say so; rows not run say so."""
    evaluation = tmp_path / "runs" / "seg" / "evaluation"
    evaluation.mkdir(parents=True)
    (evaluation.parent / EXPERIMENT_FILE).write_text(json.dumps({"name": "seg", "table": "2", "row": "mask_rcnn_best"}))
    raw = {"average_dice": 0.5, "average_dice_ci": [0.4, 0.6], "max_dice": 0.8, "max_dice_ci": [0.7, 0.9]}
    (evaluation / "metrics.json").write_text(json.dumps({"raw": raw, "after_fp_control": raw}))
    (section,) = comparison_sections(discover(tmp_path))
    (table,) = section.tables
    frame = table.frame.set_index(["row", "measure"])
    best = frame.loc[load_paper().tables["2"].label("mask_rcnn_best")]
    assert best.loc["average Dice", "paper"] == 0.456 and best.loc["average Dice", "ours"] == 0.5
    assert best.loc["average Dice", "ours - paper"] == pytest.approx(0.044)
    assert best.loc["max Dice", "ours - paper"] == pytest.approx(-0.103)
    shown = formatted(table).set_index(["row", "measure"])
    other = shown.drop(index=best.index.map(lambda m: (load_paper().tables["2"].label("mask_rcnn_best"), m)))
    assert set(other["paper"]) == {"not recorded"} and set(other["ours"]) == {"not run"}


def test_paper_yaml_records_only_what_is_known():
    """Table 2's best row is the one cell known for sure; no other number may be invented."""
    paper = load_paper()
    recorded = {(t.key, row, m): t.value(row, m) for t in paper.tables.values() for row in t.rows for m in t.measures
                if t.value(row, m) is not None}
    assert recorded == {("2", "mask_rcnn_best", "average_dice"): 0.456, ("2", "mask_rcnn_best", "max_dice"): 0.903}
    assert "not recorded" in paper.source


def test_report_of_an_empty_folder_is_one_line(tmp_path: Path):
    result = run("report", tmp_path, ok=False)
    assert result.exit_code == 2 and "nothing to report" in result.output and "Traceback" not in result.output


def test_report_command_default_out(run_root: Path, tmp_path: Path):
    result = run("report", run_root, "--out", tmp_path / "page.html")
    assert "page.html" in result.output and (tmp_path / "page.md").is_file()


def test_report_opens_in_headless_chromium(run_root: Path, tmp_path: Path, browser):
    """Debian's chromium (installed by `make test`'s set-up, never downloaded): every table filled, every
    image loaded, no console error."""
    page = build_report(run_root, tmp_path / "page" / "report.html")
    browser.get(page.as_uri())
    state = browser.execute_script("""
        return {
          ready: document.readyState,
          images: Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]),
          tables: Array.from(document.querySelectorAll('table')).map(t => [
            t.dataset.key, t.querySelectorAll('tbody tr').length,
            Array.from(t.querySelectorAll('td')).filter(td => td.textContent.trim() === '').length]),
        };""")
    logs = browser.get_log("browser")
    assert state["ready"] == "complete"
    assert len(state["images"]) >= 4  # preprocessing, examples, ROC, training curves, FROC, overlay
    assert [alt for alt, complete, width in state["images"] if not (complete and width > 0)] == []
    assert len(state["tables"]) >= 7
    assert [key for key, rows, empty in state["tables"] if rows == 0 or empty] == []
    assert [entry for entry in logs if entry["level"] == "SEVERE"] == []
