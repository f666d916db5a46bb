"""One model's training, the same for a `fit` run, a cross-validation fold or bag member, and a
tuning trial: its rows, its datasets, the compiled model, `model.fit` under the strategy, and the
finished network (BatchNorm statistics recomputed, holdout scored).

What each caller adds is its own: fit.py writes a run folder around a session, tuning/search.py
lets keras-tuner drive one session per trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from digit_keras import runtime
from digit_keras.config import TrainConfig
from digit_keras.errors import UserError
from digit_keras.keras_inference import predict_logits
from digit_keras.scoring import logit_scores
from digit_keras.training.pseudo_labels import pseudo_labels
from digit_keras.training.strategy import make_strategy


@dataclass
class TrainingData:
    """Labelled images, where they came from, and which rows train and which are held out."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    train_idx: np.ndarray
    holdout_idx: np.ndarray
    # (test-set row, label) of the pseudo-labelled test images appended after train.csv's rows
    pseudo_labels: np.ndarray

    @property
    def pseudo_labelled(self) -> int:
        return len(self.pseudo_labels)


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
    pseudo = np.empty((0, 2), dtype=np.int64)
    if config.data.pseudo_labels:
        test_rows, test_labels = pseudo_labels(
            config.data.pseudo_labels,
            labels,
            holdout_idx,
            config.data.pseudo_threshold,
            len(test_images),
        )
        pseudo = np.stack([test_rows, test_labels], axis=1)
        train_idx = np.concatenate([train_idx, rows + np.arange(len(test_rows))])
        images = np.concatenate([images, test_images[test_rows]])
        labels = np.concatenate([labels, test_labels.astype(labels.dtype)])
    return TrainingData(images, labels, source, train_idx, holdout_idx, pseudo)


def start_training(config: TrainConfig):
    """Create the strategy, seed and set the precision.

    Returns (config, strategy name, strategy), the config with its precision resolved ("auto"
    becomes the policy this machine trains in), so the saved config.toml says what ran.

    Order matters: a TensorFlow multi-worker strategy must exist before TensorFlow starts its
    context (which seeding does), and JAX reads its determinism flag when it starts its devices
    (which creating a strategy does).
    """
    if config.deterministic:
        runtime.request_determinism()
    if runtime.backend() == "tensorflow":
        strategy_name, strategy = make_strategy(config.strategy)
        precision = runtime.configure(config.seed, config.precision)
    else:
        precision = runtime.configure(config.seed, config.precision)
        strategy_name, strategy = make_strategy(config.strategy)
    return dataclasses.replace(config, precision=precision), strategy_name, strategy


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


def count_steps(train_images: int, global_batch: int) -> int:
    """Steps per epoch (the last partial batch is dropped); an error if there is not one."""
    if train_images < global_batch:
        raise UserError(
            f"{train_images} training images cannot fill one global batch of {global_batch}"
        )
    return train_images // global_batch


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


@dataclass
class TrainingSession:
    """One model: `config` (its precision resolved by `start_training`) trained on `data` under
    `strategy`. Build, then train (once, or in several calls as keras-tuner's Hyperband does),
    then finish."""

    config: TrainConfig
    strategy_name: str
    strategy: Any
    data: TrainingData

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.strategy.num_replicas_in_sync

    @property
    def steps_per_epoch(self) -> int:
        return count_steps(len(self.data.train_idx), self.global_batch)

    @property
    def has_holdout(self) -> bool:
        return len(self.data.holdout_idx) > 0

    def build(self):
        """(trainer, network) as `build_and_compile` makes them, in the strategy's scope."""
        with self.strategy.scope():
            return build_and_compile(self.config, self.steps_per_epoch)

    def datasets(self, epochs: range, skip_steps: int = 0):
        """The shuffled training dataset of `epochs` (a resumed run's remaining ones, less the
        first one's `skip_steps` batches) and the holdout's (None if it has no rows)."""
        from digit_keras.data.pipeline import make_dataset

        data, batch = self.data, self.global_batch
        train, holdout = data.train_idx, data.holdout_idx
        train_ds = make_dataset(
            data.images[train], data.labels[train], batch, True, self.config.seed, epochs,
            skip_steps=skip_steps,
        )  # fmt: skip
        if not self.has_holdout:
            return train_ds, None
        replicas = self.strategy.num_replicas_in_sync
        holdout_ds = make_dataset(
            data.images[holdout], data.labels[holdout], batch, replicas=replicas
        )
        return train_ds, holdout_ds

    def train(
        self,
        trainer,
        epochs: range,
        callbacks: Sequence = (),
        verbose: str | int = "auto",
        skip_steps: int = 0,
    ) -> dict[str, list]:
        """Train `trainer` through `epochs`, validating on the holdout after each; return the
        per-epoch logs (Keras's `History.history`).

        `skip_steps` (a run resumed mid-epoch): the first epoch's steps already trained. That
        epoch then trains in a `fit` call of its own, with only its remaining steps, and logs its
        training loss and accuracy over those.
        """
        parts = [(epochs, skip_steps)]
        if skip_steps and len(epochs) > 1:
            parts = [(epochs[:1], skip_steps), (epochs[1:], 0)]
        history: dict[str, list] = {}
        for part, skip in parts:
            for key, values in self._fit(trainer, part, callbacks, verbose, skip).items():
                history.setdefault(key, []).extend(values)
        return history

    def _fit(self, trainer, epochs: range, callbacks, verbose, skip_steps: int) -> dict:
        from digit_keras.training.callbacks import progress_verbosity

        train_ds, holdout_ds = self.datasets(epochs, skip_steps)
        with self.strategy.scope():  # JAX's DataParallel applies to what runs inside its scope
            return trainer.fit(
                train_ds,
                validation_data=holdout_ds,
                initial_epoch=epochs.start,
                epochs=epochs.stop,
                steps_per_epoch=self.steps_per_epoch - skip_steps,  # train_ds holds these epochs
                callbacks=list(callbacks),
                shuffle=False,
                verbose=progress_verbosity(verbose),
            ).history

    def finish(self, network):
        """Make the trained network the one to save (BN statistics recomputed) and return
        (images recalibrated on, its holdout logits or None): what fit, cv and tune score."""
        recalibrated = recalibrate_on_train_rows(network, self.config, self.data, self.global_batch)
        if not self.has_holdout:
            return recalibrated, None
        holdout = self.data.images[self.data.holdout_idx]
        return recalibrated, predict_logits(network, holdout, self.global_batch)

    def score(self, holdout_logits: np.ndarray) -> dict[str, float]:
        """Accuracy and log-loss of `finish`'s holdout logits against the holdout's labels."""
        return logit_scores(holdout_logits, self.data.labels[self.data.holdout_idx])
