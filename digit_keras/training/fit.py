"""Train one model on a holdout split: the work behind `digit-keras fit`.

`start_fit` and `resume_fit` are the command (run directory, resume, clean-up); `fit` trains
into a directory it is given.
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

import numpy as np

from digit_keras import layout, runtime
from digit_keras.atomic import atomic_path, write_text_atomic
from digit_keras.config import TrainConfig, load_config, to_toml
from digit_keras.data import load_test, load_train
from digit_keras.data.split import stratified_holdout
from digit_keras.errors import UserError
from digit_keras.keras_inference import predict_logits
from digit_keras.scoring import logit_scores
from digit_keras.training import runs
from digit_keras.training.pseudo_labels import pseudo_labels


@dataclass
class FitResult:
    run_dir: Path
    metrics: dict[str, Any]
    chief: bool = True  # False on a multi-worker task that is not the chief: it wrote no run


def build_and_compile(config: TrainConfig, steps_per_epoch: int):
    """Return (trainer, network): the compiled model that `fit` runs, and the network to save.

    Call inside the strategy's scope. With augmentation on, the trainer wraps the network in it
    (augment.py); otherwise both are the network. Outputs are logits, so the loss applies the
    softmax (with the config's label smoothing). Loss and accuracy both honour sample weights,
    so the zero-weight rows that pad uneven evaluation batches on JAX (`ArrayBatches`) count for
    nothing.
    """
    from digit_keras.data.augment import with_augmentation
    from digit_keras.models import build_model
    from digit_keras.training.losses import SparseCrossentropy
    from digit_keras.training.optim import make_optimizer

    network = build_model(config.arch, **config.model)
    trainer = network
    if config.augment.enabled:
        trainer = with_augmentation(network, config.augment, config.seed)
    trainer.compile(
        optimizer=make_optimizer(config.optimizer, steps_per_epoch, config.epochs),
        loss=SparseCrossentropy(config.label_smoothing),
        weighted_metrics=["accuracy"],
    )
    return trainer, network


@dataclass
class TrainingData:
    """Labelled images, where they came from, and which rows train and which are held out."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    train_idx: np.ndarray
    holdout_idx: np.ndarray
    pseudo_labelled: int = 0  # test images among the rows, after train.csv's (pseudo_labels.py)


def training_data(
    config: TrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    source: str,
    train_idx: np.ndarray,
    holdout_idx: np.ndarray,
    test_images: np.ndarray | None = None,
) -> TrainingData:
    """The rows a model trains on and is scored on: `train_idx` less the config's `drop_rows`,
    plus its pseudo-labelled `test_images` (appended after the training rows), and all of
    `holdout_idx` (dropped rows included: a run without them is scored on the same rows)."""
    drop = np.asarray(config.data.drop_rows, dtype=np.int64)
    if len(drop) and drop.max() >= len(labels):
        raise UserError(
            f"data.drop_rows names row {drop.max()}, but the training data has {len(labels)} rows"
        )
    train_idx, rows = np.setdiff1d(train_idx, drop), len(labels)
    if config.data.pseudo_labels:
        test_rows, pseudo = pseudo_labels(
            config.data.pseudo_labels, holdout_idx, config.data.pseudo_threshold, len(test_images)
        )
        train_idx = np.concatenate([train_idx, rows + np.arange(len(test_rows))])
        images = np.concatenate([images, test_images[test_rows]])
        labels = np.concatenate([labels, pseudo.astype(labels.dtype)])
    return TrainingData(images, labels, source, train_idx, holdout_idx, len(images) - rows)


def load_holdout_split(config: TrainConfig, data_dir: str | Path | None) -> TrainingData:
    """The config's training rows, split into train and the stratified, seeded holdout (and the
    test images, when pseudo-labels come into training)."""
    images, labels, source = load_train(config.data.dataset, data_dir, config.data.limit)
    train_idx, holdout_idx = stratified_holdout(
        labels, config.data.val_fraction, config.data.split_seed
    )
    test_images = load_test(config.data.dataset, data_dir)[0] if config.data.pseudo_labels else None
    return training_data(config, images, labels, source, train_idx, holdout_idx, test_images)


def start_training(config: TrainConfig):
    """Create the strategy, seed and set the precision.

    Returns (config, strategy name, strategy), the config with its precision resolved ("auto"
    becomes the policy this machine trains in), so the saved config.toml says what ran.

    Order matters: a TensorFlow multi-worker strategy must exist before TensorFlow starts its
    context (which seeding does), and JAX reads its determinism flag when it starts its devices
    (which creating a strategy does).
    """
    from digit_keras.training.strategy import make_strategy

    if config.deterministic:
        runtime.request_determinism()
    if runtime.backend() == "tensorflow":
        strategy_name, strategy = make_strategy(config.strategy)
        precision = runtime.configure(config.seed, config.precision)
    else:
        precision = runtime.configure(config.seed, config.precision)
        strategy_name, strategy = make_strategy(config.strategy)
    return dataclasses.replace(config, precision=precision), strategy_name, strategy


def fit(
    config: TrainConfig,
    run_dir: Path,
    data_dir: str | Path | None = None,
    resuming: bool = False,
    extra_callbacks: Sequence = (),
    verbose: str | int = "auto",
) -> FitResult:
    """Train `config.arch` on a stratified holdout split; see `train_split` for what is written.

    With `resuming`, the run continues from the last epoch its backup recorded.
    """
    started = time.perf_counter()
    config, strategy_name, strategy = start_training(config)
    data = load_holdout_split(config, data_dir)
    _, metrics = train_split(
        config, strategy_name, strategy, data, run_dir, resuming, extra_callbacks, verbose, started
    )
    return FitResult(run_dir, metrics)


def start_fit(
    config: TrainConfig, out: str | Path | None = None, data_dir: str | Path | None = None
) -> FitResult:
    """`digit-keras fit`: train a new run in `out` (default saved_models/<arch>-<time>).

    A run that fails before its first epoch is backed up leaves no directory behind. Under a
    multi-worker strategy only the chief writes the run; the other tasks train in step with it.
    """
    from digit_keras.training.strategy import is_chief

    chief = is_chief(config.strategy)
    run_dir = runs.new_run_dir(config.arch, out) if chief else Path(out or ".")
    _announce(run_dir, chief)
    with runs.discarded_if_unstarted(run_dir, enabled=chief):
        return dataclasses.replace(fit(config, run_dir, data_dir), chief=chief)


def resume_fit(path: str | Path, data_dir: str | Path | None = None) -> FitResult:
    """`digit-keras fit --resume`: continue an interrupted run, with its saved config, after
    the last epoch it backed up."""
    from digit_keras.training.strategy import is_chief

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


def count_steps(train_images: int, global_batch: int) -> int:
    """Steps per epoch (the last partial batch is dropped); an error if there is not one."""
    if train_images < global_batch:
        raise UserError(
            f"{train_images} training images cannot fill one global batch of {global_batch}"
        )
    return train_images // global_batch


def make_split_datasets(
    config: TrainConfig,
    data: TrainingData,
    global_batch: int,
    epochs: range,
    replicas: int = 1,
):
    """The shuffled training dataset of `epochs` (a resumed run's remaining ones), to train on
    with `steps_per_epoch`, and the holdout's (None if it has no rows)."""
    from digit_keras.data.pipeline import make_dataset

    train, holdout = data.train_idx, data.holdout_idx
    train_ds = make_dataset(
        data.images[train], data.labels[train], global_batch, True, config.seed, epochs
    )
    if not len(holdout):
        return train_ds, None
    holdout_ds = make_dataset(
        data.images[holdout], data.labels[holdout], global_batch, replicas=replicas
    )
    return train_ds, holdout_ds


def recalibrate_on_train_rows(
    model, config: TrainConfig, data: TrainingData, batch_size: int
) -> int:
    """Recompute the BN statistics of `model` on a seeded sample of the training rows, as the
    model sees them at inference (un-augmented), in batches of the global training batch size
    (so one device and several compute the same statistics); returns the images used."""
    from digit_keras.data.pipeline import make_dataset
    from digit_keras.training.bn_recalibration import recalibrate_batch_norm

    count = min(config.bn_recalibration_images, len(data.train_idx))
    if not count:
        return 0
    rows = np.random.default_rng(config.seed).choice(data.train_idx, count, replace=False)
    batches = make_dataset(data.images[rows], None, batch_size)
    recalibrate_batch_norm(model, batches)
    return count


def finish_model(model, config: TrainConfig, data: TrainingData, batch_size: int):
    """Make the trained network the one `fit` saves (BN statistics recomputed) and return
    (images recalibrated on, its holdout logits or None): what `fit` and `tune` both score."""
    recalibrated = recalibrate_on_train_rows(model, config, data, batch_size)
    if not len(data.holdout_idx):
        return recalibrated, None
    return recalibrated, predict_logits(model, data.images[data.holdout_idx], batch_size)


def train_split(
    config: TrainConfig,
    strategy_name: str,
    strategy,
    data: TrainingData,
    run_dir: Path,
    resuming: bool = False,
    extra_callbacks: Sequence = (),
    verbose: str | int = "auto",
    started: float | None = None,
):
    """Train on `data.train_idx`, validate on `data.holdout_idx`; return (model, metrics).

    Writes config.toml, model.keras, history.csv, metrics.json, checkpoints and TensorBoard logs
    into `run_dir` (a non-chief multi-worker task writes to a temporary folder instead). The
    returned model is the last epoch's: the holdout never selects it. `started` is when the
    run's clock started (default: now), for its wall time.
    """
    started = time.perf_counter() if started is None else started
    made_by = runs.provenance()  # now: the checkout may change while the run trains
    from digit_keras.training.callbacks import ThroughputMeter, make_callbacks, progress_verbosity
    from digit_keras.training.strategy import is_chief

    train_idx, holdout_idx = data.train_idx, data.holdout_idx
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    steps_per_epoch = count_steps(len(train_idx), global_batch)

    chief_dir = run_dir
    if not is_chief(strategy_name):
        run_dir = Path(tempfile.mkdtemp(prefix="digit-keras-worker-"))
        if resuming:
            _copy_resume_state(chief_dir, run_dir)
    start_epoch = runs.backup_epoch(run_dir) if resuming else 0
    if resuming and not start_epoch and _logged_epochs(run_dir):
        raise UserError(
            f"{run_dir}: its {layout.BACKUP_DIR}/ is gone, so it cannot continue where it stopped; "
            "start a new run"
        )
    if resuming:
        runs.keep_history_of(run_dir, start_epoch)
    else:
        write_text_atomic(run_dir / layout.CONFIG_FILE, to_toml(config))

    if start_epoch:
        print(f"resuming {run_dir} after epoch {start_epoch} of {config.epochs}", file=sys.stderr)
    remaining = range(start_epoch, config.epochs)
    train_ds, holdout_ds = make_split_datasets(config, data, global_batch, remaining, replicas)
    meter = ThroughputMeter(steps_per_epoch * global_batch)
    with strategy.scope():  # JAX's DataParallel applies to what runs inside its scope
        trainer, model = build_and_compile(config, steps_per_epoch)
        callbacks = make_callbacks(run_dir, meter, model, holdout_ds is not None, resuming)
        history = trainer.fit(
            train_ds,
            validation_data=holdout_ds,
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,  # train_ds holds every remaining epoch
            callbacks=[*callbacks, *extra_callbacks],
            shuffle=False,
            verbose=progress_verbosity(verbose),
        )
    recalibrated, holdout_logits = finish_model(model, config, data, global_batch)
    # The saved model's own holdout predictions, kept for `report` (mistakes, calibration).
    if len(holdout_idx):
        runs.save_holdout(run_dir, holdout_idx, data.labels[holdout_idx], holdout_logits)
    with atomic_path(run_dir / layout.MODEL_FILE) as tmp:
        model.save(tmp)
    metrics: dict[str, Any] = {
        "arch": config.arch,
        "network": model.name,  # the network as built: wrn16_2 for wrn28_10 at depth 16, k 2
        "params": model.count_params(),
        "backend": runtime.backend(),
        "data": data.source,
        "train_images": len(train_idx),
        "pseudo_labelled_images": data.pseudo_labelled,
        "holdout_images": len(holdout_idx),
        "holdout_accuracy": None,
        "holdout_loss": None,
        "epochs": config.epochs,
        "resumed_after_epoch": start_epoch,
        "strategy": strategy_name,
        "replicas": replicas,
        "global_batch_size": global_batch,
        "precision": config.precision,
        "bn_recalibration_images": recalibrated,
        "train_images_per_s": round(meter.images_per_second(), 1),
        "epoch_seconds": [round(s, 2) for s in meter.epoch_seconds],
        **made_by,
    }
    if len(holdout_idx):
        scores = logit_scores(holdout_logits, data.labels[holdout_idx])
        metrics["holdout_accuracy"] = scores["accuracy"]
        metrics["holdout_loss"] = scores["log_loss"]
        val_history = history.history.get("val_accuracy", [])
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
