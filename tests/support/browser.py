"""Open a local HTML file in headless Chromium (Debian's `chromium` and `chromium-driver`) with Selenium and
report what a person would see: console errors, how many charts drew, and whether the page is blank.

The browser and its driver come from the system (`make test` installs them when it can); Selenium is
pointed at both, so its manager never tries to download a browser. Tests skip with the install hint
when either is missing.
"""
from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import pytest

INSTALL_HINT = "install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; `make test` does)"


@dataclasses.dataclass(frozen=True)
class PageView:
    console_errors: list[str]
    #: Charts (`svg.chart`) whose drawn content has a non-empty bounding box.
    drawn_charts: int
    charts: int
    #: Share of the screenshot's pixels that are not background white.
    ink: float
    screenshot: bytes


def chromium_or_skip() -> tuple[str, str]:
    """(browser, driver) executables, or skip the test with how to install them."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip(f"headless Chromium not found: {INSTALL_HINT}")
    return browser, driver


_DRAWN_CHARTS = """
return Array.from(document.querySelectorAll('svg.chart')).filter(svg => {
  const box = svg.getBBox();
  return box.width > 0 && box.height > 0 && svg.querySelectorAll('path, rect, use').length > 0;
}).length;
"""


def view(page: Path, width: int = 1280) -> PageView:
    """Load `page`, then read its console log, its charts and a full-height screenshot."""
    browser, driver_path = chromium_or_skip()
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.get(Path(page).resolve().as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(height), 16000))
        errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        drawn = driver.execute_script(_DRAWN_CHARTS)
        charts = driver.execute_script("return document.querySelectorAll('svg.chart').length")
        screenshot = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    gray = Image.open(io.BytesIO(screenshot)).convert("L")
    histogram = gray.histogram()
    ink = 1 - sum(histogram[250:]) / (gray.width * gray.height)
    return PageView(errors, drawn, charts, ink, screenshot)
