"""Augmentation, on whichever Keras backend runs the tests: the affine transforms, the
`RandomAffine` layer and the training-only wrapper `fit` trains on every backend."""

import numpy as np
import pytest

from digit_keras.config import AugmentConfig
from digit_keras.runtime import import_keras
from tests.conftest import synthetic_digits

keras = import_keras()

from digit_keras.data.augment import (  # noqa: E402
    RandomAffine,
    affine_transforms,
    change_stroke_width,
    elastic_displacements,
    gaussian_smoothing,
    warp,
    with_augmentation,
)
from digit_keras.models import build_model  # noqa: E402


def _transform(angle: float = 0.0, scale: float = 1.0, shift=(0.0, 0.0)):
    return affine_transforms(
        np.array([angle], "float32"), np.array([scale], "float32"), np.array([shift], "float32"), 28
    )


def _warp(image: np.ndarray, transforms) -> np.ndarray:
    """Apply transforms the way augmentation does, with nearest-pixel sampling for exact checks."""
    warped = keras.ops.image.affine_transform(
        image, transforms, interpolation="nearest", fill_mode="constant", fill_value=0.0
    )
    return keras.ops.convert_to_numpy(warped)


def test_identity_and_pure_shift_transforms():
    image = np.zeros((1, 28, 28, 1), np.float32)
    image[0, 10:14, 8:12] = 1.0
    identity = keras.ops.convert_to_numpy(_transform())
    np.testing.assert_allclose(identity, [[1, 0, 0, 0, 1, 0, 0, 0]], atol=1e-6)
    moved = _warp(image, _transform(shift=(3.0, -2.0)))
    np.testing.assert_array_equal(moved[0, 8:12, 11:15], 1.0)  # up 2 rows, right 3 columns
    assert moved.sum() == image.sum()


def test_rotation_turns_about_the_centre():
    image = np.zeros((1, 28, 28, 1), np.float32)
    image[0, 4:8, 12:16] = 1.0  # a block above the centre
    rows, cols = np.nonzero(_warp(image, _transform(angle=np.pi / 2))[0, :, :, 0])
    assert abs(rows.mean() - 13.5) < 1 and abs(cols.mean() - 13.5) > 6  # now beside the centre


def test_transforms_never_mirror():
    """A flip has a negative determinant; rotations and zooms never do, at any strength."""
    rng = np.random.default_rng(0)
    angles = rng.uniform(-np.pi, np.pi, 500).astype("float32")
    scales = rng.uniform(0.5, 1.5, 500).astype("float32")
    shifts = rng.uniform(-5, 5, (500, 2)).astype("float32")
    matrices = keras.ops.convert_to_numpy(affine_transforms(angles, scales, shifts, 28))
    a0, a1, _, b0, b1, *_ = matrices.T
    assert np.all(a0 * b1 - a1 * b0 > 0)


def _images(n: int = 8) -> np.ndarray:
    return synthetic_digits(n)[0][..., None].astype("float32")


def test_augmentation_layer_changes_training_batches_only_and_is_seeded():
    images = _images()
    layer = RandomAffine(seed=3)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    first = keras.ops.convert_to_numpy(layer(images, training=True))
    second = keras.ops.convert_to_numpy(layer(images, training=True))
    assert first.shape == images.shape and not np.allclose(first, images, atol=1e-3)
    assert not np.allclose(first, second, atol=1e-3)  # a new draw every batch
    again = keras.ops.convert_to_numpy(RandomAffine(seed=3)(images, training=True))
    np.testing.assert_allclose(again, first, atol=1e-6)  # same seed, same stream
    off = RandomAffine(0, 0, 0, seed=3)(images, training=True)
    assert np.array_equal(keras.ops.convert_to_numpy(off), images)


def test_wrapper_shares_the_network_and_saves_nothing_of_the_augmentation(tmp_path):
    network = build_model("basic", width=4)
    wrapper = with_augmentation(network, AugmentConfig(), seed=0)
    images = _images()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(wrapper(images, training=False)),
        keras.ops.convert_to_numpy(network(images, training=False)),
        atol=1e-6,
    )
    assert {id(w) for w in network.weights} <= {id(w) for w in wrapper.weights}
    network.save(tmp_path / "network.keras")
    loaded = keras.saving.load_model(tmp_path / "network.keras")
    assert not any(isinstance(layer, RandomAffine) for layer in loaded.layers)
    config = wrapper.get_layer("augment").get_config()
    assert RandomAffine.from_config(config).get_config() == config


