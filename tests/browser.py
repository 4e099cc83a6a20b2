"""Headless Debian chromium for the browser tests (installed by `make browser`, never downloaded).

The ``browser`` fixture is a Selenium driver of /usr/bin/chromium with /usr/bin/chromedriver, a
fresh profile and the flags that keep it off the (closed) network; it skips the test, with the
reason, where either is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")
WAIT_S = 120  # a loaded 2-core machine: generous, never asserted as a speed


@pytest.fixture
def browser(tmp_path: Path, monkeypatch):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"no headless browser: {CHROMIUM} or {CHROMEDRIVER} is absent (Debian packages chromium, "
                    f"chromium-driver; `make browser` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
