"""A real headless Chromium (Debian's chromium + chromium-driver) opens the live view.

It checks what a person would: the video shows a face box with a label (pixels of the video
element), the face list names an emotion with confidence bars, the timeline gains points and
the health table is filled. The screenshot is kept in ``build/test-artifacts/`` (or
``$EMOPI_TEST_ARTIFACTS``); ``docs/live-view.png`` in the README is one of these.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from httpkit import ARTIFACTS, View

from emopi.edge.contract import LABELS

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1300",
)
GREEN = np.array([0, 200, 0])  # BGR of a classified face's box and label background
WHITE_ON_GREEN = 50  # label text pixels inside the label box, at least


@pytest.fixture
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.fail("chromium is not installed: apt-get install -y chromium chromium-driver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="emopi-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.page_load_strategy = "eager"  # the MJPEG image never finishes loading
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def text(driver, selector: str) -> str:
    """The text of the first element matching ``selector`` now ("" when none).

    The page redraws its lists every second, so element handles go stale: read by script.
    """
    script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';"
    return str(driver.execute_script(script, selector))


def label_pixels(png: bytes) -> tuple[int, int]:
    """(green box pixels, white text pixels on green rows) of a screenshot of the video."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    green = np.abs(image.astype(int) - GREEN).sum(axis=2) < 90
    rows = np.where(green.sum(axis=1) > 20)[0]  # the label's filled background spans rows
    white = (image.min(axis=2) > 200)[rows] if rows.size else np.zeros((0,), bool)
    return int(green.sum()), int(white.sum())


def test_page_shows_video_faces_timeline_and_health(browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    view = View("--source", "demo")
    try:
        view.wait_for(lambda: view.answers() and view.state()["face_count"], what="a face")
        browser.get(view.base + "/")
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        video = browser.find_element(By.ID, "video")
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", video) > 0)
        title = wait.until(lambda d: "%" in (t := text(d, "#faces .face .title")) and t)
        bars = browser.execute_script("return document.querySelectorAll('#faces .bar').length")
        canvas = browser.find_element(By.ID, "timeline")
        points = int(wait.until(lambda d: canvas.get_attribute("data-points")))
        wait.until(lambda d: int(canvas.get_attribute("data-points")) > points)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#events li"))
        health = text(browser, "#health")
        for key in ("fps", "dropped frames", "MQTT", "spool depth", "uptime", "throttling"):
            assert key in health
        assert "live" in text(browser, "#status")
        green, white = wait.until(lambda d: (px := label_pixels(video.screenshot_as_png))[1] and px)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page = ARTIFACTS / "live-view.png"
        browser.save_screenshot(str(page))
        (ARTIFACTS / "live-view-video.png").write_bytes(video.screenshot_as_png)
    finally:
        code = view.stop()  # the page still streams video and events: a clean stop all the same
    assert code == 0, view.emopi.stderr()
    track, emotion, confidence = title.split()
    assert track.startswith("#") and emotion in LABELS and confidence.endswith("%")
    assert bars == len(LABELS)  # one confidence bar per emotion
    assert green > 500, "no face box in the video element"
    assert white >= WHITE_ON_GREEN, "no label text on the box's label background"
    assert page.stat().st_size > 10_000
