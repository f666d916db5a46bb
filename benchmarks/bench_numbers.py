"""Reading whole numbers: digit and whole-number accuracy on numbers composed from held-out digits.

Each number is 2-6 digits drawn from the 4,200 rows of train.csv that `fit`'s holdout (split
seed 0) keeps out of the bundled model's training. Each digit's ink is cropped, scaled to a
random height (40-90 px, all digits of a number within 20% of each other), shifted up or down by
up to 15% of that height, and placed after a random gap: 4-30 px between inks, or, for the
touching share, -4 to 0 px (strokes meet or cross). The picture (black ink on white, PNG) then
goes through `serving.numbers.read_number` with the model, as `POST /predict/number` does.

    python benchmarks/bench_numbers.py [--model MODEL] [--data DIR] [--numbers 500]
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image

from digit_keras.data import load_train
from digit_keras.data.split import stratified_holdout
from digit_keras.model_formats import load_predictor, locate
from digit_keras.serving import BUNDLED_MODEL_DIR
from digit_keras.serving.numbers import read_number
from digit_keras.serving.preprocess import BadImage

MARGIN = 20


def compose(digits: list[np.ndarray], touching: bool, rng: np.random.Generator) -> bytes:
    """A PNG of the 28x28 digits side by side, as described above."""
    height = rng.uniform(40, 90)
    placed, x = [], MARGIN
    for digit in digits:
        rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
        crop = Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
        scale = height * rng.uniform(0.9, 1.1) / crop.height
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        image = np.asarray(crop.resize(size, Image.Resampling.BILINEAR))
        if placed:
            x += int(rng.integers(-4, 1) if touching else rng.integers(4, 31))
        y = MARGIN + 20 + int(rng.uniform(-0.15, 0.15) * height)
        placed.append((x, y, image))
        x += image.shape[1]
    canvas = np.zeros((round(height * 1.6) + 2 * MARGIN + 40, x + MARGIN), np.float32)
    for left, top, image in placed:
        window = canvas[top : top + image.shape[0], left : left + image.shape[1]]
        np.maximum(window, image, out=window)  # touching strokes overlap, as ink would
    buffer = io.BytesIO()
    Image.fromarray(255 - canvas.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR / "model.onnx"))
    parser.add_argument("--data", help="folder with train.csv(.gz)")
    parser.add_argument("--numbers", type=int, default=500, help="numbers per row (default 500)")
    args = parser.parse_args()
    predict = load_predictor(locate(args.model))
    images, labels, _ = load_train("kaggle", args.data)
    _, holdout = stratified_holdout(labels, 0.1, seed=0)
    rng = np.random.default_rng(0)
    print(f"model: {args.model}; digits from the {len(holdout):,} held-out rows")
    print(f"{'numbers':28s}{'read exactly':>14s}{'digits right':>14s}{'wrong count':>13s}")
    for touching in (False, True):
        for length in (2, 4, 6):
            exact = right = total = miscounted = 0
            for _ in range(args.numbers):
                rows = rng.choice(holdout, length, replace=False)
                picture = compose([images[r].reshape(28, 28) for r in rows], touching, rng)
                truth = labels[rows]
                try:
                    reading = read_number(picture, lambda digits: predict(digits[..., None], 64))
                    read = reading.probabilities.argmax(axis=1)
                except BadImage:
                    read = np.array([], int)
                total += length
                if len(read) != length:
                    miscounted += 1
                    continue
                right += int(np.sum(read == truth))
                exact += int(np.array_equal(read, truth))
            name = f"{length} digits, {'touching' if touching else 'with gaps'}"
            print(
                f"{name:28s}{exact / args.numbers:14.2%}{right / total:14.2%}"
                f"{miscounted / args.numbers:13.2%}"
            )


if __name__ == "__main__":
    main()
