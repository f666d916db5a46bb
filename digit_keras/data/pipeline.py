"""The input pipeline every model trains and predicts through, chosen by the Keras backend.

TensorFlow: tf.data, cache -> shuffle -> batch -> float32 -> (training only) per-batch
augmentation -> prefetch. Pixels stay 0-255: the models scale them (`blocks.image_input`).
Augmentation lives here, never in the saved model, so exported models take plain images. Other
backends (JAX): `ArrayBatches`, with augmentation on the device instead.

tf.data's autotuner is off and the parallelism fixed: on this project's 2-core reference machine
the autotuner held training at ~1,000 images/s in about half of all runs, whatever the precision
or model (`benchmarks/bench_cpu_speed.py --tf-autotune` shows it), and fixed settings do not.
"""

from __future__ import annotations

import numpy as np

from digit_keras.config import AugmentConfig
from digit_keras.data.augment import augment_batch

MAP_PARALLELISM = 2  # batches augmented at once: enough to keep ahead of a training step
PREFETCH_BATCHES = 2


def as_float(images):
    """uint8 pixels to float32, still 0-255, for augmentation's interpolation and the model."""
    import tensorflow as tf

    return tf.cast(images, tf.float32)


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray | None,
    batch_size: int,
    training: bool = False,
    augment: AugmentConfig | None = None,
    seed: int = 0,
    replicas: int = 1,
):
    """Build a batched dataset of (images, labels); `labels=None` (prediction) gives zeros.

    Training datasets are reshuffled every epoch, drop the last partial batch (so every step has
    the same global batch across replicas) and, on TensorFlow, are augmented when `augment` is
    enabled. The shuffle and augmentation streams derive from `seed`, so runs with the same seed
    see the same images. `replicas` only matters off TensorFlow: see `ArrayBatches.pad_to`.
    """
    from digit_keras.runtime import backend

    if backend() != "tensorflow":
        from digit_keras.data.batches import ArrayBatches

        return ArrayBatches(images, labels, batch_size, training, seed, replicas)
    import tensorflow as tf

    if labels is None:
        labels = np.zeros(len(images), dtype=np.int32)  # ignored by predict; keeps one batch shape
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).cache()
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    if training and augment is not None and augment.enabled:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, pair_seed: (
                augment_batch(as_float(batch[0]), pair_seed, augment),
                batch[1],
            ),
            num_parallel_calls=MAP_PARALLELISM,
        )
    else:
        ds = ds.map(lambda x, y: (as_float(x), y), num_parallel_calls=MAP_PARALLELISM)
    return ds.prefetch(PREFETCH_BATCHES).with_options(dataset_options())


def dataset_options():
    """Options of every dataset the project builds: no autotuner (see the module docstring), and
    sharding by batch, not by file, since multi-worker runs read in-memory arrays."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options
