"""The FastAPI application of ``mammocad serve``: :func:`create_app`.

API (errors are ``{"detail": "<one line naming the file and the problem>"}``)::

    GET  /                          the page (static/index.html, app.js, style.css: package data)
    GET  /api/info                  disclaimer, version, what this server can do, the upload limit
    POST /api/predict?name=FILE     body: the image file's bytes (DICOM, PNG, PGM, JPEG, TIFF), not a form:
                                    curl --data-binary @scan.dcm 'http://127.0.0.1:8000/api/predict?name=scan.dcm'
                                    200 the prediction JSON as `mammocad predict` writes it, with id and overlay_url;
                                    413 too big, 415 not an image, 400 unreadable (corrupt, truncated), 409 no models
    GET  /api/uploads/{id}          an upload's prediction JSON; /api/uploads/{id}/overlay its overlay PNG
    GET  /api/predictions           the --predictions folder: one row per prediction JSON in it
    GET  /api/predictions/{name}    one prediction's JSON; /api/predictions/{name}/overlay its overlay PNG

Safety: an upload is streamed to ``work/uploads/<random id>`` and refused (413) as soon as it
passes the limit (or at once, when its Content-Length says so), never held in memory whole; its
format is read from its first bytes, its name is only shown, never used as a path; it is deleted
once predicted and its results go to ``work/results/<id>.*`` (nothing is written elsewhere).
Names in the browse API must be plain file names inside the folder (no separators, no leading
dot, no link out of it), else 400. Predictions run in a thread pool, so the server keeps
answering while one runs; a failed one is an HTTP error, never the end of the server. Bound to a
loopback address, the app also refuses other Host headers (a web page elsewhere cannot reach it
through DNS rebinding), and every response forbids scripts and images from other origins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mammocad import DISCLAIMER, __version__
from mammocad.infer.bundle import read_bundle
from mammocad.infer.predict import InputImage, Segmenter, build_models, check_segmenter, predict_image
from mammocad.serve.config import LOOPBACK_HOSTS, ServeConfig
from mammocad.utils.atomic import check_output_folder
from mammocad.utils.errors import DataError
from mammocad.utils.imageio import DICOM_SUFFIXES, NOT_DICOM

log = logging.getLogger(__name__)

# The accepted formats, told by their first bytes (an upload's name says nothing reliable).
SIGNATURES = ((re.compile(rb"\A.{128}DICM", re.DOTALL), ".dcm"), (re.compile(rb"\A\x89PNG\r\n\x1a\n"), ".png"),
              (re.compile(rb"\A\xff\xd8\xff"), ".jpg"), (re.compile(rb"\A(?:II\*\x00|MM\x00\*)"), ".tif"),
              (re.compile(rb"\AP[25]\s"), ".pgm"))
FORMATS = "DICOM, PNG, PGM, JPEG or TIFF"
ACCEPT = ".dcm,.dicom,.png,.pgm,.jpg,.jpeg,.tif,.tiff"
FILE_NAME = re.compile(r"[\w-][\w.-]{0,199}")  # a plain name: no separator, no leading dot
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # mammograms and their results stay out of caches
}


def sniff_suffix(head: bytes) -> str | None:
    """The suffix (``.dcm``, ``.png``, ``.jpg``, ``.tif``, ``.pgm``) of a file from its first 132 bytes, else None."""
    return next((suffix for pattern, suffix in SIGNATURES if pattern.match(head)), None)


def shown_name(name: str) -> str:
    """An upload's name as shown in messages: one line, at most 120 characters ("upload" when empty)."""
    return " ".join(name.split())[:120] or "upload"


def inside(folder: Path, name: str) -> Path:
    """``folder / name`` when ``name`` is a plain file name that stays inside ``folder``; HTTP 400 otherwise.

    Refuses separators, ``..``, leading dots and symbolic links that lead out of ``folder``.
    """
    path = folder / name
    if not FILE_NAME.fullmatch(name) or not path.resolve().is_relative_to(folder.resolve()):
        raise HTTPException(400, f"{name!r}: not a file name inside the folder")
    return path


