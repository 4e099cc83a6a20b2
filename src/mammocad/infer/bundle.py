"""Model bundles: one file per trained model, holding everything needed to use it on new mammograms.

A bundle (``.mcad``) holds the weights (``state_dict``), the architecture's registry name and
constructor options, the task and its class names, the model's input size, the preprocessing
(:class:`~mammocad.preprocess.config.PreprocessConfig`) and the patch extraction (kind and its
settings) the model was trained on, the validation metrics and operating point, where it came
from, and the mammocad version. ``kind`` says which model it is; :func:`export_run` writes either
from a run folder:

- ``classifier`` (a ``train-classifier`` run): the patch kind is ``large``; ``threshold`` is the
  operating threshold on the malignant probability.
- ``segmenter`` (a ``train-segmenter`` run): ``architecture``/``options`` are those of
  :func:`mammocad.segment.models.build_segmenter` (``num_classes`` and ``input_norm`` included),
  ``patch_kind`` its input kind (``resize512`` whole images or ``seg`` tiles), ``input_size`` the
  image or tile side, ``tile_stride`` the tile step, ``task`` the lesion type it finds (``mass``,
  ``calcification``, ``any``); its operating point is the false-positive control of
  :mod:`mammocad.segment.postprocess`: keep the ``top_k`` highest-scoring regions (None: all)
  scoring at least ``threshold``. Where that comes from (``threshold_source``):
  ``validation`` when the run folder holds an ``evaluate-segmenter`` evaluation of the same
  checkpoint (its ``metrics.json``: the operating point chosen on the validation split, and the
  test metrics), else ``training_config``: every region the model predicts (its training
  ``score_threshold``, no top-k). Export does not run an evaluation itself: it needs the full
  prepared images and minutes of inference; run ``mammocad evaluate-segmenter --checkpoint
  RUN/checkpoints/best.ckpt --data PREPARED --out RUN/evaluation`` first to get the chosen point.

File layout: the line ``MAMMOCAD-BUNDLE``, one JSON line (format, mammocad version, kind,
architecture, payload size and SHA-256), then the payload: ``torch.save`` of ``{"meta": ...,
"state_dict": ...}``, read back with ``weights_only=True`` (tensors and plain data only).
:func:`read_bundle` refuses, with one line (:class:`DataError`), a file that is not a bundle, one
written by another major/minor mammocad version, a truncated or altered one (size or checksum
mismatch), and a bundle of the other kind than the one asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mammocad import __version__
from mammocad.models import Classifier, build_classifier
from mammocad.patches.config import LargeContextConfig, PatchKind
from mammocad.preprocess.config import PreprocessConfig
from mammocad.segment.models import build_segmenter
from mammocad.segment.postprocess import OperatingPoint
from mammocad.segment.predict import Segmenter, load_segmenter
from mammocad.train.inference import load_classifier
from mammocad.utils.atomic import atomic_path, read_json_object
from mammocad.utils.errors import DataError
from mammocad.utils.stage import read_stage

MAGIC = b"MAMMOCAD-BUNDLE\n"
FORMAT = 1
SUFFIX = ".mcad"
KINDS = ("classifier", "segmenter")


@dataclass(frozen=True)
class Bundle:
    """A trained model and how to use it (see the module docstring).

    ``options``: keyword arguments of the architecture's constructor besides its name (for a
    classifier those of :func:`mammocad.models.build_classifier`: ``num_classes``, ``dropout``,
    ``input_norm``; for a segmenter those of :func:`mammocad.segment.models.build_segmenter`).
    ``patch_config``: the patch kind's settings as a dict (for ``large`` those of
    :class:`LargeContextConfig`). ``metrics``: ``{"validation": {...}, "test": {...}}`` as far as
    the run recorded them. ``threshold``: a classifier's binary operating threshold on the
    positive class's probability, a segmenter's least region score kept (chosen on the
    validation split when ``threshold_source`` is ``validation``). ``top_k``: a segmenter's most
    regions kept per image (None: any number). ``tile_stride``: a tile segmenter's tile step, px.
    ``checksum``: SHA-256 of the payload as written or read (None before the first write).
    """

    kind: str
    architecture: str
    options: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    task: str
    class_names: tuple[str, ...]
    input_size: int
    preprocess: PreprocessConfig
    patch_kind: str
    patch_config: dict[str, Any]
    metrics: dict[str, Any]
    threshold: float | None
    threshold_source: str
    source: dict[str, Any]
    top_k: int | None = None
    tile_stride: int | None = None
    mammocad_version: str = __version__
    checksum: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"bundle kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def large_context(self) -> LargeContextConfig:
        """The large-context patch settings the model was trained on; DataError for other patch kinds."""
        if self.patch_kind != PatchKind.LARGE.value:
            raise DataError(None, f"the {self.kind} bundle was trained on {self.patch_kind!r} patches; region "
                                  f"classification needs a model trained on large-context patches (--kind large)")
        return LargeContextConfig(**self.patch_config)

    def build_classifier(self) -> Classifier:
        """The classifier with its trained weights, in eval mode on the CPU."""
        if self.kind != "classifier":
            raise DataError(None, f"a {self.kind} bundle is not a classifier")
        model = build_classifier(self.architecture, **self.options)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()

    def build_segmenter(self, batch_size: int = 8) -> Segmenter:
        """The segmenter with its trained weights, in eval mode on the CPU (raw predictions, before the FP control)."""
        if self.kind != "segmenter":
            raise DataError(None, f"a {self.kind} bundle is not a segmenter")
        model = build_segmenter(self.architecture, **self.options)
        model.load_state_dict(self.state_dict, strict=True)
        return Segmenter(model.eval(), self.patch_kind, self.input_size, self.tile_stride, batch_size=batch_size)

    @property
    def operating_point(self) -> OperatingPoint:
        """A segmenter's false-positive control: at most ``top_k`` regions scoring at least ``threshold``."""
        return OperatingPoint(self.top_k, self.threshold or 0.0)

    def _meta(self) -> dict[str, Any]:
        meta = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("state_dict", "checksum")}
        meta["preprocess"] = dataclasses.asdict(self.preprocess)
        meta["class_names"] = list(self.class_names)
        return meta


