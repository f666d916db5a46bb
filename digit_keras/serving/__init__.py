"""Answering for single pictures: MNIST-style preprocessing, the FastAPI service, image predict."""

from pathlib import Path

# The trained default `basic` model that ships with the project: serve and image predict use it
# when no --model is given.
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent.parent / "saved_models" / "default"
