"""`digit-keras export` and `predict` from every format: parity with Keras, no TF for ONNX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digit_keras.cli import main
from digit_keras.errors import UserError
from digit_keras.runtime import import_tensorflow
from tests.conftest import TINY, run_cli_on_jax

import_tensorflow()
from digit_keras.export import TOLERANCE, export, random_images  # noqa: E402
from digit_keras.model_formats import load_predictor, locate  # noqa: E402
from digit_keras.models import build_model, list_models  # noqa: E402


def _train(data_dir, out, precision: str = "float32"):
    """A tiny model trained for one epoch."""
    args = ["fit", "--data", str(data_dir), "--epochs", "1", "--batch-size", "32"]
    assert main([*args, "--set", "model.width=4", "--precision", precision, "--out", out]) == 0
    return Path(out).resolve()


@pytest.fixture
def trained_run(data_dir, tmp_path):
    return _train(data_dir, "run")


@pytest.mark.slow
def test_export_both_formats_then_predict_the_same_labels_from_each(
    trained_run, data_dir, tmp_path, capsys
):
    assert main(["export", "--model", str(trained_run), "--data", str(data_dir)]) == 0
    report = json.loads((trained_run / "export.json").read_text())
    for fmt in ("savedmodel", "onnx"):
        assert report[fmt]["max_abs_diff"] <= TOLERANCE and report[fmt]["argmax_agreement"] == 1
        assert report[fmt]["checked_images"] == 50 and report[fmt]["bytes"] > 0
        assert report[fmt]["checked_on"] == "test-set images"
    assert (trained_run / "savedmodel" / "saved_model.pb").is_file()

    import onnxruntime

    session = onnxruntime.InferenceSession(str(trained_run / "model.onnx"))
    (image,), (output,) = session.get_inputs(), session.get_outputs()
    assert (image.name, image.shape, image.type) == ("image", ["batch", 28, 28, 1], "tensor(float)")
    assert (output.name, output.shape) == ("probabilities", ["batch", 10])
    probabilities = session.run(None, {"image": np.zeros((3, 28, 28, 1), np.float32)})[0]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    submissions = []
    for model in ("run", "run/savedmodel", "run/model.onnx"):
        out = tmp_path / f"{model.replace('/', '_')}.csv"
        assert main(["predict", "--model", model, "--data", str(data_dir), "--out", str(out)]) == 0
        submissions.append(out.read_text())
    assert submissions[0] == submissions[1] == submissions[2]
    assert submissions[0].count("\n") == 51
    tta = []  # test-time augmentation runs the same views through every format
    for model in ("run", "run/model.onnx"):
        out = tmp_path / f"tta-{model.replace('/', '_')}.csv"
        args = ["predict", "--model", model, "--tta", "--data", str(data_dir), "--out", str(out)]
        assert main(args) == 0
        tta.append(out.read_text())
    assert tta[0] == tta[1] and tta[0].count("\n") == 51


@pytest.mark.slow
def test_a_mixed_precision_run_exports_a_float32_graph(data_dir, tmp_path):
    run = _train(data_dir, "bf16", precision="mixed_bfloat16")
    assert main(["export", "--model", str(run), "--data", str(data_dir)]) == 0
    report = json.loads((run / "export.json").read_text())
    assert max(report[fmt]["max_abs_diff"] for fmt in ("savedmodel", "onnx")) <= TOLERANCE
    import onnx

    graph = onnx.load(str(run / "model.onnx")).graph
    float32 = onnx.TensorProto.FLOAT
    assert graph.input[0].type.tensor_type.elem_type == float32
    # Integer initializers are shapes and indices (which integer type depends on the converter's
    # path); every real-valued weight is float32 and nothing casts to a 16-bit float.
    other_real_types = {
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
    }
    weight_types = {
        t.data_type for t in graph.initializer if t.data_type in other_real_types | {float32}
    }
    assert weight_types == {float32}
    cast_targets = {
        a.i for n in graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"
    }
    assert not cast_targets & other_real_types
    # Keras predicts in float32 too, whatever the run trained in: both formats answer alike.
    images = random_images(200)
    keras_probabilities, onnx_probabilities = (
        load_predictor(locate(str(model)))(images, 64) for model in (run, run / "model.onnx")
    )
    np.testing.assert_allclose(keras_probabilities, onnx_probabilities, atol=TOLERANCE)


@pytest.mark.slow
def test_predicting_with_onnx_does_not_import_tensorflow(trained_run, data_dir, tmp_path):
    assert main(["export", "--model", str(trained_run), "--format", "onnx"]) == 0
    code = (
        "import sys\n"
        "from digit_keras.cli import main\n"
        f"code = main(['predict', '--model', 'run/model.onnx', '--data', {str(data_dir)!r}])\n"
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.splitlines()[-1] == "0 False False"
    assert (tmp_path / "submissions" / "submission_run_onnx.csv").is_file()


@pytest.mark.slow
def test_model_trained_on_jax_exports_and_predicts_alike_on_tensorflow(data_dir, tmp_path):
    pytest.importorskip("jax")
    # float32: in bfloat16 the two backends' kernels round differently, enough to flip a near-tie.
    fit = ["fit", "--data", str(data_dir), "--epochs", "1", "--precision", "float32"]
    jax_commands = [
        [*fit, "--set", "model.width=4", "--out", "run"],
        ["predict", "--model", "run", "--data", str(data_dir), "--out", "jax.csv"],
    ]
    assert run_cli_on_jax(jax_commands, tmp_path)["codes"] == [0, 0]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backend"] == "jax"
    assert main(["export", "--model", "run", "--format", "onnx", "--data", str(data_dir)]) == 0
    assert main(["predict", "--model", "run", "--data", str(data_dir), "--out", "tf.csv"]) == 0
    assert (tmp_path / "tf.csv").read_text() == (tmp_path / "jax.csv").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_architecture_exports_with_parity(name, tmp_path):
    _assert_exports_with_parity(build_model(name, **TINY[name]), tmp_path)


def test_a_deskewing_model_exports_with_parity(tmp_path):
    _assert_exports_with_parity(build_model("basic", deskew=True, **TINY["basic"]), tmp_path)


def _assert_exports_with_parity(model, out_dir: Path) -> None:
    images = random_images(16)
    report = dict(export(model, out_dir, ("savedmodel", "onnx"), images))
    for fmt in ("savedmodel", "onnx"):
        assert report[fmt]["max_abs_diff"] <= TOLERANCE, fmt


def test_parity_is_checked_against_the_trained_model_so_a_wrong_fold_fails(monkeypatch, tmp_path):
    import digit_keras.keras_inference as inference

    fold = inference.fold_batch_norm

    def wrong_fold(model, dtype=None):  # what a sign error in the folded bias would give
        folded = fold(model, dtype)
        conv = folded.get_layer("stage1_a_conv")
        kernel, bias = conv.get_weights()
        conv.set_weights([kernel, bias + 0.5])
        return folded

    monkeypatch.setattr(inference, "fold_batch_norm", wrong_fold)
    model = build_model("basic", **TINY["basic"])
    images = random_images(16)
    with pytest.raises(UserError, match="disagrees with the trained model"):
        dict(export(model, tmp_path, ("onnx",), images))
    assert not (tmp_path / "model.onnx").exists()


def test_missing_and_corrupt_models_are_one_line_errors(tmp_path, data_dir, capsys):
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    (tmp_path / "empty").mkdir()
    (tmp_path / "badsaved").mkdir()
    (tmp_path / "badsaved" / "saved_model.pb").write_bytes(b"not a protobuf")
    cases = {
        "broken.onnx": "broken.onnx: cannot load ONNX model",
        "badsaved": "badsaved: cannot load SavedModel",
        "empty": "empty: no model.keras (a run) or saved_model.pb",
        "missing.onnx": "missing.onnx: model file not found",
        "notes.txt": "notes.txt: model file not found",
    }
    for model, message in cases.items():
        assert main(["predict", "--model", model, "--data", str(data_dir)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["export", "--model", "empty"]) == 2
    assert "empty: no model.keras here" in capsys.readouterr().err
    assert not (tmp_path / "submissions").exists()


def test_a_new_savedmodel_replaces_the_old_only_once_it_is_written(tmp_path):
    from digit_keras.export import _replace_dir

    target = tmp_path / "savedmodel"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")

    def failing(path):
        path.mkdir()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _replace_dir(target, failing)
    assert (target / "saved_model.pb").read_text() == "old"

    def writer(path):
        path.mkdir()
        (path / "saved_model.pb").write_text("new")

    _replace_dir(target, writer)
    assert (target / "saved_model.pb").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["savedmodel"]  # nothing left beside it
