"""Load ensemble members, refusing members whose rows or folds differ.

A member is a finished cv run directory, or a member file (members.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from digit_keras import layout
from digit_keras.errors import UserError
from digit_keras.members import BaseRun, load_member


def load_run(path: str | Path) -> BaseRun:
    run_dir = Path(path)
    if not (run_dir / layout.CV_FILE).is_file():
        raise UserError(
            f"{run_dir}: not a cv run (no {layout.CV_FILE}); make one with: digit-keras cv"
        )
    if not (run_dir / layout.METRICS_FILE).is_file():
        raise UserError(f"{run_dir}: this cv run has not finished; digit-keras cv --resume {path}")
    settings = json.loads((run_dir / layout.CV_FILE).read_text())
    try:
        return BaseRun(
            name=run_dir.name,
            arch=settings["arch"],
            labels=np.load(run_dir / layout.LABELS_FILE),
            folds=np.load(run_dir / layout.FOLDS_FILE),
            oof_logits=np.load(run_dir / layout.OOF_LOGITS_FILE),
            test_logits=np.load(run_dir / layout.TEST_LOGITS_FILE),
        )
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{run_dir}: cannot read the cv run: {err}") from None


def load_base_runs(
    paths: list[str], labels=None, at_least: int = 2
) -> tuple[list[BaseRun], np.ndarray]:
    """The members (cv run directories or member files) and the rows all predicted out of fold.

    Members must share training rows, labels and fold assignment (same data, --folds and
    --seed); holdout-mode runs predict fold 0 only, so mixing them in restricts the ensemble to
    fold 0. `labels` (a callable returning the training labels) is needed for member files only.
    """
    if len(paths) < at_least:
        raise UserError(f"this needs at least {at_least} members; {len(paths)} given")
    if len({Path(path).resolve() for path in paths}) < len(paths):
        raise UserError("the same member is listed twice")
    members = [
        load_member(Path(path), labels()) if str(path).endswith(".npz") else load_run(path)
        for path in paths
    ]
    first, first_path = members[0], paths[0]
    for run, path in zip(members[1:], paths[1:], strict=True):
        if len(run.labels) != len(first.labels) or not np.array_equal(run.labels, first.labels):
            raise UserError(
                f"{path} and {first_path} were trained on different rows "
                f"({len(run.labels)} vs {len(first.labels)} rows, or other labels)"
            )
        if not np.array_equal(run.folds, first.folds):
            raise UserError(
                f"{path} and {first_path} hold out different folds; train both with the same "
                "--folds and --split-seed, and digit-keras 0.2 or later (earlier versions drew "
                "other folds)"
            )
        if run.test_logits.shape[1] != first.test_logits.shape[1]:
            raise UserError(f"{path} and {first_path} predicted test sets of different sizes")
    names = [run.name for run in members]
    if len(set(names)) < len(names):
        for run, path in zip(members, paths, strict=True):
            run.name = str(path)
    rows = np.logical_and.reduce([run.predicted_rows for run in members])
    return members, np.flatnonzero(rows)
