"""End-to-end through the `digit-keras` command line, on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from digit_keras.cli import build_parser, main, resolve_config
from digit_keras.config import default_config_path, load_config
from digit_keras.keras_inference import load_model
from digit_keras.runtime import import_tensorflow
from digit_keras.training.fit import fit
from digit_keras.training.session import TrainingSession
from tests.conftest import (
    TINY,
    holdout_accuracy_of,
    synthetic_digits,
    tiny_overrides,
    write_kaggle_data,
)

import_tensorflow()
import keras  # noqa: E402

TINY_FLAGS = ["--set", "model.width=4", "--batch-size", "32", "--seed", "1"]


def _run_dir(capsys) -> str:
    out = capsys.readouterr().out
    return out.splitlines()[0].removeprefix("run dir: ")


def _history_epochs(run_dir) -> list[int]:
    with open(f"{run_dir}/history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_help_does_not_import_tensorflow_or_keras():
    code = (
        "import sys, contextlib, io\n"
        "from digit_keras.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"


@pytest.mark.slow
def test_fit_then_predict_writes_a_kaggle_submission(data_dir, capsys, tmp_path, monkeypatch):
    # The run records the commit it started from, though the checkout changes before it ends.
    checkout = {"commit": "at-start"}
    monkeypatch.setattr("digit_keras.training.runs.git_commit", lambda: checkout["commit"])
    finish = TrainingSession.finish

    def finish_after_a_checkout(*args, **kwargs):
        checkout["commit"] = "checked-out-later"
        return finish(*args, **kwargs)

    monkeypatch.setattr(TrainingSession, "finish", finish_after_a_checkout)
    assert main(["fit", "--data", str(data_dir), "--epochs", "1", *TINY_FLAGS]) == 0
    run_dir = _run_dir(capsys)
    assert run_dir.startswith("saved_models/basic-")
    for name in ("config.toml", "model.keras", "history.csv", "metrics.json", "tensorboard"):
        assert (tmp_path / run_dir / name).exists(), name
    assert not (tmp_path / run_dir / "backup").exists()  # removed once training completes
    metrics = json.loads((tmp_path / run_dir / "metrics.json").read_text())
    assert metrics["holdout_images"] == 32 and metrics["train_images"] == 288
    assert metrics["train_images_per_s"] > 0
    assert metrics["commit"] == "at-start"
    # The reported accuracy is the saved model's on the holdout rows (recomputed here in other
    # batches, which may flip one near-tie under bfloat16).
    recomputed = holdout_accuracy_of(tmp_path / run_dir / "model.keras")
    assert abs(metrics["holdout_accuracy"] - recomputed) <= 1 / 32 + 1e-6
    saved = load_config(tmp_path / run_dir / "config.toml")
    assert saved.model["width"] == 4 and saved.epochs == 1 and saved.batch_size == 32

    assert main(["predict", "--model", "latest", "--data", str(data_dir)]) == 0
    assert "wrote submissions/submission_basic-" in capsys.readouterr().out
    (submission,) = (tmp_path / "submissions").iterdir()
    lines = submission.read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 51
    ids, labels = zip(*(map(int, line.split(",")) for line in lines[1:]), strict=True)
    assert list(ids) == list(range(1, 51)) and set(labels) <= set(range(10))


RESUMABLE_FIT = ["--epochs", "3", *TINY_FLAGS, "--deterministic", "--set", "model.dropout=0.25"]


def _fit_in_a_fresh_process(argv: list[str], cwd: Path, setup: str = "") -> None:
    """`digit-keras fit ARGV` in its own process (op determinism is process-wide), after `setup`."""
    code = f"{setup}\nimport sys; from digit_keras.cli import main; sys.exit(main({argv!r}))"
    subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=cwd)


@pytest.fixture(scope="module")
def never_stopped(tmp_path_factory) -> Path:
    """A deterministic 3-epoch run that nothing stopped (in `root/a`; its data in `root/data`)."""
    root = tmp_path_factory.mktemp("resume")
    data = write_kaggle_data(root / "data")
    _fit_in_a_fresh_process(["fit", "--data", str(data), *RESUMABLE_FIT, "--out", "a"], root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("backup_minutes", [0.0, 1e-9], ids=["epoch-backups", "step-backups"])
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(backup_minutes, never_stopped):
    """Deterministic kernels, and shuffle, augmentation and dropout streams that continue where
    they stopped: a run killed mid-epoch and resumed ends with the weights of a run never
    stopped. With backups at epoch ends only it redoes the epoch and logs the same history; with
    a backup after every step it continues at the step after the last one (whose training
    metrics then cover the rest of that epoch)."""
    root, data = never_stopped, str(never_stopped / "data")
    run = f"b-{backup_minutes:g}"
    argv = ["fit", "--data", data, *RESUMABLE_FIT, "--set", f"backup_minutes={backup_minutes}"]
    killed_mid_epoch_2 = (
        "import os, signal, keras\n"
        "from digit_keras.training import callbacks\n"
        "class Kill(keras.callbacks.Callback):\n"
        "    def on_train_batch_end(self, batch, logs=None):\n"
        "        if self.epoch == 2 and batch == 3: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    def on_epoch_begin(self, epoch, logs=None): self.epoch = epoch\n"
        "make_callbacks = callbacks.make_callbacks\n"
        "callbacks.make_callbacks = lambda *args: [*make_callbacks(*args), Kill()]\n"
    )
    _fit_in_a_fresh_process([*argv, "--out", run], root, killed_mid_epoch_2)
    _fit_in_a_fresh_process(["fit", "--resume", run, "--data", data], root)
    metrics = json.loads((root / run / "metrics.json").read_text())
    steps_done = 4 if backup_minutes else 0  # the Kill callback runs after the backup's
    assert (metrics["resumed_after_epoch"], metrics["resumed_after_steps"]) == (2, steps_done)
    history = [pd.read_csv(root / name / "history.csv") for name in ("a", run)]
    assert list(history[1]["epoch"]) == [0, 1, 2]
    resumed_columns = ["val_accuracy", "val_loss"] if backup_minutes else history[0].columns
    pd.testing.assert_frame_equal(history[0][resumed_columns], history[1][resumed_columns])
    pd.testing.assert_frame_equal(history[0][:2], history[1][:2])
    models = [load_model(root / name / "model.keras") for name in ("a", run)]
    for a, b in zip(*(model.get_weights() for model in models), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_fit_every_architecture_from_its_own_config(name, data_dir, tmp_path):
    argv = ["fit", "--arch", name, "--data", str(data_dir), "--epochs", "1", "--batch-size", "32"]
    assert main([*argv, "--limit", "160", *tiny_overrides(name), "--out", name]) == 0
    config = load_config(tmp_path / name / "config.toml")
    assert (
        config.arch == name and config.optimizer == load_config(default_config_path(name)).optimizer
    )
    assert (tmp_path / name / "model.keras").is_file()


@pytest.mark.slow
def test_fit_with_elastic_distortion_through_the_training_pipeline(data_dir, tmp_path):
    """The pipeline's batches have no static size on TensorFlow; the elastic path must cope."""
    argv = ["fit", "--data", str(data_dir), "--epochs", "1", *TINY_FLAGS, "--out", "elastic"]
    assert main([*argv, "--set", "augment.elastic_alpha=34"]) == 0
    assert load_config(tmp_path / "elastic" / "config.toml").augment.elastic_alpha == 34.0
    assert (tmp_path / "elastic" / "model.keras").is_file()


