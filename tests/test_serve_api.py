"""mammocad serve through its HTTP API: uploads predicted, bad ones refused in one line, browsing kept in its folder."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from mammocad.infer.config import PredictConfig
from mammocad.infer.predict import predict_batch
from mammocad.serve.app import create_app
from mammocad.serve.config import ServeConfig
from mammocad.utils.errors import DataError
from test_cli import run  # tests/ is on sys.path
from test_infer_predict import LESION, BrightRegions, mammogram, tiny_bundle, write_case_dicom

LIMIT_MB = 0.25


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def make_case(root: Path) -> dict[str, Path]:
    """In ``root``: a classifier bundle, a case PNG (a bright lesion at LESION) and a folder of its predictions."""
    bundle = tiny_bundle(root / "c.mcad")
    case = root / "case.png"
    case.write_bytes(png_bytes(mammogram()))
    predict_batch([case], PredictConfig(classifier=bundle, out=root / "predictions", baseline="blob", workers=1),
                  progress=False)
    return {"root": root, "bundle": bundle, "case": case, "predictions": root / "predictions"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    return make_case(tmp_path_factory.mktemp("serve"))


def client_for(config: ServeConfig, **kwargs) -> TestClient:
    return TestClient(create_app(config, **kwargs), base_url="http://127.0.0.1")


def serve_config(setup: dict[str, Path], work: Path, **overrides) -> ServeConfig:
    settings = {"classifier": setup["bundle"], "baseline": "blob", "predictions": setup["predictions"], "work": work,
                "max_upload_mb": LIMIT_MB, **overrides}
    return ServeConfig(**settings)


def overlaps_lesion(box: list[float]) -> bool:
    row0, col0, row1, col1 = LESION
    x0, y0, x1, y1 = box
    return x0 < col1 and col0 < x1 and y0 < row1 and row0 < y1


def files_below(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def assert_predicts(client: TestClient, case: Path) -> dict:
    response = client.post("/api/predict", params={"name": "../../escape/me.png"}, content=case.read_bytes())
    assert response.status_code == 200, response.text
    prediction = response.json()
    assert any(overlaps_lesion(region["box"]) for region in prediction["regions"]), prediction["regions"]
    overlay = client.get(prediction["overlay_url"])
    assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(overlay.content, np.uint8), cv2.IMREAD_COLOR).shape[1] > 2 * 220  # 2 panels
    return prediction


def test_upload_png_gets_regions_and_overlay_and_writes_only_in_work(setup, tmp_path: Path):
    work = tmp_path / "work"
    before = files_below(setup["root"])
    with client_for(serve_config(setup, work)) as client:
        page = client.get("/")
        assert page.status_code == 200 and "not a medical device" in page.text and "app.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]  # nothing from other origins
        assert client.get("/app.js").status_code == 200 and client.get("/style.css").status_code == 200
        info = client.get("/api/info").json()
        assert info["models"]["baseline"] == "blob" and info["max_upload_bytes"] == int(LIMIT_MB * 2 ** 20)

        prediction = assert_predicts(client, setup["case"])
        write_case_dicom(tmp_path / "case.dcm")  # told a DICOM by its content: the name says PNG
        dicom = client.post("/api/predict", params={"name": "scan.png"}, content=(tmp_path / "case.dcm").read_bytes())
        assert dicom.status_code == 200 and dicom.json()["regions"][0]["area_mm2"] > 0  # its pixel spacing was read
        region = prediction["regions"][0]
        assert {"box", "area_px", "type", "malignancy_probability", "suspicious"} <= set(region)
        assert prediction["upload_name"] == "../../escape/me.png"  # shown, never used as a path
        assert "not a medical device" in prediction["disclaimer"].lower()
        again = client.get(f"/api/uploads/{prediction['id']}").json()
        assert again["regions"] == prediction["regions"]
        form = client.post("/api/predict", files={"file": ("case.png", setup["case"].read_bytes(), "image/png")})
        assert form.status_code == 415 and "--data-binary" in form.json()["detail"]
    # the upload is deleted once predicted; its results are the only files written, all inside work/
    dicom_id = dicom.json()["id"]
    assert files_below(work) == {f"results/{name}" for rid in (prediction["id"], dicom_id)
                                 for name in (f"{rid}.json", f"{rid}_overlay.png")} | {f"results/{dicom_id}_seg.dcm"}
    assert files_below(setup["root"]) == before
    assert not (tmp_path / "escape").exists()


def declared_and_streamed(body: bytes) -> list[dict]:
    """Request bodies of a POST: with a Content-Length, and streamed in chunks without one."""
    return [{"content": body}, {"content": iter([body[i:i + 65536] for i in range(0, len(body), 65536)])}]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BAD_UPLOADS = {  # name -> (content, HTTP status, words of the one-line message)
    "huge.png": (PNG_SIGNATURE + bytes(int(1.5 * LIMIT_MB * 2 ** 20)), 413, "upload limit"),
    "notes.txt": (b"these are not pixels\n" * 20, 415, "not an image"),
    "scan.dcm": (b"<html>404 Not Found</html>", 415, "DICOM file header"),
    "broken.png": (PNG_SIGNATURE + b"\x00\x00\x00\rIHDR" + bytes(40), 400, "corrupt or truncated"),
    "broken.dcm": (bytes(128) + b"DICM" + b"\x02\x00" + bytes(30), 400, "not a readable DICOM"),
    "empty.png": (b"", 400, "empty"),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
def test_bad_upload_is_refused_in_one_line_and_the_server_keeps_serving(setup, tmp_path: Path, name: str):
    content, status, words = BAD_UPLOADS[name]
    with client_for(serve_config(setup, tmp_path / "work")) as client:
        for body in declared_and_streamed(content):
            response = client.post("/api/predict", params={"name": name}, **body)
            assert response.status_code == status, response.text
            detail = response.json()["detail"]
            assert detail.startswith(f"{name}: ") and words in detail and "\n" not in detail, detail
            assert str(tmp_path) not in detail  # names the user's file, not the server's copy of it
            assert client.get("/api/info").status_code == 200
            assert not files_below(tmp_path / "work" / "uploads")  # nothing of it is left behind
        assert_predicts(client, setup["case"])  # and predicting still works


class BlockingSegmenter(BrightRegions):
    """Waits, inside a prediction, until the test lets it go."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.waited_out = False

    def predict(self, image: np.ndarray, breast: np.ndarray):
        self.started.set()
        self.waited_out = not self.release.wait(60)
        return super().predict(image, breast)


