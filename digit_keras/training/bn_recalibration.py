"""Precise BatchNorm: recompute every BN layer's inference statistics after training.

BatchNorm keeps exponential moving averages of each batch's mean and variance (momentum 0.9 in
every block here, `blocks.BN_MOMENTUM`), taken while the weights move, so they trail the final
weights; with Keras's default 0.99 a short run scores near chance in inference mode though it
trains well. Recomputing them as plain averages over batches of training images, with the final
weights, fixes that at any run length (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021).

The statistics are gathered the way the model will be used: un-augmented images and dropout off,
so each BN layer normalises the activations it sees in inference mode.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np


def _layers_of_type(model: keras.Model, kind: type) -> list:
    """Every layer of `kind` in `model`, nested models included, in graph order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, kind):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += _layers_of_type(layer, kind)
    return found


def recalibrate_batch_norm(model: keras.Model, batches: Iterable) -> int:
    """Set each BN layer's moving mean and variance to their averages over `batches`.

    `batches` yields model inputs (or (inputs, labels) pairs) as the model sees them at
    inference. Each batch runs in training mode with momentum 0, so the moving statistics
    become that batch's; their running sum gives the average. Returns the batches used.
    """
    layers = [bn for bn in _layers_of_type(model, keras.layers.BatchNormalization) if bn.trainable]
    dropouts = _layers_of_type(model, keras.layers.Dropout)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    rates = [layer.rate for layer in dropouts]
    sums = [np.zeros((2, *layer.moving_mean.shape), np.float64) for layer in layers]
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0
        for layer in dropouts:
            layer.rate = 0.0
        for batch in batches:
            inputs = batch[0] if isinstance(batch, tuple | list) else batch
            model(inputs, training=True)
            for total, layer in zip(sums, layers, strict=True):
                total[0] += keras.ops.convert_to_numpy(layer.moving_mean)
                total[1] += keras.ops.convert_to_numpy(layer.moving_variance)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for layer, rate in zip(dropouts, rates, strict=True):
            layer.rate = rate
    if count:
        for total, layer in zip(sums, layers, strict=True):
            layer.moving_mean.assign(total[0] / count)
            layer.moving_variance.assign(total[1] / count)
    return count