@pytest.mark.slow
def test_mixed_precision_training_and_prediction(data_dir, tmp_path):
    argv = ["fit", "--data", str(data_dir), "--epochs", "1", *TINY_FLAGS, "--out", "bf16"]
    try:
        assert main([*argv, "--precision", "mixed_bfloat16"]) == 0
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert load_config(tmp_path / "bf16" / "config.toml").precision == "mixed_bfloat16"
    model = keras.saving.load_model(tmp_path / "bf16" / "model.keras")
    assert model.get_layer("stage1_a_conv").compute_dtype == "bfloat16"
    assert main(["predict", "--model", "bf16", "--data", str(data_dir), "--out", "s.csv"]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 51


@pytest.mark.slow  # builds the six full-size networks
def test_models_command_lists_every_architecture(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "parameters", "MFLOPs/image", "input"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(TINY)
    assert rows["basic"].split()[1:3] == ["326,826", "30.3"]
    assert rows["wrn28_10"].endswith("28x28 padded to 32x32")


@pytest.mark.slow
def test_learns_the_synthetic_digits(data_dir, capsys, tmp_path):
    """The whole path trains on separable bars (augmentation off: shifts would relabel them)."""
    args = ["fit", "--data", str(data_dir), "--epochs", "6", *TINY_FLAGS, "--set", "model.width=8"]
    for key in ("model.dropout", "augment.rotation", "augment.zoom", "augment.shift"):
        args += ["--set", f"{key}=0"]
    assert main([*args, "--lr", "0.01"]) == 0
    metrics = json.loads((tmp_path / _run_dir(capsys) / "metrics.json").read_text())
    assert metrics["holdout_accuracy"] >= 0.9


class _Crash(Exception):
    pass


class _CrashAfterEpoch(keras.callbacks.Callback):
    """Simulate a kill at the end of an epoch, after the backup was written."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, index, logs=None):
        if index + 1 == self.epoch:
            raise _Crash


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_epoch(data_dir, capsys, tmp_path):
    args = build_parser().parse_args(["fit", "--epochs", "3", *TINY_FLAGS])
    config = resolve_config(args)
    run = tmp_path / "resumable"
    run.mkdir()
    with pytest.raises(_Crash):
        fit(config, run, data_dir=data_dir, extra_callbacks=[_CrashAfterEpoch(2)], verbose=0)
    assert _history_epochs(run) == [0, 1]
    assert not (run / "model.keras").exists() and (run / "backup").exists()

    assert main(["fit", "--resume", str(run), "--data", str(data_dir)]) == 0
    assert "resuming" in capsys.readouterr().err
    assert _history_epochs(run) == [0, 1, 2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_after_epoch"] == 2 and len(metrics["epoch_seconds"]) == 1

    assert main(["fit", "--resume", str(run), "--data", str(data_dir)]) == 2
    assert "already finished" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_interrupted_while_saving_keeps_its_epochs_and_resume_finishes_it(
    data_dir, tmp_path, monkeypatch, capsys
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    argv = ["fit", "--data", str(data_dir), "--epochs", "2", *TINY_FLAGS, "--out", str(run)]
    with monkeypatch.context() as patch:  # Ctrl-C after the last epoch, before the model is saved
        patch.setattr("digit_keras.training.session.recalibrate_on_train_rows", interrupted)
        assert main(argv) == 130
    assert (run / "backup").is_dir() and (run / "checkpoints" / "best.keras").is_file()
    assert not (run / "metrics.json").exists()

    assert main(["fit", "--resume", str(run), "--data", str(data_dir)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_after_epoch"] == 2 and metrics["epoch_seconds"] == []
    assert _history_epochs(run) == [0, 1]  # finished, not retrained from epoch 0
    assert not (run / "backup").exists()

    (run / "metrics.json").unlink()  # a run whose backup is lost cannot silently restart
    capsys.readouterr()
    assert main(["fit", "--resume", str(run), "--data", str(data_dir)]) == 2
    assert "its backup/ holds no finished epoch" in capsys.readouterr().err


def test_out_dir_must_be_fresh_and_resume_needs_a_run(data_dir, capsys, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    assert main(["fit", "--data", str(data_dir), "--out", "used"]) == 2
    assert "already exists and is not empty; use --resume used" in capsys.readouterr().err
    assert main(["fit", "--resume", "nothing-here"]) == 2
    assert "no config.toml here" in capsys.readouterr().err
    assert main(["fit", "--resume", "used", "--epochs", "3", "--set", "seed=2"]) == 2
    assert "saved config; drop --epochs, --set" in capsys.readouterr().err


def test_unknown_arch_and_bad_override_are_one_line_errors(data_dir, capsys):
    assert main(["fit", "--arch", "lenet", "--data", str(data_dir)]) == 2
    assert "no recipe for architecture 'lenet'" in capsys.readouterr().err
    assert main(["fit", "--data", str(data_dir), "--set", "optimizer.lr=1"]) == 2
    assert "unknown key 'optimizer.lr'" in capsys.readouterr().err


def test_predict_reports_missing_and_corrupt_models(tmp_path, data_dir, capsys):
    assert main(["predict", "--model", "latest", "--data", str(data_dir)]) == 2
    assert "no finished run in saved_models/" in capsys.readouterr().err
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    assert main(["predict", "--model", "broken.keras", "--data", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "broken.keras: cannot load model" in err and err.count("\n") == 1
    assert not (tmp_path / "submissions" / "submission_broken.csv").exists()


@pytest.mark.slow
def test_mnist_dataset_from_the_keras_cache(tmp_path, capsys):
    """`--dataset mnist` reads $KERAS_HOME/datasets/mnist.npz; nothing is downloaded."""
    x_train, y_train = synthetic_digits(200)
    x_test, _ = synthetic_digits(30, seed=2)
    cache = tmp_path / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    np.savez(
        cache / "mnist.npz",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=np.zeros(30, np.uint8),
    )
    assert main(["fit", "--dataset", "mnist", "--epochs", "1", *TINY_FLAGS, "--out", "m"]) == 0
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["train_images"] == 180
    assert main(["predict", "--model", "m", "--out", "mnist.csv"]) == 0  # dataset from the run
    assert len((tmp_path / "mnist.csv").read_text().splitlines()) == 31


def test_a_missing_optional_package_names_the_extra_to_install(monkeypatch, capsys):
    def needs(module: str):
        def handler(args):
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)

        return handler

    monkeypatch.setattr("digit_keras.cli.run_models", needs("sklearn.metrics"))
    assert main(["models"]) == 2
    assert "models needs sklearn.metrics" in capsys.readouterr().err
    monkeypatch.setattr("digit_keras.cli.run_serve", needs("uvicorn"))
    assert main(["serve"]) == 2
    assert "pip install 'digit-keras[serve]'" in capsys.readouterr().err
    monkeypatch.setattr("digit_keras.cli.run_models", needs("not_ours"))
    with pytest.raises(ModuleNotFoundError):  # a bug, not a missing extra: the traceback stays
        main(["models"])