def test_server_answers_while_a_prediction_runs(setup, tmp_path: Path):
    segmenter = BlockingSegmenter()
    config = serve_config(setup, tmp_path / "work", baseline=None)
    with client_for(config, segmenter=segmenter) as client:
        results: list = []
        upload = threading.Thread(target=lambda: results.append(
            client.post("/api/predict", params={"name": "a.png"}, content=setup["case"].read_bytes())))
        upload.start()
        assert segmenter.started.wait(60)
        assert client.get("/api/info").status_code == 200  # answered while the prediction waits
        assert client.get("/api/predictions").status_code == 200
        segmenter.release.set()
        upload.join(60)
    assert not segmenter.waited_out and results[0].status_code == 200, results
    assert results[0].json()["models"]["segmenter"] == {"name": "BlockingSegmenter"}


def test_browse_lists_predictions_and_refuses_paths_outside_its_folder(setup, tmp_path: Path):
    secret = tmp_path / "secret"
    secret.mkdir()
    outside = json.loads((setup["predictions"] / "case.json").read_text())
    (secret / "case.json").write_text(json.dumps({**outside, "marker": "SECRET"}))
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for path in setup["predictions"].iterdir():
        (predictions / path.name).write_bytes(path.read_bytes())
    (predictions / "link.json").symlink_to(secret / "case.json")
    with client_for(serve_config(setup, tmp_path / "work", predictions=predictions)) as client:
        listed = client.get("/api/predictions").json()
        assert [row["name"] for row in listed] == ["case"]  # the link out of the folder is not listed
        assert listed[0]["regions"] == len(outside["regions"]) >= 1
        shown = client.get("/api/predictions/case").json()
        assert shown["regions"] == outside["regions"]
        overlay = client.get(shown["overlay_url"])
        assert overlay.status_code == 200 and overlay.content == (predictions / "case_overlay.png").read_bytes()
        for url in ("/api/predictions/link", "/api/predictions/link/overlay", "/api/predictions/..%2Fsecret%2Fcase",
                    "/api/predictions/%2E%2E%2Fsecret%2Fcase/overlay", "/api/predictions/.hidden",
                    "/api/uploads/..%2F..%2Fsecret%2Fcase", "/api/predictions/..", "/../secret/case.json",
                    "/api/predictions/%2Fetc%2Fpasswd"):
            response = client.get(url)
            assert 400 <= response.status_code < 500 and "SECRET" not in response.text, (url, response.text)
        assert client.get("/api/predictions/link").json()["detail"] == "'link.json': not a file name inside the folder"
        assert client.get("/api/predictions/case").status_code == 200  # still serving


