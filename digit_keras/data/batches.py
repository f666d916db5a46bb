"""In-memory batches as a `keras.utils.PyDataset`: the input pipeline on backends other than
TensorFlow (JAX), where tf.data may not be installed.

It gives the batches of the tf.data pipeline: training rows in `epoch_order` (seeded by seed and
epoch, the last partial batch dropped), uint8 pixels as float32 0-255 (the models scale them).
Augmentation is not here: it runs on the device, in the `RandomAffine` wrapper layer
(augment.py).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from digit_keras.data.order import epoch_order


class ArrayBatches(keras.utils.PyDataset):
    """Batches of (images, labels) from arrays; `labels=None` (prediction) yields images only.

    With `pad_to` > 1 (data parallelism over that many devices), a last batch whose size does
    not divide evenly is padded with blank rows of sample weight 0, so every device gets a slice.
    Accuracy ignores those rows exactly; the loss divides by the weights' sum (see
    training/session.py). `skip_steps` leaves out the first epoch's first batches (a run resumed
    mid-epoch).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None,
        batch_size: int,
        training: bool = False,
        seed: int = 0,
        first_epoch: int = 0,
        pad_to: int = 1,
        skip_steps: int = 0,
    ):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.training, self.seed, self.pad_to = training, seed, pad_to
        self.epoch, self.skip_steps = first_epoch, skip_steps  # skip: of the first epoch only
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.training:
            return np.arange(len(self.images))
        order = epoch_order(len(self.images), self.batch_size, self.seed, self.epoch)
        return order[self.skip_steps * self.batch_size :]

    def __len__(self) -> int:
        if self.training:
            return len(self.order) // self.batch_size
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.images[rows].astype(np.float32)
        if self.labels is None:
            return (images,)
        labels = self.labels[rows]
        if self.pad_to == 1 or self.training:  # training batches are whole global batches
            return images, labels
        padding = -len(rows) % self.pad_to
        weights = np.concatenate([np.ones(len(rows)), np.zeros(padding)]).astype(np.float32)
        images = np.concatenate([images, np.zeros((padding, *images.shape[1:]), np.float32)])
        labels = np.concatenate([labels, np.zeros(padding, labels.dtype)])
        return images, labels, weights

    def on_epoch_end(self) -> None:
        self.epoch, self.skip_steps = self.epoch + 1, 0
        self.order = self._order()
