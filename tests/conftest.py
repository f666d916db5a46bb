"""Shared fixtures: small synthetic Kaggle-format data and an isolated working directory.

Tests never read the real competition files: DIGIT_KERAS_DATA is cleared for every test.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digit_keras.data.kaggle import PIXEL_COLUMNS, TRAIN_COLUMNS
from tests.processes import start_serve_process


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake digits: class k is a bright bar at rows 2k+4 and 2k+5 on faint noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.int32)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
    return images.astype(np.uint8), labels.astype(np.int32)


def holdout_accuracy_of(model_path: Path, split_seed: int = 0, n_train: int = 320) -> float:
    """The saved model's accuracy on the holdout rows that `fit --split-seed split_seed` held
    out of the synthetic training data, recomputed through the inference path."""
    from digit_keras.data.split import stratified_holdout
    from digit_keras.keras_inference import load_model, predict_logits

    images, labels = synthetic_digits(n_train)
    _, holdout = stratified_holdout(labels, 0.1, seed=split_seed)
    logits = predict_logits(load_model(model_path), images[holdout][..., None])
    return float(np.mean(logits.argmax(axis=1) == labels[holdout]))


def write_csv(path: Path, header: list[str], rows: np.ndarray) -> Path:
    text = ",".join(header) + "\n" + "\n".join(",".join(map(str, row)) for row in rows) + "\n"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        handle.write(text)
    return path


def write_kaggle_data(
    directory: Path, n_train: int = 320, n_test: int = 50, gz: bool = False
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if gz else ".csv"
    images, labels = synthetic_digits(n_train)
    write_csv(
        directory / f"train{suffix}",
        TRAIN_COLUMNS,
        np.column_stack([labels, images.reshape(n_train, -1)]),
    )
    test_images, _ = synthetic_digits(n_test, seed=1)
    write_csv(directory / f"test{suffix}", PIXEL_COLUMNS, test_images.reshape(n_test, -1))
    return directory


# The smallest settings of each builder's size knobs: the same code path, a fraction of the cost.
TINY = {
    "basic": {"width": 4, "dropout": 0.0},
    "mobilenet": {"alpha": 0.125, "dropout": 0.0},
    "vgg16": {"width": 4, "dense_units": 16, "dropout": 0.0},
    "resnet50": {"blocks": (1, 1, 1, 1), "width": 4},
    "resnet164": {"depth": 11, "width": 4},
    "wrn28_10": {"depth": 10, "widen_factor": 1, "dropout": 0.0},
}


def tiny_overrides(name: str) -> list[str]:
    """`--set model.KEY=VALUE` arguments that make `fit --arch name` train the tiny model."""
    return [f"--set=model.{key}={json.dumps(list(value) if isinstance(value, tuple) else value)}"
            for key, value in TINY[name].items()]  # fmt: skip


def three_step_fit_args(data_dir: Path) -> list[str]:
    """`fit` of a width-8 `basic` for one epoch of three steps on the synthetic data, with no
    dropout or augmentation: a run short enough that slow-moving averages have not caught up."""
    args = ["fit", "--data", str(data_dir), "--epochs", "1", "--batch-size", "96", "--lr", "0.02"]
    for key in ("model.dropout", "augment.rotation", "augment.zoom", "augment.shift"):
        args += ["--set", f"{key}=0"]
    return [*args, "--set", "model.width=8", "--seed", "0"]


REPO = Path(__file__).resolve().parent.parent


# XLA's cheapest compile for every JAX program of the suite: its programs are tiny and run a few
# steps, so compiling them (seconds each at full optimisation on a 2-core CPU) is most of the JAX
# tests' time. It halves a cold-cache run; what the tests compare is compiled alike on both sides.
FAST_XLA_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def pytest_configure(config: pytest.Config) -> None:
    """Compile JAX programs cheaply (above), and let JAX keep them in .cache/jax, shared by every
    test process (xdist workers, the CLI runs in subprocesses): the suite compiles the same
    initialisers and training steps many times over."""
    flags = os.environ.get("XLA_FLAGS", "")
    if FAST_XLA_COMPILE not in flags:  # xdist workers inherit it from the main process
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_XLA_COMPILE}".strip()
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".cache" / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


# Runs `digit-keras` commands in one process (one JAX start-up) with TensorFlow unimportable.
_JAX_CLI = textwrap.dedent(
    """
    import importlib.abc, json, sys

    # As if TensorFlow were not installed: importing it fails and it stays out of sys.modules
    # (Keras looks for it there before using its tf.data helpers).
    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "tensorflow":
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoTensorFlow())
    from digit_keras.cli import main
    codes = [main(argv) for argv in json.loads(sys.argv[1])]
    print(json.dumps({"codes": codes, "tensorflow": "tensorflow" in sys.modules}))
    """
)


def run_cli_on_jax(commands: list[list[str]], cwd: Path, devices: int = 1) -> dict:
    """Run CLI commands with KERAS_BACKEND=jax on `devices` CPU devices, TensorFlow blocked.

    Returns {"codes": [exit code per command], "tensorflow": whether TensorFlow got imported,
    "errors": the "digit-keras: error:" lines printed}.
    """
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": f"{FAST_XLA_COMPILE} --xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-c", _JAX_CLI, json.dumps(commands)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    errors = [line for line in result.stderr.splitlines() if line.startswith("digit-keras: error:")]
    return {**report, "errors": errors}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run each test in its own folder (runs and submissions land there), without real data,
    and on Keras's default float32 policy."""
    monkeypatch.delenv("DIGIT_KERAS_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.chdir(tmp_path)
    yield
    keras = sys.modules.get("keras")
    if (
        keras is not None
    ):  # a mixed-precision run sets Keras's global policy; later tests expect fp32
        keras.config.set_dtype_policy("float32")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_kaggle_data(tmp_path / "data")


@contextlib.contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`digit-keras serve ARGS` as a user starts it, once /health answers; stopped on exit."""
    try:
        process, url = start_serve_process(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except RuntimeError as err:
        raise AssertionError(str(err)) from None
    try:
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=20)