def test_names_in_the_browse_api_stay_inside_the_folder(tmp_path: Path):
    from fastapi import HTTPException

    from mammocad.serve.app import inside

    (tmp_path / "out").symlink_to(tmp_path.parent)
    assert inside(tmp_path, "case_overlay.png") == tmp_path / "case_overlay.png"
    for name in ("..", "../case.json", "a/b.json", "/etc/passwd", ".hidden.json", "out", "x\x00.json", ""):
        with pytest.raises(HTTPException) as refused:
            inside(tmp_path, name)
        assert refused.value.status_code == 400, name


def test_browse_only_server_and_foreign_host_headers(setup, tmp_path: Path):
    config = ServeConfig(predictions=setup["predictions"], work=tmp_path / "work")
    with client_for(config) as client:
        assert client.get("/api/info").json()["models"] is None
        refused = client.post("/api/predict", content=setup["case"].read_bytes())
        assert refused.status_code == 409 and "--classifier" in refused.json()["detail"]
        # a page elsewhere reaching this server under its own name (DNS rebinding) is refused
        assert client.get("/api/predictions", headers={"host": "attacker.example"}).status_code == 400
        assert client.get("/api/predictions", headers={"host": "localhost:8000"}).status_code == 200


def test_config_and_cli_refusals(setup, tmp_path: Path, monkeypatch):
    for settings, words in (({}, "nothing to serve"),
                            ({"baseline": "blob", "predictions": tmp_path}, "need a --classifier"),
                            ({"classifier": setup["bundle"], "baseline": "blob", "segmenter": tmp_path}, "not both"),
                            ({"classifier": setup["bundle"], "baseline": "nope"}, "baseline must be one of"),
                            ({"predictions": tmp_path, "max_upload_mb": 0}, "max_upload_mb"),
                            ({"predictions": tmp_path, "port": 0}, "port must be")):
        with pytest.raises(ValueError, match=words):
            ServeConfig(**settings)
    with pytest.raises(DataError, match="no such folder of predictions"):
        create_app(ServeConfig(predictions=tmp_path / "missing", work=tmp_path / "work"))
    missing = run("serve", "--classifier", tmp_path / "none.mcad", "--baseline", "blob", "--work", tmp_path / "w",
                  ok=False)
    assert missing.exit_code == 2 and "none.mcad" in missing.output and "Traceback" not in missing.output
    nothing = run("serve", ok=False)
    assert nothing.exit_code == 2 and "nothing to serve" in nothing.output

    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(kwargs, app=app))
    config = tmp_path / "serve.yaml"
    config.write_text(f"classifier: {setup['bundle']}\nbaseline: blob\nport: 8123\nwork: {tmp_path / 'ignored'}\n")
    result = run("serve", "--config", config, "--work", tmp_path / "w2", "--predictions", setup["predictions"])
    assert served["host"] == "127.0.0.1" and served["port"] == 8123  # loopback unless told otherwise
    assert "http://127.0.0.1:8123/" in result.output and "not a medical device" in result.output
    assert (tmp_path / "w2" / "results").is_dir() and not (tmp_path / "ignored").exists()


def test_serve_help_loads_no_web_or_model_library():
    import subprocess
    import sys

    code = ("import sys, mammocad.cli\n"
            "from click.testing import CliRunner\n"
            "assert CliRunner().invoke(mammocad.cli.app, ['serve', '--help']).exit_code == 0\n"
            "heavy = ('torch', 'fastapi', 'starlette', 'uvicorn', 'cv2', 'pandas')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded
