"""``SegmentTrainConfig``: every setting of a segmenter training run (a YAML key and a CLI flag each).

Light on purpose (no torch at import), like ``mammocad.train.config``: the command line defines
its options from it at once; the registry and the phase parser are imported when a config is
validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mammocad.models.norms import INPUT_NORMS
from mammocad.train.config import Augment, engine_field, engine_problems
from mammocad.utils.config import check_workers

SEGMENT_PHASES_EXAMPLE = "heads:2:1e-4,stage4+:2:1e-5,all:2:1e-6"
LESION_TYPES = {
    "mass": {"BENIGN_MASS": 1, "MALIGNANT_MASS": 1},
    "calcification": {"BENIGN_CALCIFICATION": 1, "MALIGNANT_CALCIFICATION": 1},
    "any": {"BENIGN_MASS": 1, "MALIGNANT_MASS": 1, "BENIGN_CALCIFICATION": 1, "MALIGNANT_CALCIFICATION": 1},
}
"""Which instances of a patch set are the lesions to find (all one class, id 1); the others are left out."""
EVALUATED_TYPES = {"mass": ("mass",), "calcification": ("calcification",), "any": ("mass", "calcification")}
"""The prepared folder's abnormality types of each lesion_type: a run's ground truth on full images
(``evaluate_segmenter(lesion_types=...)``)."""


@dataclass(frozen=True)
class SegmentTrainConfig:
    """Everything a segmenter training run needs; every field is a YAML key and a CLI flag."""

    data: Path = field(default=Path("patches-seg"), metadata={
        "help": "segmentation patch set (`mammocad patches --kind seg` tiles or `--kind resize512` images)"})
    model: str = field(default="maskrcnn_resnet50_fpn_v2", metadata={
        "help": "maskrcnn_resnet50_fpn_v2, maskrcnn_resnet101_fpn, maskrcnn_mobilenet_v2_fpn or unet"})
    encoder: str = field(default="mobilenet_v2", metadata={"help": "U-Net encoder (smp name: mobilenet_v2, resnet34, ...)"})
    weights: str = field(default="none", metadata={
        "help": "initial weights: none, coco (Mask R-CNN R50-FPN v2), imagenet (backbone), or a state_dict file"})
    input_norm: str = field(default="imagenet", metadata={
        "help": f"input normalisation ({', '.join(INPUT_NORMS)}); minus_one_one for the Coral MobileNetV2 file"})
    lesion_type: str = field(default="mass", metadata={"help": f"lesions to find: {', '.join(LESION_TYPES)}"})
    negatives: bool = field(default=True, metadata={
        "help": "also train on tiles/images without a lesion (empty targets)"})
    phases: str = field(default="heads:4:1e-4,stage4+:4:1e-5,all:4:1e-6", metadata={
        "help": "staged training: phase:epochs:lr items, comma separated; phases heads, stage4+ (backbone "
                "stride 16 and 32 layers too), all (3-stage: heads, stage4+, all; 2-stage: heads, all)"})
    augment: Augment = field(default=Augment.FULL, metadata={
        "help": "joint augmentation: none, simple (horizontal flip), full (flips, affine, crop, "
                "brightness/contrast, noise)"})
    batch_size: int = field(default=4, metadata={"help": "images or tiles per step per process"})
    workers: int | None = engine_field("workers")
    anchor_sizes: tuple[int, int, int, int, int] = field(default=(16, 32, 64, 128, 256), metadata={
        "help": "Mask R-CNN anchor sizes, px, one per FPN level P2-P6"})
    detections_per_image: int = field(default=100, metadata={"help": "most instances predicted per image"})
    score_threshold: float = field(default=0.05, metadata={
        "help": "instances scoring less are not predicted (Mask R-CNN box score; U-Net component score)"})
    nms_threshold: float = field(default=0.5, metadata={"help": "Mask R-CNN box NMS IoU threshold"})
    mask_threshold: float = field(default=0.5, metadata={
        "help": "probability a pixel needs to be in a mask (Mask R-CNN masks; U-Net probability map)"})
    rpn_proposals: int = field(default=1000, metadata={
        "help": "Mask R-CNN RPN proposals per image at inference (twice that in training)"})
    rois_per_image: int = field(default=512, metadata={
        "help": "Mask R-CNN proposals sampled per image to train the box and mask heads"})
    val_score_threshold: float = field(default=0.5, metadata={
        "help": "validation Dice (val_dice, picks best.ckpt) uses the instances scoring at least this"})
    weight_decay: float = engine_field("weight_decay")
    precision: str = engine_field("precision")
    accelerator: str = engine_field("accelerator")
    devices: int = engine_field("devices")
    strategy: str = engine_field("strategy")
    num_nodes: int = engine_field("num_nodes")
    early_stopping_patience: int = engine_field(
        "early_stopping_patience", "stop after this many epochs of the last phase without a better val_dice; 0: off")
    seed: int = engine_field("seed", "random seed (init, shuffling, augmentation)")
    out: Path = field(default=Path("runs/segmenter"), metadata={"help": "run folder"})
    resume: bool = engine_field("resume")
    limit_train_batches: int | None = engine_field("limit_train_batches")
    limit_val_batches: int | None = engine_field("limit_val_batches")

    def __post_init__(self) -> None:
        from mammocad.segment.models import SEGMENTER_PHASES, check_segmenter
        from mammocad.train.schedule import parse_phases

        check_workers(self.workers)
        check_segmenter(self.model)
        parse_phases(self.phases, SEGMENTER_PHASES, SEGMENT_PHASES_EXAMPLE)
        object.__setattr__(self, "augment", Augment(self.augment))
        unit = (self.score_threshold, self.nms_threshold, self.mask_threshold, self.val_score_threshold)
        problems = [
            *engine_problems(self),
            (self.input_norm not in INPUT_NORMS, f"input_norm must be one of {', '.join(INPUT_NORMS)}, got "
                                                 f"{self.input_norm!r}"),
            (self.lesion_type not in LESION_TYPES, f"lesion_type must be one of {', '.join(LESION_TYPES)}, got "
                                                   f"{self.lesion_type!r}"),
            (any(not 0 <= v <= 1 for v in unit), "score_threshold, nms_threshold, mask_threshold and "
                                                 "val_score_threshold must be in [0, 1]"),
            (min(self.anchor_sizes) < 1, f"anchor_sizes must be >= 1 px, got {self.anchor_sizes}"),
            (min(self.detections_per_image, self.rpn_proposals, self.rois_per_image) < 1,
             "detections_per_image, rpn_proposals and rois_per_image must be >= 1"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)

    def model_options(self, image_size: int) -> dict:
        """The ``build_segmenter`` options of this run's model for inputs of ``image_size`` px."""
        if self.model == "unet":
            return {"encoder": self.encoder, "image_size": image_size, "probability_threshold": self.mask_threshold,
                    "detections_per_image": self.detections_per_image, "score_threshold": self.score_threshold}
        return {"image_size": image_size, "anchor_sizes": self.anchor_sizes,
                "detections_per_image": self.detections_per_image, "score_threshold": self.score_threshold,
                "nms_threshold": self.nms_threshold, "mask_threshold": self.mask_threshold,
                "rpn_proposals": self.rpn_proposals, "rois_per_image": self.rois_per_image}
