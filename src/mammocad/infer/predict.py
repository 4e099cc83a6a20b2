"""``mammocad predict``: regions and malignancy probabilities on new mammograms, in original pixels.

Per image (:func:`predict_image`)::

    read (DICOM, PNG, PGM, JPEG) -> preprocess exactly as the classifier bundle says
    -> the segmenter proposes regions on the prepared image (an Instances)
    -> the classifier scores every region on its large-context patch (batched)
    -> Grad-CAM of the classifier on those patches
    -> everything mapped back to the original pixel grid (Geometry.to_input: undo resize, pad,
       flip, crop) -> <name>.json, <name>_overlay.png, and <name>_seg.dcm for DICOM input

A *segmenter* is anything with ``predict(image, breast) -> Instances`` (:class:`Segmenter`):
``image`` the prepared mammogram (uint8/uint16, chest wall on the left), ``breast`` its breast
mask (uint8 0/255), the Instances on that grid. The JSON's coordinates are original pixels:
boxes ``[x0, y0, x1, y1]`` (x = column, y = row, exclusive ends), outlines ``[[x, y], ...]``
through the centres of the region's boundary pixels.

A batch (:func:`predict_batch`) runs images in worker processes with a progress bar; a file that
cannot be read or preprocessed is reported and skipped, the rest is written, and
``summary.csv`` lists every input (status, regions, highest probability, files, stage times).
Models are built in the process that uses them (a process forked after torch has computed
can hang in OpenMP), once per process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch

from mammocad import DISCLAIMER, __version__
from mammocad.data.registry import detect_dataset, load_dataset
from mammocad.infer.bundle import Bundle, read_bundle
from mammocad.infer.config import PredictConfig
from mammocad.infer.dicom_seg import write_dicom_seg
from mammocad.infer.mapping import (
    between_grids,
    box_to_input,
    content_window,
    masks_to_input_grid,
    masks_to_input_labels,
    outlines_to_input,
    pixel_area_in_input,
)
from mammocad.infer.overlay import overlay_image, write_overlay
from mammocad.patches.datasets import to_tensor
from mammocad.patches.large_context import large_context_patch
from mammocad.preprocess.config import PreprocessConfig
from mammocad.preprocess.pipeline import Geometry, Preprocessed, preprocess
from mammocad.segment.instances import Instances
from mammocad.train.augment import eval_transform
from mammocad.train.fastpath import AUTOCAST_DTYPES, resolve_channels_last, resolve_precision
from mammocad.utils.atomic import check_output_folder, write_json, write_rows_csv
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import Box, mask_box
from mammocad.utils.imageio import DICOM_SUFFIXES, RASTER_SUFFIXES, is_dicom, read_dicom_header, read_image
from mammocad.utils.parallel import Failure, map_items

STAGES = ("read", "preprocess", "segment", "classify", "gradcam", "write")
SUMMARY = "summary.csv"
SUMMARY_COLUMNS = ["name", "path", "status", "patient", "laterality", "view", "regions", "suspicious_regions",
                   "max_malignancy", "threshold", "json", "overlay", "dicom_seg", "problem",
                   *(f"{stage}_s" for stage in STAGES)]
# CBIS-DDSM names carry patient, side and view: Mass-Test_P_00016_LEFT_CC (PatientID, folders)
CBIS_NAME = re.compile(r"(P_\d+)_(LEFT|RIGHT)_(CC|MLO)")


class Segmenter(Protocol):
    """Proposes regions on a prepared mammogram (see the module docstring)."""

    def predict(self, image: np.ndarray, breast: np.ndarray) -> Instances: ...


# ---- inputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputImage:
    """One mammogram to read: its file, its output name (unique in the batch) and, when known, who and which view."""

    path: Path
    name: str
    patient: str | None = None
    laterality: str | None = None
    view: str | None = None


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def collect_inputs(paths: Sequence[str | Path], failures: list[Failure] | None = None) -> list[InputImage]:
    """The mammograms named by ``paths``: image files, dataset folders (CBIS-DDSM, mini-MIAS: their
    full mammograms, with patient, side and view from the records) and other folders (every
    DICOM/PNG/PGM/JPEG/TIFF file below them). DataError for a path that does not exist; records
    a dataset adapter could not resolve go to ``failures``."""
    found: list[tuple[Path, str, dict[str, str | None]]] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append((path, path.stem, {}))
        elif path.is_dir():
            try:
                dataset = detect_dataset(path)
            except DataError:
                dataset = None
            if dataset is not None:
                table = load_dataset(path, dataset, failures=failures, progress=False)
                found += [(Path(im.image_path), im.image_id, {"patient": im.patient_id, "laterality":
                           im.laterality.value, "view": im.view.value}) for im in table.images]
            else:
                files = sorted(p for p in path.rglob("*") if p.is_file()
                               and p.suffix.lower() in DICOM_SUFFIXES | RASTER_SUFFIXES)
                found += [(f, "__".join(f.relative_to(path).with_suffix("").parts), {}) for f in files]
        else:
            raise DataError(path, "no such file or folder")
    names = _unique([re.sub(r"[^\w.-]+", "_", name) for _, name, _ in found])
    return [InputImage(path, name, **known) for (path, _, known), name in zip(found, names)]


def _identity(source: InputImage, header: Any) -> dict[str, str | None]:
    """Patient, laterality (LEFT/RIGHT) and view (CC/MLO): the records', else the DICOM header's, else the path's."""
    patient, laterality, view = source.patient, source.laterality, source.view
    if header is not None:
        side = str(getattr(header, "ImageLaterality", "") or getattr(header, "Laterality", ""))
        laterality = laterality or {"L": "LEFT", "R": "RIGHT"}.get(side[:1])
        position = str(getattr(header, "ViewPosition", "") or getattr(header, "PatientOrientation", ""))
        view = view or (position if position in ("CC", "MLO") else None)
    match = CBIS_NAME.search(f"{getattr(header, 'PatientID', '')} {source.path}")
    if match:
        patient, laterality, view = patient or match[1], laterality or match[2], view or match[3]
    if header is not None:
        patient = patient or (str(getattr(header, "PatientID", "")) or None)
    return {"patient": patient, "laterality": laterality, "view": view}


