"""Pseudo-labels: test-set images labelled by a finished cv run (the teacher), to train on.

test.csv has no labels, so a teacher's confident test-set predictions can stand in for them
(semi-supervised learning). The rule that keeps the student's score honest: a model scored on
held-out rows R learns only from pseudo-labels made by teacher models that never trained on R.
Otherwise what the teacher learnt from R's labels reaches the student through the test images,
and R no longer measures unseen data. Each teacher model's training rows are its
`train_rows.npy`; for a student fold k of the same split that leaves the teacher's fold-k model,
for a bag member on fold 0 every model of a bag or holdout teacher, and for a student that holds
nothing out (a full-data member, for submissions) every teacher model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digit_keras import layout
from digit_keras.errors import UserError
from digit_keras.scoring import softmax


def teacher_models(teacher: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, test-set logits) of each finished model of the cv run `teacher`."""
    run_dir = Path(teacher)
    if not (run_dir / layout.CV_FILE).is_file():
        raise UserError(f"{run_dir}: pseudo-labels come from a cv run, and this is not one")
    models = []
    for directory in layout.model_dirs(run_dir):
        files = (directory / layout.TRAIN_ROWS_FILE, directory / layout.TEST_LOGITS_FILE)
        if all(path.is_file() for path in files):
            models.append((np.load(files[0]), np.load(files[1])))
    if not models:
        raise UserError(f"{run_dir}: no finished model with {layout.TRAIN_ROWS_FILE} to teach")
    return models


def pseudo_labels(
    teacher: str | Path, held_out: np.ndarray, threshold: float, test_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """(test-set rows, their labels): the test images that the teacher's models which never
    trained on `held_out` give a mean top probability of at least `threshold`."""
    models = teacher_models(teacher)
    allowed = [logits for rows, logits in models if not np.isin(rows, held_out).any()]
    if not allowed:
        raise UserError(
            f"{teacher}: every model of the teacher trained on rows this model is scored on; "
            "train the teacher with the same --folds and --split-seed (or --bag), so that the "
            "teacher of each fold held that fold out"
        )
    if allowed[0].shape[0] != test_rows:
        raise UserError(
            f"{teacher}: predicted {allowed[0].shape[0]} test images, not the {test_rows} given"
        )
    probabilities = np.mean([softmax(logits) for logits in allowed], axis=0)
    kept = np.flatnonzero(probabilities.max(axis=1) >= threshold)
    return kept, probabilities[kept].argmax(axis=1).astype(np.int32)
