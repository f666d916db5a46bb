"""Several trained models as one Keras model that outputs the mean of their probabilities.

An ensemble built this way saves, exports (SavedModel, ONNX), predicts and serves through the same
code as a single network. Its output is the log of the mean probability: softmax turns it back
into that mean, so everything that reads a model's logits reads it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="digit_keras")
class MeanOfProbabilities(layers.Layer):
    """Logits of several models in, log of their mean softmax out, in float32."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, member_logits):
        log_probabilities = ops.stack([ops.log_softmax(x) for x in member_logits])
        return ops.logsumexp(log_probabilities, axis=0) - math.log(len(member_logits))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def average_models(models: Sequence[keras.Model], name: str = "averaged") -> keras.Model:
    """One model whose probabilities are the mean of `models`' (same input shape, trained)."""
    if len(models) < 2:
        raise ValueError("averaging needs at least two models")
    inputs = keras.Input(shape=models[0].input_shape[1:], name="image")
    # Each member under a name of its own: two `basic` networks would otherwise clash.
    members = [keras.Model(m.input, m.output, name=f"member{i}") for i, m in enumerate(models)]
    outputs = MeanOfProbabilities(name="mean_of_probabilities")([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name=name)
