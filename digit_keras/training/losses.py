"""Cross-entropy on integer labels, with optional label smoothing.

Keras's SparseCategoricalCrossentropy takes no `label_smoothing` (only its one-hot sibling
does), and the pipeline yields integer labels. This loss one-hot encodes them inside the graph
and smooths the targets as Szegedy et al. (2016) do: each of the K classes gets smoothing / K,
the true class the remaining 1 - smoothing on top. At smoothing 0 it is plain cross-entropy.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="digit_keras")
class SparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against integer labels; honours sample weights."""

    def __init__(
        self,
        label_smoothing: float = 0.0,
        reduction: str = "mean_with_sample_weight",
        name: str = "sparse_crossentropy",
        **kwargs,
    ):
        super().__init__(reduction=reduction, name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        targets = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
