"""The per-sample predictions CSV: every evaluation metric can be recomputed from it.

One row per sample, columns in this order:

- ``sample_id`` (text, unique within a split), ``split`` (text, e.g. ``val``/``test``);
- ``target`` (int class index in ``[0, C)``) and ``target_name`` (``class_names[target]``);
- ``prob_<class_name>`` for each of the C >= 2 classes, in class-index order: probabilities in
  ``[0, 1]`` that sum to 1 per row (within 1e-4). Binary tasks have two classes and the positive
  class is index 1 (e.g. ``prob_BENIGN, prob_MALIGNANT``);
- optional passthrough columns (``patient_id``, ``image_id``, ``abnormality``, ...), read back as
  text (a missing value comes back as the empty string).

The class names (and their order) are not stored separately: they are the ``prob_`` columns.
Probabilities are written at full float64 precision (pandas writes the shortest round-trip repr),
so a metric recomputed from the file equals the one computed in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mammocad.utils.atomic import write_csv
from mammocad.utils.errors import DataError

CORE_COLUMNS = ("sample_id", "split", "target", "target_name")
PROB_PREFIX = "prob_"
SUM_TOLERANCE = 1e-4


def prob_column(class_name: str) -> str:
    """The column holding the probability of ``class_name``: ``prob_<class_name>``."""
    return f"{PROB_PREFIX}{class_name}"


def predictions_frame(
    sample_ids: Sequence[str],
    targets: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    split: str,
    extra: Mapping[str, Sequence] | None = None,
) -> pd.DataFrame:
    """Build a validated predictions frame for one split.

    ``sample_ids`` and ``targets`` have length N (targets are class indices in ``[0, C)``);
    ``probabilities`` has shape (N, C) with C = ``len(class_names)`` >= 2 (softmax outputs; for a
    one-logit binary model pass ``[1 - p, p]``); ``extra`` maps passthrough column names to
    length-N sequences. Raises ``ValueError`` on any inconsistency (see the module docstring).
    """
    names = [str(name) for name in class_names]
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise ValueError(f"probabilities must have shape (N, {len(names)}), got {probs.shape}")
    target_arr = np.asarray(targets)
    if target_arr.shape != (len(probs),) or not np.issubdtype(target_arr.dtype, np.integer):
        raise ValueError(
            f"targets must be {len(probs)} integer class indices, got shape {target_arr.shape} ({target_arr.dtype})"
        )
    if not ((target_arr >= 0) & (target_arr < len(names))).all():
        raise ValueError(f"targets must lie in [0, {len(names)})")
    columns: dict[str, object] = {
        "sample_id": [str(s) for s in sample_ids],
        "split": split,
        "target": target_arr.astype(np.int64),
        "target_name": [names[t] for t in target_arr],
    }
    if len(columns["sample_id"]) != len(probs):
        raise ValueError(f"got {len(columns['sample_id'])} sample ids for {len(probs)} rows of probabilities")
    columns.update({prob_column(name): probs[:, k] for k, name in enumerate(names)})
    for name, values in (extra or {}).items():
        if name in columns or name.startswith(PROB_PREFIX):
            raise ValueError(f"passthrough column {name!r} clashes with a predictions column")
        if len(values) != len(probs):
            raise ValueError(f"passthrough column {name!r} has {len(values)} values for {len(probs)} rows")
        columns[name] = list(values)
    frame = pd.DataFrame(columns)
    validate_predictions(frame)
    return frame


def class_names_of(frame: pd.DataFrame) -> tuple[str, ...]:
    """The class names, in class-index order, read from the ``prob_`` columns."""
    return tuple(col[len(PROB_PREFIX):] for col in frame.columns if col.startswith(PROB_PREFIX))


def probability_matrix(frame: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    """The (N, C) float64 probabilities of ``frame``, columns in the order of ``class_names``."""
    missing = [prob_column(name) for name in class_names if prob_column(name) not in frame.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}")
    return frame[[prob_column(name) for name in class_names]].to_numpy(dtype=np.float64)


def validate_predictions(frame: pd.DataFrame) -> tuple[str, ...]:
    """Check ``frame`` against the format of the module docstring; return its class names.

    Raises ``ValueError`` naming the first problem found.
    """
    missing = [col for col in CORE_COLUMNS if col not in frame.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}")
    class_names = class_names_of(frame)
    if len(class_names) < 2 or len(set(class_names)) != len(class_names):
        raise ValueError(f"need at least two distinct prob_<class> columns, got {list(class_names)}")
    duplicated = frame.duplicated(["split", "sample_id"])
    if duplicated.any():
        first = frame.loc[duplicated.idxmax()]
        raise ValueError(f"sample_id {first['sample_id']!r} appears more than once in split {first['split']!r}")
    targets = frame["target"].to_numpy()
    if not np.issubdtype(targets.dtype, np.integer) or not ((targets >= 0) & (targets < len(class_names))).all():
        raise ValueError(f"target must be integer class indices in [0, {len(class_names)})")
    expected_names = np.asarray(class_names, dtype=object)[targets]
    mismatch = frame["target_name"].to_numpy(dtype=object) != expected_names
    if mismatch.any():
        row = int(np.argmax(mismatch))
        raise ValueError(
            f"row {row}: target_name {frame['target_name'].iloc[row]!r} does not match class {targets[row]} "
            f"({expected_names[row]!r})"
        )
    probs = probability_matrix(frame, class_names)
    if not (np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()):
        raise ValueError("probabilities must be finite and lie in [0, 1]")
    bad_sum = np.abs(probs.sum(axis=1) - 1.0) > SUM_TOLERANCE
    if bad_sum.any():
        row = int(np.argmax(bad_sum))
        raise ValueError(f"row {row}: probabilities sum to {probs[row].sum():.6f}, not 1 (logits instead of softmax?)")
    return class_names


def write_predictions(path: str | Path, frame: pd.DataFrame) -> Path:
    """Validate ``frame`` and write it atomically as CSV to ``path``; return the path."""
    validate_predictions(frame)
    write_csv(path, frame)
    return Path(path)


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Read and validate a predictions CSV; return ``(frame, class_names)``.

    ``target`` comes back as int64, probabilities as float64, every other column as text.
    Raises ``DataError`` naming the file on any problem.
    """
    try:
        header = pd.read_csv(path, nrows=0).columns
        dtypes = {col: (np.float64 if col.startswith(PROB_PREFIX) else str) for col in header}
        dtypes["target"] = np.int64
        frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
        return frame, validate_predictions(frame)
    except (OSError, ValueError) as err:  # pandas parse errors are ValueErrors
        raise DataError(path, f"not a valid predictions CSV: {err}") from err


