"""Pseudo-labels: test-set images labelled by finished models (the teacher), to train on.

test.csv has no labels, so a teacher's confident test-set predictions can stand in for them
(semi-supervised learning). The rule that keeps the student's score honest: a model scored on
held-out rows R learns only from pseudo-labels made by teacher models that never trained on R.
Otherwise what the teacher learnt from R's labels reaches the student through the test images,
and R no longer measures unseen data.

A teacher is a finished cv run, one member file, or a folder of member files (e.g. the committed
members of a bag, so a clone can reproduce a student without the teacher's run). A cv run's
models record their `train_rows.npy`; for a student fold k of the same split that leaves the
teacher's fold-k model, for a bag member on fold 0 every model of a bag or holdout teacher, and
for a student that holds nothing out (a full-data member, for submissions) every teacher model.
A member file records only the rows it predicted out of fold: where they lie in one fold, its
test prediction comes from models that all held them out (one fold's model, a holdout, a bag),
so those rows are the ones it never trained on; a k-fold run's own member file mixes fold models
that between them trained on every row, so it teaches only a student that holds nothing out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_keras import layout
from digit_keras.errors import UserError
from digit_keras.members import load_member
from digit_keras.scoring import softmax


@dataclass
class TeacherModel:
    untouched: np.ndarray  # rows of train.csv that it (every model behind it) never trained on
    test_logits: np.ndarray  # (test images, 10): logits or log-probabilities


def _run_models(run_dir: Path, labels: np.ndarray) -> list[TeacherModel]:
    if not np.array_equal(np.load(run_dir / layout.LABELS_FILE), labels):
        raise UserError(f"{run_dir}: the teacher trained on other rows than the data given")
    every_row = np.arange(len(labels))
    models = []
    for directory in layout.model_dirs(run_dir):
        files = (directory / layout.TRAIN_ROWS_FILE, directory / layout.TEST_LOGITS_FILE)
        if all(path.is_file() for path in files):
            untouched = np.setdiff1d(every_row, np.load(files[0]))
            models.append(TeacherModel(untouched, np.load(files[1])))
    return models


def _member_model(path: Path, labels: np.ndarray) -> TeacherModel:
    member = load_member(path, labels)
    predicted = np.flatnonzero(member.predicted_rows)
    one_fold = len(np.unique(member.folds[predicted])) == 1
    untouched = predicted if one_fold else np.array([], dtype=np.int64)
    return TeacherModel(untouched, member.test_log_probabilities())


def teacher_models(teacher: str | Path, labels: np.ndarray) -> list[TeacherModel]:
    """Each finished model of `teacher` (a cv run, a member file or a folder of member files)
    trained on the rows whose `labels` are given."""
    path = Path(teacher)
    if (path / layout.CV_FILE).is_file():
        models = _run_models(path, labels)
    elif path.is_file():
        models = [_member_model(path, labels)]
    elif path.is_dir():
        models = [_member_model(file, labels) for file in sorted(path.glob("*.npz"))]
    else:
        raise UserError(f"{path}: no such teacher (a cv run, a member file or a folder of them)")
    if not models:
        raise UserError(
            f"{path}: nothing to teach: pseudo-labels come from a finished cv run, a member "
            "file or a folder of member files"
        )
    return models


def pseudo_labels(
    teacher: str | Path,
    labels: np.ndarray,
    held_out: np.ndarray,
    threshold: float,
    test_rows: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(test-set rows, their labels): the test images that the teacher's models which never
    trained on `held_out` give a mean top probability of at least `threshold`."""
    models = teacher_models(teacher, labels)
    allowed = [m.test_logits for m in models if np.isin(held_out, m.untouched).all()]
    if not allowed:
        raise UserError(
            f"{teacher}: every model of the teacher trained on rows this model is scored on; "
            "train the teacher with the same --folds and --split-seed (or --bag), so that the "
            "teacher of each fold held that fold out (a k-fold run's own member file mixes "
            "its folds: give the run or its folds' member files)"
        )
    if allowed[0].shape[0] != test_rows:
        raise UserError(
            f"{teacher}: predicted {allowed[0].shape[0]} test images, not the {test_rows} given"
        )
    probabilities = np.mean([softmax(logits) for logits in allowed], axis=0)
    kept = np.flatnonzero(probabilities.max(axis=1) >= threshold)
    return kept, probabilities[kept].argmax(axis=1).astype(np.int32)
