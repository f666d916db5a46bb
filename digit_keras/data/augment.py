"""Random affine augmentation for digit batches: one resampling per image, never a flip.

Rotation, zoom and shift are folded into a single projective transform per image, so each
image is interpolated once (three chained layers would blur it three times). The matrices are
built with `keras.ops`; the tf.data pipeline draws the random parameters with stateless ops so
that a seed fixes the whole augmentation stream.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from digit_keras.config import AugmentConfig


def affine_transforms(angles, scales, shifts, side: int):
    """Map output pixels back to input pixels, in the 8-number form `affine_transform` expects.

    angles: (B,) radians; scales: (B,) > 1 enlarges the digit; shifts: (B, 2) pixels (x, y).
    """
    cos, sin = ops.cos(angles) / scales, ops.sin(angles) / scales
    centre = (side - 1) / 2.0
    dx, dy = centre + shifts[:, 0], centre + shifts[:, 1]
    a0, a1, b0, b1 = cos, sin, -sin, cos
    a2 = centre - a0 * dx - a1 * dy
    b2 = centre - b0 * dx - b1 * dy
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment_batch(images, seed, config: AugmentConfig):
    """Randomly rotate, zoom and shift a float batch (B, H, W, 1) using a stateless (2,) seed."""
    import tensorflow as tf

    batch, side = tf.shape(images)[0], images.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, num=3)

    def uniform(shape, limit, i):
        return tf.random.stateless_uniform(shape, seeds[i], -limit, limit)

    angles = uniform([batch], math.radians(config.rotation), 0)
    scales = 1.0 + uniform([batch], config.zoom, 1)
    shifts = uniform([batch, 2], config.shift * side, 2)
    transforms = affine_transforms(angles, scales, shifts, side)
    return keras.ops.image.affine_transform(
        images, transforms, interpolation="bilinear", fill_mode="constant", fill_value=0.0
    )