def average_predictions(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The ensemble of several models' predictions of the same samples: the mean of their probabilities.

    Every frame must hold the same samples (``split``, ``sample_id``, in any order) with the same
    targets and class names; the result has the first frame's rows, row order and passthrough
    columns, with each ``prob_`` column the unweighted mean of the members' (so rows still sum
    to 1). ValueError when the members do not match.
    """
    if not frames:
        raise ValueError("an ensemble needs at least one member")
    first = frames[0]
    names = validate_predictions(first)
    key = ["split", "sample_id"]
    total = probability_matrix(first, names).copy()
    for k, member in enumerate(frames[1:], start=1):
        if validate_predictions(member) != names:
            raise ValueError(f"member {k} has classes {list(class_names_of(member))}, expected {list(names)}")
        aligned = member.set_index(key).reindex(pd.MultiIndex.from_frame(first[key]))
        if len(member) != len(first) or aligned["target"].isna().any():
            raise ValueError(f"member {k} does not predict the same samples as member 0")
        if (aligned["target"].to_numpy() != first["target"].to_numpy()).any():
            raise ValueError(f"member {k} has other targets for the same samples than member 0")
        total += probability_matrix(aligned, names)
    out = first.copy()
    out[[prob_column(n) for n in names]] = total / len(frames)
    return out
