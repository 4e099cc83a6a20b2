"""second-read: a constructed false negative is flagged, a true negative is not."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mammocad.infer.second_read import POSSIBLE_FALSE_NEGATIVE, READING_NOT_SUPPORTED, second_read
from mammocad.utils.errors import DataError
from test_cli import run  # tests/ is on sys.path


def write_prediction(folder: Path, name: str, patient: str, laterality: str, view: str, probabilities: list[float],
                     threshold: float = 0.4) -> None:
    """A prediction JSON as `mammocad predict` writes it (the fields second-read reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_overlay.png").write_bytes(b"")
    regions = [{"id": k + 1, "malignancy_probability": p} for k, p in enumerate(probabilities)]
    (folder / f"{name}.json").write_text(json.dumps({
        "image": {"name": name, "path": f"/scans/{name}.dcm", "patient": patient, "laterality": laterality,
                  "view": view},
        "regions": regions, "threshold": threshold, "files": {"overlay": f"{name}_overlay.png"}}))


@pytest.fixture
def case(tmp_path: Path) -> tuple[Path, Path]:
    predictions = tmp_path / "predictions"
    write_prediction(predictions, "missed", "P_00001", "LEFT", "CC", [0.1, 0.9])       # model: malignant
    write_prediction(predictions, "normal", "P_00002", "RIGHT", "MLO", [0.2])          # model: nothing
    write_prediction(predictions, "both", "P_00003", "LEFT", "MLO", [0.8])             # model: malignant
    write_prediction(predictions, "unsupported", "P_00004", "RIGHT", "CC", [])         # model: no region
    (predictions / "summary.json").write_text("{}")  # other JSON files are not predictions
    # CBIS-DDSM column names; one image with two findings (the highest assessment counts)
    readings = tmp_path / "readings.csv"
    pd.DataFrame({
        "patient_id": ["P_00001", "P_00002", "P_00003", "P_00003", "P_00004"],
        "left or right breast": ["LEFT", "RIGHT", "LEFT", "LEFT", "R"],
        "image view": ["CC", "MLO", "MLO", "MLO", "CC"],
        "assessment": [2, 1, 3, 5, 4],
    }).to_csv(readings, index=False)
    return predictions, readings


def test_false_negative_is_flagged_and_true_negative_is_not(case, tmp_path: Path):
    predictions, readings = case
    table = second_read(predictions, readings, tmp_path / "out").set_index("patient")
    assert table.loc["P_00001", "finding"] == POSSIBLE_FALSE_NEGATIVE and table.loc["P_00001", "flagged"]
    assert table.loc["P_00002", "finding"] == "agree" and not table.loc["P_00002", "flagged"]
    assert table.loc["P_00003", "finding"] == "agree"  # BI-RADS 5 from its second finding
    assert table.loc["P_00004", "finding"] == READING_NOT_SUPPORTED
    written = pd.read_csv(tmp_path / "out" / "discrepancies.csv")
    assert list(written["patient"][:2]) == ["P_00001", "P_00004"]  # flagged first
    page = (tmp_path / "out" / "second_read.html").read_text()
    assert "not a medical device" in page and "<script" not in page and "missed_overlay.png" in page


def test_cli_and_bad_readings(case, tmp_path: Path):
    predictions, readings = case
    result = run("second-read", "--predictions", predictions, "--readings", readings, "--out", tmp_path / "cli")
    assert "4 image(s); 1 possible false negative, 1 reading not supported" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("patient,laterality,view,assessment\nP_00001,LEFT,CC,seven\n")
    with pytest.raises(DataError, match="row 2: assessment 'seven'"):
        second_read(predictions, bad, tmp_path / "x")
    missing = run("second-read", "--predictions", predictions, "--readings", tmp_path / "none.csv", ok=False)
    assert missing.exit_code == 2 and "no such readings file" in missing.output
