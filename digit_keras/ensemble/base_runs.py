"""Load ensemble members, refusing members whose rows or folds differ.

A member is a finished cv run directory, or its member file: `member.npz`, which every cv run
writes beside its logits. The member file holds the run's out-of-fold and test-set
log-probabilities in float16 (under a megabyte compressed for one fold, a few for five), its
fold assignment and a checksum of the labels, but not the labels: those come from train.csv
(`--data`), so members can be committed, shared and combined without the run or the data in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_keras.atomic import atomic_path
from digit_keras.errors import UserError
from digit_keras.scoring import log_softmax, mean_log_probabilities
from digit_keras.training import cv, runs

MEMBER_FILE = "member.npz"


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
        return mean_log_probabilities(self.test_logits)


def labels_checksum(labels: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(labels, np.int64).tobytes()).hexdigest()


def save_member(run: BaseRun, path: Path) -> None:
    """Write `run` as a member file: float16 log-probabilities, folds, a labels checksum."""
    meta = {"name": run.name, "arch": run.arch, "labels_sha256": labels_checksum(run.labels)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            oof_log_probabilities=run.oof_log_probabilities(slice(None)).astype(np.float16),
            test_log_probabilities=run.test_log_probabilities()[None].astype(np.float16),
            folds=run.folds.astype(np.int8),
            meta=np.array(json.dumps(meta)),
        )


def load_member(path: Path, labels: np.ndarray) -> BaseRun:
    """Read a member file; `labels` are the training labels, checked against its checksum.

    A member is named by its file (`basic-e20-tta.npz` is "basic-e20-tta"), except a run's own
    `member.npz`, which keeps its run's name.
    """
    try:
        with np.load(path) as saved:
            meta = json.loads(str(saved["meta"]))
            oof = saved["oof_log_probabilities"].astype(np.float32)
            test = saved["test_log_probabilities"].astype(np.float32)
            folds = saved["folds"]
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: not a member file: {err}") from None
    if len(labels) != len(folds) or labels_checksum(labels) != meta["labels_sha256"]:
        raise UserError(
            f"{path}: trained on other training rows than the data given ({len(folds)} rows "
            f"vs {len(labels)}, or other labels); pass the same train.csv with --data"
        )
    # Log-probabilities are logits whose softmax is themselves, so they stand in for logits.
    name = meta["name"] if path.name == MEMBER_FILE else path.stem
    return BaseRun(name, meta["arch"], labels, folds, oof, test)


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


def load_base_runs(paths: list[str], labels=None) -> tuple[list[BaseRun], np.ndarray]:
    """The members (cv run directories or member files) and the rows all predicted out of fold.

    Members must share training rows, labels and fold assignment (same data, --folds and
    --seed); holdout-mode runs predict fold 0 only, so mixing them in restricts the ensemble to
    fold 0. `labels` (a callable returning the training labels) is needed for member files only.
    """
    if len(paths) < 2:
        raise UserError("an ensemble needs at least two members")
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
