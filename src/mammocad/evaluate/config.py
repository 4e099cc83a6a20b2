"""Settings of the evaluation layer that the command line needs at start-up (no heavy imports)."""

from __future__ import annotations

CALIBRATION_METHODS = ("temperature", "isotonic")  # see mammocad.evaluate.calibration
