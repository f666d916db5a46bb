"""Random affine augmentation for digit batches: one resampling per image, never a flip.

Rotation, zoom and shift are folded into a single projective transform per image, so each
image is interpolated once (three chained layers would blur it three times). An elastic
distortion, when asked for, is added to the same map from output to input pixels, so it too
costs no second interpolation. A stroke-width change, when asked for, thickens or thins each
digit before it is resampled (people's pens are not MNIST's). The matrices are
built with `keras.ops`, the random parameters drawn by `RandomAffine`, a Keras layer in a
training-only wrapper around the network (`with_augmentation`), from a seeded
`keras.random.SeedGenerator`: one implementation and one random stream on every backend. The
saved network never contains it, so exported models take plain images.
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

from digit_keras.config import AugmentConfig

# MNIST's strokes are 2-3 pixels wide: a whole erosion erases many of them (trained with up to
# one, `basic` lost 19 of 8,400 held-out digits on fold 0), so thinning stops at half of one.
MAX_THINNING = 0.5


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


def gaussian_smoothing(fields, sigma: float):
    """Blur (B, H, W, C) fields channel by channel with a normalised Gaussian (zero padding),
    as two 1-D passes."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = ops.arange(-radius, radius + 1, dtype="float32")
    weights = ops.exp(-0.5 * ops.square(offsets / sigma))
    weights = weights / ops.sum(weights)
    channels = fields.shape[-1]
    column = ops.tile(ops.reshape(weights, (-1, 1, 1, 1)), (1, 1, channels, 1))
    fields = ops.depthwise_conv(fields, column, padding="same")
    return ops.depthwise_conv(fields, ops.transpose(column, (1, 0, 2, 3)), padding="same")


def elastic_displacements(batch, side: int, alpha: float, sigma: float, seed):
    """(B, side, side, 2) offsets in pixels (x, y), the elastic distortion of Simard et al. (2003):
    uniform noise in [-1, 1] per pixel, smoothed by a Gaussian of `sigma`, times `alpha`."""
    noise = keras.random.uniform((batch, side, side, 2), -1.0, 1.0, seed=seed)
    return alpha * gaussian_smoothing(noise, sigma)


def warp(images, transforms, displacements):
    """Sample a float batch (B, H, W, 1) at the affine `transforms` of each output pixel plus
    its `displacements` (B, H, W, 2): bilinear, zero outside the image."""
    side = images.shape[1]
    grid = ops.arange(side, dtype="float32")
    rows, cols = ops.meshgrid(grid, grid, indexing="ij")
    a0, a1, a2, b0, b1, b2 = (ops.reshape(transforms[:, i], (-1, 1, 1)) for i in range(6))
    source_x = a0 * cols + a1 * rows + a2 + displacements[..., 0]
    source_y = b0 * cols + b1 * rows + b2 + displacements[..., 1]

    def sample(image_and_coordinates):  # one image: its size is known when the batch's is not
        image, coordinates = image_and_coordinates
        return ops.image.map_coordinates(image, coordinates, order=1, fill_mode="constant")

    coordinates = ops.stack([source_y, source_x], axis=1)  # (B, 2, H, W)
    return ops.vectorized_map(sample, (images[..., 0], coordinates))[..., None]


def change_stroke_width(images, amounts, thickest: float, thinnest: float):
    """Thicken (amount > 0) or thin (amount < 0) the strokes of each image of a float batch
    (B, H, W, 1) by `amounts` (B,) pixels on every side, -thinnest <= amounts <= thickest.

    One pixel is one 3x3 grey dilation or erosion; a fraction blends linearly between the whole
    steps either side of it (0.5: halfway from the image to its dilation).
    """
    steps = {0: images}
    for step in range(1, math.ceil(thickest) + 1):
        steps[step] = ops.max_pool(steps[step - 1], 3, strides=1, padding="same")
    for step in range(1, math.ceil(thinnest) + 1):
        steps[-step] = -ops.max_pool(-steps[1 - step], 3, strides=1, padding="same")
    amounts = ops.reshape(amounts, (-1, 1, 1, 1))
    return sum(ops.relu(1.0 - ops.abs(amounts - step)) * image for step, image in steps.items())


def random_affine(images, config: AugmentConfig, seed: keras.random.SeedGenerator):
    """Rotate, zoom, shift (and elastically distort and change the stroke width of, if the
    config says so) a float batch (B, H, W, 1) by parameters drawn from `seed`."""
    batch, side = ops.shape(images)[0], images.shape[1]

    def uniform(shape, limit):
        return keras.random.uniform(shape, -limit, limit, seed=seed)

    if config.stroke:
        thinnest = min(config.stroke, MAX_THINNING)
        amounts = keras.random.uniform((batch,), -thinnest, config.stroke, seed=seed)
        images = change_stroke_width(images, amounts, config.stroke, thinnest)
    angles = uniform((batch,), math.radians(config.rotation))
    scales = 1.0 + uniform((batch,), config.zoom)
    shifts = uniform((batch, 2), config.shift * side)
    transforms = affine_transforms(angles, scales, shifts, side)
    if config.elastic_alpha:
        displacements = elastic_displacements(
            batch, side, config.elastic_alpha, config.elastic_sigma, seed
        )
        return warp(images, transforms, displacements)
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
        elastic_alpha: float = 0.0,
        elastic_sigma: float = 4.0,
        stroke: float = 0.0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # interpolate in float32 under mixed precision
        super().__init__(**kwargs)
        self.config = AugmentConfig(rotation, zoom, shift, elastic_alpha, elastic_sigma, stroke)
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
            "elastic_alpha": self.config.elastic_alpha,
            "elastic_sigma": self.config.elastic_sigma,
            "stroke": self.config.stroke,
        }


def with_augmentation(network, config: AugmentConfig, seed: int):
    """A model that augments its input when training, then runs `network` (shared, not copied).

    Train this wrapper; save `network`, which stays augmentation-free.
    """
    inputs = keras.Input(network.input_shape[1:], name="image")
    augment = RandomAffine(**dataclasses.asdict(config), seed=seed, name="augment")
    augmented = augment(inputs)
    return keras.Model(inputs, network(augmented), name=f"{network.name}_augmented")
