import numpy as np
import pytest

from digit_keras.config import AugmentConfig
from digit_keras.runtime import import_tensorflow
from tests.conftest import synthetic_digits

tf = import_tensorflow()

import keras  # noqa: E402

from digit_keras.data.augment import affine_transforms  # noqa: E402
from digit_keras.data.pipeline import make_dataset  # noqa: E402

OFF = AugmentConfig(rotation=0, zoom=0, shift=0)


@pytest.fixture(scope="module")
def digits():
    images, labels = synthetic_digits(96)
    return images[..., None], labels


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_shapes_dtypes_and_range(digits):
    images, labels = digits
    batches = _batches(make_dataset(images, labels, 32, training=True, augment=AugmentConfig()))
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == (32, 28, 28, 1) and x.dtype == np.float32
        assert y.shape == (32,) and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 255.0  # raw pixels: the models scale them


def test_training_drops_partial_batch_but_evaluation_keeps_every_image(digits):
    images, labels = digits
    assert len(_batches(make_dataset(images[:90], labels[:90], 32, training=True))) == 2
    evaluation = _batches(make_dataset(images[:90], labels[:90], 32))
    assert sum(len(y) for _, y in evaluation) == 90


def test_evaluation_batches_are_the_plain_images_in_order(digits):
    images, labels = digits
    x, y = _batches(make_dataset(images, labels, 96, augment=AugmentConfig()))[0]
    np.testing.assert_array_equal(x, images.astype(np.float32))
    np.testing.assert_array_equal(y, labels)


def test_augmentation_changes_training_images_only(digits):
    images, labels = digits
    plain = _batches(make_dataset(images, labels, 32, training=True, augment=OFF, seed=5))
    augmented = _batches(
        make_dataset(images, labels, 32, training=True, augment=AugmentConfig(), seed=5)
    )
    for (x0, y0), (x1, y1) in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(y0, y1)  # same seed: same shuffle, same labels
        changed = np.abs(x0 - x1).reshape(32, -1).max(axis=1) > 0.05 * 255
        assert changed.mean() > 0.9


def test_augmentation_is_seeded_and_differs_between_epochs(digits):
    images, labels = digits

    def first_batch_two_epochs(seed):
        ds = make_dataset(images, labels, 32, training=True, augment=AugmentConfig(), seed=seed)
        return [next(iter(ds))[0].numpy() for _ in range(2)]

    a, b = first_batch_two_epochs(7), first_batch_two_epochs(7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])


def test_prediction_dataset_without_labels(digits):
    images, _ = digits
    (x, y), *_ = _batches(make_dataset(images, None, 96))
    assert x.shape == (96, 28, 28, 1) and not y.any()


def _transform(angle: float = 0.0, scale: float = 1.0, shift=(0.0, 0.0)):
    return affine_transforms(
        tf.constant([angle]), tf.constant([scale]), tf.constant([shift], tf.float32), 28
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
    np.testing.assert_allclose(_transform().numpy(), [[1, 0, 0, 0, 1, 0, 0, 0]], atol=1e-6)
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
    angles = tf.constant(rng.uniform(-np.pi, np.pi, 500), tf.float32)
    scales = tf.constant(rng.uniform(0.5, 1.5, 500), tf.float32)
    shifts = tf.constant(rng.uniform(-5, 5, (500, 2)), tf.float32)
    a0, a1, _, b0, b1, *_ = tf.unstack(affine_transforms(angles, scales, shifts, 28), axis=1)
    assert np.all((a0 * b1 - a1 * b0).numpy() > 0)


def test_datasets_run_without_the_tf_data_autotuner(digits):
    """The autotuner held training at ~1,000 images/s in half the runs on the reference CPU."""
    images, labels = digits
    for ds in (
        make_dataset(images, labels, 32, True, AugmentConfig()),
        make_dataset(images, None, 32),
    ):
        assert ds.options().autotune.enabled is False
