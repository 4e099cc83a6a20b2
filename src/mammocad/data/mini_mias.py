"""mini-MIAS adapter: ``Info.txt`` + 1024x1024 8-bit PGMs.

Facts of the distributed ``Info.txt`` this parser follows:

- a data row is ``REF BG CLASS [SEVERITY [X Y RADIUS]]``; NORM rows stop after CLASS;
  abnormal rows without a centre (widely scattered calcifications) stop after SEVERITY or
  carry a ``*NOTE 3*`` marker instead of coordinates;
- X, Y are the abnormality centre in pixels with the origin at the BOTTOM-left corner, so
  the top-left (numpy) row is ``1024 - Y``; RADIUS is in pixels;
- one image can have several rows (one per abnormality);
- images come in left/right pairs of one woman: even reference numbers are left breasts,
  odd ones right (``mdb001`` + ``mdb002`` are one patient), so patient-level splits keep
  each pair together;
- all views are MLO.

Classes map to types: CIRC/SPIC/MISC -> mass (margins CIRCUMSCRIBED/SPICULATED/ILL_DEFINED),
CALC -> calcification, ARCH -> architectural distortion, ASYM -> asymmetry.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from mammocad.data.records import (
    AbnormalityRecord,
    AbnormalityType,
    ImageRecord,
    Laterality,
    Pathology,
    RecordTable,
    RoiCircle,
    View,
)
from mammocad.utils.errors import DataError
from mammocad.utils.parallel import Failure

DATASET = "mini-mias"
IMAGE_SIZE = 1024  # every mini-MIAS image is 1024x1024 pixels at 200 um
_ROW = re.compile(r"^(mdb\d{3})\s+([FGD])\s+(CALC|CIRC|SPIC|MISC|ARCH|ASYM|NORM)\b(.*)$")
_TYPES = {
    "CIRC": (AbnormalityType.MASS, "CIRCUMSCRIBED"),
    "SPIC": (AbnormalityType.MASS, "SPICULATED"),
    "MISC": (AbnormalityType.MASS, "ILL_DEFINED"),
    "CALC": (AbnormalityType.CALCIFICATION, None),
    "ARCH": (AbnormalityType.ARCHITECTURAL_DISTORTION, None),
    "ASYM": (AbnormalityType.ASYMMETRY, None),
}
_SEVERITY = {"B": Pathology.BENIGN, "M": Pathology.MALIGNANT}


def patient_of(reference: str) -> str:
    """Patient id of an image reference: ``mdb001``/``mdb002`` -> ``mias_001``."""
    number = int(reference[3:])
    return f"mias_{(number + 1) // 2:03d}"


def laterality_of(reference: str) -> Laterality:
    return Laterality.LEFT if int(reference[3:]) % 2 == 0 else Laterality.RIGHT


def load_mini_mias(root: str | Path, *, failures: list[Failure] | None = None) -> RecordTable:
    """Parse ``root/Info.txt`` and point every record at ``root/<ref>.pgm``.

    Rows whose image is missing are reported in ``failures`` and skipped; a malformed row
    raises :class:`DataError` naming the line (the file itself is wrong then).
    """
    root = Path(root)
    info = root / "Info.txt"
    if not info.is_file():
        raise DataError(info, "mini-MIAS Info.txt not found")
    failures = failures if failures is not None else []
    images: dict[str, ImageRecord] = {}
    abnormalities: list[AbnormalityRecord] = []
    missing: set[str] = set()
    per_image: Counter[str] = Counter()
    for line_no, line in enumerate(info.read_text(encoding="latin-1").splitlines(), start=1):
        match = _ROW.match(line.strip())
        if not match:
            if line.strip().startswith("mdb"):
                raise DataError(info, f"line {line_no}: cannot parse mini-MIAS row {line.strip()!r}")
            continue
        ref, background, cls, rest = match.groups()
        path = root / f"{ref}.pgm"
        if not path.is_file():
            if ref not in missing:
                failures.append(Failure(ref, str(path), "mini-MIAS image listed in Info.txt not found"))
                missing.add(ref)
            continue
        images.setdefault(ref, ImageRecord(
            image_id=ref, dataset=DATASET, patient_id=patient_of(ref), laterality=laterality_of(ref),
            view=View.MLO, image_path=path, background_tissue=background,
        ))
        if cls == "NORM":
            continue
        per_image[ref] += 1
        try:
            abnormalities.append(_abnormality(ref, cls, rest.split(), per_image[ref]))
        except (KeyError, ValueError) as err:
            raise DataError(info, f"line {line_no}: {err}") from None
    return RecordTable(list(images.values()), abnormalities)


def _abnormality(ref: str, cls: str, fields: list[str], abnormality_id: int) -> AbnormalityRecord:
    if not fields:
        raise ValueError(f"{ref} {cls}: abnormal row without severity")
    abnormality_type, margins = _TYPES[cls]
    circle = None
    coords = fields[1:4]
    if len(coords) == 3 and all(c.lstrip("-").isdigit() for c in coords):
        x, y, radius = map(float, coords)
        circle = RoiCircle(row=IMAGE_SIZE - y, col=x, radius=radius)  # bottom-left origin -> top-left
    return AbnormalityRecord(
        image_id=ref,
        abnormality_id=abnormality_id,
        abnormality_type=abnormality_type,
        pathology=_SEVERITY[fields[0]],
        mass_margins=margins,
        roi_circle=circle,
    )
