import numpy as np
import pytest

from digit_keras.runtime import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
from keras import layers  # noqa: E402

from digit_keras.keras_inference import (  # noqa: E402
    TTA_SHIFTS,
    fold_batch_norm,
    predict_logits,
    shifted,
    with_dtype,
)
from digit_keras.models import build_model, list_models  # noqa: E402
from digit_keras.models.averaged import average_models  # noqa: E402
from digit_keras.scoring import softmax  # noqa: E402
from tests.conftest import TINY, synthetic_digits  # noqa: E402


def _with_trained_statistics(model):
    """Give every BN layer non-trivial statistics, as training would."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 2, n),
                    rng.normal(0, 1, n),
                    rng.normal(0, 1, n),
                    rng.uniform(0.1, 3, n),
                ]
            )
    return model


@pytest.mark.parametrize("name", list_models())
def test_folding_keeps_every_models_outputs(name):
    keras.utils.set_random_seed(0)
    model = _with_trained_statistics(build_model(name, **TINY[name]))
    x = np.random.default_rng(1).random((8, 28, 28, 1)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(fold_batch_norm(model).predict(x, verbose=0), expected, atol=1e-4)


def test_folding_removes_every_conv_bn_pair():
    keras.utils.set_random_seed(0)
    model = _with_trained_statistics(build_model("basic", width=8))
    folded = fold_batch_norm(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert "BatchNormalization" not in kinds and kinds.count("FoldedBatchNorm") == 7
    assert all(folded.get_layer(n).use_bias for n in ("stage1_a_conv", "head_conv"))
    mobile = fold_batch_norm(build_model("mobilenet", **TINY["mobilenet"]))
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in mobile.layers)


def _all_layers(model):
    """Every layer of `model`, those of the models nested in it included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def test_folding_and_dtype_reach_the_members_of_an_averaged_model():
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        members = [_with_trained_statistics(build_model("basic", width=8)) for _ in range(2)]
    finally:
        keras.config.set_dtype_policy("float32")
    averaged = average_models(members)
    x = np.random.default_rng(3).random((8, 28, 28, 1)).astype("float32") * 255
    expected = with_dtype(averaged, "float32")
    assert {layer.dtype_policy.name for layer in _all_layers(expected)} == {"float32"}
    folded = fold_batch_norm(averaged, dtype="float32")
    kinds = [type(layer).__name__ for layer in _all_layers(folded)]
    assert "BatchNormalization" not in kinds and kinds.count("FoldedBatchNorm") == 14
    assert {layer.dtype_policy.name for layer in _all_layers(folded)} == {"float32"}
    np.testing.assert_allclose(
        folded.predict(x, verbose=0), expected.predict(x, verbose=0), atol=1e-4
    )


def test_bn_not_fed_by_a_lone_conv_is_left_alone():
    inputs = keras.Input((28, 28, 1))
    conv = layers.Conv2D(4, 3, name="conv")(inputs)
    branch = layers.BatchNormalization(name="bn")(conv)
    outputs = layers.Add()([branch, conv])  # conv has two consumers: folding would be wrong
    model = _with_trained_statistics(keras.Model(inputs, outputs))
    folded = fold_batch_norm(model)
    assert isinstance(folded.get_layer("bn"), layers.BatchNormalization)
    x = np.random.default_rng(2).random((4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_predict_logits_scales_uint8_like_training():
    model = build_model("basic", width=4)
    images, _ = synthetic_digits(10)
    expected = model.predict(images[..., None].astype("float32"), verbose=0)
    np.testing.assert_allclose(predict_logits(model, images[..., None]), expected, atol=1e-4)


def test_shifted_moves_pixels_and_fills_the_border_with_background():
    image = np.arange(1, 10).reshape(1, 3, 3, 1)
    assert shifted(image, 1, 0)[0, ..., 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert shifted(image, 0, -1)[0, ..., 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]
    assert np.array_equal(shifted(image, 0, 0), image)


def test_tta_logits_are_the_log_of_the_views_mean_probabilities():
    model = build_model("basic", width=4)
    images = synthetic_digits(8)[0][..., None]
    views = [softmax(predict_logits(model, shifted(images, *shift))) for shift in TTA_SHIFTS]
    tta = softmax(predict_logits(model, images, tta=True))
    np.testing.assert_allclose(tta, np.mean(views, axis=0), atol=1e-5)
    assert not np.allclose(tta, views[0], atol=1e-5)  # the shifted views changed something
