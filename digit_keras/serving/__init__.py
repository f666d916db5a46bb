"""Answering for single pictures: MNIST-style preprocessing, the FastAPI service, image predict."""

from importlib.resources import files
from pathlib import Path

# The trained default `basic` model that ships inside the package (the repository's
# saved_models/default links here): serve and image predict use it when no --model is given.
# Installed packages are plain folders, so ONNX Runtime gets an ordinary path.
BUNDLED_MODEL_DIR = Path(str(files(__name__) / "default_model"))
