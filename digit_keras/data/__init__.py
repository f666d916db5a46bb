"""Data: Kaggle CSVs or keras MNIST in, uint8 (N, 28, 28, 1) arrays out; splits; submissions."""

from __future__ import annotations

import os

import numpy as np

from digit_keras.data.kaggle import find_csv, read_test_csv, read_train_csv
from digit_keras.data.mnist import cache_path, load_mnist


def load_train(
    dataset: str, data_dir: str | os.PathLike | None, limit: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """Return training images, labels and a description of where they came from."""
    if dataset == "mnist":
        images, labels, _ = load_mnist()
        source = str(cache_path())
    else:
        path = find_csv(data_dir, "train")
        images, labels = read_train_csv(path)
        source = str(path)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels, source


def load_test(dataset: str, data_dir: str | os.PathLike | None) -> tuple[np.ndarray, str]:
    """Return the unlabelled images to predict and where they came from."""
    if dataset == "mnist":
        return load_mnist()[2], str(cache_path())
    path = find_csv(data_dir, "test")
    return read_test_csv(path), str(path)