def write_bundle(bundle: Bundle, path: str | Path) -> Bundle:
    """Write ``bundle`` to ``path`` atomically; returns it with its ``checksum`` set."""
    buffer = io.BytesIO()
    torch.save({"meta": bundle._meta(), "state_dict": bundle.state_dict}, buffer)
    payload = buffer.getvalue()
    checksum = hashlib.sha256(payload).hexdigest()
    header = {"format": FORMAT, "mammocad_version": bundle.mammocad_version, "kind": bundle.kind,
              "architecture": bundle.architecture, "size": len(payload), "sha256": checksum}
    with atomic_path(path) as tmp:
        tmp.write_bytes(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
    return dataclasses.replace(bundle, checksum=checksum)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def read_bundle(path: str | Path, kind: str | None = None) -> Bundle:
    """The bundle in ``path``; DataError (one line) for anything that is not an intact bundle of this version,
    or (``kind`` given: ``classifier`` or ``segmenter``) a bundle of the other kind."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such bundle file" if not path.exists() else "is not a file")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise DataError(path, "not a mammocad model bundle (write one with `mammocad export --run RUN --out "
                              f"MODEL{SUFFIX}`)")
    header_line, _, payload = data[len(MAGIC):].partition(b"\n")
    try:
        header = json.loads(header_line)
        version, size, checksum = str(header["mammocad_version"]), int(header["size"]), str(header["sha256"])
    except (ValueError, KeyError, TypeError):
        raise DataError(path, "corrupt bundle: its header is unreadable") from None
    if header.get("format") != FORMAT or _major_minor(version) != _major_minor(__version__):
        raise DataError(path, f"bundle written by mammocad {version} (format {header.get('format')}); this is "
                              f"mammocad {__version__}: export the model again with this version")
    if kind is not None and header.get("kind") != kind:
        raise DataError(path, f"a {header.get('kind')} bundle where a {kind} bundle is needed (export a "
                              f"`train-{kind}` run with `mammocad export`)")
    if len(payload) != size:
        raise DataError(path, f"truncated or corrupt bundle: {len(payload)} payload bytes, the header says {size}")
    if hashlib.sha256(payload).hexdigest() != checksum:
        raise DataError(path, "corrupt bundle: the payload's SHA-256 does not match its header")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            body = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        meta = dict(body["meta"])
        meta["preprocess"] = PreprocessConfig(**meta["preprocess"])
        meta["class_names"] = tuple(meta["class_names"])
        return Bundle(**meta, state_dict=body["state_dict"], checksum=checksum)
    except Exception as err:  # noqa: BLE001 - checksum matched, so this is a bundle of an incompatible layout
        raise DataError(path, f"unreadable bundle payload ({type(err).__name__}: {err})") from None


# ---- export of a training run ----------------------------------------------------------------
def _stage_settings(folder: Path, stage: str, hint: str) -> dict[str, Any]:
    record = read_stage(folder)
    if record is None or record.get("stage") != stage:
        raise DataError(folder, f"not a finished {stage} folder (no stage.json of a {stage} run): {hint}")
    return record


def _validation_metrics(run: Path, epoch: int | None) -> dict[str, Any]:
    """The metrics.csv row of the checkpoint's epoch (val_loss, val_acc, val_auc, val_dice, ...), {} if absent."""
    path = run / "metrics.csv"
    if epoch is None or not path.is_file():
        return {}
    rows = pd.read_csv(path).query("epoch == @epoch")
    return {} if rows.empty else {k: v for k, v in rows.iloc[-1].to_dict().items() if pd.notna(v)}


@dataclass(frozen=True)
class _TrainingData:
    """The patch set a run trained on and the prepared folder it was built from, as their stage.json say."""

    patches: Path
    patch_stage: dict[str, Any]
    prepared: Path
    prepare_stage: dict[str, Any]

    @classmethod
    def of(cls, patch_set: Path) -> _TrainingData:
        patch_stage = _stage_settings(patch_set, "patches", "pass the patch set the run trained on with --patches")
        prepared = Path((patch_stage.get("upstream") or {}).get("path", ""))
        prepare_stage = _stage_settings(prepared, "prepare", f"the patch set {patch_set} was built from it")
        return cls(patch_set, patch_stage, prepared, prepare_stage)

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(**self.prepare_stage["settings"]["preprocess"])

    def source(self, run: Path, checkpoint: Path, epoch: int | None) -> dict[str, Any]:
        return {"run": str(run.resolve()), "checkpoint": checkpoint.name, "epoch": epoch,
                "patches": str(self.patches.resolve()), "patches_fingerprint": self.patch_stage["fingerprint"],
                "prepared": str(self.prepared), "prepared_fingerprint": self.prepare_stage["fingerprint"]}


def export_run(run: str | Path, checkpoint: str = "best", patches: str | Path | None = None,
               evaluation: str | Path | None = None) -> Bundle:
    """The bundle of a run folder (not yet written: see :func:`write_bundle`): a classifier bundle of a
    ``train-classifier`` run, a segmenter bundle of a ``train-segmenter`` run (its run.json records
    the input kind).

    Reads ``RUN/checkpoints/<checkpoint>.ckpt``; the patch settings from the stage.json of the
    patch set the run trained on (``patches``, default: the run config's ``data``) and the
    preprocessing from the stage.json of the prepared folder that patch set was built from; the
    validation metrics of the checkpoint's epoch from ``RUN/metrics.csv``. ``evaluation``: the
    folder of the run's evaluation (default: a classifier's ``RUN/evaluation``, a segmenter's
    ``evaluate-segmenter`` output of this checkpoint under RUN, see the module docstring): a
    classifier's threshold and test metrics (else 0.5 for binary tasks, source ``default``), a
    segmenter's operating point and test metrics. DataError (one line) when any required file is
    missing or not what it should be.
    """
    run = Path(run)
    ckpt = run / "checkpoints" / f"{checkpoint}.ckpt"
    if "input_kind" in read_json_object(run / "run.json"):
        return _export_segmenter(run, ckpt, patches, evaluation)
    return _export_classifier(run, ckpt, patches, evaluation)


def _run_patch_set(ckpt: Path, config: dict[str, Any] | None, patches: str | Path | None) -> _TrainingData:
    if patches is None and "data" not in (config or {}):
        raise DataError(ckpt, "the checkpoint does not record its run's configuration (patch set); "
                              "it was written by an older mammocad")
    return _TrainingData.of(Path(patches) if patches is not None else Path(config["data"]))


def _export_classifier(run: Path, ckpt: Path, patches: str | Path | None, evaluation: str | Path | None) -> Bundle:
    model, meta = load_classifier(ckpt)
    config = meta.get("config") or {}
    data = _run_patch_set(ckpt, config, patches)
    evaluation_file = Path(evaluation or run / "evaluation") / "metrics.json"
    if evaluation is not None and not evaluation_file.is_file():
        raise DataError(evaluation_file, "no such evaluation file (written by `mammocad evaluate-classifier`)")
    evaluation = read_json_object(evaluation_file)
    binary = len(meta["class_names"]) == 2
    threshold = evaluation.get("threshold", 0.5 if binary else None)
    norm = meta["input_norm"]
    return Bundle(
        kind="classifier", architecture=meta["model"],
        options={"num_classes": len(meta["class_names"]), "dropout": float(config["dropout"]),
                 # "custom" (set by a weights file): the buffers in the state_dict carry it
                 "input_norm": None if norm == "custom" else norm},
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        task=meta["task"], class_names=tuple(meta["class_names"]), input_size=int(meta["input_size"]),
        preprocess=data.preprocess,
        patch_kind=data.patch_stage["settings"]["kind"], patch_config=dict(data.patch_stage["settings"]["config"]),
        metrics={"validation": _validation_metrics(run, meta["epoch"]), "test": evaluation.get("metrics", {})},
        threshold=None if threshold is None else float(threshold),
        threshold_source=evaluation.get("threshold_source", "default" if binary else "argmax"),
        source=data.source(run, ckpt, meta["epoch"]),
    )


def _segmenter_evaluation(run: Path, ckpt: Path, evaluation: str | Path | None) -> tuple[dict[str, Any], Path | None]:
    """The ``evaluate-segmenter`` metrics.json to take the operating point from, and its path ({} and None: none).

    ``evaluation`` given: that folder's, which must be one. Else the one under RUN (any depth)
    of this checkpoint (its ``segmenter`` is the checkpoint's file name) whose operating point was
    chosen on a validation split; DataError when there are several (choose with ``evaluation``).
    """
    if evaluation is not None:
        path = Path(evaluation) / "metrics.json"
        found = read_json_object(path)
        if "operating_point" not in found:
            raise DataError(path, "not an evaluation written by `mammocad evaluate-segmenter` (no operating point)")
        return found, path
    candidates = {path: read_json_object(path) for path in sorted(run.glob("*/**/metrics.json"))}
    chosen = {path: found for path, found in candidates.items() if "operating_point" in found
              and found.get("segmenter") == ckpt.name and found.get("val_split") is not None}
    if len(chosen) > 1:
        raise DataError(run, f"{len(chosen)} evaluate-segmenter evaluations of {ckpt.name} "
                             f"({', '.join(str(p.parent) for p in chosen)}): choose one with --evaluation")
    return next(((found, path) for path, found in chosen.items()), ({}, None))


def _export_segmenter(run: Path, ckpt: Path, patches: str | Path | None, evaluation: str | Path | None) -> Bundle:
    segmenter = load_segmenter(ckpt)
    meta = segmenter.metadata or {}
    config = meta.get("config") or {}
    data = _run_patch_set(ckpt, config, patches)
    found, evaluation_file = _segmenter_evaluation(run, ckpt, evaluation)
    validation = _validation_metrics(run, meta["epoch"])
    if evaluation_file is not None:
        point = found["operating_point"]
        top_k, threshold, threshold_source = point["top_k"], float(point["min_score"]), "validation"
        validation = {**validation, **{f"{key}_{found['val_split']}": point[key] for key in (
            "val_average_dice_before", "val_average_dice_after", "n_val_images") if key in point}}
        test = {key: found[key] for key in ("split", "lesion_types", "iou_threshold", "raw", "after_fp_control")
                if key in found}
    else:
        top_k, threshold, threshold_source, test = None, float(config.get("score_threshold", 0.0)), "training_config", {}
    lesion_type = str(config.get("lesion_type", "any"))
    return Bundle(
        kind="segmenter", architecture=meta["model"],
        options={"num_classes": int(meta["num_classes"]), "input_norm": meta["input_norm"], **meta["options"]},
        state_dict={k: v.detach().clone() for k, v in segmenter.model.state_dict().items()},
        task=lesion_type, class_names=("BACKGROUND", lesion_type.upper()), input_size=int(meta["image_size"]),
        preprocess=data.preprocess, patch_kind=str(meta["input_kind"]),
        patch_config=dict(data.patch_stage["settings"]["config"]),
        metrics={"validation": validation, "test": test},
        threshold=threshold, threshold_source=threshold_source, top_k=top_k,
        tile_stride=None if meta["tile_stride"] is None else int(meta["tile_stride"]),
        source={**data.source(run, ckpt, meta["epoch"]),
                "evaluation": None if evaluation_file is None else str(evaluation_file.resolve())},
    )
