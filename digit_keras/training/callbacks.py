"""Callbacks every training run gets, plus an honest throughput meter."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import keras

from digit_keras.training import runs


class ThroughputMeter(keras.callbacks.Callback):
    """Time the training part of each epoch (validation excluded) and count its images."""

    def __init__(self, images_per_epoch: int):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.epoch_seconds: list[float] = []
        self._start = 0.0
        self._train_end: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append((self._train_end or time.perf_counter()) - self._start)

    def images_per_second(self) -> float:
        """Steady-state rate: the first epoch (tracing, warm-up) is left out if there are more."""
        seconds = self.epoch_seconds[1:] or self.epoch_seconds
        return self.images_per_epoch * len(seconds) / sum(seconds) if seconds else 0.0


def best_logged(history_csv: Path, metric: str) -> float | None:
    """Best `metric` in a CSVLogger file, so a resumed run keeps its best checkpoint."""
    if not history_csv.is_file():
        return None
    with history_csv.open(newline="") as handle:
        values = [float(row[metric]) for row in csv.DictReader(handle) if row.get(metric)]
    return max(values, default=None)


def make_callbacks(
    run_dir: Path, meter: ThroughputMeter, has_holdout: bool, resuming: bool
) -> list[keras.callbacks.Callback]:
    """Backup first: at each epoch end the backup is saved before the history line is written."""
    callbacks = [keras.callbacks.BackupAndRestore(str(run_dir / runs.BACKUP_DIR)), meter]
    if has_holdout:
        checkpoint = keras.callbacks.ModelCheckpoint(
            str(run_dir / runs.BEST_CHECKPOINT),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
        )
        previous_best = (
            best_logged(run_dir / runs.HISTORY_FILE, "val_accuracy") if resuming else None
        )
        if previous_best is not None:
            checkpoint.best = previous_best
        callbacks.append(checkpoint)
    callbacks += [
        keras.callbacks.CSVLogger(str(run_dir / runs.HISTORY_FILE), append=resuming),
        keras.callbacks.TensorBoard(str(run_dir / runs.TENSORBOARD_DIR)),
    ]
    return callbacks
