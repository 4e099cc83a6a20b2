"""The shared vocabulary (boxes, masks, window counts, seeds) and the batch-stage runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mammocad.utils.done import read_done
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import Box, WindowCounter, binary_mask, mask_box
from mammocad.utils.seeding import derived_seed, generator
from mammocad.utils.stage import StageItem, check_fresh, run_stage, write_reports, write_stage


def test_box_conventions_and_conversions():
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:9] = 1
    mask[7, 1] = 9  # a second component counts too
    box = mask_box(mask)
    assert box == Box(2, 1, 8, 9) == (2, 1, 8, 9)
    assert (box.height, box.width, box.area) == (6, 8, 48)
    assert box.xyxy() == (1, 2, 9, 8)
    assert Box.from_xyxy(*box.xyxy()) == box
    assert Box.from_xywh(1, 2, 8, 6) == box  # cv2.boundingRect order
    assert mask_box(np.zeros((4, 4), np.uint8)) is None


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.uint16, np.int32, np.float32, np.float64, np.int64])
def test_binary_mask_from_any_dtype(dtype):
    values = np.array([[0, 1], [2, 0]]).astype(dtype)
    out = binary_mask(values)
    assert out.dtype == np.uint8 and out.tolist() == [[0, 255], [255, 0]]


def test_window_counter_matches_brute_force_on_pairs_and_grids():
    rng = np.random.default_rng(0)
    mask = (rng.random((40, 50)) > 0.7).astype(np.uint8) * 255
    counter = WindowCounter(mask, (7, 5))
    assert counter.area == np.count_nonzero(mask) and counter.window_area == 35
    rows, cols = rng.integers(0, 33, 20), rng.integers(0, 45, 20)
    brute = [np.count_nonzero(mask[r:r + 7, c:c + 5]) for r, c in zip(rows, cols)]
    assert counter.count(rows, cols).tolist() == brute
    grid = counter.count(np.array([0, 10])[:, None], np.array([0, 3, 20])[None, :])
    assert grid.tolist() == [[np.count_nonzero(mask[r:r + 7, c:c + 5]) for c in (0, 3, 20)] for r in (0, 10)]


def test_streams_depend_on_seed_and_keys_only():
    a = generator(3, "mdb001").integers(0, 1000, 5)
    assert (generator(3, "mdb001").integers(0, 1000, 5) == a).all()
    assert not (generator(3, "mdb002").integers(0, 1000, 5) == a).all()
    assert not (generator(4, "mdb001").integers(0, 1000, 5) == a).all()
    assert derived_seed(0, 1, 2) == derived_seed(0, 1, 2) != derived_seed(0, 2, 1)
    assert 0 <= derived_seed(0, 1, 2) < 2**32


# ---- the stage runner ---------------------------------------------------------------------------
def _square(work: tuple[Path, int]) -> dict:
    """A module-level (picklable) stage function: writes n*n; n < 0 is bad input."""
    out, n = work
    if n < 0:
        raise DataError(f"item{n}", "negative input")
    (out / f"{n}.txt").write_text(str(n * n))
    return {"outputs": [f"{n}.txt"], "warnings": ["big"] if n > 2 else []}


def _items(out: Path, values, salt: str = "v1") -> list[StageItem]:
    return [StageItem(f"i{n}", f"{salt}-{n}", (out, n)) for n in values]


def test_run_stage_skips_done_redoes_changed_and_reports(tmp_path: Path):
    out = tmp_path / "out"
    run = run_stage(out, _items(out, [1, 2, 3, -1]), _square, workers=1, desc="t", progress=False)
    assert (run.done_now, run.skipped) == (3, 0)
    assert [r["id"] for r in run.records] == ["i1", "i2", "i3"]
    assert [f.item for f in run.failures] == ["i-1"] and [w.item for w in run.warnings] == ["i3"]
    assert read_done(out, "i2")["fingerprint"] == "v1-2"
    write_reports(out, run)
    assert (out / "failures.csv").read_text().splitlines()[1].startswith("i-1,item-1,negative input")
    assert "i3,,big" in (out / "warnings.csv").read_text()

    again = run_stage(out, _items(out, [1, 2, 3]), _square, workers=2, desc="t", progress=False)
    assert (again.done_now, again.skipped) == (0, 3)
    (out / "2.txt").unlink()  # a lost output is redone
    changed = _items(out, [1, 2]) + _items(out, [3], salt="v2")  # and so is a changed fingerprint
    third = run_stage(out, changed, _square, workers=1, desc="t", progress=False)
    assert (third.done_now, third.skipped) == (2, 1) and (out / "2.txt").is_file()


def test_run_stage_where_everything_fails_leaves_no_new_folder(tmp_path: Path):
    out = tmp_path / "out"
    run = run_stage(out, _items(out, [-1, -2]), _square, workers=1, desc="t", progress=False)
    assert run.records == [] and len(run.failures) == 2 and not out.exists()


def test_run_stage_refuses_a_file_as_output(tmp_path: Path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        run_stage(target, _items(target, [1]), _square, workers=1, desc="t", progress=False)


def test_check_fresh_follows_the_upstream_folder(tmp_path: Path):
    up, down = tmp_path / "up", tmp_path / "down"
    up.mkdir(), down.mkdir()
    fp_up = write_stage(up, "prepare", {"a": 1}, None, None, [])
    write_stage(down, "patches", {"b": 2}, up, fp_up, [])
    assert check_fresh(down, "patches", "redo")
    with pytest.raises(DataError, match="not a finished prepare"):
        check_fresh(down, "prepare", "mammocad prepare")
    write_stage(up, "prepare", {"a": 2}, None, None, [])  # upstream rebuilt with other settings
    with pytest.raises(DataError, match="out of date.*redo"):
        check_fresh(down, "patches", "redo")
    assert json.loads((down / "stage.json").read_text())["upstream"]["path"] == str(up.resolve())


def test_box_intersection_hull_and_relative_slices():
    a, b = Box(2, 3, 10, 12), Box(5, 0, 20, 6)
    assert a.intersection(b) == Box(5, 3, 10, 6) == b.intersection(a)
    assert a.intersection(Box(10, 3, 12, 12)) is None  # touching edges share no pixel (exclusive ends)
    assert a.hull(b) == Box(2, 0, 20, 12)
    grid = np.arange(30 * 30).reshape(30, 30)
    inner = grid[a.relative_to(Box(0, 0, 30, 30))]
    assert inner.shape == (a.height, a.width) and inner[0, 0] == grid[2, 3]
    assert (grid[a.hull(b).relative_to(Box(0, 0, 30, 30))][a.relative_to(a.hull(b))] == inner).all()
