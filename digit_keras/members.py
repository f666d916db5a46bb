"""The member file: one model or ensemble member, small enough to commit and share.

A cv run writes `member.npz` beside its logits, and each of its models one of its own: the
out-of-fold and test-set log-probabilities in float16 (under a megabyte compressed for one fold,
a few for five), the fold assignment and a checksum of the labels, but not the labels: those come
from train.csv (`--data`), so members can be combined without the run or the data in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_keras.atomic import atomic_path
from digit_keras.errors import UserError
from digit_keras.layout import MEMBER_FILE
from digit_keras.scoring import log_softmax, mean_log_probabilities


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


def oof_probabilities(members: list[BaseRun], rows: np.ndarray) -> np.ndarray:
    """(members, rows, 10): each member's out-of-fold probabilities on `rows`."""
    return np.stack([np.exp(member.oof_log_probabilities(rows)) for member in members])


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
