"""Whole numbers: pictures of several digits read left to right, through the API and the CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from digit_keras.cli import main
from digit_keras.serving import BUNDLED_MODEL_DIR
from digit_keras.serving.app import create_app, load_served_model
from digit_keras.serving.numbers import read_number, segment
from digit_keras.serving.preprocess import BadImage, picture_to_ink


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def printed(text: str, gap: int) -> Image.Image:
    """`text` in Pillow's own font, black on white, `gap` pixels between the glyphs' cells."""
    font = ImageFont.load_default(size=120)
    image = Image.new("L", (130 * len(text) + 80, 220), 255)
    draw, x = ImageDraw.Draw(image), 40
    for char in text:
        draw.text((x, 40), char, 0, font)
        x += font.getlength(char) + gap
    return image


def five_with_a_loose_flag_and_a_one() -> Image.Image:
    """A hand-drawn 5 whose flag does not touch its body (two pieces), then a 1."""
    image = Image.new("L", (400, 200), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(60, 40), (60, 100)], 0, 12)
    draw.arc((40, 80, 130, 170), 270, 150, 0, 12)
    draw.line([(70, 40), (130, 40)], 0, 12)
    draw.line([(250, 40), (250, 170)], 0, 12)
    return image


@pytest.fixture(scope="module")
def model():
    return load_served_model(BUNDLED_MODEL_DIR)


def test_pieces_of_one_digit_merge_and_separate_digits_stay_apart():
    pieces, _ = segment(picture_to_ink(png(five_with_a_loose_flag_and_a_one())))
    assert len(pieces) == 2 and len(pieces[0].marks) > 1  # the 5's flag joined its body
    assert pieces[0].box[0] < pieces[1].box[0]
    with pytest.raises(BadImage, match="no digit found"):
        segment(picture_to_ink(png(Image.new("L", (300, 100), 255))))


@pytest.mark.parametrize(
    ("picture", "number"),
    [
        (printed("2025", gap=20), "2025"),
        (printed("907", gap=60), "907"),
        (printed("36", gap=-12), "36"),  # the glyphs touch: one piece, split by reading it
        (five_with_a_loose_flag_and_a_one(), "51"),
    ],
    ids=["gaps", "wide-gaps", "touching", "loose-flag"],
)
def test_numbers_are_read_left_to_right(model, picture, number):
    if number == "36":
        pieces, _ = segment(picture_to_ink(png(picture)))
        assert len(pieces) == 1
    reading = read_number(png(picture), model.probabilities)
    assert reading.number == number
    boxes = np.array(reading.boxes)
    assert boxes.shape == (len(number), 4) and np.all(np.diff(boxes[:, 0]) > 0)


def test_the_number_route_answers_digits_with_boxes_and_refuses_blank_pictures(model):
    client = TestClient(create_app(model))
    files = {"file": ("year.png", png(printed("2025", gap=20)), "image/png")}
    answer = client.post("/predict/number", files=files).json()
    assert answer["number"] == "2025" and len(answer["digits"]) == 4
    for digit, label in zip(answer["digits"], "2025", strict=True):
        assert digit["label"] == int(label) and digit["top"][0] == digit["label"]
        assert len(digit["box"]) == 4 and 0.0 <= digit["confidence"] <= 1.0
    assert answer["sure"] == all(digit["sure"] for digit in answer["digits"])
    blank = {"file": ("blank.png", png(Image.new("L", (300, 100), 255)), "image/png")}
    response = client.post("/predict/number", files=blank)
    assert response.status_code == 400 and "no digit found" in response.json()["detail"]


def test_predict_number_prints_each_number_and_its_digits(tmp_path, capsys):
    printed("2025", gap=20).save(tmp_path / "year.png")
    Image.new("L", (300, 100), 255).save(tmp_path / "zblank.png")
    assert main(["predict", "--number", str(tmp_path / "year.png")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'year.png'}: 2025 (2 ") and line.count("%") == 4
    assert main(["predict", "--number", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "zblank.png: error: no digit found" in captured.out
    assert "1 of 2 pictures could not be read" in captured.err
