"""Gather what a folder holds into the report's sections: tables (pandas frames) and figures (PNG files).

Runs are discovered by their files, so a report can be made of any folder: a prepared folder
(``stage.json`` of a prepare run: Table 9, preprocessing figures), patch sets (``patches.csv``:
Tables 11/12, example patches), classifier evaluations (a ``metrics.json`` with ``class_names``,
written by ``evaluate_classifier``: ACC, AUC with CIs, confusion matrix, ROC, training curves)
and segmenter evaluations (a ``metrics.json`` with ``after_fp_control``, written by
``evaluate_segmenter``: Dice, FROC, overlays). A run made by ``mammocad reproduce`` carries an
``experiment.json`` naming its paper table and row: those runs also fill the paper's tables,
beside the paper's numbers from ``paper.yaml`` and the difference. For each run: its config,
software versions, machine, time taken and data fingerprint (from run.json / experiment.json).

Tables keep numbers as numbers (the CSV files get them as such); ``Table.missing`` says what an
empty cell means, per column, for the HTML and Markdown renderings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mammocad.patches.stats import patch_counts
from mammocad.patches.store import MANIFEST, read_manifest
from mammocad.preprocess.stats import prepared_statistics
from mammocad.report.experiments import EXPERIMENT_FILE
from mammocad.report.paper import MEASURE_LABELS, Paper, PaperTable, load_paper
from mammocad.utils.stage import read_stage

NOT_RECORDED, NOT_RUN = "not recorded", "not run"
SKIP_DIRS = frozenset({"images", "masks", "breast", "done", "checkpoints", "tensorboard", "overlays", "figures",
                       "superseded"})
"""Folders that hold many files and never a run: not walked."""
MAX_PREPARED_FIGURES = 2
MAX_OVERLAYS = 4


@dataclass(frozen=True)
class Table:
    """A table of the report: ``key`` names its CSV file; ``missing``: column -> text shown for an empty cell."""

    key: str
    title: str
    frame: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Figure:
    title: str
    path: Path


@dataclass
class Section:
    """One heading of the report with its tables, figures and (for a run) its config as YAML text."""

    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    config: str | None = None


@dataclass(frozen=True)
class Found:
    """The folders :func:`discover` found, each list sorted by path."""

    prepared: list[Path]
    patch_sets: list[Path]
    classifier_evaluations: list[Path]
    segmenter_evaluations: list[Path]

    def __bool__(self) -> bool:
        return any((self.prepared, self.patch_sets, self.classifier_evaluations, self.segmenter_evaluations))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or ``{}`` when it is missing or unreadable."""
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def discover(root: str | Path) -> Found:
    """The prepared folders, patch sets and evaluations under ``root`` (``root`` itself included).

    Symbolic links to folders are followed (e.g. a shared prepared folder linked into a run
    folder), each real folder once.
    """
    found = Found([], [], [], [])
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        folder = Path(folder)
        if "stage.json" in files and (read_stage(folder) or {}).get("stage") == "prepare":
            found.prepared.append(folder)
        if MANIFEST in files:
            found.patch_sets.append(folder)
        if "metrics.json" in files:
            metrics = read_json(folder / "metrics.json")
            if "class_names" in metrics:
                found.classifier_evaluations.append(folder)
            elif "after_fp_control" in metrics:
                found.segmenter_evaluations.append(folder)
    return found


def run_folder(evaluation: Path) -> Path:
    """The run an evaluation folder belongs to: its parent when that is a training run or an experiment."""
    parent = evaluation.parent
    is_run = any((parent / name).is_file() for name in ("config.yaml", "run.json", EXPERIMENT_FILE))
    return parent if is_run else evaluation


def _name(folder: Path, root: Path) -> str:
    """``folder`` relative to the report's root (the root's own name for the root)."""
    relative = folder.relative_to(root) if folder.is_relative_to(root) else folder
    return str(relative) if str(relative) != "." else folder.resolve().name


