"""The input pipeline every model trains and predicts through, chosen by the Keras backend.

TensorFlow: tf.data, batches of rows gathered in `epoch_order` -> float32 -> prefetch. Other
backends (JAX): `ArrayBatches`, the same batches from NumPy. Pixels stay 0-255: the models scale
them (`blocks.image_input`). Augmentation is not here: it runs in the training step, in the
`RandomAffine` layer of the trainer (augment.py), on every backend.

The training order is a function of (seed, epoch) alone, the same on both backends, so a run
resumed after epoch k sees the batches an uninterrupted run would have seen from epoch k on.

tf.data's autotuner is off and the parallelism fixed: on this project's 2-core reference machine
the autotuner held training at ~1,000 images/s in about half of all runs, whatever the precision
or model (`benchmarks/bench_cpu_speed.py --tf-autotune` shows it), and fixed settings do not.
"""

from __future__ import annotations

import numpy as np

from digit_keras.data.order import epoch_order
from digit_keras.runtime import backend

MAP_PARALLELISM = 2  # batches gathered at once: enough to keep ahead of a training step
PREFETCH_BATCHES = 2


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray | None,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    epochs: range = range(1),
    replicas: int = 1,
    skip_steps: int = 0,
):
    """Build a batched dataset of (images, labels); `labels=None` (prediction) gives zeros.

    A training dataset holds `epochs` (a range of epoch numbers: a resumed run starts at its
    first unfinished epoch) one after the other, each in its `epoch_order`, less the first
    epoch's first `skip_steps` batches (trained before a run was resumed mid-epoch); train on it
    with `steps_per_epoch` set. Other datasets hold every image once, in order. `replicas` only
    matters off TensorFlow: see `ArrayBatches.pad_to`.
    """
    if backend() != "tensorflow":
        from digit_keras.data.batches import ArrayBatches  # imports Keras: only off TensorFlow

        return ArrayBatches(
            images, labels, batch_size, training, seed, epochs.start, replicas, skip_steps
        )
    import tensorflow as tf

    if labels is None:
        labels = np.zeros(len(images), dtype=np.int32)  # ignored by predict; keeps one batch shape
    if training:
        orders = [epoch_order(len(images), batch_size, seed, epoch) for epoch in epochs]
        # No epoch left (a run resumed after its last one): an empty dataset.
        rows = np.concatenate(orders)[skip_steps * batch_size :] if orders else np.zeros(0, int)
        pixels, classes = tf.constant(images), tf.constant(labels)
        ds = tf.data.Dataset.from_tensor_slices(rows).batch(batch_size)
        ds = ds.map(lambda rows: (tf.gather(pixels, rows), tf.gather(classes, rows)))
    else:
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=MAP_PARALLELISM)
    return ds.prefetch(PREFETCH_BATCHES).with_options(dataset_options())


def dataset_options():
    """Options of every dataset the project builds: no autotuner (see the module docstring), and
    sharding by batch, not by file, since multi-worker runs read in-memory arrays."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options
