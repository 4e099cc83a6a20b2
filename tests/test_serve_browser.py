"""mammocad serve in a real headless browser (Debian's chromium, driven by Selenium): upload, see, be refused, go on.

Skips when /usr/bin/chromium or /usr/bin/chromedriver is absent (the project's test set-up installs
them); never downloads a browser.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Iterator

from mammocad.serve.app import create_app
from mammocad.serve.config import ServeConfig
from browser import WAIT_S  # tests/ is on sys.path; the `browser` fixture comes from conftest
from test_serve_api import BAD_UPLOADS, make_case



@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port in a background thread; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound before the server starts: no race for the port
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(WAIT_S * 10):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.1)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_for(driver, script: str):
    """Wait until the JavaScript expression ``script`` is truthy in the page; its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(lambda d: d.execute_script(f"return {script};"))


def text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent;")


OVERLAY_SHOWN = ("!document.getElementById('result').hidden && document.getElementById('overlay').complete"
                 " && document.getElementById('overlay').naturalWidth > 0"
                 " && document.querySelectorAll('#regions tbody tr').length > 0")


def upload(driver, path: Path) -> str:
    """Choose ``path`` in the page's file input; 'result' or 'error', whichever the page then shows."""
    from selenium.webdriver.common.by import By

    wait_for(driver, "!document.getElementById('file').disabled")
    driver.execute_script("document.getElementById('error').hidden = true; "
                          "document.getElementById('result').hidden = true;")
    driver.find_element(By.ID, "file").send_keys(str(path))
    return wait_for(driver, f"!document.getElementById('file').disabled && (!document.getElementById('error').hidden"
                            f" ? 'error' : (({OVERLAY_SHOWN}) ? 'result' : false))")


def test_page_in_a_headless_browser(browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    case = make_case(tmp_path)
    config = ServeConfig(classifier=case["bundle"], baseline="blob", predictions=case["predictions"],
                         work=tmp_path / "work", max_upload_mb=0.25)
    bad = {}
    for name, (content, _, words) in BAD_UPLOADS.items():
        (tmp_path / "bad").mkdir(exist_ok=True)
        bad[name] = (tmp_path / "bad" / name, words)
        bad[name][0].write_bytes(content)
    with running(create_app(config)) as url:
        browser.get(url)
        wait_for(browser, "document.body.dataset.ready === 'true'")
        assert "not a medical device" in text(browser, "disclaimer")
        assert "blob" in text(browser, "models")

        # browse: the folder's prediction is listed; clicking it shows its overlay and regions
        browser.find_element(By.CSS_SELECTOR, "#predictions tbody button").click()
        wait_for(browser, OVERLAY_SHOWN)
        assert text(browser, "result-title") == "case"

        assert upload(browser, case["case"]) == "result"
        assert text(browser, "result-title").startswith("case.png: ")
        cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#regions tbody tr:first-child td")]
        assert len(cells) == 6 and cells[2].endswith("px") and cells[5] in ("yes", "no"), cells

        for name in ("broken.png", "huge.png", "notes.txt", "scan.dcm"):
            path, words = bad[name]
            assert upload(browser, path) == "error", name
            message = text(browser, "error")
            assert message.startswith(f"{name}: ") and words in message, message
            assert browser.execute_script("return document.getElementById('result').hidden;")
        # the page refuses an oversized file before sending it; the server refuses it too, and the page says so
        browser.execute_script("info.max_upload_bytes = Infinity;")
        assert upload(browser, bad["huge.png"][0]) == "error"
        assert text(browser, "error").startswith("huge.png: ") and bad["huge.png"][1] in text(browser, "error")

        assert upload(browser, case["case"]) == "result"  # the page and the server still work
        assert browser.execute_script("return document.getElementById('error').hidden;")

        # no script error; the only errors are the refused uploads the page showed (Chrome logs every 4xx)
        severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        unexpected = [entry for entry in severe if not (entry["source"] == "network" and "/api/predict?" in
                                                        entry["message"] and "status of 4" in entry["message"])]
        assert not unexpected, unexpected
        assert any("status of 413" in entry["message"] for entry in severe)  # the server's own refusal was shown
