"""mini-MIAS parsing: coordinates, multi-row images, rows without a centre, pairs as patients."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mammocad.data.masks import load_roi_mask
from mammocad.data.mini_mias import IMAGE_SIZE, laterality_of, load_mini_mias, patient_of
from mammocad.data.records import AbnormalityType, Laterality, Pathology
from mammocad.data.splits import image_split
from mammocad.utils.errors import DataError

def _fake_mias(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Info.txt").write_text("header\n===\n" + "\n".join(rows) + "\n")
    for ref in {r.split()[0] for r in rows}:
        cv2.imwrite(str(folder / f"{ref}.pgm"), np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8))
    return folder


def test_parse_rows(tmp_path: Path):
    root = _fake_mias(tmp_path, [
        "mdb001 G CIRC B 535 425 197",
        "mdb002 F NORM ",
        "mdb132 D SPIC M 100 900 20",
        "mdb132 D SPIC M 300 200 25",
        "mdb233 G CALC M *NOTE 3*",
        "mdb239 D CALC M",
        "mdb115 F ARCH B 461 532 117",
    ])
    table = load_mini_mias(root)
    assert [im.image_id for im in table.images] == ["mdb001", "mdb002", "mdb132", "mdb233", "mdb239", "mdb115"]
    by_key = {a.key: a for a in table.abnormalities}
    assert set(by_key) == {"mdb001_1", "mdb132_1", "mdb132_2", "mdb233_1", "mdb239_1", "mdb115_1"}
    c = by_key["mdb001_1"].roi_circle
    assert (c.row, c.col, c.radius) == (IMAGE_SIZE - 425, 535, 197)  # bottom-left origin -> top-left rows
    assert by_key["mdb132_2"].roi_circle.row == IMAGE_SIZE - 200
    assert by_key["mdb233_1"].roi_circle is None and by_key["mdb239_1"].roi_circle is None
    assert by_key["mdb132_1"].abnormality_type is AbnormalityType.MASS and by_key["mdb132_1"].mass_margins == "SPICULATED"
    assert by_key["mdb115_1"].abnormality_type is AbnormalityType.ARCHITECTURAL_DISTORTION
    assert by_key["mdb233_1"].pathology is Pathology.MALIGNANT


def test_pairs_are_patients():
    assert patient_of("mdb001") == patient_of("mdb002") == "mias_001"
    assert patient_of("mdb003") == "mias_002"
    assert laterality_of("mdb002") is Laterality.LEFT and laterality_of("mdb001") is Laterality.RIGHT


def test_missing_image_is_reported_and_skipped(tmp_path: Path):
    root = _fake_mias(tmp_path, ["mdb001 G CIRC B 535 425 197", "mdb002 F NORM"])
    (root / "mdb002.pgm").unlink()
    failures = []
    table = load_mini_mias(root, failures=failures)
    assert [im.image_id for im in table.images] == ["mdb001"]
    assert len(failures) == 1 and "mdb002.pgm" in str(failures[0]) and "not found" in str(failures[0])


def test_malformed_row_names_line(tmp_path: Path):
    root = _fake_mias(tmp_path, ["mdb001 G CIRC X 535 425 197"])
    with pytest.raises(DataError, match=r"Info.txt: line 3"):
        load_mini_mias(root)
    with pytest.raises(DataError, match="Info.txt not found"):
        load_mini_mias(tmp_path / "nowhere")


def test_real_counts_and_pair_split(mias_dir: Path):
    table = load_mini_mias(mias_dir)
    assert len(table.images) == 194
    pathologies = [a.pathology for a in table.abnormalities]
    assert (pathologies.count(Pathology.BENIGN), pathologies.count(Pathology.MALIGNANT)) == (41, 30)
    split = image_split(table, "official")  # no official split: falls back to tfds, by pair
    for im in table.images:
        number = int(im.image_id[3:])
        partner = f"mdb{number + 1 if number % 2 else number - 1:03d}"
        if partner in split:
            assert split[partner] == split[im.image_id]


def test_real_circles_land_on_lesions(mias_dir: Path):
    """Inside the circle is brighter than a ring around it for most lesions; a y-flip breaks that."""
    table = load_mini_mias(mias_dir)
    path_of = {im.image_id: im.image_path for im in table.images}
    hits, flipped_hits, n = 0, 0, 0
    for a in table.abnormalities:
        if a.roi_circle is None or a.abnormality_type is not AbnormalityType.MASS:
            continue
        image = cv2.imread(str(path_of[a.image_id]), cv2.IMREAD_UNCHANGED).astype(np.float32)
        for flip, counter in ((False, "hits"), (True, "flipped")):
            rr, cc = np.ogrid[:IMAGE_SIZE, :IMAGE_SIZE]
            row = IMAGE_SIZE - a.roi_circle.row if flip else a.roi_circle.row
            dist = np.hypot(rr - row, cc - a.roi_circle.col)
            inside = image[dist <= a.roi_circle.radius].mean()
            ring = image[(dist > 1.5 * a.roi_circle.radius) & (dist <= 2.5 * a.roi_circle.radius)].mean()
            if counter == "hits":
                hits += inside > ring
            else:
                flipped_hits += inside > ring
        n += 1
    assert n >= 30
    assert hits / n >= 0.85
    assert hits - flipped_hits >= 0.25 * n


def test_circle_mask(mias_dir: Path):
    table = load_mini_mias(mias_dir)
    a = next(a for a in table.abnormalities if a.roi_circle is not None
             and a.roi_circle.radius < min(a.roi_circle.row, a.roi_circle.col, IMAGE_SIZE - a.roi_circle.row))
    mask = load_roi_mask(a, (IMAGE_SIZE, IMAGE_SIZE))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    area = np.count_nonzero(mask)
    assert abs(area - np.pi * a.roi_circle.radius**2) / area < 0.05
    rows, cols = np.nonzero(mask)
    assert abs(rows.mean() - a.roi_circle.row) < 1 and abs(cols.mean() - a.roi_circle.col) < 1
