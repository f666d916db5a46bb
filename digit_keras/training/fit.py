"""Train one model on a holdout split: the work behind `digit-keras fit`.

`start_fit` and `resume_fit` are the command (run directory, resume, clean-up); `fit` trains
into a directory it is given; `train_run` writes a run folder around one training session
(session.py), for `fit` and for each of cv's folds and bag members.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digit_keras import layout, runtime
from digit_keras.atomic import atomic_path, write_text_atomic
from digit_keras.config import TrainConfig, load_config, to_toml
from digit_keras.data import load_test, load_train
from digit_keras.data.split import stratified_holdout
from digit_keras.errors import UserError
from digit_keras.training import runs
from digit_keras.training.session import (
    TrainingData,
    TrainingSession,
    start_training,
    training_data,
)
from digit_keras.training.strategy import is_chief


@dataclass
class FitResult:
    run_dir: Path
    metrics: dict[str, Any]
    chief: bool = True  # False on a multi-worker task that is not the chief: it wrote no run


def load_holdout_split(config: TrainConfig, data_dir: str | Path | None) -> TrainingData:
    """The config's training rows, split into train and the stratified, seeded holdout (and the
    test images, when pseudo-labels come into training)."""
    images, labels, source = load_train(config.data.dataset, data_dir, config.data.limit)
    train_idx, holdout_idx = stratified_holdout(
        labels, config.data.val_fraction, config.data.split_seed
    )
    test_images = load_test(config.data.dataset, data_dir)[0] if config.data.pseudo_labels else None
    return training_data(config, images, labels, source, train_idx, holdout_idx, test_images)


def fit(
    config: TrainConfig,
    run_dir: Path,
    data_dir: str | Path | None = None,
    resuming: bool = False,
    extra_callbacks: Sequence = (),
    verbose: str | int = "auto",
) -> FitResult:
    """Train `config.arch` on a stratified holdout split; see `train_run` for what is written.

    With `resuming`, the run continues from the last epoch its backup recorded.
    """
    started = time.perf_counter()
    config, strategy_name, strategy = start_training(config)
    session = TrainingSession(config, strategy_name, strategy, load_holdout_split(config, data_dir))
    _, metrics = train_run(session, run_dir, resuming, extra_callbacks, verbose, started)
    return FitResult(run_dir, metrics)


def start_fit(
    config: TrainConfig, out: str | Path | None = None, data_dir: str | Path | None = None
) -> FitResult:
    """`digit-keras fit`: train a new run in `out` (default saved_models/<arch>-<time>).

    A run that fails before its first epoch is backed up leaves no directory behind. Under a
    multi-worker strategy only the chief writes the run; the other tasks train in step with it.
    """
    chief = is_chief(config.strategy)
    run_dir = runs.new_run_dir(config.arch, out) if chief else Path(out or ".")
    _announce(run_dir, chief)
    with runs.discarded_if_unstarted(run_dir, enabled=chief):
        return dataclasses.replace(fit(config, run_dir, data_dir), chief=chief)


def resume_fit(path: str | Path, data_dir: str | Path | None = None) -> FitResult:
    """`digit-keras fit --resume`: continue an interrupted run, with its saved config, after
    the last epoch it backed up."""
    run_dir = runs.resumable_run_dir(path)
    config = load_config(run_dir / layout.CONFIG_FILE)
    chief = is_chief(config.strategy)
    _announce(run_dir, chief)
    result = fit(config, run_dir, data_dir, resuming=True)
    return dataclasses.replace(result, chief=chief)


def _announce(run_dir: Path, chief: bool) -> None:
    if chief:
        runs.announce(run_dir)
    else:
        print("worker: the chief writes the run", flush=True)


def train_run(
    session: TrainingSession,
    run_dir: Path,
    resuming: bool = False,
    extra_callbacks: Sequence = (),
    verbose: str | int = "auto",
    started: float | None = None,
):
    """Train `session` into the run folder `run_dir`; return (model, metrics).

    Writes config.toml, model.keras, history.csv, metrics.json, checkpoints and TensorBoard logs
    (a non-chief multi-worker task writes to a temporary folder instead). The returned model is
    the last epoch's: the holdout never selects it. `started` is when the run's clock started
    (default: now), for its wall time.
    """
    started = time.perf_counter() if started is None else started
    made_by = runs.provenance()  # now: the checkout may change while the run trains
    from digit_keras.training.callbacks import ThroughputMeter, make_callbacks

    config, data = session.config, session.data
    chief_dir = run_dir
    if not is_chief(session.strategy_name):
        run_dir = Path(tempfile.mkdtemp(prefix="digit-keras-worker-"))
        if resuming:
            _copy_resume_state(chief_dir, run_dir)
    start_epoch, start_step = runs.backup_position(run_dir) if resuming else (0, 0)
    if resuming and not start_epoch and _logged_epochs(run_dir):
        raise UserError(
            f"{run_dir}: its {layout.BACKUP_DIR}/ holds no finished epoch (gone, or from an older "
            "digit-keras), so it cannot continue where it stopped; start a new run"
        )
    if resuming:
        runs.keep_history_of(run_dir, start_epoch)
    else:
        write_text_atomic(run_dir / layout.CONFIG_FILE, to_toml(config))

    if start_epoch or start_step:
        step = f", step {start_step} of epoch {start_epoch + 1}" if start_step else ""
        print(f"resuming {run_dir} after epoch {start_epoch}{step} of {config.epochs}",
              file=sys.stderr)  # fmt: skip
    if data.pseudo_labelled:
        print(f"learning from {len(data.train_idx):,} images, {data.pseudo_labelled:,} of them "
              f"test images labelled by {config.data.pseudo_labels}", file=sys.stderr)  # fmt: skip
    # Mid-epoch backups happen by the clock, which multi-worker tasks do not share: they save at
    # epoch ends only (saving runs collective ops on every worker).
    single = session.strategy_name != "multi-worker"
    every_s = 60 * config.backup_minutes if single else 0.0
    meter = ThroughputMeter(session.global_batch)
    trainer, model = session.build()
    start = (start_epoch, start_step) if resuming else None
    callbacks = make_callbacks(run_dir, meter, model, session.has_holdout, start, every_s)
    history = session.train(
        trainer,
        range(start_epoch, config.epochs),
        [*callbacks, *extra_callbacks],
        verbose,
        start_step,
    )
    recalibrated, holdout_logits = session.finish(model)
    holdout_idx = data.holdout_idx
    # The saved model's own holdout predictions, kept for `report` (mistakes, calibration).
    if session.has_holdout:
        runs.save_holdout(run_dir, holdout_idx, data.labels[holdout_idx], holdout_logits)
    with atomic_path(run_dir / layout.MODEL_FILE) as tmp:
        model.save(tmp)
    metrics: dict[str, Any] = {
        "arch": config.arch,
        "network": model.name,  # the network as built: wrn16_2 for wrn28_10 at depth 16, k 2
        "params": model.count_params(),
        "backend": runtime.backend(),
        "data": data.source,
        "train_images": len(data.train_idx),
        "pseudo_labelled_images": data.pseudo_labelled,
        "holdout_images": len(holdout_idx),
        "holdout_accuracy": None,
        "holdout_loss": None,
        "epochs": config.epochs,
        "resumed_after_epoch": start_epoch,
        "resumed_after_steps": start_step,  # of the next epoch
        "strategy": session.strategy_name,
        "replicas": session.strategy.num_replicas_in_sync,
        "global_batch_size": session.global_batch,
        "precision": config.precision,
        "bn_recalibration_images": recalibrated,
        "train_images_per_s": round(meter.images_per_second(), 1),
        "epoch_seconds": [round(s, 2) for s in meter.epoch_seconds],
        **made_by,
    }
    if session.has_holdout:
        scores = session.score(holdout_logits)
        metrics["holdout_accuracy"] = scores["accuracy"]
        metrics["holdout_loss"] = scores["log_loss"]
        val_history = history.get("val_accuracy", [])
        if val_history:
            metrics["best_epoch_val_accuracy_selected_on_holdout"] = max(val_history)
    metrics["wall_time_s"] = round(time.perf_counter() - started, 1)
    runs.write_json(run_dir / layout.METRICS_FILE, metrics)
    runs.remove_backup(run_dir)
    if run_dir != chief_dir:
        shutil.rmtree(run_dir)
    return model, metrics


def _copy_resume_state(chief_dir: Path, worker_dir: Path) -> None:
    """Start a resumed non-chief worker from the chief's state: every replica holds the same
    weights, and the worker must make the chief's choices (e.g. whether an epoch beats the best
    checkpoint, from history.csv), since saving a model runs collective ops on every worker."""
    if (chief_dir / layout.BACKUP_DIR).is_dir():
        shutil.copytree(chief_dir / layout.BACKUP_DIR, worker_dir / layout.BACKUP_DIR)
    if (chief_dir / layout.HISTORY_FILE).is_file():
        shutil.copy2(chief_dir / layout.HISTORY_FILE, worker_dir / layout.HISTORY_FILE)


def _logged_epochs(run_dir: Path) -> int:
    """Epochs history.csv records (its lines after the header)."""
    history = run_dir / layout.HISTORY_FILE
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0
