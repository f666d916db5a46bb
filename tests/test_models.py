import numpy as np
import pytest

from digit_keras.errors import UserError
from digit_keras.runtime import import_keras

import_keras()  # on $KERAS_BACKEND: CI runs this file on TensorFlow and on JAX

import inspect  # noqa: E402

import keras  # noqa: E402

from digit_keras.config import default_config_path, load_config  # noqa: E402
from digit_keras.models import build_model, get_builder, list_models  # noqa: E402
from digit_keras.models.averaged import average_models  # noqa: E402
from digit_keras.models.deskew import Deskew  # noqa: E402
from digit_keras.models.stats import describe  # noqa: E402
from tests.conftest import TINY  # noqa: E402

# Parameter counts of the papers' 10-class nets: MobileNet v1 (Howard et al. 2017), ResNet-50 with
# a 10-way head, ResNet-164 (He et al. 2016, 1.7M) and WRN-28-10 (Zagoruyko & Komodakis 2016,
# 36.5M). `basic` and `vgg16` (our 512-unit head) have no published count for these exact nets:
# theirs are regression pins of this code.
REFERENCE_PARAMS = {
    "basic": 326_826,
    "mobilenet": 3.2e6,
    "vgg16": 15.0e6,
    "resnet50": 23.5e6,
    "resnet164": 1.7e6,
    "wrn28_10": 36.5e6,
}
MODELS = list_models()
# The graph's structure (names, shapes, counts) comes from keras.layers alone; the tiny-model tests
# below prove each network runs on JAX, where every new weight shape costs an XLA compile.
SAME_ON_EVERY_BACKEND = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="structure does not depend on the backend; checked on TensorFlow",
)
BATCH = np.random.default_rng(0).random((16, 28, 28, 1)).astype("float32")
LABELS = np.arange(16) % 10


@pytest.fixture(autouse=True)
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_every_model_has_tiny_settings_a_reference_size_and_a_config():
    assert set(TINY) == set(MODELS) == set(REFERENCE_PARAMS)
    for name in MODELS:
        config = load_config(default_config_path(name))
        assert config.arch == name
        accepted = inspect.signature(get_builder(name)).parameters
        assert set(config.model) <= set(accepted), name


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(UserError, match="unknown architecture 'lenet'; choose from: basic"):
        build_model("lenet")
    with pytest.raises(UserError, match="model 'basic' has no option depth"):
        build_model("basic", depth=3)


@pytest.mark.parametrize("name", MODELS)
def test_tiny_model_shape_step_and_round_trips(name, tmp_path):
    # Compiled calls only: on JAX every eager op of a new shape is an XLA compile of its own.
    keras.utils.set_random_seed(0)
    model = build_model(name, **TINY[name])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = model.train_on_batch(BATCH, LABELS)  # the loss before this step's update
    assert model.train_on_batch(BATCH, LABELS) < before

    expected = model.predict(BATCH, verbose=0)
    assert expected.shape == (16, 10) and expected.dtype == np.float32
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(BATCH, verbose=0), expected, atol=1e-6)

    rebuilt = keras.Model.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(BATCH, verbose=0), expected, atol=1e-6)


def _upright_slanted_and_blank() -> np.ndarray:
    """Three images in [0, 1]: an upright bar, a bar leaning 6 columns over 20 rows, nothing."""
    images = np.zeros((3, 28, 28, 1), "float32")
    images[0, 4:24, 13:15] = 1.0
    for row in range(4, 24):
        left = 10 + (row - 4) // 3
        images[1, row, left : left + 2] = 1.0
    return images


def test_deskew_stands_a_slanted_stroke_upright_and_leaves_an_upright_one_alone():
    upright, slanted, blank = _upright_slanted_and_blank()
    out = np.asarray(Deskew()(np.stack([upright, slanted, blank])))

    def centre_columns(image):
        rows = image[4:24, :, 0]
        return (rows * np.arange(28)).sum(axis=1) / rows.sum(axis=1)

    np.testing.assert_allclose(out[0], upright, atol=1e-6)
    assert np.ptp(centre_columns(slanted)) == 6
    assert np.ptp(centre_columns(out[1])) < 1
    assert out[1].sum() == pytest.approx(slanted.sum(), rel=1e-3)
    assert not out[2].any()


@pytest.mark.parametrize("name", MODELS)
def test_deskew_is_a_layer_in_front_of_every_network(name, tmp_path):
    keras.utils.set_random_seed(0)
    plain = build_model(name, **TINY[name])
    deskewed = build_model(name, deskew=True, **TINY[name])
    deskewed.set_weights(plain.get_weights())
    images = _upright_slanted_and_blank()
    front = keras.Model(deskewed.input, deskewed.get_layer("deskew").output)
    np.testing.assert_allclose(front(images * 255), Deskew()(images), atol=1e-5)
    mirrored = (BATCH + BATCH[:, :, ::-1]) / 2  # left-right symmetric: no slant to remove
    np.testing.assert_allclose(
        deskewed.predict(mirrored, verbose=0), plain.predict(mirrored, verbose=0), atol=1e-5
    )
    deskewed.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    expected = deskewed.predict(BATCH, verbose=0)
    np.testing.assert_allclose(loaded.predict(BATCH, verbose=0), expected, atol=1e-6)


