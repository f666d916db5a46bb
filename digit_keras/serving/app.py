"""The FastAPI service behind `digit-keras serve`: pictures in, digits out, through ONNX Runtime.

Serving imports no TensorFlow: the model is an exported `.onnx` graph (raw pixels 0-255 in,
probabilities out), so the service needs only onnxruntime, not TensorFlow.

One picture costs about a millisecond of work (decoding, MNIST-style preprocessing, the model),
less than FastAPI's hand-off of a plain function to its thread pool and back, so the
single-picture routes (and the model dependency) are `async` and run that work on the event
loop: measured, this took one process from 270-285 to 398-537 answers a second at 4 in flight.
The batch route, up to 64 pictures and tens of milliseconds, stays a plain function in the thread
pool, so it does not hold up the single-picture requests behind it. One process thus uses about
one core; server.py runs several on one port.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from digit_keras import layout
from digit_keras.errors import UserError
from digit_keras.serving.doubt import SURE_PROBABILITY, TOP, is_sure, top_labels
from digit_keras.serving.numbers import read_number
from digit_keras.serving.preprocess import (
    DEFAULT_LIMITS,
    BadImage,
    Limits,
    picture_to_digit,
    pixels_to_digit,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MODEL_ENV = "DIGIT_KERAS_SERVE_MODEL"  # the model a worker process of `serve` loads
MAX_BATCH = 64
INPUT_CONTRACT = (
    "one picture of one digit (PNG, JPEG, BMP, GIF, WebP), any size and colours, made "
    "MNIST-style: grey, light ink on black, cropped, fitted in 20x20, centred by mass in 28x28"
)


@dataclass
class ServedModel:
    """An ONNX model and what is known about it (from its run's metrics or its manifest)."""

    path: Path
    session: Any
    info: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 -> (N, 10) probabilities."""
        name = self.session.get_inputs()[0].name
        pixels = digits.reshape(-1, 28, 28, 1).astype(np.float32)
        return self.session.run(None, {name: pixels})[0]


def load_served_model(path: Path) -> ServedModel:
    """Load an `.onnx` file, or the `model.onnx` of a run directory, with its description."""
    from digit_keras.model_formats import onnx_session

    onnx_path = path / layout.ONNX_FILE if path.is_dir() else path
    if path.is_dir() and not onnx_path.is_file():
        raise UserError(
            f"{path}: no {layout.ONNX_FILE}; export it first: digit-keras export --model {path} "
            "--format onnx"
        )
    if onnx_path.suffix != ".onnx" or not onnx_path.is_file():
        raise UserError(
            f"{path}: expected a run directory with {layout.ONNX_FILE}, or a .onnx file"
        )
    # One thread per call: requests run side by side, each on a core, rather than each
    # request's tiny graph split over all cores.
    return ServedModel(onnx_path, onnx_session(onnx_path, threads=1), _describe(onnx_path.parent))


def _describe(folder: Path) -> dict[str, Any]:
    """Architecture, holdout accuracy and training date from a manifest or a run's metrics.

    Nothing that names a file-system path: not the model's place on this server, nor the
    training command (it names folders of the machine that trained the model).
    """
    for name in (layout.MANIFEST_FILE, layout.METRICS_FILE):
        if (folder / name).is_file():
            raw = json.loads((folder / name).read_text())
            keys = ("arch", "models", "holdout_accuracy", "trained", "commit")
            return {"name": folder.name, **{key: raw[key] for key in keys if key in raw}}
    return {"name": folder.name}


class Prediction(BaseModel):
    label: int = Field(description="the predicted digit")
    confidence: float = Field(description="its probability")
    sure: bool = Field(
        description=f"false when the top probability is under {SURE_PROBABILITY}: the picture "
        "may be no digit at all, or between two (see docs/serving.md for the measured rates)"
    )
    top: list[int] = Field(description=f"the {TOP} most probable digits, most probable first")
    probabilities: list[float] = Field(description="the ten class probabilities, digits 0-9")
    input: list[list[int]] = Field(description="the 28x28 image the model saw, 0-255")


class DigitInNumber(BaseModel):
    label: int = Field(description="the digit")
    confidence: float = Field(description="its probability")
    sure: bool = Field(description="as for one digit: the top probability is high enough")
    top: list[int] = Field(description=f"the {TOP} most probable digits, most probable first")
    box: list[int] = Field(description="where it is in the picture: x, y, width, height in pixels")


class NumberPrediction(BaseModel):
    number: str = Field(description="the digits read left to right, e.g. '2025'")
    sure: bool = Field(description="every digit is sure")
    digits: list[DigitInNumber]


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


class Pixels(BaseModel):
    pixels: list[list[float]] | list[float] = Field(
        description="a 28x28 MNIST-style image (light ink on black), nested or flat, 0-255"
    )


class SeedAnswer(BaseModel):
    """The answer of the original service's route, for its existing clients."""

    model_config = ConfigDict(populate_by_name=True)
    class_: int = Field(alias="class", description="the predicted digit")
    probability: float


class ModelInfo(BaseModel):
    name: str = Field(description="the name of the model's folder (a run or a bundle)")
    arch: str | None = None
    models: int = Field(1, description="how many networks' probabilities are averaged")
    holdout_accuracy: float | None = None
    trained: str | None = None
    commit: str | None = Field(None, description="the digit-keras commit that trained it")
    input: str = INPUT_CONTRACT


class ErrorMessage(BaseModel):
    detail: str = Field(description="what is wrong with the request")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents, so clients (and the schema fuzzer) know them."""
    reasons = {
        400: "the picture or pixels cannot be read, or hold no digit",
        413: "the upload, or the number of files, is over the limit",
        503: "the model is not loaded yet",
    }
    return {status: {"model": ErrorMessage, "description": reasons[status]} for status in statuses}


PICTURE_ERRORS = _errors(400, 413, 503)


async def served_model(request: Request) -> ServedModel:
    model = getattr(request.app.state, "model", None)
    if model is None:
        raise HTTPException(503, "the model is not loaded yet")
    return model


Model = Annotated[ServedModel, Depends(served_model)]


def _read_upload(upload: UploadFile, limits: Limits) -> bytes:
    """The upload's bytes, reading at most one byte past the limit."""
    data = upload.file.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise HTTPException(413, f"the upload is over the limit of {limits.max_bytes:,} bytes")
    return data


def _predictions(model: ServedModel, digits: list[np.ndarray]) -> list[Prediction]:
    probabilities = model.probabilities(np.stack(digits))
    return [
        Prediction(
            label=int(p.argmax()),
            confidence=float(p.max()),
            sure=is_sure(p),
            top=top_labels(p),
            probabilities=[float(v) for v in p],
            input=digit.tolist(),
        )
        for digit, p in zip(digits, probabilities, strict=True)
    ]


Upload = Annotated[UploadFile, File(description="a picture of one digit")]


def _picture(upload: UploadFile, limits: Limits, what: str = "") -> np.ndarray:
    """An upload turned into the model's 28x28 input; bad pictures are a 4xx answer."""
    data = _read_upload(upload, limits)
    try:
        return picture_to_digit(data, limits)
    except BadImage as err:
        raise HTTPException(400, f"{what}{err}") from None


def create_app(model: ServedModel | None, limits: Limits = DEFAULT_LIMITS) -> FastAPI:
    """The app; `model` None answers 503 until `app.state.model` is set."""
    app = FastAPI(
        title="digit-keras",
        summary="Handwritten digit recognition: upload a picture, get the digit.",
    )
    app.state.model = model

    @app.get("/health", responses=_errors(503))
    async def health(model: Model) -> dict[str, str]:
        """Ready once the model is loaded (503 before)."""
        return {"status": "ok"}

    @app.get("/model", responses=_errors(503))
    def model_info(model: Model) -> ModelInfo:
        return ModelInfo(**model.info)

    @app.post("/predict", responses=PICTURE_ERRORS)
    async def predict(model: Model, file: Upload) -> Prediction:
        """One picture of one digit."""
        return _predictions(model, [_picture(file, limits)])[0]

    @app.post("/predict/number", responses=PICTURE_ERRORS)
    async def predict_number(model: Model, file: Upload) -> NumberPrediction:
        """A picture of a whole number (a year, a house number): its digits left to right."""
        data = _read_upload(file, limits)
        try:
            reading = read_number(data, model.probabilities, limits)
        except BadImage as err:
            raise HTTPException(400, str(err)) from None
        digits = [
            DigitInNumber(
                label=int(p.argmax()),
                confidence=float(p.max()),
                sure=is_sure(p),
                top=top_labels(p),
                box=list(box),
            )
            for p, box in zip(reading.probabilities, reading.boxes, strict=True)
        ]
        sure = all(digit.sure for digit in digits)
        return NumberPrediction(number=reading.number, sure=sure, digits=digits)

    @app.post("/predict/pixels", responses=_errors(400, 503))
    async def predict_pixels(model: Model, body: Pixels) -> Prediction:
        """A 28x28 MNIST-style image as numbers, taken as it is."""
        try:
            digit = pixels_to_digit(body.pixels)
        except BadImage as err:
            raise HTTPException(400, str(err)) from None
        return _predictions(model, [digit])[0]

    @app.post("/predict/batch", responses=PICTURE_ERRORS)
    def predict_batch(
        model: Model, files: Annotated[list[UploadFile], File(description="pictures")]
    ) -> BatchPrediction:
        """Several pictures, one digit each, answered in order."""
        if len(files) > MAX_BATCH:
            raise HTTPException(413, f"{len(files)} files; the limit is {MAX_BATCH} a request")
        digits = [
            _picture(upload, limits, f"file {index} ({upload.filename}): ")
            for index, upload in enumerate(files, start=1)
        ]
        return BatchPrediction(predictions=_predictions(model, digits))

    @app.post("/digit_recognizer/predict", response_model_by_alias=True, responses=PICTURE_ERRORS)
    async def seed_predict(model: Model, file: Upload) -> SeedAnswer:
        """The original service's route: the class and its probability."""
        answer = _predictions(model, [_picture(file, limits)])[0]
        return SeedAnswer(class_=answer.label, probability=answer.confidence)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_environment() -> FastAPI:
    """The app of one `serve` worker process: the model named in $DIGIT_KERAS_SERVE_MODEL."""
    return create_app(load_served_model(Path(os.environ[MODEL_ENV])))
