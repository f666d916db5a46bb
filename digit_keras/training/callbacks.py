"""Callbacks every training run gets, plus an honest throughput meter.

The same run directory comes out on both backends. Keras's TensorBoard callback needs TensorFlow,
so on JAX `EpochSummaries` writes the same per-epoch curves with the framework-free
`tensorboard.summary.Writer`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np

from digit_keras import layout
from digit_keras.atomic import atomic_path
from digit_keras.training import runs


def progress_verbosity(verbose: str | int) -> str | int:
    """Keras's `verbose` for fit: "auto" is the redrawn bar on a terminal and one line per epoch
    elsewhere (CI, nohup, a log file), where each redraw of the bar would be written out."""
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() else 2


class ThroughputMeter(keras.callbacks.Callback):
    """Time the training part of each epoch (validation excluded) and count its images (an
    epoch resumed mid-way has fewer)."""

    def __init__(self, global_batch: int):
        super().__init__()
        self.global_batch = global_batch
        self.epoch_seconds: list[float] = []
        self.epoch_images: list[int] = []
        self._start = 0.0
        self._train_end: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = self._device_done()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append((self._train_end or self._device_done()) - self._start)
        self.epoch_images.append(self.params["steps"] * self.global_batch)  # this `fit` call's

    def _device_done(self) -> float:
        """The time once the last step has run: JAX dispatches steps without waiting for them."""
        keras.ops.convert_to_numpy(self.model.trainable_weights[-1])
        return time.perf_counter()

    def images_per_second(self) -> float:
        """Steady-state rate: the first epoch (tracing, warm-up) is left out if there are more."""
        skip = 1 if len(self.epoch_seconds) > 1 else 0
        seconds = sum(self.epoch_seconds[skip:])
        return sum(self.epoch_images[skip:]) / seconds if seconds else 0.0


def best_logged(history_csv: Path, metric: str) -> float | None:
    """Best `metric` in a CSVLogger file, so a resumed run keeps its best checkpoint. The file
    is empty when a run was stopped before its first epoch ended."""
    if not history_csv.is_file() or history_csv.stat().st_size == 0:
        return None
    import pandas as pd

    best = pd.read_csv(history_csv).get(metric, pd.Series(dtype=float)).max()
    return None if pd.isna(best) else float(best)


class BestCheckpoint(keras.callbacks.Callback):
    """Save `network` whenever `monitor` (higher is better) beats its best so far.

    Keras's ModelCheckpoint writes in place, so a kill mid-save would leave a broken best.keras;
    this one writes beside it and renames. It saves `network`, not the model being fit, which
    on JAX is the network inside its augmentation wrapper: checkpoints stay augmentation-free.
    `best` is the score to beat (a resumed run's best so far).
    """

    def __init__(self, network: keras.Model, path: Path, monitor: str, best: float | None):
        super().__init__()
        self.network, self.path, self.monitor = network, path, monitor
        self.best = float("-inf") if best is None else best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best = float(value)
            with atomic_path(self.path) as tmp:
                self.network.save(tmp)


class Backup(keras.callbacks.Callback):
    """What a resumed run needs, at each epoch's end and every `every_s` seconds inside one: the
    weights with the optimizer's state, and the states of the model's random streams, so a run
    resumed at a backup draws what an uninterrupted run drew from there on (augmentation and
    dropout draw from `keras.random.SeedGenerator`s, whose states are variables outside the
    weights).

    Each file is written beside its name and renamed, the weights last: their file names the
    position, epochs and steps done (`runs.backup_position`), so a kill at any moment leaves a
    whole backup. (Keras's BackupAndRestore writes in place, keeps the epoch in a private file
    and restarts an epoch from its first step.) On the first train begin it restores the backup
    at `start`; the caller trains on from there.
    """

    def __init__(self, run_dir: Path, start: tuple[int, int], every_s: float = 0.0):
        super().__init__()
        self.run_dir, self.position, self.every_s = run_dir, start, every_s
        self.first_step = start[1]  # steps of the first epoch done before this process
        self.restored = False
        self.saved_at = time.monotonic()

    def _random_state(self) -> list:
        weights = {id(weight) for weight in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]  # the seed states

    def _file(self, name: str, position: tuple[int, int]) -> Path:
        return runs.backup_file(self.run_dir, name, position)

    def on_train_begin(self, logs=None):
        if self.restored or self.position == (0, 0):  # a later `fit` call of the same run
            return
        self.restored = True
        if not self.model.optimizer.built:  # its variables must exist to receive the state
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self._file(layout.BACKUP_WEIGHTS, self.position))
        with np.load(self._file(layout.BACKUP_RANDOM_STATE, self.position)) as arrays:
            for index, variable in enumerate(self._random_state()):
                variable.assign(arrays[str(index)])

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        last = batch + 1 == self.params["steps"]  # the epoch's end backs it up after validation
        if self.every_s and not last and time.monotonic() - self.saved_at >= self.every_s:
            self._save((self.epoch, self.first_step + batch + 1))

    def on_epoch_end(self, epoch, logs=None):
        self._save((epoch + 1, 0))
        self.first_step = 0

    def _save(self, position: tuple[int, int]) -> None:
        with atomic_path(self._file(layout.BACKUP_RANDOM_STATE, position)) as tmp:
            states = [keras.ops.convert_to_numpy(v.value) for v in self._random_state()]
            np.savez(tmp, **{str(index): state for index, state in enumerate(states)})
        with atomic_path(self._file(layout.BACKUP_WEIGHTS, position)) as tmp:
            self.model.save_weights(tmp)
        for name in (layout.BACKUP_WEIGHTS, layout.BACKUP_RANDOM_STATE):  # the replaced backup
            self._file(name, self.position).unlink(missing_ok=True)
        self.position, self.saved_at = position, time.monotonic()


class EpochSummaries(keras.callbacks.Callback):
    """Per-epoch scalars in TensorBoard's layout (train/ and validation/, tags epoch_<metric>),
    written without TensorFlow."""

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = log_dir

    def on_train_begin(self, logs=None):
        from tensorboard.summary import Writer

        self.writers = {part: Writer(str(self.log_dir / part)) for part in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            part, metric = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            self.writers[part].add_scalar(f"epoch_{metric}", float(value), step=epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()


def tensorboard_callback(log_dir: Path) -> keras.callbacks.Callback:
    """Keras's TensorBoard callback on TensorFlow; `EpochSummaries` elsewhere."""
    if keras.backend.backend() == "tensorflow":
        return keras.callbacks.TensorBoard(str(log_dir))
    return EpochSummaries(log_dir)


def make_callbacks(
    run_dir: Path,
    meter: ThroughputMeter,
    network: keras.Model,
    has_holdout: bool,
    start: tuple[int, int] | None,
    backup_every_s: float = 0.0,
) -> list[keras.callbacks.Callback]:
    """The callbacks of a run, resumed at backup position `start` (None: a new run).

    The history line first, then the backup: a run stopped between the two repeats that epoch
    on resume, and `runs.keep_history_of` drops its first line (nothing lost, nothing logged
    twice); the other order would lose the line for good."""
    resuming = start is not None
    callbacks: list[keras.callbacks.Callback] = [meter]
    if has_holdout:
        previous_best = (
            best_logged(run_dir / layout.HISTORY_FILE, "val_accuracy") if resuming else None
        )
        callbacks.append(
            BestCheckpoint(network, run_dir / layout.BEST_CHECKPOINT, "val_accuracy", previous_best)
        )
    # The backup outlives `fit()`: it goes only once model.keras and metrics.json are written
    # (runs.remove_backup), so a failure while saving leaves a run that --resume finishes.
    callbacks += [
        keras.callbacks.CSVLogger(str(run_dir / layout.HISTORY_FILE), append=resuming),
        Backup(run_dir, start or (0, 0), backup_every_s),
        tensorboard_callback(run_dir / layout.TENSORBOARD_DIR),
    ]
    return callbacks
