import numpy as np
import pytest

from digit_keras.runtime import import_tensorflow
from tests.conftest import synthetic_digits

import_tensorflow()

from digit_keras.data.batches import ArrayBatches  # noqa: E402
from digit_keras.data.order import epoch_order  # noqa: E402
from digit_keras.data.pipeline import make_dataset  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    images, labels = synthetic_digits(96)
    return images[..., None], labels


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_shapes_dtypes_and_range(digits):
    images, labels = digits
    batches = _batches(make_dataset(images, labels, 32, training=True))
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
    x, y = _batches(make_dataset(images, labels, 96))[0]
    np.testing.assert_array_equal(x, images.astype(np.float32))
    np.testing.assert_array_equal(y, labels)


def test_training_order_depends_on_seed_and_epoch_alone_on_both_pipelines(digits):
    """A run resumed at epoch 1 gets the batches an uninterrupted run gets from epoch 1 on."""
    images, labels = digits
    three_epochs = _batches(make_dataset(images, labels, 32, True, seed=7, epochs=range(3)))
    assert len(three_epochs) == 9
    resumed = _batches(make_dataset(images, labels, 32, True, seed=7, epochs=range(1, 3)))
    for (x0, y0), (x1, y1) in zip(three_epochs[3:], resumed, strict=True):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)
    epoch_labels = [np.concatenate([y for _, y in three_epochs[i : i + 3]]) for i in (0, 3)]
    assert not np.array_equal(*epoch_labels)  # reshuffled every epoch
    np.testing.assert_array_equal(epoch_labels[1], labels[epoch_order(96, 32, 7, 1)])
    array_batches = ArrayBatches(images, labels, 32, training=True, seed=7, first_epoch=1)
    np.testing.assert_array_equal(
        np.concatenate([array_batches[i][1] for i in range(3)]), epoch_labels[1]
    )
    other_seed = _batches(make_dataset(images, labels, 32, True, seed=8))
    assert not np.array_equal(np.concatenate([y for _, y in other_seed]), epoch_labels[0])


def test_a_run_resumed_mid_epoch_gets_the_rest_of_that_epoch_then_whole_ones(digits):
    images, labels = digits
    three_epochs = _batches(make_dataset(images, labels, 32, True, seed=7, epochs=range(3)))
    resumed = make_dataset(images, labels, 32, True, 7, epochs=range(1, 3), skip_steps=2)
    resumed_labels = np.concatenate([y for _, y in _batches(resumed)])
    np.testing.assert_array_equal(
        resumed_labels, np.concatenate([y for _, y in three_epochs[5:]])
    )  # epoch 1's last batch, then epoch 2
    array_batches = ArrayBatches(images, labels, 32, True, seed=7, first_epoch=1, skip_steps=2)
    assert len(array_batches) == 1
    first = array_batches[0][1]
    array_batches.on_epoch_end()
    assert len(array_batches) == 3
    rest = [array_batches[i][1] for i in range(3)]
    np.testing.assert_array_equal(np.concatenate([first, *rest]), resumed_labels)


def test_prediction_dataset_without_labels(digits):
    images, _ = digits
    (x, y), *_ = _batches(make_dataset(images, None, 96))
    assert x.shape == (96, 28, 28, 1) and not y.any()


def test_datasets_run_without_the_tf_data_autotuner(digits):
    """The autotuner held training at ~1,000 images/s in half the runs on the reference CPU."""
    images, labels = digits
    for ds in (
        make_dataset(images, labels, 32, True),
        make_dataset(images, None, 32),
    ):
        assert ds.options().autotune.enabled is False
