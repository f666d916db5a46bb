"""Size and cost of a model, for `digit-keras models` and the benchmarks."""

from __future__ import annotations

import math

from keras import layers


def forward_flops(model) -> int:
    """FLOPs of one image's forward pass: 2 per multiply-add in conv and dense layers.

    Batch norm, activations, pooling and additions are left out; they are a few percent.
    """
    multiply_adds = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, height, width, channels = layer.output.shape
            kernel = math.prod(layer.kernel_size)
            multiply_adds += height * width * channels * kernel
        elif isinstance(layer, layers.Conv2D):
            _, height, width, filters = layer.output.shape
            in_channels = layer.input.shape[-1] // layer.groups
            multiply_adds += height * width * filters * math.prod(layer.kernel_size) * in_channels
        elif isinstance(layer, layers.Dense):
            multiply_adds += layer.input.shape[-1] * layer.units
    return 2 * multiply_adds


def input_padding(model) -> int:
    """Zero pixels added on each side of the 28x28 digit inside the model (0 if none)."""
    for layer in model.layers:
        if isinstance(layer, layers.ZeroPadding2D):
            return layer.padding[0][0]
    return 0


def describe(model) -> dict[str, float | int]:
    return {
        "params": model.count_params(),
        "mflops": forward_flops(model) / 1e6,
        "padding": input_padding(model),
    }
