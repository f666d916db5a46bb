"""Load a trained model and turn images into logits and labels: the work behind `predict`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digit_keras.errors import UserError
from digit_keras.runtime import import_tensorflow


def load_model(path: Path):
    """Load a `.keras` file for inference, turning a corrupt file into a one-line error."""
    import_tensorflow()
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a damaged archive
        raise UserError(f"{path}: cannot load model: {err}") from None


def predict_logits(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits (N, 10) for uint8 images, through the same scaling the model trained with."""
    from digit_keras.data.pipeline import make_dataset

    return model.predict(make_dataset(images, None, batch_size), verbose=0)
