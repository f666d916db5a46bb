# The digit-keras service: `digit-keras serve` with the bundled model, on ONNX Runtime only
# (no TensorFlow, no Keras). Build from the repository root, then run:
#   docker build -t digit-keras-serve .
#   docker run --rm -p 8000:8000 digit-keras-serve
# and open http://localhost:8000/. To serve your own exported run instead of the bundled model:
#   docker run --rm -p 8000:8000 -v "$PWD/saved_models/RUN:/model:ro" digit-keras-serve --model /model
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE requirements.txt ./
COPY digit_keras ./digit_keras
# The serve extra at the versions the project is tested with (requirements.txt as constraints);
# the source folder goes once installed.
RUN pip install --no-compile --constraint requirements.txt ".[serve]" \
    && rm -rf /src \
    && useradd --create-home --uid 10001 app

USER 10001
WORKDIR /home/app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"]
ENTRYPOINT ["digit-keras", "serve", "--host", "0.0.0.0", "--port", "8000"]