def read_prediction(folder: Path, name: str) -> dict[str, Any]:
    """The prediction JSON ``folder/<name>.json`` (as `mammocad predict` writes it); HTTP 400/404 otherwise."""
    path = inside(folder, f"{name}.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HTTPException(404, f"{name}: no such prediction") from None
    except (OSError, ValueError) as err:
        raise HTTPException(404, f"{name}: not a readable prediction JSON ({type(err).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("regions"), list):
        raise HTTPException(404, f"{name}: not a prediction JSON (no regions list)")
    return data


def overlay_response(folder: Path, name: str) -> FileResponse:
    """The overlay PNG that ``folder/<name>.json`` names."""
    overlay = (read_prediction(folder, name).get("files") or {}).get("overlay")
    path = inside(folder, overlay) if isinstance(overlay, str) else None
    if path is None or not path.is_file():
        raise HTTPException(404, f"{name}: no overlay image")
    return FileResponse(path, media_type="image/png")


def list_predictions(folder: Path) -> list[dict[str, Any]]:
    """One row per prediction JSON directly in ``folder``: name, patient, side, view, region counts, top probability."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = read_prediction(folder, path.stem)
        except HTTPException:  # summary files, links out of the folder, other JSON
            continue
        regions = [r for r in data["regions"] if isinstance(r, dict)]
        image = data.get("image") or {}
        rows.append({"name": path.stem, **{k: image.get(k) for k in ("patient", "laterality", "view")},
                     "regions": len(regions), "suspicious": sum(bool(r.get("suspicious")) for r in regions),
                     "max_malignancy": max((r.get("malignancy_probability") or 0.0 for r in regions), default=None)})
    return rows


class Predictor:
    """Predicts uploads in a pool of ``workers`` threads, each with its own models (Grad-CAM hooks a model's layers)."""

    def __init__(self, config: ServeConfig, segmenter: Segmenter | None = None):
        self.config = config.predict_config()
        self.bundle = read_bundle(self.config.classifier, kind="classifier")
        _ = self.bundle.large_context  # refuses a classifier of another patch kind now, not at the first upload
        self.segmenter_bundle = check_segmenter(self.config) if segmenter is None else None
        self.segmenter = segmenter
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(config.workers, thread_name_prefix="mammocad-predict")

    def describe(self) -> dict[str, Any]:
        source = ({"baseline": self.config.baseline} if self.config.baseline else
                  {"segmenter": str(self.config.segmenter or type(self.segmenter).__name__)})
        return {"classifier": self.config.classifier.name, "architecture": self.bundle.architecture,
                "task": self.bundle.task, "threshold": self.bundle.threshold, **source}

    def _predict(self, source: InputImage) -> dict[str, Any]:
        models = getattr(self.local, "models", None)
        if models is None:
            models = self.local.models = build_models(self.config, self.bundle, self.segmenter,
                                                                  self.segmenter_bundle)
        return predict_image(source, models, self.config)

    async def predict(self, source: InputImage) -> dict[str, Any]:
        """Predict ``source`` in the pool; its summary row (see :func:`mammocad.infer.predict.predict_image`)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._predict, source)


async def receive_upload(request: Request, target: Path, limit: int, name: str) -> int:
    """Stream the request body into ``target`` (a new file); its size. HTTP 413 as soon as it passes ``limit`` bytes."""
    too_big = f"larger than this server's upload limit of {limit / 2 ** 20:.3g} MB (--max-upload-mb)"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # refused before a byte of it is read
        raise HTTPException(413, f"{name}: {int(declared) / 2 ** 20:.3g} MB, {too_big}")
    size = 0
    with open(target, "xb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{name}: {too_big}")
            f.write(chunk)
    return size


def upload_suffix(path: Path, name: str) -> str:
    """The format of the upload at ``path`` as a suffix; HTTP 400 (empty) or 415 (not an accepted format)."""
    with open(path, "rb") as f:
        head = f.read(132)
    if not head:
        raise HTTPException(400, f"{name}: the file is empty")
    suffix = sniff_suffix(head)
    if suffix is None:
        claims_dicom = Path(name).suffix.lower() in DICOM_SUFFIXES
        raise HTTPException(415, f"{name}: {NOT_DICOM}" if claims_dicom else f"{name}: not an image this server reads "
                                 f"(the content is not {FORMATS})")
    return suffix


def create_app(config: ServeConfig, segmenter: Segmenter | None = None) -> FastAPI:
    """The web application for ``config``: its page, predictions on uploads, browsing of ``config.predictions``.

    ``segmenter``: a :class:`~mammocad.infer.predict.Segmenter` object to use instead of
    ``config.segmenter``/``config.baseline`` (shared by the worker threads). DataError before
    serving for an unusable work folder, classifier bundle, segmenter or predictions folder.
    """
    check_output_folder(config.work)
    predictions = config.predictions
    if predictions is not None and not Path(predictions).is_dir():
        raise DataError(predictions, "no such folder of predictions (give the --out folder of `mammocad predict`)")
    predictor = Predictor(config, segmenter) if config.classifier is not None else None
    for folder in (config.uploads, config.results):
        folder.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if predictor is not None:
            predictor.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="mammocad", version=__version__, description=DISCLAIMER, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # the docs pages load scripts from a CDN
    if config.host in LOOPBACK_HOSTS:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]"])

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"disclaimer": DISCLAIMER, "version": __version__,
                "models": predictor.describe() if predictor is not None else None,
                "predictions": str(predictions) if predictions is not None else None,
                "max_upload_bytes": config.max_upload_bytes, "max_upload_mb": config.max_upload_mb,
                "accept": ACCEPT, "formats": FORMATS}

    @app.post("/api/predict")
    async def predict(request: Request, name: str = "upload") -> dict[str, Any]:
        shown = shown_name(name)
        if predictor is None:
            raise HTTPException(409, "this server has no models: start it with --classifier and --segmenter or "
                                     "--baseline to predict uploads")
        if request.headers.get("content-type", "").startswith("multipart/"):
            raise HTTPException(415, f"{shown}: send the file itself as the request body (curl --data-binary @FILE), "
                                     f"not a multipart form")
        rid = uuid.uuid4().hex
        upload = config.uploads / rid
        written = [upload]
        try:
            await receive_upload(request, upload, config.max_upload_bytes, shown)
            written.append(upload.rename(upload.with_suffix(upload_suffix(upload, shown))))
            try:
                row = await predictor.predict(InputImage(written[-1], rid))
            except DataError as err:  # the readers' and preprocessing's one-line problems
                raise HTTPException(400, f"{shown}: {err.problem}") from None
            except Exception as err:  # noqa: BLE001 - a failed prediction must not look like a dead server
                log.exception("prediction of %s failed", shown)
                raise HTTPException(500, f"{shown}: prediction failed ({type(err).__name__}: "
                                         f"{' '.join(str(err).split())})") from None
        finally:
            for path in written:
                path.unlink(missing_ok=True)
        return {**read_prediction(config.results, row["name"]), "id": rid, "upload_name": shown,
                "overlay_url": f"/api/uploads/{rid}/overlay"}

    @app.get("/api/uploads/{rid}")
    def upload_prediction(rid: str) -> dict[str, Any]:
        return {**read_prediction(config.results, rid), "id": rid, "overlay_url": f"/api/uploads/{rid}/overlay"}

    @app.get("/api/uploads/{rid}/overlay")
    def upload_overlay(rid: str) -> FileResponse:
        return overlay_response(config.results, rid)

    def browsed() -> Path:
        if predictions is None:
            raise HTTPException(404, "this server browses no folder: start it with --predictions DIR")
        return Path(predictions)

    @app.get("/api/predictions")
    def predictions_list() -> list[dict[str, Any]]:
        return list_predictions(browsed())

    @app.get("/api/predictions/{name}")
    def prediction(name: str) -> dict[str, Any]:
        return {**read_prediction(browsed(), name), "overlay_url": f"/api/predictions/{name}/overlay"}

    @app.get("/api/predictions/{name}/overlay")
    def prediction_overlay(name: str) -> FileResponse:
        return overlay_response(browsed(), name)

    app.mount("/", StaticFiles(packages=[("mammocad.serve", "static")], html=True), name="page")
    return app
