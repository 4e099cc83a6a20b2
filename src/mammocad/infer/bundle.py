"""Model bundles: one file per trained model, holding everything needed to use it on new mammograms.

A bundle (``.mcad``) holds the weights (``state_dict``), the architecture's registry name and
constructor options, the task and its class names, the model's input size, the preprocessing
(:class:`~mammocad.preprocess.config.PreprocessConfig`) and the patch extraction (kind and its
settings) the model was trained on, the validation metrics and operating threshold, where it came
from, and the mammocad version. ``kind`` says which model it is: ``classifier`` (written by
:func:`export_run` from a ``train-classifier`` run) or ``segmenter`` (same fields: architecture,
options, state_dict; the patch kind then names the tiles it was trained on).

File layout: the line ``MAMMOCAD-BUNDLE``, one JSON line (format, mammocad version, kind,
architecture, payload size and SHA-256), then the payload: ``torch.save`` of ``{"meta": ...,
"state_dict": ...}``, read back with ``weights_only=True`` (tensors and plain data only).
:func:`read_bundle` refuses, with one line (:class:`DataError`), a file that is not a bundle, one
written by another major/minor mammocad version, and a truncated or altered one (size or
checksum mismatch).
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
from mammocad.train.inference import load_classifier
from mammocad.utils.atomic import atomic_path
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
    ``input_norm``). ``patch_config``: the patch kind's settings as a dict (for ``large`` those of
    :class:`LargeContextConfig`). ``metrics``: ``{"validation": {...}, "test": {...}}`` as far as
    the run recorded them. ``threshold``: the binary operating threshold on the positive class's
    probability (chosen on the validation split when ``threshold_source`` is ``validation``).
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


def read_bundle(path: str | Path) -> Bundle:
    """The bundle in ``path``; DataError (one line) for anything that is not an intact bundle of this version."""
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
    """The metrics.csv row of the checkpoint's epoch (val_loss, val_acc, val_auc, ...), {} if absent."""
    path = run / "metrics.csv"
    if epoch is None or not path.is_file():
        return {}
    rows = pd.read_csv(path).query("epoch == @epoch")
    return {} if rows.empty else {k: v for k, v in rows.iloc[-1].to_dict().items() if pd.notna(v)}


def export_run(run: str | Path, checkpoint: str = "best", patches: str | Path | None = None) -> Bundle:
    """The classifier bundle of a ``train-classifier`` run folder (not yet written: see :func:`write_bundle`).

    Reads ``RUN/checkpoints/<checkpoint>.ckpt``; the patch settings from the stage.json of the
    patch set the run trained on (``patches``, default: the run config's ``data``) and the
    preprocessing from the stage.json of the prepared folder that patch set was built from; the
    threshold and test metrics from ``RUN/evaluation/metrics.json`` when the run was evaluated
    (else 0.5 for binary tasks, source ``default``); the validation metrics of the checkpoint's
    epoch from ``RUN/metrics.csv``. DataError (one line) when any of these is missing.
    """
    run = Path(run)
    ckpt = run / "checkpoints" / f"{checkpoint}.ckpt"
    model, meta = load_classifier(ckpt)
    config = meta.get("config") or {}
    if "data" not in config:
        raise DataError(ckpt, "the checkpoint does not record its run's configuration (patch set); "
                              "it was written by an older mammocad")
    patch_set = Path(patches) if patches is not None else Path(config["data"])
    patch_stage = _stage_settings(patch_set, "patches", "pass the patch set the run trained on with --patches")
    prepared = Path((patch_stage.get("upstream") or {}).get("path", ""))
    prepare_stage = _stage_settings(prepared, "prepare", f"the patch set {patch_set} was built from it")
    evaluation_file = run / "evaluation" / "metrics.json"
    evaluation = json.loads(evaluation_file.read_text()) if evaluation_file.is_file() else {}
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
        preprocess=PreprocessConfig(**prepare_stage["settings"]["preprocess"]),
        patch_kind=patch_stage["settings"]["kind"], patch_config=dict(patch_stage["settings"]["config"]),
        metrics={"validation": _validation_metrics(run, meta["epoch"]), "test": evaluation.get("metrics", {})},
        threshold=None if threshold is None else float(threshold),
        threshold_source=evaluation.get("threshold_source", "default" if binary else "argmax"),
        source={"run": str(run.resolve()), "checkpoint": ckpt.name, "epoch": meta["epoch"],
                "patches": str(patch_set.resolve()), "patches_fingerprint": patch_stage["fingerprint"],
                "prepared": str(prepared), "prepared_fingerprint": prepare_stage["fingerprint"]},
    )
