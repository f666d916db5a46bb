"""How often the service says "not sure": on digits it should read, and on pictures of no digit.

The service's `sure` (serving/doubt.py) is false when the top probability is under a threshold.
This measures, for a range of thresholds, the share of pictures flagged in each set, all made
here and sent through the service's own preprocessing (`serving.preprocess`):

- held-out digits: the 4,200 rows of train.csv that `fit`'s holdout (split seed 0) keeps out of
  the bundled model's training, each saved as a PNG first;
- UCI digits: real handwriting that is not MNIST (bench_handwriting.py);
- letters: A-Z and a-z rendered from the fonts on this machine (DejaVu where installed, and
  Pillow's own), at three slants; those that look like digits (O o I l i S s Z z B b g q G D)
  are counted apart, since "sure it is a 0" is a fair answer to an O;
- strokes: random scribbles of 1-4 polylines; smudges: blurred random blobs.

    python benchmarks/bench_doubt.py [--model MODEL] [--data DIR]
"""

from __future__ import annotations

import argparse
import io
import string
from pathlib import Path

import numpy as np
from bench_handwriting import uci_digits
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from digit_keras.data import load_train
from digit_keras.data.split import stratified_holdout
from digit_keras.model_formats import load_predictor, locate
from digit_keras.serving import BUNDLED_MODEL_DIR
from digit_keras.serving.doubt import SURE_PROBABILITY
from digit_keras.serving.preprocess import BadImage, picture_to_digit

DIGIT_LIKE = set("OoIliSsZzBbgqGD")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
SIDE = 200


def as_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def service_inputs(pictures: list[Image.Image]) -> np.ndarray:
    """The 28x28 images the service would make of `pictures` (blank ones dropped)."""
    digits = []
    for picture in pictures:
        try:
            digits.append(picture_to_digit(as_png(picture)))
        except BadImage:
            continue
    return np.stack(digits)[..., None]


def fonts() -> list[ImageFont.FreeTypeFont]:
    found = [ImageFont.truetype(str(path), 150) for path in sorted(FONT_DIR.glob("*.ttf"))]
    return [ImageFont.load_default(size=150), *found]


def letter_pictures(letters: str) -> list[Image.Image]:
    pictures = []
    for font in fonts():
        for letter in letters:
            for slant in (-12, 0, 12):
                image = Image.new("L", (SIDE, SIDE), 255)
                ImageDraw.Draw(image).text((SIDE / 2, SIDE / 2), letter, 0, font, anchor="mm")
                pictures.append(image.rotate(slant, fillcolor=255))
    return pictures


def stroke_pictures(count: int, rng: np.random.Generator) -> list[Image.Image]:
    pictures = []
    for _ in range(count):
        image = Image.new("L", (SIDE, SIDE), 255)
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(1, 5)):
            points = [tuple(rng.integers(20, SIDE - 20, 2)) for _ in range(rng.integers(2, 7))]
            draw.line(points, 0, int(rng.integers(6, 20)), joint="curve")
        pictures.append(image)
    return pictures


def smudge_pictures(count: int, rng: np.random.Generator) -> list[Image.Image]:
    pictures = []
    for _ in range(count):
        image = Image.new("L", (SIDE, SIDE), 255)
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(1, 6)):
            x, y = rng.integers(30, SIDE - 30, 2)
            rx, ry = rng.integers(5, 40, 2)
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), int(rng.integers(0, 120)))
        pictures.append(image.filter(ImageFilter.GaussianBlur(float(rng.uniform(2, 10)))))
    return pictures


def held_out_digits(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels, _ = load_train("kaggle", data_dir)
    _, holdout = stratified_holdout(labels, 0.1, seed=0)
    pictures = [Image.fromarray(image.reshape(28, 28)) for image in images[holdout]]
    return service_inputs(pictures), labels[holdout]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR / "model.onnx"))
    parser.add_argument("--data", help="folder with train.csv(.gz)")
    args = parser.parse_args()
    predict = load_predictor(locate(args.model))
    rng = np.random.default_rng(0)
    letters = string.ascii_letters
    sets = {
        "held-out digits": held_out_digits(args.data),
        "UCI digits": uci_digits(),
        "letters": (
            service_inputs(letter_pictures(letters.translate({ord(c): None for c in DIGIT_LIKE}))),
            None,
        ),
        "digit-like letters": (service_inputs(letter_pictures("".join(sorted(DIGIT_LIKE)))), None),
        "strokes": (service_inputs(stroke_pictures(600, rng)), None),
        "smudges": (service_inputs(smudge_pictures(300, rng)), None),
    }
    print(f"model: {args.model}; the service's threshold: {SURE_PROBABILITY}")
    header = "".join(f"{t:>8}" for t in THRESHOLDS)
    print(f"{'share flagged (top probability under)':42s}{header}")
    for name, (images, labels) in sets.items():
        top = predict(images, 512).max(axis=1)
        flagged = "".join(f"{np.mean(top < t):8.2%}" for t in THRESHOLDS)
        print(f"{name + f' ({len(images):,})':42s}{flagged}")
        if labels is not None:
            correct = predict(images, 512).argmax(axis=1) == labels
            right = "".join(f"{correct[top >= t].mean():8.2%}" for t in THRESHOLDS)
            caught = "".join(f"{np.mean(top[~correct] < t):8.2%}" for t in THRESHOLDS)
            print(f"{'  accuracy of the sure answers':42s}{right}")
            print(f"{f'  mistakes flagged (of {np.sum(~correct)})':42s}{caught}")


if __name__ == "__main__":
    main()
