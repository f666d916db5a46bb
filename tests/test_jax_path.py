"""The JAX path: array batches and the CLI on KERAS_BACKEND=jax.

The CLI tests run in fresh processes with TensorFlow made unimportable, so they prove the JAX
path needs no TensorFlow even where it is installed. `make test` runs this file (with the
registry tests) in .venv-jax, which has no TensorFlow at all. test_export.py checks that a model
trained on JAX exports on TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digit_keras.runtime import import_keras
from tests.conftest import (
    holdout_accuracy_of,
    run_cli_on_jax,
    synthetic_digits,
    write_kaggle_data,
)

pytest.importorskip("jax")
keras = import_keras()

from digit_keras.data.augment import RandomAffine  # noqa: E402
from digit_keras.data.batches import ArrayBatches  # noqa: E402

TINY_FIT = ["--set", "model.width=4", "--batch-size", "32", "--seed", "1", "--epochs", "1"]


def test_array_batches_shuffle_per_epoch_drop_or_pad_the_last_batch():
    images, labels = synthetic_digits(10)
    images = images[..., None]
    train = ArrayBatches(images, labels, 4, training=True, seed=0, pad_to=3)
    assert len(train) == 2  # 10 rows: two whole batches, the partial one dropped
    x, y = train[0]
    assert x.dtype == np.float32 and x.shape == (4, 28, 28, 1) and x.max() <= 255.0
    first_epoch = np.concatenate([train[i][1] for i in range(2)])
    train.on_epoch_end()
    assert not np.array_equal(first_epoch, np.concatenate([train[i][1] for i in range(2)]))

    holdout = ArrayBatches(images, labels, 6, pad_to=3)  # a global batch of 6 on 3 devices
    assert len(holdout) == 2
    x, y, weights = holdout[1]  # rows 6 to 9, padded to 6 rows
    assert x.shape[0] == 6 and weights.tolist() == [1, 1, 1, 1, 0, 0] and not x[4:].any()
    np.testing.assert_array_equal(y[:4], labels[6:])
    np.testing.assert_array_equal(holdout[0][0], images[:6].astype(np.float32))
    (only_images,) = ArrayBatches(images, None, 4)[0]
    assert only_images.shape == (4, 28, 28, 1)


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory) -> Path:
    """A deterministic bf16 fit, its predictions, two 2-fold cv runs and their ensemble. The cv
    runs differ only in seed, so the second one's XLA programs come from the compilation cache."""
    root = tmp_path_factory.mktemp("jax")
    data = str(write_kaggle_data(root / "data"))
    # --deterministic on the first command: it must come before JAX starts its devices.
    deterministic_bf16 = ["--precision", "mixed_bfloat16", "--deterministic"]
    commands = [
        ["fit", "--data", data, *TINY_FIT, *deterministic_bf16, "--out", "fit"],
        ["predict", "--model", "fit", "--data", data, "--out", "fit.csv"],
        ["cv", "--data", data, *TINY_FIT, "--folds", "2", "--out", "cv"],
        ["cv", "--data", data, *TINY_FIT, "--folds", "2", "--seed", "2", "--out", "cv2"],
        ["ensemble", "cv", "cv2", "--method", "mean", "--out", "ensemble.csv"],
    ]
    report = run_cli_on_jax(commands, root)
    assert report == {"codes": [0] * len(commands), "tensorflow": False, "errors": []}
    return root


@pytest.mark.slow
def test_fit_predict_cv_and_ensemble_run_on_jax_without_tensorflow(jax_runs):
    fit_dir = jax_runs / "fit"
    for name in ("config.toml", "model.keras", "history.csv", "checkpoints/best.keras"):
        assert (fit_dir / name).is_file(), name
    for part in ("train", "validation"):
        assert list((fit_dir / "tensorboard" / part).glob("events.out.tfevents.*")), part
    metrics = json.loads((fit_dir / "metrics.json").read_text())
    assert metrics["backend"] == "jax" and metrics["precision"] == "mixed_bfloat16"
    assert "deterministic = true" in (fit_dir / "config.toml").read_text()
    assert metrics["epoch_seconds"][0] > 0
    recomputed = holdout_accuracy_of(fit_dir / "model.keras")  # the default split
    assert abs(metrics["holdout_accuracy"] - recomputed) <= 1 / 32 + 1e-6  # one near-tie
    assert len((jax_runs / "fit.csv").read_text().splitlines()) == 51
    cv_metrics = json.loads((jax_runs / "cv" / "metrics.json").read_text())
    assert cv_metrics["oof_rows"] == 320
    assert np.load(jax_runs / "cv" / "test_logits.npy").shape == (2, 50, 10)
    assert len((jax_runs / "ensemble.csv").read_text().splitlines()) == 51


@pytest.mark.slow
def test_jax_model_is_augmentation_free_and_keeps_its_precision(jax_runs):
    model = keras.saving.load_model(jax_runs / "fit" / "model.keras")
    assert not any(isinstance(layer, RandomAffine) for layer in model.layers)
    assert model.get_layer("stage1_a_conv").compute_dtype == "bfloat16"
    images = synthetic_digits(2)[0][..., None].astype("float32")
    assert keras.ops.convert_to_numpy(model(images)).dtype == np.float32


@pytest.mark.slow
def test_data_parallel_over_three_devices_matches_one_device(data_dir, tmp_path):
    """Same global batch (48), data and initial weights: losses and holdout scores must agree.

    The 46-row holdout does not split over 3 devices, so its batch is padded with weightless rows.
    """
    common = ["--data", str(data_dir), "--set", "model.width=4", "--set", "model.dropout=0"]
    common += ["--set", "augment.rotation=0", "--set", "augment.zoom=0", "--set", "augment.shift=0"]
    common += ["--limit", "305", "--val-fraction", "0.15", "--epochs", "2", "--seed", "2"]
    common += ["--precision", "float32"]  # bf16 rounding would differ with the reduction order
    commands = [
        ["fit", *common, "--strategy", "default", "--batch-size", "48", "--out", "one"],
        ["fit", *common, "--strategy", "mirrored", "--batch-size", "16", "--out", "three"],
    ]
    assert run_cli_on_jax(commands, tmp_path, devices=3)["codes"] == [0, 0]
    one, three = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "three"))
    assert (one["replicas"], three["replicas"]) == (1, 3)
    assert one["holdout_images"] == 46 and one["global_batch_size"] == three["global_batch_size"]
    assert three["holdout_accuracy"] == pytest.approx(one["holdout_accuracy"], abs=1e-6)
    assert three["holdout_loss"] == pytest.approx(one["holdout_loss"], rel=1e-3)


@pytest.mark.slow
def test_export_without_tensorflow_is_a_clear_error(jax_runs):
    report = run_cli_on_jax([["export", "--model", "fit"]], jax_runs)
    assert report["codes"] == [2] and not (jax_runs / "fit" / "model.onnx").exists()
    assert "Keras backend 'tensorflow' cannot start" in report["errors"][0]
    assert "pip install 'digit-keras[tensorflow]'" in report["errors"][0]


def test_multi_worker_on_jax_is_a_clear_error(data_dir, tmp_path):
    argv = ["fit", "--data", str(data_dir), "--strategy", "multi-worker", "--out", "mw"]
    report = run_cli_on_jax([argv], tmp_path)
    assert report["codes"] == [2]
    assert "multi-worker is TensorFlow-only" in report["errors"][-1]
    assert not (tmp_path / "mw").exists()
