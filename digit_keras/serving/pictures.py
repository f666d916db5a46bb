"""`digit-keras predict IMAGE...`: label and confidence per picture (or the number in it, with
`--number`), without a server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_keras.errors import UserError
from digit_keras.serving.numbers import Reading, read_number
from digit_keras.serving.preprocess import BadImage, picture_to_digit

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class PictureAnswer:
    path: Path
    probabilities: np.ndarray | None = None  # (10,)
    error: str | None = None

    @property
    def label(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


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


@dataclass
class NumberAnswer:
    path: Path
    reading: Reading | None
    error: str | None = None


def read_numbers(model_spec: str, paths: list[str]) -> list[NumberAnswer]:
    """Read the whole number in each picture, as `POST /predict/number` does, with any model
    format; a picture that cannot be read gets its error in the answer."""
    from digit_keras.model_formats import load_predictor, locate

    predict = load_predictor(locate(model_spec))
    answers = []
    for path in picture_files(paths):
        try:
            reading = read_number(path.read_bytes(), lambda digits: predict(digits[..., None], 64))
            answers.append(NumberAnswer(path, reading))
        except BadImage as err:
            answers.append(NumberAnswer(path, None, str(err)))
    return answers


def predict_pictures(model_spec: str, paths: list[str]) -> list[PictureAnswer]:
    """Preprocess each picture as the service does and classify it with any model format.

    A picture that cannot be read gets its error in the answer; the others are still answered.
    """
    from digit_keras.model_formats import load_predictor, locate

    files = picture_files(paths)
    digits, answers = [], []
    for path in files:
        try:
            digits.append(picture_to_digit(path.read_bytes()))
            answers.append(PictureAnswer(path))
        except BadImage as err:
            answers.append(PictureAnswer(path, error=str(err)))
    if digits:
        probabilities = load_predictor(locate(model_spec))(np.stack(digits)[..., None], 256)
        readable = (answer for answer in answers if answer.error is None)
        for answer, p in zip(readable, probabilities, strict=True):
            answer.probabilities = p
    return answers