def _round(value: Any) -> Any:
    return round(float(value), 4) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _ci(values: dict[str, Any], name: str) -> tuple[Any, Any]:
    low, high = (values.get(f"{name}_ci") or [None, None])
    return _round(low), _round(high)


# ---- data ------------------------------------------------------------------------------------------
def data_sections(found: Found, root: Path) -> list[Section]:
    """Table 9 and preprocessing figures per prepared folder; Tables 11/12 and example patches per patch set."""
    sections = []
    for prepared in found.prepared:
        table9, split = prepared_statistics(prepared)
        name = _name(prepared, root)
        figures = [Figure(f"before / after preprocessing: {p.stem}", p)
                   for p in sorted((prepared / "figures").glob("*.png"))[:MAX_PREPARED_FIGURES]]
        sections.append(Section(
            f"Data statistics (Table 9): {name}",
            f"Patients, mammograms and abnormalities per split ({split['scheme']} split, seed {split['seed']}); "
            "a patient or mammogram counts as malignant when any of its abnormalities is.",
            [Table(f"table9_{_key(name)}", f"Table 9: {name}", table9)], figures))
    for patch_set in found.patch_sets:
        manifest = read_manifest(patch_set)
        name = _name(patch_set, root)
        kinds = ", ".join(sorted(manifest["kind"].astype(str).unique()))
        counts = patch_counts(manifest).rename_axis("label").reset_index()
        examples = patch_set / "figures" / "examples.png"
        sections.append(Section(
            f"Patch set (Tables 11/12): {name}", f"Patches per class and split ({kinds}).",
            [Table(f"patches_{_key(name)}", f"Tables 11/12: {name}", counts)],
            [Figure(f"example patches: {name}", examples)] if examples.is_file() else []))
    return sections


