"""`digit-keras predict IMAGE...`: label and confidence per picture, without a server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_keras.errors import UserError
from digit_keras.serving.doubt import is_sure, top_labels
from digit_keras.serving.preprocess import BadImage, picture_to_digit

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class PictureAnswer:
    path: Path
    label: int | None
    confidence: float | None
    error: str | None = None
    sure: bool = False
    top: list[int] | None = None


def picture_files(paths: list[str]) -> list[Path]:
    """The given files, and the pictures (by suffix) in the given folders, sorted by name."""
    files = []
    for spec in map(Path, paths):
        if spec.is_dir():
            files += sorted(p for p in spec.iterdir() if p.suffix.lower() in SUFFIXES)
        elif spec.is_file():
            files.append(spec)
        else:
            raise UserError(f"{spec}: no such file or folder")
    if not files:
        raise UserError(f"no pictures ({', '.join(SUFFIXES)}) in {', '.join(paths)}")
    return files


def predict_pictures(model_spec: str, paths: list[str]) -> list[PictureAnswer]:
    """Preprocess each picture as the service does and classify it with any model format.

    A picture that cannot be read gets its error in the answer; the others are still answered.
    """
    from digit_keras.predictors import load_predictor, locate

    files = picture_files(paths)
    digits, answers = [], []
    for path in files:
        try:
            digits.append(picture_to_digit(path.read_bytes()))
            answers.append(PictureAnswer(path, None, None))
        except BadImage as err:
            answers.append(PictureAnswer(path, None, None, str(err)))
    if digits:
        probabilities = load_predictor(locate(model_spec))(np.stack(digits)[..., None], 256)
        readable = (answer for answer in answers if answer.error is None)
        for answer, p in zip(readable, probabilities, strict=True):
            answer.label, answer.confidence = int(p.argmax()), float(p.max())
            answer.sure, answer.top = is_sure(p), top_labels(p)
    return answers