def test_the_elastic_path_resamples_like_the_affine_one_when_nothing_is_displaced():
    """Elastic augmentation samples through `warp`; with zero offsets it must be the same map."""
    images = _images(6)
    rng = np.random.default_rng(1)
    transforms = affine_transforms(
        rng.uniform(-0.3, 0.3, 6).astype("float32"),
        rng.uniform(0.9, 1.1, 6).astype("float32"),
        rng.uniform(-3, 3, (6, 2)).astype("float32"),
        28,
    )
    affine = keras.ops.image.affine_transform(
        images, transforms, interpolation="bilinear", fill_mode="constant", fill_value=0.0
    )
    warped = warp(images, transforms, np.zeros((6, 28, 28, 2), "float32"))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(warped), keras.ops.convert_to_numpy(affine), atol=1e-3
    )
    # A displacement of one whole pixel is a shift by one pixel.
    right = np.zeros((6, 28, 28, 2), "float32")
    right[..., 0] = -1.0  # each output pixel reads the input pixel to its left
    moved = keras.ops.convert_to_numpy(warp(images[:1], _transform(), right[:1]))
    np.testing.assert_allclose(moved[0, :, 1:], images[0, :, :-1], atol=1e-3)


def test_elastic_displacements_are_smooth_seeded_and_scale_with_alpha():
    ones = np.ones((1, 28, 28, 2), "float32")
    smoothed = keras.ops.convert_to_numpy(gaussian_smoothing(ones, 2.0))
    np.testing.assert_allclose(smoothed[0, 10:18, 10:18], 1.0, atol=1e-5)  # weights sum to 1

    def field(alpha: float, seed: int = 5) -> np.ndarray:
        generator = keras.random.SeedGenerator(seed)
        return keras.ops.convert_to_numpy(elastic_displacements(4, 28, alpha, 4.0, generator))

    first = field(34.0)
    np.testing.assert_allclose(field(34.0), first, atol=1e-5)
    np.testing.assert_allclose(field(17.0), first / 2, atol=1e-4)
    assert 0.5 < first.std() < 3.0  # pixels: Simard et al.'s 34 and 4 move ink a pixel or so
    step = np.abs(np.diff(first, axis=2)).mean()  # neighbours move together: a smooth field
    assert step < 0.2 * np.abs(first).mean()


def test_elastic_augmentation_changes_training_batches_and_keeps_its_config():
    images = _images()
    layer = RandomAffine(0, 0, 0, seed=3, elastic_alpha=34.0, elastic_sigma=4.0)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    distorted = keras.ops.convert_to_numpy(layer(images, training=True))
    assert not np.allclose(distorted, images, atol=1.0)
    again = RandomAffine(0, 0, 0, seed=3, elastic_alpha=34.0, elastic_sigma=4.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(images, training=True)), distorted)
    wrapper = with_augmentation(build_model("basic", width=4), AugmentConfig(elastic_alpha=8.0), 0)
    config = wrapper.get_layer("augment").get_config()
    assert config["elastic_alpha"] == 8.0 and config["elastic_sigma"] == 4.0
    assert RandomAffine.from_config(config).get_config() == config


def test_stroke_width_change_dilates_erodes_or_blends_per_image():
    dot = np.zeros((28, 28, 1), "float32")
    dot[10, 10] = 200.0
    block = np.zeros((28, 28, 1), "float32")
    block[9:12, 9:12] = 200.0
    images = np.stack([dot, block, dot, block])
    changed = change_stroke_width(images, np.array([1.0, -1.0, 0.5, 0.0], "float32"), 1.0, 1.0)
    changed = keras.ops.convert_to_numpy(changed)
    np.testing.assert_array_equal(changed[0], block)  # a full dilation: the dot grows to 3x3
    np.testing.assert_array_equal(changed[1], dot)  # a full erosion: the block shrinks to a dot
    np.testing.assert_allclose(changed[2], (dot + block) / 2)  # halfway to the dilation
    np.testing.assert_array_equal(changed[3], block)  # 0 leaves the image as it is
    grown = change_stroke_width(dot[None], np.array([1.5], "float32"), 2.0, 0.0)
    five = np.zeros_like(dot)
    five[8:13, 8:13] = 200.0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grown)[0], (block + five) / 2)


@pytest.mark.parametrize("stroke", [1.0, 2.0])
def test_stroke_augmentation_changes_ink_both_ways_and_keeps_its_config(stroke):
    images = _images(64)
    layer = RandomAffine(0, 0, 0, seed=3, stroke=stroke)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    changed = keras.ops.convert_to_numpy(layer(images, training=True))
    ink_ratio = changed.sum(axis=(1, 2, 3)) / images.sum(axis=(1, 2, 3))
    assert ink_ratio.min() < 0.9 and ink_ratio.max() > 1.1  # some digits thinner, some thicker
    config = layer.get_config()
    assert config["stroke"] == stroke
    assert RandomAffine.from_config(config).get_config() == config