def _key(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "root"


# ---- provenance ------------------------------------------------------------------------------------
def _software(info: dict[str, Any]) -> str | None:
    software = info.get("software")
    return ", ".join(f"{k} {v}" for k, v in software.items()) if software else None


def _machine(info: dict[str, Any]) -> str | None:
    machine = info.get("machine")
    if not machine:
        return None
    text = f"{machine.get('platform', '?')}, {machine.get('cpus', '?')} CPUs"
    return text + (f", GPUs: {', '.join(machine['gpus'])}" if machine.get("gpus") else "")


def _seconds(value: Any) -> str | None:
    return None if value is None else f"{float(value):.1f} s"


def provenance_table(key: str, run: Path, root: Path) -> Table:
    """Config source, software versions, machine, times and data fingerprint of one run (one row per item)."""
    train = read_json(run / "run.json")
    experiment = read_json(run / EXPERIMENT_FILE)
    first = {**experiment, **{k: v for k, v in train.items() if v is not None}}  # the training run's own record wins
    items = {
        "run folder": _name(run, root),
        "experiment": experiment.get("name"),
        "software": _software(first),
        "machine": _machine(first),
        "device": train.get("device"),
        "precision": train.get("precision"),
        "started": first.get("started_at"),
        "finished": first.get("finished_at"),
        "training time": _seconds(train.get("train_seconds")),
        "experiment time (training and evaluation)": _seconds(experiment.get("seconds")),
        "data fingerprint": first.get("data_fingerprint"),
        "experiment fingerprint": experiment.get("fingerprint"),
        "budget": experiment.get("budget"),
    }
    if not experiment:  # not made by `mammocad reproduce`: no experiment rows
        items = {k: v for k, v in items.items() if not k.startswith("experiment") and k != "budget"}
    frame = pd.DataFrame({"item": list(items), "value": list(items.values())})
    return Table(key, "Provenance", frame, {"value": NOT_RECORDED})


def _config_text(run: Path) -> str | None:
    """The run's config as YAML: a training run's config.yaml, else the config its experiment.json records."""
    import yaml

    if (run / "config.yaml").is_file():
        return (run / "config.yaml").read_text()
    config = read_json(run / EXPERIMENT_FILE).get("config")
    return yaml.safe_dump(config, sort_keys=False) if config else None


# ---- classifiers -----------------------------------------------------------------------------------
def _classifier_row(evaluation: Path, root: Path) -> dict[str, Any]:
    metrics = read_json(evaluation / "metrics.json")
    values = metrics.get("metrics", {})
    run = run_folder(evaluation)
    config = _yaml(run / "config.yaml")
    row = {"run": _name(evaluation, root), "task": config.get("task"), "model": config.get("model"),
           "n": values.get("n")}
    for name in ("accuracy", "auc"):
        low, high = _ci(values, name)
        row.update({MEASURE_LABELS[name]: _round(values.get(name)), f"{MEASURE_LABELS[name]} CI low": low,
                    f"{MEASURE_LABELS[name]} CI high": high})
    row.update(sensitivity=_round(values.get("sensitivity")), specificity=_round(values.get("specificity")),
               threshold=metrics.get("threshold_source"))
    return row


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def classifier_sections(found: Found, root: Path) -> list[Section]:
    """One summary table of every classifier evaluation, then one section per evaluation."""
    if not found.classifier_evaluations:
        return []
    rows = [_classifier_row(e, root) for e in found.classifier_evaluations]
    summary = Section("Classifier results", "Test-split ACC and AUC with bootstrap 95% CIs; sensitivity and "
                      "specificity at the threshold chosen on the validation split (binary tasks).",
                      [Table("classifiers", "Classifier results", pd.DataFrame(rows),
                             {"sensitivity": "n/a (multiclass)", "specificity": "n/a (multiclass)"})])
    sections = [summary]
    for evaluation in found.classifier_evaluations:
        name = _name(evaluation, root)
        run = run_folder(evaluation)
        confusion = pd.read_csv(evaluation / "confusion.csv") if (evaluation / "confusion.csv").is_file() else None
        tables = [] if confusion is None else [Table(f"confusion_{_key(name)}",
                                                     "Confusion matrix (rows: true class, columns: predicted)",
                                                     confusion)]
        tables.append(provenance_table(f"provenance_{_key(name)}", run, root))
        figures = [Figure(title, evaluation / file) for title, file in
                   (("ROC curve", "roc.png"), ("training curves", "training_curves.png"))
                   if (evaluation / file).is_file()]
        sections.append(Section(f"Classifier: {name}", "", tables, figures, _config_text(run)))
    return sections


# ---- segmenters ------------------------------------------------------------------------------------
SEGMENTER_MEASURES = ("average_dice", "max_dice", "false_positives_per_image", "sensitivity_iou_0.1",
                      "sensitivity_iou_0.5", "froc_sensitivity_at_0.5_fp", "froc_sensitivity_at_1_fp",
                      "froc_sensitivity_at_2_fp")


def _segmenter_rows(evaluation: Path, root: Path) -> list[dict[str, Any]]:
    metrics = read_json(evaluation / "metrics.json")
    rows = []
    for setting, key in (("raw", "raw"), ("after FP control", "after_fp_control")):
        values = metrics.get(key, {})
        row = {"evaluation": _name(evaluation, root), "segmenter": metrics.get("segmenter"), "setting": setting,
               "images": values.get("n_images"), "lesions": values.get("n_lesions")}
        for name in SEGMENTER_MEASURES:
            low, high = _ci(values, name)
            row.update({name: _round(values.get(name)), f"{name} CI low": low, f"{name} CI high": high})
        rows.append(row)
    return rows


def segmenter_sections(found: Found, root: Path) -> list[Section]:
    """One summary table of every segmenter evaluation, then one section per evaluation."""
    if not found.segmenter_evaluations:
        return []
    rows = [row for e in found.segmenter_evaluations for row in _segmenter_rows(e, root)]
    summary = Section("Segmentation results", "Full-image lesion segmentation (paper Table 2 measures): average "
                      "Dice (all predicted regions against the lesions) and max Dice (best single region) over the "
                      "images with a lesion, false positives per image, lesion sensitivity at IoU 0.1 / 0.5 and "
                      "FROC sensitivities; 95% CIs from resampling patients; before and after the false-positive "
                      "control chosen on the validation split.",
                      [Table("segmenters", "Segmentation results", pd.DataFrame(rows))])
    sections = [summary]
    for evaluation in found.segmenter_evaluations:
        name = _name(evaluation, root)
        run = run_folder(evaluation)
        metrics = read_json(evaluation / "metrics.json")
        figures = [Figure("FROC", p) for p in sorted(evaluation.glob("froc_*.png"))]
        figures += [Figure(f"overlay: {image_id} (prediction vs ground truth)", evaluation / "overlays" / f"{image_id}.png")
                    for image_id in metrics.get("overlays", [])[:MAX_OVERLAYS]
                    if (evaluation / "overlays" / f"{image_id}.png").is_file()]
        if (evaluation / "loss_curves.png").is_file():
            figures.append(Figure("loss curves", evaluation / "loss_curves.png"))
        op = metrics.get("operating_point", {})
        text = (f"Split {metrics.get('split')}, lesion types {metrics.get('lesion_types')}; FP control chosen on "
                f"{metrics.get('val_split')}: top-k {op.get('top_k') or 'all'}, score >= {op.get('min_score')}.")
        sections.append(Section(f"Segmenter: {name}", text, [provenance_table(f"provenance_{_key(name)}", run, root)],
                                figures, _config_text(run)))
    return sections


# ---- paper comparison ------------------------------------------------------------------------------
def _measured(evaluation: Path, kind: str) -> dict[str, tuple[Any, Any, Any]]:
    """measure -> (value, CI low, CI high) of one evaluation, as the paper's tables report it."""
    metrics = read_json(evaluation / "metrics.json")
    values = metrics.get("metrics", {}) if kind == "classifier" else metrics.get("raw", {})
    return {name: (_round(values.get(name)), *_ci(values, name)) for name in MEASURE_LABELS if name in values}


def comparison_sections(found: Found, paper: Paper | None = None) -> list[Section]:
    """The paper's tables that some experiment filled: every row of the table, paper beside ours, and ours - paper."""
    paper = paper or load_paper()
    measured: dict[tuple[str, str], dict[str, tuple]] = {}
    for evaluation in (*found.classifier_evaluations, *found.segmenter_evaluations):
        experiment = read_json(run_folder(evaluation) / EXPERIMENT_FILE)
        table = paper.tables.get(str(experiment.get("table")))
        if table is not None:
            measured[(table.key, experiment.get("row"))] = _measured(evaluation, table.kind)
    sections = []
    for table in paper.tables.values():
        rows_run = {row for key, row in measured if key == table.key}
        if not rows_run:
            continue
        rows = [_comparison_row(table, row, measure, measured.get((table.key, row)))
                for row in [*table.rows, *sorted(rows_run - set(table.rows))] for measure in table.measures]
        note = "Segmenters: the model's own predictions (before mammocad's false-positive control)." \
            if table.kind == "segmenter" else ""
        sections.append(Section(f"Paper Table {table.key}: {table.title}", note, [Table(
            f"paper_table_{table.key}", f"Table {table.key}", pd.DataFrame(rows),
            {"paper": NOT_RECORDED, "ours": NOT_RUN, "ours CI low": NOT_RUN, "ours CI high": NOT_RUN,
             "ours - paper": "n/a"})]))
    return sections


def _comparison_row(table: PaperTable, row: str, measure: str, ours: dict[str, tuple] | None) -> dict[str, Any]:
    paper_value = table.value(row, measure)
    value, low, high = (ours or {}).get(measure, (None, None, None))
    difference = None if value is None or paper_value is None else round(value - paper_value, 4)
    return {"row": table.label(row), "measure": MEASURE_LABELS[measure], "paper": paper_value, "ours": value,
            "ours CI low": low, "ours CI high": high, "ours - paper": difference}


def collect(root: str | Path) -> list[Section]:
    """Every section of the report of ``root``, in reading order: paper tables, data, classifiers, segmenters."""
    root = Path(root)
    found = discover(root)
    return [*comparison_sections(found), *data_sections(found, root), *classifier_sections(found, root),
            *segmenter_sections(found, root)]
