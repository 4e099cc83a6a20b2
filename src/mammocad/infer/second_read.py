"""``mammocad second-read``: predictions beside a radiologist's readings, discrepancies flagged.

Readings are a CSV with one row per image or per finding: patient, laterality (LEFT/RIGHT or
L/R), view (CC/MLO) and the BI-RADS assessment (0-6), under those names or CBIS-DDSM's
(``patient_id``, ``left or right breast``, ``image view``, ``assessment``). An image's reading
is its highest assessment. Predictions are the JSON files ``mammocad predict`` wrote; an image
is *likely malignant* when a region's malignancy probability reaches the classifier's operating
threshold (chosen on its validation split, recorded in each JSON).

Findings per image (joined on patient, laterality, view):

- ``possible false negative``: a likely malignant region, but the reading is BI-RADS 1-3
  (negative, benign, probably benign): a call-back candidate;
- ``reading not supported``: BI-RADS 4-6 (suspicious, highly suggestive, known malignancy) but
  no region reaches the threshold;
- ``agree``; ``incomplete reading`` (BI-RADS 0); ``no reading`` / ``no prediction`` for images
  on one side only.

Writes ``discrepancies.csv`` (every image, flagged ones first) and ``second_read.html`` (one
self-contained page: inline style, no scripts, links to the overlays).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2
import pandas as pd

from mammocad import DISCLAIMER, __version__
from mammocad.utils.atomic import check_output_folder, write_csv, write_text
from mammocad.utils.errors import DataError

KEYS = ["patient", "laterality", "view"]
READING_COLUMNS = {
    "patient": ("patient", "patient_id", "patient id"),
    "laterality": ("laterality", "left or right breast", "side"),
    "view": ("view", "image view"),
    "assessment": ("assessment", "birads", "bi-rads"),
}
POSSIBLE_FALSE_NEGATIVE = "possible false negative"
READING_NOT_SUPPORTED = "reading not supported"
FLAGS = (POSSIBLE_FALSE_NEGATIVE, READING_NOT_SUPPORTED)
COLUMNS = [*KEYS, "finding", "flagged", "assessment", "max_malignancy", "threshold", "suspicious_regions", "name",
           "image", "json", "overlay"]


def read_readings(path: str | Path) -> pd.DataFrame:
    """One row per image (patient, laterality, view) with its highest BI-RADS ``assessment``; DataError for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such readings file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(path, f"not a readable CSV ({err})") from None
    columns = {c.strip().lower(): c for c in frame.columns}
    found = {key: next((columns[n] for n in names if n in columns), None) for key, names in READING_COLUMNS.items()}
    missing = [f"{key} ({' or '.join(READING_COLUMNS[key])})" for key, column in found.items() if column is None]
    if missing:
        raise DataError(path, f"missing column(s): {', '.join(missing)}")
    readings = pd.DataFrame({key: frame[column].str.strip() for key, column in found.items()})
    readings["laterality"] = readings["laterality"].str.upper().replace({"L": "LEFT", "R": "RIGHT"})
    readings["view"] = readings["view"].str.upper()
    assessment = pd.to_numeric(readings["assessment"], errors="coerce")
    bad = readings.index[~assessment.isin(range(7))]
    if len(bad):
        raise DataError(path, f"row {bad[0] + 2}: assessment {readings['assessment'][bad[0]]!r} is not a BI-RADS "
                              f"category 0-6")
    readings["assessment"] = assessment.astype(int)
    return readings.groupby(KEYS, as_index=False)["assessment"].max()


