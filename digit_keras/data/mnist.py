"""The classic MNIST set from keras.datasets, for users without a Kaggle account.

Keras caches the download at $KERAS_HOME/datasets/mnist.npz (default ~/.keras). We read that cache
directly when it exists, so an offline machine with the file in place never touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digit_keras.errors import DataError


def cache_path() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "mnist.npz"


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return train images (N, 28, 28, 1) uint8, train labels int32 and test images."""
    path = cache_path()
    if not path.is_file():
        import keras

        keras.datasets.mnist.load_data()  # downloads into the cache and checks its hash
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x_train, y_train, x_test = arrays["x_train"], arrays["y_train"], arrays["x_test"]
    except (OSError, KeyError, ValueError) as err:
        raise DataError(
            f"{path}: not a readable MNIST archive ({err}); delete it to re-download"
        ) from None
    if x_train.shape[1:] != (28, 28) or len(x_train) != len(y_train):
        raise DataError(f"{path}: unexpected array shapes {x_train.shape}, {y_train.shape}")
    return x_train[..., None].astype(np.uint8), y_train.astype(np.int32), x_test[..., None]
