"""Deskewing inside the model: each digit's slant is sheared away before the first conv.

The classic MNIST normalisation (LeCun et al. 1998 list "deskewed" variants of several
classifiers): the intensity-weighted covariance of row and column gives the slant
`alpha = cov(row, col) / var(row)`, and shifting each row by `alpha * (row - mean row)` columns
makes the digit upright, leaving its centre of mass where it was. Ciresan et al. (2012,
"Multi-column deep neural networks") trained committee members on differently normalised inputs
because they err on different images. Built from `keras.ops` only (linear interpolation as an
einsum), so it trains on both backends and exports to ONNX with the model.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="digit_keras")
class Deskew(layers.Layer):
    """Shear each image (batch, height, width, channels) so its strokes stand upright.

    Computes in float32 whatever the dtype policy (moments of 784 pixels in bf16 are coarse). A
    blank image stays blank.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, images):
        height, width = images.shape[1], images.shape[2]
        rows = ops.arange(height, dtype="float32")[None, :, None]
        cols = ops.arange(width, dtype="float32")[None, None, :]
        mass_map = ops.sum(images, axis=-1)
        mass = ops.maximum(ops.sum(mass_map, axis=(1, 2)), 1e-6)

        def mean(values):
            return ops.sum(values * mass_map, axis=(1, 2)) / mass

        mean_row, mean_col = mean(rows), mean(cols)
        row_offset = rows - mean_row[:, None, None]
        col_offset = cols - mean_col[:, None, None]
        row_variance = mean(ops.square(row_offset))
        slant = mean(row_offset * col_offset) / ops.maximum(row_variance, 1e-6)

        # Output pixel (row, col) reads the input at column col + slant * (row - mean_row), with
        # linear interpolation: weights[b, row, col, j] = max(0, 1 - |j - source column|).
        source_cols = cols + slant[:, None, None] * row_offset  # (batch, height, width)
        pixel_cols = ops.arange(width, dtype="float32")
        weights = ops.relu(1.0 - ops.abs(pixel_cols - source_cols[..., None]))
        return ops.einsum("brjc,brwj->brwc", images, weights)

    def compute_output_shape(self, input_shape):
        return input_shape
