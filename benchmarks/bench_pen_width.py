"""Accuracy on held-out digits re-drawn with a thicker pen, through the service's preprocessing.

A pen has a fixed width, so a digit drawn small reaches the model with thicker strokes than
MNIST's: the draw-a-digit page's pen is 18 px on a 280 px pad, so a digit drawn 80 px tall has
strokes about 4.5 px wide once scaled into MNIST's 20 px box, about twice MNIST's. This re-draws
each held-out digit of a run: its ink (pixels above half of 255) grown by PEN pixels (4-connected
binary dilation), anti-aliased by a Gaussian of 0.6 px, then cropped, scaled and centred by the
service's own step (`serving.preprocess.mnist_style`). PEN 0 is the re-drawing alone, so the drop
from the original rows to PEN 0 is the price of another renderer and the drop after it is the
pen's.

    python benchmarks/bench_pen_width.py RUN [RUN ...] [--data DIR] [--mean]

RUN is a fit run or a cv run (its fold models, each scored on the rows it did not train on).
`--mean` also scores the mean of all the models' probabilities (the ensemble `digit-keras bundle`
makes of fit runs that held out the same rows; refused for models that did not).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_handwriting import models_of
from scipy import ndimage

from digit_keras import layout
from digit_keras.data import load_train
from digit_keras.ensemble.combine import mean_probabilities
from digit_keras.errors import UserError
from digit_keras.model_formats import load_predictor, locate
from digit_keras.serving.preprocess import mnist_style

PENS = (0, 1, 2)  # pixels added to the strokes on every side
CROSS = ndimage.generate_binary_structure(2, 1)


def redrawn(image: np.ndarray, pen: int) -> np.ndarray:
    """One 28x28 digit drawn again with its strokes `pen` pixels thicker, MNIST-style (uint8)."""
    ink = image > 127
    if pen:
        ink = ndimage.binary_dilation(ink, structure=CROSS, iterations=pen)
    return mnist_style(ndimage.gaussian_filter(ink * 255.0, 0.6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="fit or cv run directory")
    parser.add_argument("--data", help="folder with train.csv(.gz)")
    parser.add_argument(
        "--mean", action="store_true", help="also score the mean of all the models' probabilities"
    )
    args = parser.parse_args()
    images = {}  # dataset -> its training images, read once
    every_model = []  # (held-out rows, probabilities of each view)
    print("held-out rows: as they are, then re-drawn with pens " + ", ".join(map(str, PENS)))
    for spec in args.runs:
        table = []
        for model in models_of(spec):
            path = Path(model)
            try:
                dataset = layout.run_dataset(path)
                if dataset not in images:
                    images[dataset] = load_train(dataset, args.data)[0]
                with np.load(path / layout.HOLDOUT_FILE) as holdout:
                    rows, labels = holdout["rows"], holdout["labels"]
                predict = load_predictor(locate(model))
            except (UserError, OSError) as err:
                raise SystemExit(f"bench_pen_width: error: {model}: {err}") from None
            held_out = images[dataset][rows].reshape(-1, 28, 28)
            views = [held_out] + [np.stack([redrawn(x, pen) for x in held_out]) for pen in PENS]
            probabilities = np.stack([predict(view[..., None], 512) for view in views])
            every_model.append((rows, probabilities))
            table.append(_accuracies(probabilities, labels))
            print(f"{model}: " + " / ".join(f"{a:.2%}" for a in table[-1]), flush=True)
        if len(table) > 1:
            means = np.mean(table, axis=0)
            print(f"{spec}: mean of {len(table)} models " + " / ".join(f"{a:.2%}" for a in means))
    if args.mean:
        if any(not np.array_equal(rows, every_model[0][0]) for rows, _ in every_model):
            raise SystemExit(
                "bench_pen_width: error: --mean needs models that held out the same rows"
            )
        mean = mean_probabilities(np.stack([p for _, p in every_model]))  # the same rows, labels
        print(
            f"mean probability of {len(every_model)} models: "
            + " / ".join(f"{a:.2%}" for a in _accuracies(mean, labels))
        )


def _accuracies(probabilities: np.ndarray, labels: np.ndarray) -> list[float]:
    """Accuracy of each view's (views, N, 10) probabilities."""
    return [float(np.mean(view.argmax(axis=1) == labels)) for view in probabilities]


if __name__ == "__main__":
    main()