def read_predictions(folder: str | Path) -> pd.DataFrame:
    """One row per prediction JSON in ``folder``: patient, laterality, view, highest probability, threshold, files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such predictions folder (written by `mammocad predict`)")
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            result = json.loads(path.read_text())
            image, regions, threshold = result["image"], result["regions"], result["threshold"]
        except (ValueError, KeyError, TypeError):
            continue  # not a prediction (another JSON file in the folder)
        if threshold is None:
            raise DataError(path, "the classifier has no operating threshold (a multiclass task): the second "
                                  "read needs a benign/malignant classifier")
        probabilities = [r["malignancy_probability"] for r in regions]
        rows.append({**{key: image.get(key) for key in KEYS}, "name": image["name"], "image": image["path"],
                     "max_malignancy": max(probabilities, default=0.0), "threshold": threshold,
                     "suspicious_regions": sum(p >= threshold for p in probabilities), "json": str(path),
                     "overlay": str(folder / result.get("files", {}).get("overlay", ""))})
    if not rows:
        raise DataError(folder, "holds no prediction JSON files (run `mammocad predict --out` into it)")
    predictions = pd.DataFrame(rows)
    unknown = predictions[predictions[KEYS].isna().any(axis=1)]
    if len(unknown) == len(predictions):
        raise DataError(folder, "no prediction says its patient, laterality and view (from the DICOM header, the "
                                "dataset records or a CBIS-DDSM name), so none can be joined with readings")
    return predictions


def _finding(row: pd.Series) -> str:
    if pd.isna(row["assessment"]):
        return "no reading"
    if pd.isna(row["max_malignancy"]):
        return "no prediction"
    likely_malignant = row["max_malignancy"] >= row["threshold"]
    if row["assessment"] == 0:
        return "incomplete reading"
    if likely_malignant and row["assessment"] <= 3:
        return POSSIBLE_FALSE_NEGATIVE
    if not likely_malignant and row["assessment"] >= 4:
        return READING_NOT_SUPPORTED
    return "agree"


def compare(predictions: pd.DataFrame, readings: pd.DataFrame) -> pd.DataFrame:
    """Predictions and readings joined per image (outer join), with ``finding`` and ``flagged``; flagged first."""
    joined = predictions.merge(readings, on=KEYS, how="outer")
    joined["finding"] = joined.apply(_finding, axis=1) if len(joined) else []
    joined["flagged"] = joined["finding"].isin(FLAGS)
    joined["assessment"] = joined["assessment"].astype("Int64")
    order = joined["finding"].map({POSSIBLE_FALSE_NEGATIVE: 0, READING_NOT_SUPPORTED: 1}).fillna(2)
    return joined.assign(_order=order).sort_values(["_order", *KEYS]).drop(columns="_order")[COLUMNS]


PAGE = jinja2.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mammocad second read</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#eee}.flag{background:#fde2e2}.note{background:#fff3cd;padding:8px;border:1px solid #e0c36c}</style>
</head><body>
<h1>Second read: model vs readings</h1>
<p class="note"><b>{{ disclaimer }}</b> Flags are prompts for a second look, not findings.</p>
<p>{{ counts.flagged }} of {{ counts.images }} image(s) flagged: {{ counts.fn }} possible false negative(s)
(a region at or above the operating threshold, reading BI-RADS 1-3: call-back candidates),
{{ counts.unsupported }} reading(s) not supported (BI-RADS 4-6, no region at the threshold).
Predictions: {{ predictions }}; readings: {{ readings }}; mammocad {{ version }}.</p>
<table><tr><th>patient</th><th>laterality</th><th>view</th><th>finding</th><th>BI-RADS</th>
<th>highest malignancy probability</th><th>threshold</th><th>overlay</th></tr>
{% for row in rows %}<tr{% if row.flagged %} class="flag"{% endif %}><td>{{ row.patient }}</td><td>{{ row.laterality }}</td>
<td>{{ row.view }}</td><td>{{ row.finding }}</td><td>{{ row.assessment if row.assessment is not none else "" }}</td>
<td>{{ "%.3f"|format(row.max_malignancy) if row.max_malignancy is not none else "" }}</td>
<td>{{ "%.3f"|format(row.threshold) if row.threshold is not none else "" }}</td>
<td>{% if row.link %}<a href="{{ row.link }}">{{ row.name }}</a>{% endif %}</td></tr>
{% endfor %}</table></body></html>
""", autoescape=True)


def second_read(predictions: str | Path, readings: str | Path, out: str | Path) -> pd.DataFrame:
    """Compare, write ``out/discrepancies.csv`` and ``out/second_read.html``; the comparison (see :func:`compare`)."""
    out = check_output_folder(out)
    table = compare(read_predictions(predictions), read_readings(readings))
    write_csv(out / "discrepancies.csv", table)
    rows = []
    for row in table.astype(object).where(table.notna(), None).to_dict("records"):
        overlay = row["overlay"]
        row["link"] = os.path.relpath(Path(overlay).resolve(), out.resolve()) if overlay and Path(overlay).is_file() else None
        rows.append(row)
    counts = {"images": len(table), "flagged": int(table["flagged"].sum()),
              "fn": int((table["finding"] == POSSIBLE_FALSE_NEGATIVE).sum()),
              "unsupported": int((table["finding"] == READING_NOT_SUPPORTED).sum())}
    write_text(out / "second_read.html", PAGE.render(rows=rows, counts=counts, disclaimer=DISCLAIMER,
                                                      predictions=str(predictions), readings=str(readings),
                                                      version=__version__))
    return table
