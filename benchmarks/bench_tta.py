"""Test-time augmentation measured on out-of-fold rows of a finished cv run.

Re-predicts each fold's held-out rows with its saved fold model, plain, with TTA (the image
and its four one-pixel shifts, keras_inference.py) and with the full 3x3 grid of one-pixel
shifts (nine views, to see whether more views pay for their cost), and prints the accuracies per
fold and overall. With --member FILE it also predicts test.csv with TTA and writes the run as an
ensemble member file with TTA logits, so TTA members join `ensemble` without retraining.

    python benchmarks/bench_tta.py RUN_DIR [--data DIR] [--member FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from digit_keras import layout
from digit_keras.data import load_test, load_train
from digit_keras.keras_inference import load_model, predict_logits
from digit_keras.members import BaseRun, save_member
from digit_keras.scoring import logit_scores
from digit_keras.training import cv


def _scores(logits: np.ndarray, labels: np.ndarray) -> str:
    wrong = int(np.sum(logits.argmax(axis=1) != labels))
    scores = logit_scores(logits, labels)
    return f"{scores['accuracy']:.4%} ({wrong} wrong), log-loss {scores['log_loss']:.4f}"


GRID_SHIFTS = tuple((rows, columns) for rows in (0, 1, -1) for columns in (0, 1, -1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished cv run directory")
    parser.add_argument("--data", help="folder with train.csv(.gz) and test.csv(.gz)")
    parser.add_argument("--member", type=Path, help="write a TTA member file here")
    args = parser.parse_args()

    settings = json.loads((args.run / layout.CV_FILE).read_text())
    images, labels, _ = load_train("kaggle", args.data)
    if not np.array_equal(labels, np.load(args.run / layout.LABELS_FILE)):
        raise SystemExit(f"{args.run}: trained on other rows than --data holds")
    folds = np.load(args.run / layout.FOLDS_FILE)
    test_images = load_test("kaggle", args.data)[0] if args.member else None
    plain = np.full((len(labels), 10), np.nan, np.float32)
    tta = np.full_like(plain, np.nan)
    grid = np.full_like(plain, np.nan)
    test_logits = []
    started = time.perf_counter()
    for fold in range(settings["trained_folds"]):
        rows = np.flatnonzero(folds == fold)
        model = load_model(layout.model_dirs(args.run)[fold] / layout.MODEL_FILE)
        plain[rows] = predict_logits(model, images[rows], cv.PREDICT_BATCH)  # also for a --tta run
        tta[rows] = predict_logits(model, images[rows], cv.PREDICT_BATCH, tta=True)
        grid[rows] = predict_logits(
            model, images[rows], cv.PREDICT_BATCH, tta=True, shifts=GRID_SHIFTS
        )
        if test_images is not None:
            test_logits.append(predict_logits(model, test_images, cv.PREDICT_BATCH, tta=True))
        print(f"fold {fold}: plain {_scores(plain[rows], labels[rows])}")
        print(f"fold {fold}: tta   {_scores(tta[rows], labels[rows])}")
        print(f"fold {fold}: grid  {_scores(grid[rows], labels[rows])}")
    done = np.flatnonzero(~np.isnan(plain[:, 0]))
    print(f"all {len(done)} out-of-fold rows: plain {_scores(plain[done], labels[done])}")
    print(f"all {len(done)} out-of-fold rows: tta   {_scores(tta[done], labels[done])}")
    print(f"all {len(done)} out-of-fold rows: grid  {_scores(grid[done], labels[done])}")
    print(f"{time.perf_counter() - started:.0f} s")
    if args.member:
        member = BaseRun(
            f"{args.run.name}-tta", settings["arch"], labels, folds, tta, np.stack(test_logits)
        )
        save_member(member, args.member)
        print(f"wrote {args.member}")


if __name__ == "__main__":
    main()
