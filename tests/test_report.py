"""`digit-keras report` on tiny synthetic runs: sections, images, numbers, a browser, bad input."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digit_keras.cli import main
from digit_keras.label_audit import suspect_labels
from digit_keras.scoring import softmax
from tests.conftest import write_kaggle_data

pytestmark = pytest.mark.slow
TINY = ["--set", "model.width=4", "--batch-size", "32", "--epochs", "1", "--seed", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A fit run and two cv runs (fold 0 of 2) of the same seed on synthetic data."""
    root = tmp_path_factory.mktemp("runs")
    data = ["--data", str(write_kaggle_data(root / "data"))]
    assert main(["fit", *data, *TINY, "--out", str(root / "fit")]) == 0
    for name, width in (("cv-a", 4), ("cv-b", 6)):
        argv = ["cv", *data, *TINY, "--folds", "2", "--holdout", "--set", f"model.width={width}"]
        assert main([*argv, "--out", str(root / name)]) == 0
    return root


def _report(runs: Path, *names: str, out: Path | None = None) -> str:
    argv = ["report", *(str(runs / name) for name in names), "--data", str(runs / "data")]
    assert main([*argv, *(["--out", str(out)] if out else [])]) == 0
    return (out or runs / names[0] / "report.html").read_text()


def _embedded_images(page: str) -> list[Image.Image]:
    encoded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in encoded]


def test_fit_report_has_every_section_and_the_runs_numbers(runs):
    page = _report(runs, "fit")
    metrics = json.loads((runs / "fit" / "metrics.json").read_text())
    for anchor in ("confusion", "mistakes", "confident", "audit", "calibration", "curves-fit"):
        assert f'<section id="{anchor}">' in page
    assert f'<b id="accuracy">{metrics["holdout_accuracy"]:.2%}</b>' in page
    assert f"of {metrics['holdout_images']:,} held-out rows" in page
    assert metrics["command"].startswith("digit-keras") and metrics["commit"] in page
    assert "[model]\nwidth = 4" in page  # the run's config.toml
    with np.load(runs / "fit" / "holdout.npz") as holdout:
        suspects = suspect_labels(holdout["labels"].astype(np.int64), softmax(holdout["logits"]))
    assert len(suspects), "the 1-epoch model disputes some labels: the audit gallery is drawn"
    assert f"Labels that look wrong ({len(suspects)})</h2>" in page
    images = _embedded_images(page)
    assert len(images) == 6 and all(image.format == "PNG" and image.width > 200 for image in images)
    beside = sorted(path.name for path in (runs / "fit").glob("report-*.png"))
    charts = ("audit", "calibration", "confident", "confusion", "curves-fit", "mistakes")
    assert beside == [f"report-{name}.png" for name in charts]
    assert "http" not in page.replace("http-equiv", "")  # no external assets


def test_several_cv_runs_are_compared_as_an_ensemble(runs, tmp_path):
    page = _report(runs, "cv-a", "cv-b", out=tmp_path / "ensemble.html")
    assert '<section id="comparison">' in page and "the mean ensemble of the runs" in page
    for name in ("cv-a", "cv-b"):
        metrics = json.loads((runs / name / "metrics.json").read_text())
        assert f"<td>{name} (basic)</td>\n      <td>{metrics['oof_accuracy']:.2%}</td>" in page
        assert f'<section id="curves-{name}">' in page
    assert re.search(r"The members disagree on <b>\d+</b> rows", page)
    assert (tmp_path / "ensemble-disagreement.png").is_file()
    labels = np.load(runs / "cv-a" / "labels.npy")
    held_out = np.load(runs / "cv-a" / "folds.npy") == 0
    wrong = [
        np.load(runs / name / "oof_logits.npy")[held_out].argmax(axis=1) != labels[held_out]
        for name in ("cv-a", "cv-b")
    ]
    missed_by_both = np.sum(wrong[0] & wrong[1])
    assert missed_by_both > 0  # tiny one-epoch models: the sentence below says something
    assert f"Every member is wrong on <b>{missed_by_both:,}</b> rows" in page


def test_the_oracle_ceiling_says_plainly_when_no_row_is_missed_by_every_member():
    from digit_keras.report.page import _oracle_ceiling

    assert "No row is missed by every member" in _oracle_ceiling(np.zeros(4, bool), 0)
    some = _oracle_ceiling(np.array([True, False, False, False]), 1)
    assert "wrong on <b>1</b> rows" in some and "stay at 75.00%" in some


def test_report_renders_in_chromium_without_console_errors(runs, tmp_path):
    chromedriver = shutil.which("chromedriver")
    if not chromedriver:
        pytest.skip("needs Debian's chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    _report(runs, "cv-a", out=page)
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1300,2000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        driver.get(page.as_uri())
        metrics = json.loads((runs / "cv-a" / "metrics.json").read_text())
        assert driver.find_element(By.ID, "accuracy").text == f"{metrics['oof_accuracy']:.2%}"
        widths = driver.execute_script(
            "return [...document.images].map(i => i.complete ? i.naturalWidth : 0)"
        )
        charts = page.read_text().count("<img ")  # 5, and the audit's gallery if it has one
        assert charts >= 5 and len(widths) == charts and min(widths) > 200  # every one decoded
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        assert driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert Image.open(tmp_path / "report.png").size[0] > 1000


def test_bad_inputs_are_one_line_errors(runs, tmp_path, capsys):
    data = ["--data", str(runs / "data")]
    no_holdout = ["fit", *data, *TINY, "--val-fraction", "0", "--out", str(tmp_path / "all")]
    assert main(no_holdout) == 0
    half = tmp_path / "half"
    shutil.copytree(runs / "fit", half, ignore=shutil.ignore_patterns("report*"))
    (half / "metrics.json").unlink()
    cases = {
        str(runs / "data"): "not a run directory (no config.toml)",
        str(tmp_path / "all"): "has no holdout rows (val_fraction = 0)",
        str(half): f"the run is unfinished (no metrics.json); finish it with --resume {half}",
    }
    capsys.readouterr()
    for run, message in cases.items():
        assert main(["report", run, *data]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1
    assert main(["report", str(runs / "cv-a"), str(runs / "fit"), *data]) == 2
    assert "give cv runs; fit is not" in capsys.readouterr().err
    assert main(["report", str(runs / "fit"), "--data", str(tmp_path / "nowhere")]) == 2
    assert "train.csv" in capsys.readouterr().err
    assert not list(tmp_path.glob("**/report*"))
