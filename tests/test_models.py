import numpy as np
import pytest

from digit_keras.errors import UserError
from digit_keras.runtime import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

from digit_keras.models import build_model, list_models  # noqa: E402

TINY = {"basic": {"width": 4}}


def test_registry_lists_basic_and_rejects_unknowns():
    assert "basic" in list_models()
    with pytest.raises(UserError, match="unknown architecture 'lenet'; choose from: basic"):
        build_model("lenet")
    with pytest.raises(UserError, match="model 'basic' has no option depth"):
        build_model("basic", depth=3)


@pytest.mark.parametrize("name", list_models())
def test_tiny_model_shape_training_and_round_trip(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(name, **TINY[name])
    x = np.random.default_rng(0).random((16, 28, 28, 1)).astype("float32")
    y = np.arange(16) % 10
    logits = model(x, training=False)
    assert tuple(logits.shape) == (16, 10) and logits.dtype == "float32"

    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = model.evaluate(x, y, verbose=0)
    for _ in range(5):
        model.train_on_batch(x, y)
    assert model.evaluate(x, y, verbose=0) < before

    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_basic_default_size_and_overrides():
    assert build_model("basic").count_params() == 326_826
    model = build_model("basic", width=8, dropout=0.1)
    assert model.get_layer("head_dropout").rate == 0.1
    assert model.get_layer("stage1_a_conv").filters == 8


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("basic", width=4)
        assert model.get_layer("stage1_a_conv").compute_dtype == "bfloat16"
        assert model(np.zeros((2, 28, 28, 1), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
