"""Predicted regions as a DICOM Segmentation object (highdicom), referencing the source mammogram.

One binary segment per region, on the source image's pixel grid, in a new series of the
source's study; viewers that read DICOM SEG (OHIF, 3D Slicer, ...) show it over the source.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from mammocad import __version__
from mammocad.utils.atomic import atomic_path

SERIES_NUMBER = 9901  # the SEG's series in the source study: far from the usual 1, 2, ...
# Type 2 attributes of the Patient and Study modules that a SEG copies from its source: a source
# that lacks one (some converted or synthetic files) gets it empty, as type 2 allows.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "AccessionNumber")


def write_dicom_seg(target: str | Path, source: pydicom.Dataset, segments: np.ndarray, labels: Sequence[str]) -> str:
    """Write N regions on ``source``'s grid as a binary DICOM SEG (one frame per region); returns its SOP Instance UID.

    ``segments``: the regions as (N, rows, cols) bool masks, or, when they do not overlap, as one
    (rows, cols) uint8/uint16 label map with values 0 (none) to N (cheaper: highdicom then checks
    one array's maximum instead of summing N full-size masks; the SEG is the same). ``source`` is
    the mammogram's header (pixel data not needed); ``labels`` one text per region (the segment
    labels viewers show). N must be >= 1.
    """
    stacked = segments.ndim == 3
    if not (stacked or segments.ndim == 2) or not labels or (stacked and len(segments) != len(labels)):
        raise ValueError(f"need N >= 1 masks (N, rows, cols) or a label map (rows, cols), and N labels, got "
                         f"{segments.shape} and {len(labels)}")
    source = copy.copy(source)
    for keyword in TYPE2_COPIED:
        if keyword not in source:
            setattr(source, keyword, "")
    if "FrameOfReferenceUID" not in source:
        # A projection mammogram has no patient frame of reference: the SEG is then defined pixel for
        # pixel on the source image (which keeps its spacing). highdicom would copy PixelSpacing into
        # a Pixel Measures sequence without the SliceThickness that its own reader requires
        # (highdicom issue #159: 2-D mammography SEGs).
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            if keyword in source:
                delattr(source, keyword)
    algorithm = hd.AlgorithmIdentificationSequence(name="mammocad second reader", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k, segment_label=label[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
        for k, label in enumerate(labels, start=1)]
    uid = hd.UID()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a PatientName without "^" (TCIA puts IDs there)
        seg = hd.seg.Segmentation(
            source_images=[source], pixel_array=np.moveaxis(segments, 0, -1)[None] if stacked else segments[None],
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
            series_instance_uid=hd.UID(), series_number=SERIES_NUMBER, sop_instance_uid=uid, instance_number=1,
            manufacturer="mammocad", manufacturer_model_name="mammocad predict", software_versions=__version__,
            device_serial_number="none", series_description="mammocad regions (research, not for diagnosis)")
    with atomic_path(target) as tmp:
        seg.save_as(tmp)
    return str(uid)
