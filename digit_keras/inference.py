"""Load a trained model and turn images into logits: the work behind `predict`.

For inference the model is rewritten with every (depthwise) conv -> BatchNormalization pair
folded into a single conv with bias, which TensorFlow then fuses with the following ReLU. Outputs
are unchanged (up to float rounding) and prediction runs roughly 1.2-2x faster on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digit_keras.errors import UserError
from digit_keras.runtime import import_keras


def load_model(path: Path):
    """Load a `.keras` file for inference, turning a corrupt file into a one-line error."""
    keras = import_keras()
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a damaged archive
        raise UserError(f"{path}: cannot load model: {err}") from None


def _foldable_pairs(model) -> dict[str, object]:
    """Map each (depthwise) conv whose only consumer is a BatchNormalization to that BN."""
    from keras import layers

    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        producer = layer.input._keras_history.operation
        if (
            type(producer) in (layers.Conv2D, layers.DepthwiseConv2D)
            and producer.data_format == "channels_last"
            and len(producer._outbound_nodes) == 1
        ):
            pairs[producer.name] = layer
    return pairs


def fold_batch_norm(model, dtype: str | None = None):
    """An inference-only copy of `model` with (depthwise) conv -> BatchNormalization pairs merged.

    With `dtype` (e.g. "float32"), every layer of the copy computes in it, whatever policy the
    model trained under.

    BN in inference mode is y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, which is
    again a conv: kernel * s and bias (b - mean) * s + beta, with s = gamma / sqrt(var + eps).
    """
    import keras
    from keras import layers

    pairs = _foldable_pairs(model)
    folded_bns = {bn.name for bn in pairs.values()}

    class FoldedBatchNorm(layers.Layer):
        """Stands where a folded BN stood; takes the BN's call arguments and passes data on."""

        def call(self, inputs, training=None, mask=None):
            return inputs

    def clone(layer):
        config = layer.get_config()
        if dtype is not None:
            config["dtype"] = dtype
        if layer.name in pairs:
            config["use_bias"] = True
        elif layer.name in folded_bns:
            return FoldedBatchNorm(name=layer.name, dtype=dtype)
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for source in model.layers:
        if source.name in pairs:
            bn = pairs[source.name]
            gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in bn.get_weights())
            kernel, *bias = (np.asarray(w, dtype=np.float64) for w in source.get_weights())
            scale = gamma / np.sqrt(var + bn.epsilon)
            shift = ((bias[0] if bias else 0.0) - mean) * scale + beta
            kernel_scale = scale
            if isinstance(source, layers.DepthwiseConv2D):  # kernel (h, w, in, multiplier)
                kernel_scale = scale.reshape(kernel.shape[2:])
            weights = [(kernel * kernel_scale).astype("float32"), shift.astype("float32")]
            folded.get_layer(source.name).set_weights(weights)
        elif source.weights and source.name not in folded_bns:
            folded.get_layer(source.name).set_weights(source.get_weights())
    return folded


def predict_logits(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits (N, 10) for uint8 images, through the same scaling the model trained with."""
    from digit_keras.data.pipeline import make_dataset

    return fold_batch_norm(model).predict(make_dataset(images, None, batch_size), verbose=0)
