"""Random affine augmentation for digit batches: one resampling per image, never a flip.

Rotation, zoom and shift are folded into a single projective transform per image, so each
image is interpolated once (three chained layers would blur it three times). The matrices are
built with `keras.ops`, the random parameters drawn by `RandomAffine`, a Keras layer in a
training-only wrapper around the network (`with_augmentation`), from a seeded
`keras.random.SeedGenerator`: one implementation and one random stream on every backend. The
saved network never contains it, so exported models take plain images.
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


def random_affine(images, config: AugmentConfig, seed: keras.random.SeedGenerator):
    """Rotate, zoom and shift a float batch (B, H, W, 1) by parameters drawn from `seed`."""
    batch, side = ops.shape(images)[0], images.shape[1]

    def uniform(shape, limit):
        return keras.random.uniform(shape, -limit, limit, seed=seed)

    angles = uniform((batch,), math.radians(config.rotation))
    scales = 1.0 + uniform((batch,), config.zoom)
    shifts = uniform((batch, 2), config.shift * side)
    transforms = affine_transforms(angles, scales, shifts, side)
    return ops.image.affine_transform(
        images, transforms, interpolation="bilinear", fill_mode="constant", fill_value=0.0
    )


@keras.saving.register_keras_serializable(package="digit_keras")
class RandomAffine(keras.layers.Layer):
    """The augmentation as a layer: active when training, the identity otherwise."""

    def __init__(
        self,
        rotation: float = 10.0,
        zoom: float = 0.1,
        shift: float = 0.1,
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # interpolate in float32 under mixed precision
        super().__init__(**kwargs)
        self.config = AugmentConfig(rotation, zoom, shift)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or not self.config.enabled:
            return images
        return random_affine(images, self.config, self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "rotation": self.config.rotation,
            "zoom": self.config.zoom,
            "shift": self.config.shift,
            "seed": self.seed,
        }


def with_augmentation(network, config: AugmentConfig, seed: int):
    """A model that augments its input when training, then runs `network` (shared, not copied).

    Train this wrapper; save `network`, which stays augmentation-free.
    """
    inputs = keras.Input(network.input_shape[1:], name="image")
    augmented = RandomAffine(config.rotation, config.zoom, config.shift, seed=seed, name="augment")(
        inputs
    )
    return keras.Model(inputs, network(augmented), name=f"{network.name}_augmented")
