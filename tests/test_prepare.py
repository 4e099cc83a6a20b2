"""`mammocad prepare` over a whole (synthetic) dataset: outputs, alignment, re-runs, bad input."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammocad.data.registry import load_dataset
from mammocad.data.splits import SPLITS_FILE, image_split, read_split_file
from mammocad.preprocess.pipeline import PreprocessConfig
from mammocad.preprocess.prepare import (
    PrepareJob,
    geometry_from_row,
    load_prepared,
    prepare_table,
    resplit,
    run_prepare,
)
from mammocad.utils.errors import DataError
from mammocad.utils.stage import read_stage
from mammocad.utils.imageio import read_image, write_png


def _job(source: Path, out: Path, **kw) -> PrepareJob:
    return PrepareJob(source=source, out=out, workers=kw.pop("workers", 1), figures=kw.pop("figures", 1), **kw)


@pytest.fixture
def prepared(prepared_small: Path) -> Path:
    return prepared_small


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask > 0).mean(axis=0)


def test_every_image_and_mask_is_written_and_listed(prepared: Path, synth_small: Path):
    table = load_dataset(synth_small, "cbis-ddsm", resolve_files=False, progress=False)
    images = pd.read_csv(prepared / "images.csv")
    abnormalities = pd.read_csv(prepared / "abnormalities.csv")
    assert sorted(images["image_id"]) == sorted(im.image_id for im in table.images)
    assert len(abnormalities) == len(table.abnormalities)
    for row in images.itertuples():
        image = read_image(prepared / row.prepared_image)
        assert image.dtype == np.uint16 and image.shape == (row.rows, row.cols) and row.rows == row.cols
        assert read_image(prepared / row.prepared_breast).shape == image.shape
    assert (prepared / "prepare.yaml").is_file()
    assert pd.read_csv(prepared / "failures.csv").empty
    assert len(list((prepared / "figures").glob("*.png"))) == 1
    assert not list(prepared.rglob("*.tmp*")), "temporary files left behind"


def test_split_is_patient_level_and_matches_the_scheme(prepared: Path):
    table, images, abnormalities = load_prepared(prepared)
    assert images.groupby("patient_id")["split"].nunique().max() == 1
    assert dict(zip(images["image_id"], images["split"])) == image_split(table, "official", seed=0)
    assert (abnormalities["split"] == abnormalities["image_id"].map(dict(zip(images["image_id"], images["split"])))).all()


def test_prepared_masks_stay_on_their_lesions(prepared: Path):
    """The original mask's centroid, mapped through the recorded geometry, is the prepared mask's centroid."""
    _, images, abnormalities = load_prepared(prepared)
    by_image = images.set_index("image_id")
    for row in abnormalities.itertuples():
        original = read_image(row.roi_mask_path)
        mask = read_image(prepared / row.prepared_mask)
        geometry = geometry_from_row(by_image.loc[row.image_id].to_dict())
        expected = np.array(geometry.to_output(*_centroid(original)))
        assert np.abs(_centroid(mask) - expected).max() < 1.0, row.key
        # bounding box columns in the manifest describe the written mask
        nz = np.argwhere(mask)
        assert (row.row0, row.col0, row.row1, row.col1) == (*nz.min(0), *(nz.max(0) + 1))
        assert row.area_px == np.count_nonzero(mask)


def test_load_prepared_points_records_at_prepared_files(prepared: Path):
    table, _, _ = load_prepared(prepared)
    for im in table.images:
        assert Path(im.image_path).is_relative_to(prepared) and Path(im.image_path).is_file()
    for a in table.abnormalities:
        assert Path(a.roi_mask_path).is_file() and a.roi_circle is None


def test_rerun_skips_finished_images_and_a_new_setting_redoes_them(synth_small: Path, tmp_path: Path):
    job = _job(synth_small, tmp_path / "out", limit=3)
    first = run_prepare(job, PreprocessConfig(), progress=False)
    assert (first.prepared, first.skipped) == (3, 0)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "images").iterdir()}
    again = run_prepare(job, PreprocessConfig(), progress=False)
    assert (again.prepared, again.skipped) == (0, 3)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "images").iterdir()} == stamps
    # a deleted output is noticed and only that image is redone
    victim = sorted(stamps)[0]
    victim.unlink()
    repaired = run_prepare(job, PreprocessConfig(), progress=False)
    assert (repaired.prepared, repaired.skipped) == (1, 2) and victim.is_file()
    changed = run_prepare(job, PreprocessConfig(size=128), progress=False)
    assert (changed.prepared, changed.skipped) == (3, 0)
    assert read_image(victim).shape == (128, 128)


def _table(source: Path):
    return load_dataset(source, "cbis-ddsm", progress=False)


def _break(table, image_id: str, **changes):
    """A copy of the table in which one image's record (or its first abnormality's) is changed."""
    images = [dataclasses.replace(im, **changes.get("image", {})) if im.image_id == image_id else im
              for im in table.images]
    abnormalities = [dataclasses.replace(a, **changes.get("abnormality", {})) if a.image_id == image_id else a
                     for a in table.abnormalities]
    return type(table)(images, abnormalities)


@pytest.mark.parametrize("case", ["missing image", "corrupt dicom", "mask size mismatch", "empty mask"])
def test_bad_input_is_one_line_and_the_rest_is_finished(synth_small: Path, tmp_path: Path, case: str):
    table = _table(synth_small)
    victim = next(a.image_id for a in table.abnormalities if a.roi_mask_path)
    bad_file = tmp_path / "bad.dcm"
    if case == "missing image":
        broken = _break(table, victim, image={"image_path": str(tmp_path / "gone.dcm")})
        bad_file = tmp_path / "gone.dcm"
    elif case == "corrupt dicom":
        bad_file.write_bytes(b"DICM" + b"\x00" * 50)
        broken = _break(table, victim, image={"image_path": str(bad_file)})
    else:
        image = read_image(next(im.image_path for im in table.images if im.image_id == victim))
        shape = (image.shape[0] // 2, image.shape[1]) if case == "mask size mismatch" else image.shape
        bad_file = tmp_path / "bad_mask.png"
        write_png(bad_file, np.zeros(shape, np.uint8) + (255 if case == "mask size mismatch" else 0))
        broken = _break(table, victim, abnormality={"roi_mask_path": str(bad_file)})
    out = tmp_path / "out"
    summary = prepare_table(broken, _job(synth_small, out, figures=0), PreprocessConfig(), progress=False)

    assert [f.item for f in summary.failures] == [victim]
    failure = summary.failures[0]
    assert str(bad_file) in str(failure) and "\n" not in str(failure)
    assert summary.prepared == len(table.images) - 1
    # nothing of the failed image is on disk, everything else is, and failures.csv lists it
    assert not list(out.rglob(f"{victim}*")) and not list(out.rglob("*.tmp*"))
    assert victim not in set(pd.read_csv(out / "images.csv")["image_id"])
    assert len(pd.read_csv(out / "images.csv")) == len(table.images) - 1
    assert list(pd.read_csv(out / "failures.csv")["item"]) == [victim]
    # once the input is fixed, a re-run prepares just that image
    fixed = prepare_table(table, _job(synth_small, out, figures=0), PreprocessConfig(), progress=False)
    assert (fixed.prepared, fixed.skipped, fixed.failures) == (1, len(table.images) - 1, [])


def test_corrupt_dicom_in_the_dataset_folder_is_reported_by_run_prepare(synth_small: Path, tmp_path: Path):
    source = tmp_path / "synth"
    shutil.copytree(synth_small, source)
    table = load_dataset(source, "cbis-ddsm", progress=False)
    victim = table.images[0]
    Path(victim.image_path).write_bytes(b"not a dicom at all")
    summary = run_prepare(_job(source, tmp_path / "out", figures=0), PreprocessConfig(), progress=False)
    problems = [str(f) for f in summary.failures]
    assert len(problems) == 1 and str(victim.image_path) in problems[0], problems
    assert summary.prepared == len(table.images) - 1


def test_every_image_failing_leaves_no_folder_and_reports_each(synth_small: Path, tmp_path: Path):
    """CSVs present but no image readable: every image is a failure, nothing half-written is left."""
    table = _table(synth_small)
    gone = type(table)([dataclasses.replace(im, image_path=str(tmp_path / f"{im.image_id}.dcm")) for im in table.images],
                       table.abnormalities)
    out = tmp_path / "out"
    summary = prepare_table(gone, _job(synth_small, out, figures=0), PreprocessConfig(), progress=False)
    assert (summary.prepared, summary.skipped) == (0, 0)
    assert sorted(f.item for f in summary.failures) == sorted(im.image_id for im in table.images)
    assert not out.exists()


def test_out_that_is_a_file_is_refused_before_any_work(synth_small: Path, tmp_path: Path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(DataError, match="is a file"):
        run_prepare(_job(synth_small, target), PreprocessConfig(), progress=False)
    assert target.read_text() == "keep me"


def test_missing_source_is_one_clear_error(tmp_path: Path):
    with pytest.raises(DataError, match="not a folder"):
        run_prepare(_job(tmp_path / "nowhere", tmp_path / "out"), PreprocessConfig(), progress=False)
    assert not (tmp_path / "out").exists()


def test_split_is_decided_once_and_changed_only_explicitly(synth_small: Path, tmp_path: Path):
    out = tmp_path / "out"
    run_prepare(_job(synth_small, out, limit=4, figures=0, split_scheme="tfds"), PreprocessConfig(), progress=False)
    saved = read_split_file(out)
    assert saved["scheme"] == "tfds"
    # a later run without --split-scheme keeps it; asking for another one is refused, nothing changes
    run_prepare(_job(synth_small, out, limit=4, figures=0), PreprocessConfig(), progress=False)
    assert read_split_file(out) == saved
    before = (out / "images.csv").read_bytes()
    with pytest.raises(DataError, match="mammocad split"):
        run_prepare(_job(synth_small, out, limit=4, figures=0, split_scheme="official"), PreprocessConfig(),
                    progress=False)
    assert (out / "images.csv").read_bytes() == before
    # the explicit re-split rewrites splits.json, the manifests' split columns and the fingerprint
    fingerprint = read_stage(out)["fingerprint"]
    resplit(out, "official", seed=3)
    assert read_split_file(out)["scheme"] == "official" and read_split_file(out)["seed"] == 3
    table, images, _ = load_prepared(out)
    assert dict(zip(images["image_id"], images["split"])) == image_split(table, "official", seed=3)
    assert read_stage(out)["fingerprint"] != fingerprint
    assert (out / SPLITS_FILE).is_file()


def test_stage_records_its_lineage_and_changes_with_settings(synth_small: Path, tmp_path: Path):
    out = tmp_path / "out"
    run_prepare(_job(synth_small, out, limit=2, figures=0), PreprocessConfig(), progress=False)
    first = read_stage(out)
    assert first["stage"] == "prepare" and first["upstream"]["path"] == str(synth_small.resolve())
    run_prepare(_job(synth_small, out, limit=2, figures=0), PreprocessConfig(), progress=False)
    assert read_stage(out)["fingerprint"] == first["fingerprint"]  # nothing changed
    run_prepare(_job(synth_small, out, limit=2, figures=0), PreprocessConfig(size=128), progress=False)
    assert read_stage(out)["fingerprint"] != first["fingerprint"]


def test_an_edited_input_file_redoes_just_that_image(synth_small: Path, tmp_path: Path):
    source = tmp_path / "synth"
    shutil.copytree(synth_small, source)
    job = _job(source, tmp_path / "out", limit=3, figures=0)
    run_prepare(job, PreprocessConfig(), progress=False)
    table = load_dataset(source, "cbis-ddsm", progress=False)
    victim = Path(table.images[0].image_path)
    victim.write_bytes(victim.read_bytes())  # same bytes, new modification time: treated as changed
    again = run_prepare(job, PreprocessConfig(), progress=False)
    assert (again.prepared, again.skipped) == (1, 2)


def test_done_records_carry_the_preprocessing_warnings(synth_small: Path, tmp_path: Path):
    """A lesion mask lying in the background (misregistered) is kept whole and its record says so."""
    from mammocad.utils.done import read_done

    table = _table(synth_small)
    victim = next(a.image_id for a in table.abnormalities if a.roi_mask_path)
    image = read_image(next(im.image_path for im in table.images if im.image_id == victim))
    rows, cols = image.shape
    mask = np.zeros((rows, cols), np.uint8)
    # On the darker (breast-free) half's outer edge: in the background.
    background_left = image[:, : cols // 2].mean() < image[:, cols // 2:].mean()
    mask[rows // 3:rows // 3 + 20, :10 if background_left else cols - 10:] = 255
    mask_file = tmp_path / "edge_mask.png"
    write_png(mask_file, mask)
    broken = _break(table, victim, abnormality={"roi_mask_path": str(mask_file)})
    out = tmp_path / "out"
    summary = prepare_table(broken, _job(synth_small, out, figures=0), PreprocessConfig(), progress=False)
    assert summary.failures == [] and [w.item for w in summary.warnings] == [victim]
    assert victim in (out / "warnings.csv").read_text()
    warnings = read_done(out, victim)["warnings"]
    assert warnings and all(w.startswith("lesion mask ") and "of its area lies outside the breast" in w for w in warnings)
    others = [im.image_id for im in table.images if im.image_id != victim]
    assert all(read_done(out, image_id)["warnings"] == [] for image_id in others)