def test_averaged_models_output_the_log_of_their_mean_probabilities(tmp_path):
    members = []
    for seed in (0, 1, 2):
        keras.utils.set_random_seed(seed)
        members.append(build_model("basic", **TINY["basic"]))
    averaged = average_models(members)
    probabilities = [keras.ops.softmax(m.predict(BATCH, verbose=0)) for m in members]
    expected = np.mean([keras.ops.convert_to_numpy(p) for p in probabilities], axis=0)
    got = keras.ops.convert_to_numpy(keras.ops.softmax(averaged.predict(BATCH, verbose=0)))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    averaged.save(tmp_path / "averaged.keras")
    loaded = keras.saving.load_model(tmp_path / "averaged.keras")
    np.testing.assert_allclose(loaded.predict(BATCH, verbose=0), averaged.predict(BATCH, verbose=0))
    with pytest.raises(ValueError, match="at least two"):
        average_models(members[:1])


@pytest.mark.parametrize("name", MODELS)
def test_logits_stay_float32_under_mixed_precision(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_model(name, **TINY[name])
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == "bfloat16"
    assert model(BATCH[:2]).dtype == "float32"


@SAME_ON_EVERY_BACKEND
@pytest.mark.parametrize("name", MODELS)
def test_full_size_parameter_count_matches_the_paper_or_its_pin(name):
    assert build_model(name).count_params() == pytest.approx(REFERENCE_PARAMS[name], rel=0.02)


@SAME_ON_EVERY_BACKEND
def test_networks_are_named_by_what_was_built():
    assert build_model("wrn28_10", depth=16, widen_factor=2).name == "wrn16_2"
    assert build_model("resnet164", depth=20, width=4).name == "resnet20"
    assert build_model("basic", width=8).name == "basic"


@SAME_ON_EVERY_BACKEND
def test_size_knobs_pass_through():
    assert build_model("basic", width=8).get_layer("stage1_a_conv").filters == 8
    assert build_model("mobilenet", alpha=0.5).get_layer("block13_pw_conv").filters == 512
    assert (
        len([n for n in build_model("resnet164", depth=20).layers if n.name.endswith("_add")]) == 6
    )
    assert (
        build_model("wrn28_10", depth=10, widen_factor=2).get_layer("stage3_block1_a_conv").filters
        == 128
    )
    with pytest.raises(UserError, match="9n \\+ 2"):
        build_model("resnet164", depth=100)


def test_resnet50_blocks_start_as_the_identity():
    model = build_model("resnet50", blocks=(2, 1, 1, 1), width=4)
    last_bns = [layer for layer in model.layers if layer.name.endswith("_c_bn")]
    assert len(last_bns) == 5
    for layer in last_bns:  # the residual branch's last scale: zero until trained
        np.testing.assert_array_equal(layer.gamma, 0.0)


@pytest.mark.parametrize(
    ("stem", "first_stage_side"), [("small", 28), ("stride2", 14), ("imagenet", 7)]
)
def test_resnet50_stems_set_the_first_stage_resolution(stem, first_stage_side):
    model = build_model("resnet50", blocks=(1, 1, 1, 1), width=4, stem=stem)
    side = first_stage_side
    for stage in range(1, 5):
        assert model.get_layer(f"stage{stage}_block1_add").output.shape[1:3] == (side, side)
        side = (side + 1) // 2
    with pytest.raises(UserError, match=r"'model\.stem': Input should be 'small', 'stride2' or"):
        build_model("resnet50", stem="large")


def test_stats_count_flops_and_padding():
    # basic at width 32: 15.1M multiply-adds, worked out layer by layer in models/basic.py terms
    convs = [(26, 26, 32, 9, 1), (24, 24, 32, 9, 32), (12, 12, 32, 25, 32), (10, 10, 64, 9, 32),
             (8, 8, 64, 9, 64), (4, 4, 64, 25, 64), (1, 1, 128, 16, 64)]  # fmt: skip
    multiply_adds = sum(h * w * f * k * c for h, w, f, k, c in convs) + 128 * 10
    assert describe(build_model("basic")) == {
        "params": 326_826,
        "mflops": 2 * multiply_adds / 1e6,
        "padding": 0,
    }
    assert describe(build_model("vgg16", **TINY["vgg16"]))["padding"] == 2
