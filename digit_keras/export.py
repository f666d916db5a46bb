"""Deployable copies of a trained model, SavedModel and ONNX, each checked against Keras.

The exported graph is float32 inference only, whatever precision the run trained in: no
augmentation (a training-only wrapper around the network, data/augment.py), no dropout,
BatchNorm folded into the convs, the model's own 1/255 scaling, and a softmax added. Input
`image`: float32 (batch, 28, 28, 1) holding raw pixel values 0-255, as in the Kaggle CSVs;
output: the 10 class probabilities.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from digit_keras import layout
from digit_keras.atomic import atomic_path, write_text_atomic
from digit_keras.errors import UserError
from digit_keras.model_formats import (
    INPUT_NAME,
    OUTPUT_NAME,
    onnx_probabilities,
    onnx_session,
    savedmodel_probabilities,
    savedmodel_signature,
)
from digit_keras.runtime import import_tensorflow

FORMATS = ("savedmodel", "onnx")
TOLERANCE = 1e-4  # largest allowed difference in any probability, exported vs Keras


def serving_model(model):
    """The float32 inference graph that gets exported: pixels 0-255 in, probabilities out."""
    import_tensorflow()
    import keras

    from digit_keras.keras_inference import fold_batch_norm

    core = fold_batch_norm(model, dtype="float32")
    image = keras.Input((28, 28, 1), name=INPUT_NAME, dtype="float32")
    probabilities = keras.layers.Softmax(name=OUTPUT_NAME, dtype="float32")(core(image))
    serving = keras.Model(image, probabilities, name=f"{model.name}_serving")
    serving(np.zeros((1, 28, 28, 1), np.float32))  # ONNX export needs a model called once
    return serving


def write_savedmodel(serving, target: Path) -> None:
    """A SavedModel whose `serving_default` signature maps `image` to `probabilities`."""
    tf = import_tensorflow()
    import keras

    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda image: {OUTPUT_NAME: serving(image, training=False)},
        input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32, name=INPUT_NAME)],
    )
    _replace_dir(target, lambda tmp: archive.write_out(str(tmp), verbose=False))


def write_onnx(serving, target: Path, opset: int | None = None) -> None:
    """An ONNX graph (via tf2onnx) with input `image` and a dynamic batch dimension."""
    import keras

    spec = keras.InputSpec(shape=(None, 28, 28, 1), dtype="float32", name=INPUT_NAME)
    with atomic_path(target) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx patch probes np.object
        serving.export(
            str(tmp), format="onnx", input_signature=[spec], opset_version=opset, verbose=False
        )
        _name_onnx_interface(tmp)


def _name_onnx_interface(path: Path) -> None:
    """tf2onnx names the output after a TF op and the batch axis `unk__N`; give them our names."""
    import onnx

    proto = onnx.load(str(path))
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        for index, name in enumerate(node.output):
            if name == old:
                node.output[index] = OUTPUT_NAME
    proto.graph.output[0].name = OUTPUT_NAME
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(proto, str(path))


def export(
    model, out_dir: Path, formats: tuple[str, ...], images: np.ndarray, opset: int | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Write each format into `out_dir` and check it on `images` (uint8), yielding (format, its
    check) as each one passes, so a caller can record it before the next is written.

    A format whose probabilities differ by more than TOLERANCE from the model as trained (its own
    layers, batch norm unfolded, computing in float32 as the export does) is removed again and
    raised as an error: so a wrong batch-norm fold or a layer left in bf16 cannot pass.
    """
    from digit_keras.keras_inference import predict_logits, with_dtype
    from digit_keras.scoring import softmax

    serving = serving_model(model)
    expected = softmax(predict_logits(with_dtype(model, "float32"), images, fold=False))
    for fmt in formats:
        started = time.perf_counter()
        if fmt == "savedmodel":
            target = out_dir / layout.SAVEDMODEL_DIR
            write_savedmodel(serving, target)
            seconds = time.perf_counter() - started
            got = savedmodel_probabilities(savedmodel_signature(target), images)
        else:
            target = out_dir / layout.ONNX_FILE
            write_onnx(serving, target, opset)
            seconds = time.perf_counter() - started
            got = onnx_probabilities(onnx_session(target), images)
        check = {
            "path": str(target),
            "seconds": round(seconds, 2),
            "bytes": _size(target),
            "max_abs_diff": float(np.max(np.abs(got - expected))),
            "argmax_agreement": float(np.mean(got.argmax(1) == expected.argmax(1))),
            "checked_images": len(images),
            "tolerance": TOLERANCE,
        }
        # Within TOLERANCE, labels can differ only on near-ties, so probabilities decide.
        if check["max_abs_diff"] > TOLERANCE:
            _remove(target)
            raise UserError(
                f"{target}: exported model disagrees with the trained model (max probability "
                f"difference {check['max_abs_diff']:.2e}, labels agree on "
                f"{check['argmax_agreement']:.2%}); removed"
            )
        yield fmt, check


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _replace_dir(target: Path, write) -> None:
    """Write a directory beside `target`, then swap it in: a failure leaves the old one, and
    the old one moves aside before the new one takes its name (a directory cannot be renamed
    over another), so `target` is missing only between two renames."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write(tmp / "new")
        if target.exists():
            target.rename(tmp / "old")
        (tmp / "new").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def random_images(count: int) -> np.ndarray:
    """Seeded random pixels (uint8, count x 28 x 28 x 1) to check an export on without data."""
    return np.random.default_rng(0).integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)


def export_run(
    run_dir: Path,
    formats: tuple[str, ...] = FORMATS,
    data_dir: str | Path | None = None,
    check_images: int = 1024,
    opset: int | None = None,
) -> dict[str, Any]:
    """`digit-keras export`: export a finished run's model, checked on the first `check_images`
    test-set images when the test set is at hand, else on seeded random pixels, and record each
    format's check in the run's export.json as it passes (formats exported before are kept)."""
    from digit_keras.data import load_test
    from digit_keras.errors import DataError
    from digit_keras.keras_inference import load_model

    if not (run_dir / layout.MODEL_FILE).is_file():
        raise UserError(f"{run_dir}: no {layout.MODEL_FILE} here; --model takes a finished run")
    try:
        images = load_test(layout.run_dataset(run_dir), data_dir)[0][:check_images]
        checked_on = "test-set images"
    except DataError:
        images = random_images(check_images)
        checked_on = "random images (no test set found)"
    report_path = run_dir / layout.EXPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    for fmt, check in export(
        load_model(run_dir / layout.MODEL_FILE), run_dir, formats, images, opset
    ):
        report[fmt] = {**check, "checked_on": checked_on}
        write_text_atomic(report_path, json.dumps(report, indent=2) + "\n")
    return report
