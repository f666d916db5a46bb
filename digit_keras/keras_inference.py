"""Keras models at inference: load one, fold its BatchNorm, predict logits in float32.

The Keras path of every command that predicts (`predict`, `cv`, `fit`, `export`, `bundle`);
model_formats.py puts it beside the SavedModel and ONNX paths.

Test-time augmentation (`tta`) averages the model's probabilities over the image and its
one-pixel shifts (`TTA_SHIFTS`): the digit's exact position is the nuisance MNIST varies most.

For inference the model is rewritten with every (depthwise) conv -> BatchNormalization pair
folded into a single conv with bias, which TensorFlow then fuses with the following ReLU. Outputs
are unchanged (up to float rounding) and prediction runs roughly 1.2-2x faster on CPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digit_keras.errors import UserError
from digit_keras.runtime import import_keras


def load_model(path: Path):
    """Load a `.keras` file for inference, turning a corrupt file into a one-line error.

    `safe_mode=True` (Keras's default, said here so it stays): a `.keras` file that would run
    code of its own when loaded (a serialised lambda) is refused.
    """
    keras = import_keras()
    import digit_keras.models  # noqa: F401  (registers the project's own layers for loading)

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged archive
        raise UserError(f"{path}: cannot load model: {err}") from None


def _foldable_pairs(model) -> dict[int, object]:
    """Map id(conv) to the BN layer for each (depthwise) conv whose only consumer is a
    BatchNormalization, in `model` and in the models nested in it.

    Keyed by identity, not name: the members of an averaged model share their layers' names.
    The graph is read through public attributes only: each layer's `input` and `output` tensors
    (every layer of these models is called once) and the model's outputs.
    """
    from keras import Model, layers, tree

    producer = {id(layer.output): layer for layer in model.layers}
    uses = Counter(id(tensor) for tensor in tree.flatten(model.outputs))
    for layer in model.layers:
        if not isinstance(layer, layers.InputLayer):
            uses.update(id(tensor) for tensor in tree.flatten(layer.input))
    pairs = {}
    for layer in model.layers:
        if isinstance(layer, Model):
            pairs.update(_foldable_pairs(layer))
        if not isinstance(layer, layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        conv = producer.get(id(layer.input))
        if (
            type(conv) in (layers.Conv2D, layers.DepthwiseConv2D)
            and conv.data_format == "channels_last"
            and uses[id(conv.output)] == 1
        ):
            pairs[id(conv)] = layer
    return pairs


def with_dtype(model, dtype: str):
    """A copy of `model` whose every layer, nested models' included, computes in `dtype`, with
    the same weights."""
    import keras

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def fold_batch_norm(model, dtype: str | None = None):
    """An inference-only copy of `model` with (depthwise) conv -> BatchNormalization pairs merged,
    nested models' included.

    With `dtype` (e.g. "float32"), every layer of the copy computes in it, whatever policy the
    model trained under.

    BN in inference mode is y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, which is
    again a conv: kernel * s and bias (b - mean) * s + beta, with s = gamma / sqrt(var + eps).
    """
    import keras
    from keras import layers

    pairs = _foldable_pairs(model)
    folded_bns = {id(bn) for bn in pairs.values()}

    class FoldedBatchNorm(layers.Layer):
        """Stands where a folded BN stood; takes the BN's call arguments and passes data on."""

        def call(self, inputs, training=None, mask=None):
            return inputs

    copies = []  # (source layer, its copy), for every layer cloned

    def clone(layer):
        config = layer.get_config()
        if dtype is not None:
            config["dtype"] = dtype
        if id(layer) in pairs:
            config["use_bias"] = True
        if id(layer) in folded_bns:
            copy = FoldedBatchNorm(name=layer.name, dtype=dtype)
        else:
            copy = layer.__class__.from_config(config)
        copies.append((layer, copy))
        return copy

    folded = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for source, copy in copies:
        if id(source) in pairs:
            bn = pairs[id(source)]
            gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in bn.get_weights())
            kernel, *bias = (np.asarray(w, dtype=np.float64) for w in source.get_weights())
            scale = gamma / np.sqrt(var + bn.epsilon)
            shift = ((bias[0] if bias else 0.0) - mean) * scale + beta
            kernel_scale = scale
            if isinstance(source, layers.DepthwiseConv2D):  # kernel (h, w, in, multiplier)
                kernel_scale = scale.reshape(kernel.shape[2:])
            copy.set_weights([(kernel * kernel_scale).astype("float32"), shift.astype("float32")])
        elif source.weights and id(source) not in folded_bns:
            copy.set_weights(source.get_weights())
    return folded


# (rows, columns) each test-time view moves the image by; the first is the image itself.
TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def shifted(images: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """`images` (N, H, W, C) moved down `rows` and right `columns` pixels, filling with 0 (the
    background of MNIST-style digits)."""
    pad = max(abs(rows), abs(columns))
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top, left = pad - rows, pad - columns
    return padded[:, top : top + images.shape[1], left : left + images.shape[2]]


def tta_probabilities(
    probabilities_of: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    shifts: tuple[tuple[int, int], ...] = TTA_SHIFTS,
) -> np.ndarray:
    """Mean class probabilities over the shifted views; all views go through one call."""
    views = np.concatenate([shifted(images, rows, columns) for rows, columns in shifts])
    return probabilities_of(views).reshape(len(shifts), len(images), -1).mean(axis=0)


def predict_logits(
    model,
    images: np.ndarray,
    batch_size: int = 512,
    tta: bool = False,
    fold: bool = True,
    shifts: tuple[tuple[int, int], ...] = TTA_SHIFTS,
) -> np.ndarray:
    """Logits (N, 10) for uint8 images; with `tta`, the log of the mean probabilities over the
    views `shifts` makes (their softmax is that mean). `fold=False` runs the model's own layers,
    unfolded, in their own dtype.

    The folded copy computes in float32 whatever policy the model trained under, as the exported
    SavedModel and ONNX graphs do, so every format gives the same answer for the same image.
    """
    from digit_keras.data.pipeline import make_dataset
    from digit_keras.scoring import softmax

    folded = fold_batch_norm(model, "float32") if fold else model

    def logits(batch: np.ndarray) -> np.ndarray:
        return folded.predict(make_dataset(batch, None, batch_size), verbose=0)

    if not tta:
        return logits(images)
    mean = tta_probabilities(lambda views: softmax(logits(views)), images, shifts)
    return np.log(np.clip(mean, np.finfo(np.float32).tiny, None)).astype(np.float32)
