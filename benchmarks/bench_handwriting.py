"""Accuracy on real handwriting that is not MNIST: the UCI handwritten digits in scikit-learn.

Kaggle's digits are all MNIST, so held-out accuracy says little about pictures people draw or
photograph. The UCI set (1,797 digits by 43 writers, 8x8 with 17 grey levels; never used for
training here) is another source of handwriting. Each digit is saved as a PNG and goes through
the same preprocessing as a picture sent to the service (`serving.preprocess`), so its coarse
8x8 grid is scaled up like any small picture: compare models on it, do not read it as the
accuracy on a clear drawing.

    python benchmarks/bench_handwriting.py MODEL [MODEL ...] [--mean]

MODEL is anything `predict --model` takes; a cv run directory stands for its fold models, scored
one by one. `--mean` also scores the mean of every model's probabilities, the ensemble that
`digit-keras bundle` would make of them.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from digit_keras import layout
from digit_keras.ensemble.combine import mean_probabilities
from digit_keras.errors import UserError
from digit_keras.model_formats import load_predictor, locate
from digit_keras.serving.preprocess import picture_to_digit

UCI_LEVELS = 16  # the UCI digits' grey levels run 0-16


def uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28, 1) uint8 images as the service would see them, and their labels."""
    digits = load_digits()
    pictures = []
    for grid in digits.images:
        png = io.BytesIO()
        Image.fromarray(np.uint8(np.round(grid * 255 / UCI_LEVELS))).save(png, format="PNG")
        pictures.append(picture_to_digit(png.getvalue()))
    return np.stack(pictures)[..., None], digits.target


def models_of(spec: str) -> list[str]:
    """A cv run's models (folds or bag members), or the one model `spec` names."""
    if not (Path(spec) / layout.CV_FILE).is_file():
        return [spec]
    return [str(directory) for directory in layout.model_dirs(Path(spec))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model or cv run directory")
    parser.add_argument(
        "--mean", action="store_true", help="also score the mean of all the models' probabilities"
    )
    args = parser.parse_args()
    images, labels = uci_digits()
    print(f"{len(labels):,} UCI handwritten digits (scikit-learn's load_digits), never trained on")
    every_model = []
    for spec in args.models:
        accuracies = []
        for model in models_of(spec):
            try:
                predict = load_predictor(locate(model))
            except UserError as err:
                raise SystemExit(f"bench_handwriting: error: {err}") from None
            every_model.append(predict(images, 512))
            accuracies.append(_print_accuracy(model, every_model[-1], labels))
        if len(accuracies) > 1:
            print(
                f"{spec}: mean of {len(accuracies)} models {np.mean(accuracies):.2%} "
                f"(from {min(accuracies):.2%} to {max(accuracies):.2%})"
            )
    if args.mean:
        _print_accuracy(
            f"mean probability of {len(every_model)} models",
            mean_probabilities(np.stack(every_model)),
            labels,
        )


def _print_accuracy(name: str, probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Print and return the accuracy of `probabilities` (N, 10)."""
    correct = probabilities.argmax(axis=1) == labels
    print(f"{name}: {correct.mean():.2%} ({np.sum(~correct)} wrong)")
    return float(correct.mean())


if __name__ == "__main__":
    main()
