"""Precise BatchNorm: exact statistics after training, so short runs give usable models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digit_keras.cli import main
from digit_keras.keras_inference import load_model
from digit_keras.models.fused_batch_norm import FusedBatchNormalization
from digit_keras.runtime import import_tensorflow
from digit_keras.training.bn_recalibration import recalibrate_batch_norm
from tests.conftest import synthetic_digits, three_step_fit_args

import_tensorflow()
import keras  # noqa: E402


def _dense_bn_model() -> keras.Model:
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="features")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_statistics_become_the_average_over_the_batches_and_settings_come_back():
    model = _dense_bn_model()
    batches = [
        np.random.default_rng(i).normal(i, 1 + i, (16, 3)).astype("float32") for i in range(3)
    ]
    features = [keras.ops.convert_to_numpy(model.get_layer("features")(b)) for b in batches]

    assert recalibrate_batch_norm(model, batches) == 3

    bn = model.get_layer("bn")
    expected_mean = np.mean([f.mean(axis=0) for f in features], axis=0)
    expected_var = np.mean([f.var(axis=0) for f in features], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected_var, rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.99 and model.get_layer("dropout").rate == 0.5


def test_nested_models_are_recalibrated_too():
    inner = _dense_bn_model()
    outer = keras.Model(inner.inputs, inner(inner.inputs[0]))
    batch = np.full((8, 3), 2.0, "float32")
    recalibrate_batch_norm(outer, [(batch, np.zeros(8))])  # (images, labels) pairs are fine
    expected = keras.ops.convert_to_numpy(inner.get_layer("features")(batch)).mean(axis=0)
    np.testing.assert_allclose(inner.get_layer("bn").moving_mean.numpy(), expected, rtol=1e-5)


@pytest.mark.slow  # trains through the CLI
def test_a_short_run_saves_a_model_as_good_in_inference_mode_as_in_training(data_dir, tmp_path):
    """Three steps of training: Keras's moving averages alone would still be near their
    initial values, and inference-mode accuracy near chance."""
    assert main([*three_step_fit_args(data_dir), "--out", "run"]) == 0
    model = load_model(tmp_path / "run" / "model.keras")
    images, labels = synthetic_digits(320)  # the run's own data: train and holdout rows
    pixels = images[..., None].astype("float32")

    def accuracy(training: bool) -> float:
        logits = keras.ops.convert_to_numpy(model(pixels, training=training))
        return float(np.mean(logits.argmax(axis=1) == labels))

    inference = accuracy(training=False)  # first: a training-mode call moves the statistics
    trained = accuracy(training=True)
    assert trained >= 0.6, "the run did not learn: the check below would mean nothing"
    # Three steps in, the net is still sensitive to which statistics normalise it: exact
    # population statistics land within a few points of batch statistics (Keras's moving
    # averages alone: about 20% against 93%).
    assert inference >= trained - 0.1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["bn_recalibration_images"] == 288


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-5), ("mixed_bfloat16", 2e-2)])
def test_the_fused_layer_trains_exactly_as_keras_batch_norm(dtype, tolerance):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(2.0, 3.0, (8, 5, 5, 4)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(8, 5, 5, 4)).astype("float32"))
    ours = FusedBatchNormalization(momentum=0.9, dtype=dtype)
    theirs = keras.layers.BatchNormalization(momentum=0.9, dtype=dtype)
    for layer in (ours, theirs):
        layer.build(images.shape)
        layer.set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), np.zeros(4), np.ones(4)])
    ours.set_weights(theirs.get_weights())

    def train_step(layer):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = tf.cast(layer(images, training=True), "float32")
            loss = tf.reduce_sum(outputs * upstream)
        return [outputs, *tape.gradient(loss, [images, layer.gamma, layer.beta])]

    for got, expected in zip(train_step(ours), train_step(theirs), strict=True):
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    for got, expected in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5)  # the moving statistics moved alike
    assert not np.allclose(ours.moving_mean, 0.0)
    np.testing.assert_allclose(ours(images), theirs(images), rtol=tolerance, atol=tolerance)
