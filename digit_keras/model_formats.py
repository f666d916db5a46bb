"""Every model format `predict --model` takes, behind one call: images in, class scores out.

A run directory or `.keras` file runs in Keras, a SavedModel directory in TensorFlow, and a
`.onnx` file in onnxruntime, which never imports TensorFlow, so ONNX predictions start fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_keras import layout
from digit_keras.errors import UserError
from digit_keras.runtime import import_tensorflow

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"

# (uint8 images (N, 28, 28, 1), batch size) -> class probabilities (N, 10)
Predictor = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class ModelSource:
    path: Path
    kind: str  # keras | savedmodel | onnx
    run_dir: Path  # where the run's config.toml would be


def locate(spec: str) -> ModelSource:
    """Resolve `latest`, a run directory, a `.keras` file, a SavedModel directory or a `.onnx`."""
    path = layout.latest_run() if spec == "latest" else Path(spec)
    if path.is_dir():
        if (path / layout.SAVEDMODEL_FILE).is_file():
            return ModelSource(path, "savedmodel", path.parent)
        if (path / layout.MODEL_FILE).is_file():
            return ModelSource(path / layout.MODEL_FILE, "keras", path)
        raise UserError(
            f"{path}: no {layout.MODEL_FILE} (a run) or {layout.SAVEDMODEL_FILE} (a SavedModel)"
        )
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    kinds = {".keras": "keras", ".onnx": "onnx"}
    if path.suffix not in kinds:
        raise UserError(
            f"{path}: not a model; expected a run directory, .keras, SavedModel or .onnx"
        )
    return ModelSource(path, kinds[path.suffix], path.parent)


def load_predictor(source: ModelSource, tta: bool = False) -> Predictor:
    """Probabilities from any format; with `tta`, averaged over shifted views
    (keras_inference.py)."""
    from digit_keras.keras_inference import tta_probabilities

    predictor = _format_predictor(source)
    if not tta:
        return predictor
    return lambda images, batch: tta_probabilities(lambda views: predictor(views, batch), images)


def _format_predictor(source: ModelSource) -> Predictor:
    if source.kind == "onnx":
        session = onnx_session(source.path)
        return lambda images, batch: onnx_probabilities(session, images, batch)
    if source.kind == "savedmodel":
        signature = savedmodel_signature(source.path)
        return lambda images, batch: savedmodel_probabilities(signature, images, batch)
    from digit_keras.keras_inference import load_model, predict_logits
    from digit_keras.scoring import softmax

    model = load_model(source.path)
    return lambda images, batch: softmax(predict_logits(model, images, batch))


def onnx_session(path: Path, threads: int = 0):
    """An onnxruntime CPU session (`threads` per call, 0: all cores); a corrupt file is a
    one-line error."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for a bad file
        raise UserError(f"{path}: cannot load ONNX model: {str(err).splitlines()[0]}") from None


def onnx_probabilities(session, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    name = session.get_inputs()[0].name
    return _batched(lambda x: session.run(None, {name: x})[0], images, batch_size)


def savedmodel_signature(path: Path):
    tf = import_tensorflow()
    try:
        return tf.saved_model.load(str(path)).signatures["serving_default"]
    except Exception as err:  # TF raises many types for a damaged SavedModel
        raise UserError(f"{path}: cannot load SavedModel: {str(err).splitlines()[0]}") from None


def savedmodel_probabilities(signature, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    def run(pixels: np.ndarray) -> np.ndarray:
        return signature(**{INPUT_NAME: pixels})[OUTPUT_NAME].numpy()

    return _batched(run, images, batch_size)


def _batched(run, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Exported models take float32 pixel values 0-255; feed them batch by batch."""
    outputs = [
        run(images[start : start + batch_size].astype(np.float32))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 10), np.float32)


@dataclass
class SubmissionResult:
    path: Path
    rows: int
    data_source: str
    seconds: float


def predict_submission(
    model_spec: str,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    dataset: str | None = None,
    batch_size: int = 1024,
    tta: bool = False,
) -> SubmissionResult:
    """`predict --model`: label the test set with any model format and write a Kaggle
    submission (default submissions/submission_<run>[_<format>].csv)."""
    from concurrent.futures import ThreadPoolExecutor

    from digit_keras.data import load_test
    from digit_keras.data.submission import SUBMISSIONS_DIR, write_submission

    started = time.perf_counter()
    source = locate(model_spec)
    dataset = dataset or layout.run_dataset(source.run_dir)
    # Parse the CSV while the model's runtime imports: pandas' parser releases the GIL.
    with ThreadPoolExecutor(max_workers=1) as pool:
        test_data = pool.submit(load_test, dataset, data_dir)
        try:
            predictor = load_predictor(source, tta)
        finally:  # a bad test set is reported before a bad model, whichever failed first
            images, data_source = test_data.result()
    labels = predictor(images, batch_size).argmax(axis=1)
    in_run = (source.run_dir / layout.CONFIG_FILE).is_file()
    name = source.run_dir.name if in_run else source.path.stem
    suffix = "" if source.kind == "keras" else f"_{source.kind}"
    path = Path(out) if out else SUBMISSIONS_DIR / f"submission_{name}{suffix}.csv"
    write_submission(labels, path)
    return SubmissionResult(path, len(labels), data_source, time.perf_counter() - started)
