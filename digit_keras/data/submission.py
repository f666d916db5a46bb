"""Kaggle submission files: `ImageId,Label`, ImageId 1..N, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digit_keras.atomic import atomic_path

SUBMISSIONS_DIR = Path("submissions")  # where submissions go unless an output path is given


def write_submission(labels: np.ndarray, path: str | os.PathLike) -> Path:
    lines = ["ImageId,Label"]
    lines += [f"{image_id},{int(label)}" for image_id, label in enumerate(labels, start=1)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="ascii")
    return Path(path)
