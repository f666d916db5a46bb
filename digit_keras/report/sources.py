"""What a report is made of: a finished `fit` or `cv` run's config, metrics, learning curves and
held-out predictions, checked so that a folder that is not a finished run is a one-line error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from digit_keras import layout
from digit_keras.errors import UserError
from digit_keras.scoring import softmax


@dataclass
class HeldOut:
    """Held-out rows of train.csv, their labels and one model's (or ensemble's) probabilities."""

    rows: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of each prediction."""
        return self.probabilities.max(axis=1)


@dataclass
class ReportRun:
    path: Path
    kind: str  # "fit" or "cv"
    config_text: str
    metrics: dict[str, Any]
    histories: dict[str, pd.DataFrame]  # per-epoch history: one for fit, one per fold for cv
    held_out: HeldOut

    @property
    def name(self) -> str:
        return self.path.name


def load_report_run(path: str | Path) -> ReportRun:
    path = Path(path)
    if not (path / layout.CONFIG_FILE).is_file():
        raise UserError(
            f"{path}: not a run directory (no {layout.CONFIG_FILE}); report takes fit and cv runs"
        )
    if not (path / layout.METRICS_FILE).is_file():
        raise UserError(
            f"{path}: the run is unfinished (no {layout.METRICS_FILE}); "
            f"finish it with --resume {path}"
        )
    metrics = json.loads((path / layout.METRICS_FILE).read_text())
    config_text = (path / layout.CONFIG_FILE).read_text()
    if (path / layout.CV_FILE).is_file():
        return _cv_run(path, config_text, metrics)
    if metrics.get("holdout_accuracy") is None:
        raise UserError(
            f"{path}: the run has no holdout rows (val_fraction = 0), so nothing to report on"
        )
    if not (path / layout.HOLDOUT_FILE).is_file():
        raise UserError(
            f"{path}: no {layout.HOLDOUT_FILE} (the run predates it); "
            "train it again to report on it"
        )
    with np.load(path / layout.HOLDOUT_FILE) as saved:
        held_out = HeldOut(
            saved["rows"], saved["labels"].astype(np.int64), softmax(saved["logits"])
        )
    return ReportRun(path, "fit", config_text, metrics, {"": _history(path)}, held_out)


def _cv_run(path: Path, config_text: str, metrics: dict[str, Any]) -> ReportRun:
    labels = np.load(path / layout.LABELS_FILE).astype(np.int64)
    logits = np.load(path / layout.OOF_LOGITS_FILE)
    rows = np.flatnonzero(~np.isnan(logits).any(axis=1))
    histories = {
        directory.name.replace("-", " "): _history(directory)
        for directory in layout.model_dirs(path)
    }
    held_out = HeldOut(rows, labels[rows], softmax(logits[rows]))
    return ReportRun(path, "cv", config_text, metrics, histories, held_out)


def _history(run_dir: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(run_dir / layout.HISTORY_FILE)
    except (OSError, pd.errors.ParserError) as err:
        raise UserError(f"{run_dir}: cannot read {layout.HISTORY_FILE}: {err}") from None