# ---- models --------------------------------------------------------------------------------------
def _last_conv(model: torch.nn.Module) -> torch.nn.Module:
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise DataError(None, "the classifier has no convolution for Grad-CAM")
    return convs[-1]


class _MalignancyTarget:
    """Grad-CAM target: the summed softmax probability of the malignant classes."""

    def __init__(self, indices: list[int]):
        self.indices = indices

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(-1)[..., self.indices].sum(-1)


class RegionClassifier:
    """A classifier bundle applied to regions: large-context patch, resize, model, malignancy probability."""

    def __init__(self, bundle: Bundle, batch_size: int = 32):
        self.bundle = bundle
        self.malignant = [i for i, name in enumerate(bundle.class_names) if name.startswith("MALIGNANT")]
        if not self.malignant:
            raise DataError(None, f"the classifier's task {bundle.task} ({', '.join(bundle.class_names)}) has no "
                                  f"malignant class: predict needs a benign/malignant or five-class model")
        self.patches = bundle.large_context
        self.model = bundle.build_classifier()
        self.cam_layer = _last_conv(self.model)
        # Grad-CAM needs gradients from the output down to its layer only: with every other weight
        # frozen, the backward pass stops there (no weight gradients, no pass through the backbone).
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        for parameter in self.cam_layer.parameters():
            parameter.requires_grad_(True)
        self.transform = eval_transform(bundle.input_size)
        self.batch_size = batch_size
        precision = resolve_precision("auto", "cpu")
        self.autocast = AUTOCAST_DTYPES.get(precision)
        if resolve_channels_last(None, "cpu", precision):
            self.model.to(memory_format=torch.channels_last)

    def inputs(self, image: np.ndarray, boxes: Sequence[Box]) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
        """Model inputs (N, 1, S, S) of the regions whose masks' boxes are ``boxes`` and their windows (row, col,
        height, width)."""
        patches = [large_context_patch(image, box, self.patches) for box in boxes]
        x = torch.stack([self.transform(to_tensor(p.pixels)) for p in patches])
        return x, [(p.row, p.col, p.height, p.width) for p in patches]

    def probabilities(self, x: torch.Tensor) -> np.ndarray:
        """Class probabilities (N, C) float64 of the inputs ``x``, in batches."""
        out = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=self.autocast, enabled=self.autocast is not None):
            for batch in x.split(self.batch_size):
                out.append(self.model(batch).float().softmax(dim=1))
        return torch.cat(out).double().numpy()

    def malignancy(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities[:, self.malignant].sum(axis=1)

    def gradcam(self, x: torch.Tensor, windows: list[tuple[int, int, int, int]], shape: tuple[int, int]) -> np.ndarray:
        """Grad-CAM of the malignant classes on each region's patch, put back into its window; (rows, cols) float32 in [0, 1]."""
        import cv2
        from pytorch_grad_cam import GradCAM

        heat = np.zeros(shape, np.float32)
        with GradCAM(model=self.model, target_layers=[self.cam_layer]) as cam:
            for batch, batch_windows in zip(x.split(self.batch_size), _chunks(windows, self.batch_size)):
                maps = cam(input_tensor=batch.float(), targets=[_MalignancyTarget(self.malignant)] * len(batch))
                for m, (row, col, height, width) in zip(maps, batch_windows):
                    window = heat[row:row + height, col:col + width]
                    np.maximum(window, cv2.resize(m.astype(np.float32), (width, height)), out=window)
        return heat


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _BundleSegmenter:
    """A segmenter bundle as a :class:`Segmenter`: the trained model, then its false-positive control."""

    def __init__(self, bundle: Bundle):
        self.model = bundle.build_segmenter()
        self.operating_point = bundle.operating_point

    def predict(self, image: np.ndarray, breast: np.ndarray) -> Instances:
        return self.operating_point.apply(self.model.predict(image))


def check_segmenter(config: PredictConfig) -> Bundle | None:
    """The segmenter bundle ``config`` names (None for a baseline); DataError, before any work, when it
    names no region source, a file that is not a segmenter bundle, or an unknown baseline."""
    if config.segmenter is None and config.baseline is None:
        raise DataError(None, "no region proposals: give --segmenter or --baseline")
    if config.segmenter is not None:
        return read_bundle(config.segmenter, kind="segmenter")
    from mammocad.segment.baselines import baseline

    baseline(config.baseline)  # an unknown name: one line naming the known ones
    return None


def _describe(path: Path, bundle: Bundle) -> dict[str, Any]:
    """A bundle as the prediction JSON names it."""
    return {"file": str(path), "sha256": bundle.checksum, "architecture": bundle.architecture, "task": bundle.task,
            "mammocad_version": bundle.mammocad_version}


def load_segmenter(config: PredictConfig,
                   bundle: Bundle | None = None) -> tuple[Segmenter, dict[str, Any], PreprocessConfig | None]:
    """The segmenter ``config`` names (a bundle, or a baseline), its description for the JSON, and the
    preprocessing it needs (None: any, the classifier's). ``bundle``: the segmenter bundle, already read."""
    bundle = bundle or check_segmenter(config)
    if bundle is not None:
        description = {**_describe(config.segmenter, bundle), "input_kind": bundle.patch_kind,
                       "operating_point": {"top_k": bundle.top_k, "min_score": bundle.threshold,
                                           "source": bundle.threshold_source}}
        return _BundleSegmenter(bundle), description, bundle.preprocess
    from mammocad.segment.baselines import baseline

    return _Baseline(baseline(config.baseline)), {"baseline": config.baseline}, None


class _Baseline:
    """A function ``(image, breast) -> Instances`` as a :class:`Segmenter`."""

    def __init__(self, fn: Any):
        self.fn = fn

    def predict(self, image: np.ndarray, breast: np.ndarray) -> Instances:
        return self.fn(image, breast)


# ---- one image -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _timed(times: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        times[stage] = times.get(stage, 0.0) + time.perf_counter() - start


def _region_type(probabilities: np.ndarray, class_names: Sequence[str], task: str) -> str:
    """MASS or CALCIFICATION when the classifier tells (its task, or the five-class probabilities), else LESION."""
    if task.startswith(("mass_", "calc_")):
        return "MASS" if task.startswith("mass_") else "CALCIFICATION"
    kinds = {kind: probabilities[[i for i, n in enumerate(class_names) if n.endswith(kind)]].sum()
             for kind in ("MASS", "CALCIFICATION")}
    return max(kinds, key=kinds.get) if any(kinds.values()) else "LESION"


@dataclass
class Models:
    """What predicting needs: the classifier and the segmenter, with their descriptions for the JSON.

    ``segmenter_preprocess``: the preprocessing the segmenter was trained with, when it differs from
    the classifier's (the image is then prepared once for each; None: one prepared image serves both).
    """

    classifier: RegionClassifier
    segmenter: Segmenter
    descriptions: dict[str, Any]
    segmenter_preprocess: PreprocessConfig | None = None


def build_models(config: PredictConfig, bundle: Bundle, segmenter: Segmenter | None = None,
                 segmenter_bundle: Bundle | None = None) -> Models:
    """The classifier of ``bundle`` and ``segmenter`` (none: the one ``config`` names, whose bundle
    ``segmenter_bundle`` may already have been read), described for the JSON.

    Build them in the process (or thread) that uses them: Grad-CAM hooks the classifier's layers.
    """
    own_preprocess = None
    if segmenter is None:
        segmenter, segmenter_description, own_preprocess = load_segmenter(config, segmenter_bundle)
    else:
        segmenter_description = {"name": type(segmenter).__name__}
    return Models(RegionClassifier(bundle, config.batch_size), segmenter,
                  {"classifier": _describe(config.classifier, bundle), "segmenter": segmenter_description},
                  None if own_preprocess == bundle.preprocess else own_preprocess)


def _proposed(segmenter: Segmenter, prepared: Preprocessed) -> Instances:
    instances = segmenter.predict(prepared.image, prepared.breast_mask)
    if instances.shape != prepared.geometry.output_shape:
        raise ValueError(f"the segmenter returned masks of shape {instances.shape} for a prepared image of "
                         f"{prepared.geometry.output_shape}")
    return instances


def _propose(models: Models, image: np.ndarray, prepared: Preprocessed, source: str) -> Instances:
    """The segmenter's regions on the classifier's prepared grid. A segmenter trained with other
    preprocessing gets the image prepared its own way; its regions move onto the classifier's grid
    through the original pixels (:func:`mapping.between_grids`)."""
    if models.segmenter_preprocess is None:
        return _proposed(models.segmenter, prepared)
    own = preprocess(image, config=models.segmenter_preprocess, source=source)
    found = _proposed(models.segmenter, own)
    masks = np.stack([between_grids(m, own.geometry, prepared.geometry) for m in found.masks]) if len(found) \
        else np.zeros((0, *prepared.geometry.output_shape), bool)
    boxes = np.array([mask_box(m).xyxy() if m.any() else (0, 0, 0, 0) for m in masks], np.float32).reshape(-1, 4)
    return Instances(masks, found.scores, boxes, found.labels)


def _on_image(found: Instances, geometry: Geometry) -> tuple[Instances, list[Box]]:
    """The regions highest score first, each cut to the image (a model may outline the square padding
    too), empty ones dropped, with their masks' boxes (computed once: full-grid scans are the cost)."""
    rows, cols = content_window(geometry)
    order = np.argsort(-found.scores, kind="stable")
    masks = found.masks[order]  # a copy: the cut below leaves the segmenter's arrays alone
    masks[:, rows.stop:] = False
    masks[:, :, cols.stop:] = False
    boxes = [mask_box(mask) for mask in masks]
    keep = np.array([box is not None for box in boxes], bool)
    boxes = [box for box in boxes if box is not None]
    xyxy = np.array([box.xyxy() for box in boxes], np.float32).reshape(-1, 4)
    return Instances(masks if keep.all() else masks[keep], found.scores[order][keep], xyxy,
                     found.labels[order][keep]), boxes


def predict_image(source: InputImage, models: Models, config: PredictConfig) -> dict[str, Any]:
    """Predict one mammogram and write its JSON, overlay and (DICOM input) SEG into ``config.out``; its summary row.

    DataError (one line naming the file) for a file that cannot be read or preprocessed.
    """
    times: dict[str, float] = {}
    bundle = models.classifier.bundle
    out = Path(config.out)
    with _timed(times, "read"):
        image = read_image(source.path)
        header = read_dicom_header(source.path) if is_dicom(source.path) else None
    with _timed(times, "preprocess"):
        prepared = preprocess(image, config=bundle.preprocess, source=str(source.path))
        geometry = prepared.geometry
    with _timed(times, "segment"):
        instances, boxes = _on_image(_propose(models, image, prepared, str(source.path)), geometry)
    cam = None
    probabilities = np.zeros((0, len(bundle.class_names)))
    if len(instances):
        with _timed(times, "classify"):
            x, windows = models.classifier.inputs(prepared.image, boxes)
            probabilities = models.classifier.probabilities(x)
        if config.gradcam:
            with _timed(times, "gradcam"):
                cam = models.classifier.gradcam(x, windows, geometry.output_shape)
    malignancy = models.classifier.malignancy(probabilities)
    spacing = [float(v) for v in getattr(header, "PixelSpacing", None) or getattr(header, "ImagerPixelSpacing", [])
               ] if header is not None else []
    per_pixel = pixel_area_in_input(geometry)
    regions = []
    for k, box in enumerate(boxes):
        mask = instances.masks[k, box.row0:box.row1, box.col0:box.col1]
        area_px = float(np.count_nonzero(mask) * per_pixel)
        regions.append({
            "id": k + 1,
            "box": [round(v, 2) for v in box_to_input(box, geometry)],
            "outline": outlines_to_input(mask.view(np.uint8), geometry, origin=(box.row0, box.col0)),
            "area_px": round(area_px, 1),
            "area_mm2": round(area_px * spacing[0] * spacing[1], 4) if len(spacing) == 2 else None,
            "type": _region_type(probabilities[k], bundle.class_names, bundle.task),
            "malignancy_probability": round(float(malignancy[k]), 6),
            "class_probabilities": {n: round(float(p), 6) for n, p in zip(bundle.class_names, probabilities[k])},
            "segmenter_score": round(float(instances.scores[k]), 6),
            "suspicious": bundle.threshold is not None and bool(malignancy[k] >= bundle.threshold),
        })
    identity = _identity(source, header)
    files = {"json": f"{source.name}.json", "overlay": f"{source.name}_overlay.png", "dicom_seg": None}
    with _timed(times, "write"):
        write_overlay(out / files["overlay"], overlay_image(image, regions, cam, geometry, bundle.threshold,
                                                            config.overlay_side))
        if header is not None and regions:
            files["dicom_seg"] = f"{source.name}_seg.dcm"
            segments = masks_to_input_labels(instances.masks, geometry)
            if segments is None:  # overlapping regions
                segments = masks_to_input_grid(instances.masks, geometry)
            write_dicom_seg(out / files["dicom_seg"], header, segments,
                            [f"region {r['id']} {r['type']} p={r['malignancy_probability']:.2f}" for r in regions])
        write_json(out / files["json"], {
            "image": {"path": str(source.path), "name": source.name, "rows": int(image.shape[0]),
                      "cols": int(image.shape[1]), **identity, "pixel_spacing_mm": spacing or None,
                      "dicom": None if header is None else {
                          "study_instance_uid": str(header.get("StudyInstanceUID", "")),
                          "series_instance_uid": str(header.get("SeriesInstanceUID", "")),
                          "sop_instance_uid": str(header.get("SOPInstanceUID", ""))}},
            "coordinates": "original image pixels: box [x0, y0, x1, y1] with x = column, y = row, exclusive "
                           "ends; outline [[x, y], ...] through the centres of the boundary pixels",
            "preprocessing": dataclasses.asdict(geometry),
            "regions": regions,
            "threshold": bundle.threshold,
            "threshold_source": bundle.threshold_source,
            "models": models.descriptions,
            "mammocad_version": __version__,
            "files": files,
            "disclaimer": DISCLAIMER,
        })
    return {"name": source.name, "path": str(source.path), "status": "ok", **identity, "regions": len(regions),
            "suspicious_regions": sum(r["suspicious"] for r in regions),
            "max_malignancy": max((r["malignancy_probability"] for r in regions), default=None),
            "threshold": bundle.threshold, **files, **{f"{s}_s": round(times.get(s, 0.0), 4) for s in STAGES}}


# ---- a batch -------------------------------------------------------------------------------------
@dataclass
class _Runtime:
    """What a batch shares with its workers (inherited by fork, not pickled): models are built where used."""

    config: PredictConfig
    bundle: Bundle
    segmenter: Segmenter | None
    segmenter_bundle: Bundle | None
    threads: int | None
    models: Models | None = None

    def get_models(self) -> Models:
        if self.models is None:
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            self.models = build_models(self.config, self.bundle, self.segmenter, self.segmenter_bundle)
        return self.models


_RUNTIME: _Runtime | None = None


def _predict_one(source: InputImage) -> dict[str, Any]:
    assert _RUNTIME is not None
    return predict_image(source, _RUNTIME.get_models(), _RUNTIME.config)


@dataclass(frozen=True)
class PredictSummary:
    out: Path
    rows: list[dict[str, Any]]  # one per input, in input order (summary.csv)
    failures: list[Failure]

    @property
    def done(self) -> int:
        return sum(row["status"] == "ok" for row in self.rows)


def predict_batch(paths: Sequence[str | Path], config: PredictConfig, *, segmenter: Segmenter | None = None,
                  progress: bool = True) -> PredictSummary:
    """Predict every mammogram ``paths`` name (see :func:`collect_inputs`) into ``config.out``.

    ``segmenter``: a :class:`Segmenter` object to use instead of ``config.segmenter`` /
    ``config.baseline`` (with ``config.workers`` > 1 it is inherited by forked workers: build it
    without running torch computations in this process). DataError before any work for an
    unusable output folder, classifier bundle or input path; a bad image is a failure in the
    summary, the others are still predicted.
    """
    global _RUNTIME
    out = check_output_folder(config.out)
    bundle = read_bundle(config.classifier, kind="classifier")
    _ = bundle.large_context  # refuses a classifier of another patch kind before any work
    failures: list[Failure] = []
    inputs = collect_inputs(paths, failures)
    if not inputs and not failures:
        raise DataError(None, f"no mammogram files (DICOM, PNG, PGM, JPEG, TIFF) in {', '.join(map(str, paths))}")
    segmenter_bundle = check_segmenter(config) if segmenter is None else None
    threads = max(1, (os.cpu_count() or 1) // config.workers) if config.workers > 1 else None
    _RUNTIME = _Runtime(config, bundle, segmenter, segmenter_bundle, threads)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    try:
        for row in map_items(_predict_one, inputs, workers=config.workers, name=lambda s: s.name,
                             desc="predict", failures=failures, progress=progress):
            done[row["name"]] = row
    finally:
        _RUNTIME = None
    # failures are named by the input's name; those of a dataset adapter by its record
    rows = [done.get(s.name) or {"name": s.name, "path": str(s.path), "status": "failed"} for s in inputs]
    rows += [{"name": f.item, "path": f.path, "status": "failed"} for f in failures
             if f.item not in {s.name for s in inputs}]
    problems = {f.item: f.problem for f in failures}
    for row in rows:
        if row["status"] == "failed":
            row["problem"] = problems.get(row["name"], "")
    write_rows_csv(out / SUMMARY, rows, SUMMARY_COLUMNS)
    return PredictSummary(out, rows, failures)
