"""Settings of ``mammocad serve`` (each field a YAML key and a CLI flag).

A light module: it imports neither torch nor FastAPI, so the command line answers ``--help`` at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mammocad.infer.config import BASELINES, PredictConfig

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    """What the web page can do (predict with these models, browse that folder) and where it listens."""

    classifier: Path | None = field(default=None, metadata={
        "help": "classifier bundle (written by `mammocad export`); none: no uploads, browse --predictions only"})
    segmenter: Path | None = field(default=None, metadata={
        "help": "trained segmenter, as for `mammocad predict`; none: use --baseline"})
    baseline: str | None = field(default=None, metadata={
        "help": f"untrained region proposals instead of a segmenter: {', '.join(BASELINES)} (brightest blobs)"})
    predictions: Path | None = field(default=None, metadata={
        "help": "folder written by `mammocad predict` to browse on the page (read only)"})
    work: Path = field(default=Path("serve-work"), metadata={
        "help": "the only folder the server writes to: uploads (deleted once predicted) and their results"})
    host: str = field(default="127.0.0.1", metadata={
        "help": "address to listen on; the default answers this machine only (0.0.0.0: the whole network)"})
    port: int = field(default=8000, metadata={"help": "TCP port to listen on"})
    max_upload_mb: float = field(default=100.0, metadata={
        "help": "largest accepted upload in MB (a 4000x3000 16-bit DICOM is about 24 MB); bigger: HTTP 413"})
    workers: int = field(default=1, metadata={
        "help": "predictions run at once, each in its own thread with its own copy of the models"})

    def __post_init__(self) -> None:
        problems = [
            (self.classifier is None and self.predictions is None,
             "nothing to serve: give --classifier (with --segmenter or --baseline) and/or --predictions DIR"),
            (self.classifier is None and (self.segmenter is not None or self.baseline is not None),
             "--segmenter/--baseline need a --classifier to score the regions"),
            (not 1 <= self.port <= 65535, f"port must be 1-65535, got {self.port}"),
            (not self.max_upload_mb > 0, f"max_upload_mb must be > 0, got {self.max_upload_mb}"),
            (self.workers < 1, f"workers must be >= 1, got {self.workers}"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)
        if self.classifier is not None:
            self.predict_config()  # --segmenter and --baseline together, an unknown baseline: PredictConfig's errors

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def uploads(self) -> Path:
        """Where uploads are written while they are predicted (under ``work``)."""
        return self.work / "uploads"

    @property
    def results(self) -> Path:
        """Where the predictions of uploads go (under ``work``): a folder like `mammocad predict`'s output."""
        return self.work / "results"

    def predict_config(self) -> PredictConfig:
        """The settings of one prediction on an upload: this server's models, results into :attr:`results`."""
        return PredictConfig(classifier=self.classifier, segmenter=self.segmenter, baseline=self.baseline,
                             out=self.results, workers=1)
