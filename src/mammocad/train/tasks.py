"""Classification tasks by name: which patch labels a task reads and which class index each becomes.

A patch set's manifest labels every patch with one of the five TFDS classes (``BACKGROUND``,
``BENIGN_CALCIFICATION``, ``BENIGN_MASS``, ``MALIGNANT_CALCIFICATION``, ``MALIGNANT_MASS``;
BENIGN_WITHOUT_CALLBACK lesions are already ``BENIGN_*``). A task maps some of those labels to
class indices; patches with other labels are left out of it.

=========================  ============================================  ===========================
task                       classes (index order)                         reads labels
=========================  ============================================  ===========================
``five_class``             BACKGROUND, BENIGN_CALCIFICATION,              all five
                           BENIGN_MASS, MALIGNANT_CALCIFICATION,
                           MALIGNANT_MASS (the paper's order)
``mass_benign_malignant``  BENIGN, MALIGNANT                              BENIGN_MASS, MALIGNANT_MASS
``calc_benign_malignant``  BENIGN, MALIGNANT                              *_CALCIFICATION
``benign_malignant``       BENIGN, MALIGNANT                              the four lesion labels
``mass_vs_calc``           CALCIFICATION, MASS                            the four lesion labels
``any_benign_malignant``   BENIGN, MALIGNANT                              every lesion label, incl.
                                                                         mini-MIAS distortions and
                                                                         asymmetries
``lesion_vs_background``   BACKGROUND, LESION                             every label
=========================  ============================================  ===========================

Binary tasks put their positive class (MALIGNANT, or MASS) at index 1, so ``probs[:, 1]`` is
the score every binary metric uses.
"""

from __future__ import annotations

from dataclasses import dataclass

FIVE_CLASSES = ("BACKGROUND", "BENIGN_CALCIFICATION", "BENIGN_MASS", "MALIGNANT_CALCIFICATION", "MALIGNANT_MASS")
# mini-MIAS also has architectural distortions and asymmetries (patch labels BENIGN_ASYMMETRY, ...).
LESION_TYPES = ("CALCIFICATION", "MASS", "ARCHITECTURAL_DISTORTION", "ASYMMETRY")
ALL_LESIONS = tuple(f"{severity}_{kind}" for severity in ("BENIGN", "MALIGNANT") for kind in LESION_TYPES)


@dataclass(frozen=True)
class Task:
    """One task: ``label_indices`` pairs manifest labels with indices into ``class_names``."""

    name: str
    class_names: tuple[str, ...]
    label_indices: tuple[tuple[str, int], ...]
    description: str

    @property
    def classes(self) -> dict[str, int]:
        """{manifest label: class index} (a new dict: the ``classes`` argument of ``PatchDataset``)."""
        return dict(self.label_indices)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_binary(self) -> bool:
        return self.num_classes == 2

    def labels_of(self, index: int) -> list[str]:
        """The manifest labels that become class ``index``."""
        return [label for label, i in self.label_indices if i == index]


def _task(name: str, class_names: tuple[str, ...], classes: dict[str, int], description: str) -> Task:
    return Task(name, class_names, tuple(classes.items()), description)


TASKS: dict[str, Task] = {task.name: task for task in (
    _task("five_class", FIVE_CLASSES, {label: i for i, label in enumerate(FIVE_CLASSES)},
          "background and the four lesion classes (the paper's five-class patch classifier)"),
    _task("mass_benign_malignant", ("BENIGN", "MALIGNANT"), {"BENIGN_MASS": 0, "MALIGNANT_MASS": 1},
          "masses: benign vs malignant"),
    _task("calc_benign_malignant", ("BENIGN", "MALIGNANT"),
          {"BENIGN_CALCIFICATION": 0, "MALIGNANT_CALCIFICATION": 1}, "calcifications: benign vs malignant"),
    _task("benign_malignant", ("BENIGN", "MALIGNANT"),
          {"BENIGN_CALCIFICATION": 0, "BENIGN_MASS": 0, "MALIGNANT_CALCIFICATION": 1, "MALIGNANT_MASS": 1},
          "masses and calcifications together: benign vs malignant"),
    _task("mass_vs_calc", ("CALCIFICATION", "MASS"),
          {"BENIGN_CALCIFICATION": 0, "MALIGNANT_CALCIFICATION": 0, "BENIGN_MASS": 1, "MALIGNANT_MASS": 1},
          "lesion type: calcification vs mass"),
    _task("any_benign_malignant", ("BENIGN", "MALIGNANT"),
          {label: int(label.startswith("MALIGNANT")) for label in ALL_LESIONS},
          "every lesion type (mini-MIAS distortions and asymmetries too): benign vs malignant"),
    _task("lesion_vs_background", ("BACKGROUND", "LESION"),
          {"BACKGROUND": 0, **{label: 1 for label in ALL_LESIONS}},
          "any abnormality vs normal breast tissue (small-context patches)"),
)}


def list_tasks() -> list[str]:
    """Task names in definition order."""
    return list(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``; ValueError listing the tasks when unknown."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]
