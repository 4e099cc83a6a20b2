"""The fine-tuning schedule: a sequence of phases, each with its trainable layers, epochs and learning rate.

Written as ``phase:epochs:lr`` items separated by commas, e.g. the paper's staged fine-tuning
``head:3:1e-3,last_third:3:1e-4,last_two_thirds:3:1e-5`` (epochs 0-2 train the new head on a
frozen backbone at lr 1e-3, epochs 3-5 also the backbone's last third at 1e-4, epochs 6-8 its
last two thirds at 1e-5) or ``all:30:1e-3`` (end to end, e.g. the random-init baseline).
Phase names are ``mammocad.models.PHASES`` for the classifiers (see ``mammocad.models.stages``
for which layers each one trains), another model family passes its own (the segmenters'
``heads``, ``stage4+``, ``all``); epochs are whole epochs >= 1; learning rates are > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mammocad.models import PHASES
from mammocad.train.config import DEFAULT_PHASES

EXAMPLE = DEFAULT_PHASES


@dataclass(frozen=True)
class Phase:
    """One phase: ``name`` (a ``PHASES`` entry), ``epochs`` (>= 1) and Adam's ``lr`` (> 0)."""

    name: str
    epochs: int
    lr: float


@dataclass(frozen=True)
class Schedule:
    """The phases in training order; epochs are numbered from 0 across all of them."""

    phases: tuple[Phase, ...]

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def index_at(self, epoch: int) -> int:
        """Index of the phase that 0-based ``epoch`` belongs to (the last phase past the end)."""
        end = 0
        for index, phase in enumerate(self.phases):
            end += phase.epochs
            if epoch < end:
                return index
        return len(self.phases) - 1

    def __len__(self) -> int:
        return len(self.phases)

    def __getitem__(self, index: int) -> Phase:
        return self.phases[index]


def parse_phases(text: str, names: tuple[str, ...] = PHASES, example: str = EXAMPLE) -> Schedule:
    """``"head:3:1e-3,all:2:1e-4"`` -> Schedule; ValueError naming the bad item otherwise.

    ``names``: the phase names allowed; ``example``: a valid schedule quoted in error messages.
    """
    def _bad(item: str, problem: str) -> ValueError:
        return ValueError(f"phases: {item!r} {problem}; write phase:epochs:lr items separated by commas, "
                          f"e.g. {example} (phases: {', '.join(names)})")

    if not text.strip():
        raise _bad(text, "is empty")
    phases = []
    for item in (item.strip() for item in text.split(",")):
        parts = [part.strip() for part in item.split(":")]
        if len(parts) != 3:
            raise _bad(item, "is not phase:epochs:lr")
        name, epochs_text, lr_text = parts
        if name not in names:
            raise _bad(item, f"has unknown phase {name!r}")
        try:
            epochs = int(epochs_text)
        except ValueError:
            raise _bad(item, f"has epochs {epochs_text!r}, not a whole number") from None
        try:
            lr = float(lr_text)
        except ValueError:
            raise _bad(item, f"has learning rate {lr_text!r}, not a number") from None
        if epochs < 1:
            raise _bad(item, "needs at least 1 epoch")
        if not (math.isfinite(lr) and lr > 0):
            raise _bad(item, "needs a learning rate > 0")
        phases.append(Phase(name, epochs, lr))
    return Schedule(tuple(phases))
