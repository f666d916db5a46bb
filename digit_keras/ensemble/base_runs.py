"""Load finished cv runs as ensemble members, refusing runs whose rows or folds differ."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_keras.errors import UserError
from digit_keras.scoring import log_softmax, softmax
from digit_keras.training import cv, runs


@dataclass
class BaseRun:
    name: str
    arch: str
    labels: np.ndarray  # (N,) training labels
    folds: np.ndarray  # (N,) fold number of each row
    oof_logits: np.ndarray  # (N, 10); NaN rows were never held out
    test_logits: np.ndarray  # (fold models, T, 10)

    @property
    def predicted_rows(self) -> np.ndarray:
        return ~np.isnan(self.oof_logits).any(axis=1)

    def oof_log_probabilities(self, rows: np.ndarray) -> np.ndarray:
        return log_softmax(self.oof_logits[rows])

    def test_log_probabilities(self) -> np.ndarray:
        """Log of the fold models' mean test-set probabilities: the run's test prediction."""
        return np.log(softmax(self.test_logits).mean(axis=0))


def load_run(path: str | Path) -> BaseRun:
    run_dir = Path(path)
    if not (run_dir / cv.CV_FILE).is_file():
        raise UserError(f"{run_dir}: not a cv run (no {cv.CV_FILE}); make one with: digit-keras cv")
    if not (run_dir / runs.METRICS_FILE).is_file():
        raise UserError(f"{run_dir}: this cv run has not finished; digit-keras cv --resume {path}")
    settings = json.loads((run_dir / cv.CV_FILE).read_text())
    try:
        return BaseRun(
            name=run_dir.name,
            arch=settings["arch"],
            labels=np.load(run_dir / cv.LABELS_FILE),
            folds=np.load(run_dir / cv.FOLDS_FILE),
            oof_logits=np.load(run_dir / cv.OOF_LOGITS_FILE),
            test_logits=np.load(run_dir / cv.TEST_LOGITS_FILE),
        )
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{run_dir}: cannot read the cv run: {err}") from None


def load_base_runs(paths: list[str]) -> tuple[list[BaseRun], np.ndarray]:
    """The runs and the rows every one of them predicted out of fold.

    Runs must share training rows, labels and fold assignment (same data, --folds and --seed);
    holdout-mode runs predict fold 0 only, so mixing them in restricts the ensemble to fold 0.
    """
    if len(paths) < 2:
        raise UserError("an ensemble needs at least two cv runs")
    if len({Path(path).resolve() for path in paths}) < len(paths):
        raise UserError("the same cv run is listed twice")
    members = [load_run(path) for path in paths]
    first, first_path = members[0], paths[0]
    for run, path in zip(members[1:], paths[1:], strict=True):
        if len(run.labels) != len(first.labels) or not np.array_equal(run.labels, first.labels):
            raise UserError(
                f"{path} and {first_path} were trained on different rows "
                f"({len(run.labels)} vs {len(first.labels)} rows, or other labels)"
            )
        if not np.array_equal(run.folds, first.folds):
            raise UserError(
                f"{path} and {first_path} hold out different folds; "
                "train both with the same --folds and --seed"
            )
        if run.test_logits.shape[1] != first.test_logits.shape[1]:
            raise UserError(f"{path} and {first_path} predicted test sets of different sizes")
    names = [run.name for run in members]
    if len(set(names)) < len(names):
        for run, path in zip(members, paths, strict=True):
            run.name = str(path)
    rows = np.logical_and.reduce([run.predicted_rows for run in members])
    return members, np.flatnonzero(rows)
