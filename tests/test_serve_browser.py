"""The draw-a-digit page in a real browser: headless Chromium against the real server.

Needs Debian's chromium and chromium-driver (`.ci/run` installs them); skipped where they are
missing. Nothing is downloaded at run time: Selenium is pointed at the system chromedriver.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from digit_keras.serving import BUNDLED_MODEL_DIR
from tests.conftest import serving

CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMEDRIVER, reason="needs Debian's chromium-driver"),
    pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "model.onnx").is_file(), reason="no bundled model"),
]


@pytest.fixture(scope="module")
def server_url():
    """`digit-keras serve` with the bundled model, as a user starts it; stopped by the test."""
    with serving() as (_, url):
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1000,800",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _draw(browser, strokes: list[list[tuple[int, int]]], pad_id: str = "pad") -> None:
    """Mouse strokes on a canvas; points are pixels from the canvas's centre."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = browser.find_element(By.ID, pad_id)
    for stroke in strokes:
        actions = ActionChains(browser, duration=10)
        actions.move_to_element_with_offset(pad, *stroke[0]).click_and_hold()
        previous = stroke[0]
        for point in stroke[1:]:
            actions.move_by_offset(point[0] - previous[0], point[1] - previous[1])
            previous = point
        actions.release().perform()


def _shown_label(browser, previous: str = "-") -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    label = browser.find_element(By.ID, "label")
    WebDriverWait(browser, 10).until(lambda _: label.text not in ("", previous))
    return label.text


def test_drawing_a_digit_shows_the_prediction_and_what_the_model_saw(
    server_url, browser, tmp_path: Path
):
    from selenium.webdriver.common.by import By

    browser.get(server_url)
    seven = [[(-70, -80), (0, -80), (70, -80), (35, 0), (0, 90)]]
    _draw(browser, seven)
    assert _shown_label(browser) == "7"
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars li")
    assert len(bars) == 10 and "%" in bars[7].text
    browser.save_screenshot(str(tmp_path / "seven.png"))

    browser.find_element(By.ID, "clear").click()
    assert browser.find_element(By.ID, "label").text == "-"
    _draw(browser, [[(0, -90), (0, -30), (0, 30), (0, 90)]])
    assert _shown_label(browser) == "1"
    seen = browser.execute_script(
        "const d = document.getElementById('seen').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data; let s = 0; for (const v of d) s += v; return s;"
    )
    assert seen > 28 * 28 * 255  # alpha alone sums to that: the 28x28 view shows ink
    logs = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not logs, logs


def test_writing_a_number_shows_it_and_each_digit_in_its_box(server_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server_url)
    one = [(-250, -70), (-250, 0), (-250, 70)]
    seven = [(-120, -70), (-60, -70), (0, -70), (-30, 0), (-60, 70)]
    four = [[(80, -70), (60, 0), (50, 20), (110, 20), (150, 20)], [(120, -70), (120, 0), (120, 70)]]
    _draw(browser, [one, seven, *four], "numberPad")
    # Each stroke is read as it lands: wait for the reading of all of them.
    number = browser.find_element(By.ID, "number")
    WebDriverWait(browser, 10).until(lambda _: number.text == "174")
    browser.save_screenshot(str(tmp_path / "number.png"))
    # The layer over the pad shows a box per digit: green pixels (sure) or orange (not sure).
    coloured = browser.execute_script(
        "const d = document.getElementById('boxes').getContext('2d')"
        ".getImageData(0, 0, 720, 200).data; let n = 0;"
        "for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;"
    )
    assert coloured > 3 * 2 * 2 * 100  # three boxes' outlines, at least
    logs = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not logs, logs
