"""BatchNormalization that trains through TensorFlow's fused kernel.

Keras 3 computes batch norm in training as separate ops (a float32 cast, mean, variance,
normalise, cast back), each with its own backward pass; TensorFlow's `FusedBatchNormV3` does
forward and backward in one kernel each, bf16 included. On this project's 2-core CPU that made the
training step of `basic` 1.2-1.3x faster in float32 and 1.5-1.6x in mixed_bfloat16
(`benchmarks/bench_cpu_speed.py`: its `keras-*` variants against its `kerasbn-*` ones). The layer
is Keras's own in every other respect: the same weights and config, the same moving-average
update, and Keras's computation in inference, on other backends (JAX) and wherever the fused
kernel does not apply.
"""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="digit_keras")
class FusedBatchNormalization(layers.BatchNormalization):
    def _fused_applies(self, inputs, training, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and bool(training)
            and self.trainable
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not (self.renorm or self.synchronized)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.cast(gamma, "float32"),
            offset=tf.cast(beta, "float32"),
            mean=tf.constant([], "float32"),
            variance=tf.constant([], "float32"),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the unbiased (n - 1) batch variance; Keras averages the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(outputs, self.compute_dtype)
