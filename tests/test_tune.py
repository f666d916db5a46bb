"""`digit-keras tune`: every tuner kind on tiny synthetic data, space-file errors, resume, and a
chief + worker search on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from digit_keras.cli import main
from digit_keras.config import default_config_path, default_space_path, load_config
from digit_keras.tuning.space import load_space
from tests.processes import free_ports

TINY_SPACE = """
[search]
epochs = 1
max_trials = 2

[space.optimizer.learning_rate]
type = "float"
min = 1e-3
max = 1e-2
sampling = "log"

[space."model.width"]
type = "choice"
values = [4, 6]
"""


@pytest.fixture
def space_file(tmp_path) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(TINY_SPACE)
    return path


def _tune(data_dir, space_file, out, *extra: str) -> int:
    args = ["tune", "--data", str(data_dir), "--space", str(space_file), "--out", str(out)]
    return main([*args, "--batch-size", "32", *extra])


def _trials(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize(
    "tuner_args",
    # Hyperband sizes its brackets from max_epochs: 2 gives two trials of 2 epochs.
    [["--tuner", "random"], ["--tuner", "hyperband", "--epochs", "2"], ["--tuner", "bayesian"]],
    ids=["random", "hyperband", "bayesian"],
)
def test_each_tuner_searches_and_writes_a_best_config_that_fit_accepts(
    tuner_args, data_dir, space_file, tmp_path, capsys
):
    assert _tune(data_dir, space_file, "search", *tuner_args) == 0
    run = tmp_path / "search"
    trials = _trials(run)
    assert len(trials) == 2 and {t["status"] for t in trials} == {"COMPLETED"}
    for trial in trials:
        assert float(trial["seconds"]) > 0 and trial["model.width"] in ("4", "6")
        assert 1e-3 <= float(trial["optimizer.learning_rate"]) <= 1e-2
    best = max(trials, key=lambda t: float(t["val_accuracy"]))
    config = load_config(run / "best.toml")
    assert config.model["width"] == int(best["model.width"])
    assert config.optimizer.learning_rate == pytest.approx(float(best["optimizer.learning_rate"]))
    assert config.epochs == (2 if "hyperband" in tuner_args else 1)  # the trials' epochs
    assert list((run / "tensorboard").iterdir())  # one log folder per trial
    assert "val_accuracy" in capsys.readouterr().out

    if "random" in tuner_args:  # fit repeats the best trial, so it scores what the search saw
        args = ["fit", "--config", str(run / "best.toml"), "--data", str(data_dir), "--out", "fit"]
        assert main(args) == 0
        metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
        assert metrics["holdout_accuracy"] == pytest.approx(float(best["val_accuracy"]))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('[space."model.widht"]\ntype = "choice"\nvalues = [4]', "model 'basic' has no option"),
        (
            '[space."optimizer.lr"]\ntype = "float"\nmin = 0.1\nmax = 0.2',
            "unknown key 'optimizer.lr'",
        ),
        ('[space."model.dropout"]\ntype = "uniform"\nmin = 0.1\nmax = 0.2', "type 'uniform'"),
        ('[space."model.dropout"]\ntype = "float"\nmax = 0.2', "float needs min"),
        ('[space."model.dropout"]\ntype = "float"\nmin = 0.3\nmax = 0.2', "min must be below"),
        ('[space."batch_size"]\ntype = "choice"\nvalues = ["big"]', "batch_size"),
        ('[space.model.width]\ntype = "choice"\nvalues = []', "values must be a non-empty"),
        ('[search]\ntrials = 3\n[space."seed"]\ntype = "int"\nmin = 0\nmax = 3', "'trials'"),
    ],
)
def test_a_malformed_space_file_is_a_one_line_error_naming_the_key(
    entry, message, data_dir, tmp_path, capsys
):
    bad = tmp_path / "bad.toml"
    bad.write_text(entry + "\n")
    assert _tune(data_dir, bad, "search") == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and err.count("\n") == 1
    assert not (tmp_path / "search").exists()


def test_a_search_that_cannot_start_leaves_no_run_directory(space_file, tmp_path, capsys):
    assert _tune(tmp_path / "no-data-here", space_file, "search") == 2
    assert "train.csv" in capsys.readouterr().err
    assert not (tmp_path / "search").exists()


def test_every_architecture_ships_a_space_that_fits_it():
    from digit_keras.models import list_models

    for name in list_models():
        base = load_config(default_config_path(name))
        assert load_space(default_space_path(name), base).hyperparameters, name


@pytest.mark.slow
def test_an_interrupted_search_resumes_where_it_stopped(data_dir, space_file, tmp_path, capsys):
    """Kill the search during its second trial; --resume keeps trial 1 and finishes trial 2."""
    from digit_keras.cli import build_parser, resolve_config
    from digit_keras.runtime import import_tensorflow

    import_tensorflow()
    import keras

    from digit_keras.tuning.search import SearchSettings, run_search

    class KillInSecondTrial(keras.callbacks.Callback):
        trials = 0

        def on_train_begin(self, logs=None):
            KillInSecondTrial.trials += 1
            if KillInSecondTrial.trials == 2:
                raise KeyboardInterrupt

    config = resolve_config(build_parser().parse_args(["tune", "--batch-size", "32"]))
    space = load_space(space_file, config)
    run = tmp_path / "search"
    run.mkdir()
    settings = SearchSettings("random", epochs=1, max_trials=2, patience=0)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, space, settings, run, data_dir, extra_callbacks=[KillInSecondTrial()])
    assert not (run / "best.toml").exists()

    assert main(["tune", "--resume", "--data", str(data_dir)]) == 2  # not under saved_models/
    assert "no unfinished tune-basic-*" in capsys.readouterr().err
    assert main(["tune", "--resume", str(run), "--data", str(data_dir), "--epochs", "3"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    assert main(["tune", "--resume", str(run), "--data", str(data_dir)]) == 0
    trials = _trials(run)
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    assert main(["tune", "--resume", str(run), "--data", str(data_dir)]) == 2
    assert "already finished" in capsys.readouterr().err


@pytest.mark.slow
def test_a_chief_and_two_workers_share_one_search_on_localhost(data_dir, tmp_path):
    """keras-tuner's distributed mode: the chief runs the oracle, two workers run the trials;
    every trial runs once, and best.toml is what one process would choose from those trials."""
    space_file = tmp_path / "space.toml"
    space_file.write_text(TINY_SPACE.replace("max_trials = 2", "max_trials = 4"))
    base_env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1"}
    base_env["KERASTUNER_ORACLE_PORT"] = str(free_ports()[0])
    command = [sys.executable, "-m", "digit_keras", "tune", "--data", str(data_dir)]
    command += ["--space", str(space_file), "--batch-size", "32", "--out", "shared"]
    processes = [
        subprocess.Popen(
            command,
            env={**base_env, "KERASTUNER_TUNER_ID": tuner_id},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for tuner_id in ("chief", "tuner0", "tuner1")
    ]
    try:
        outputs = [process.communicate(timeout=300)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    runs = [
        int(re.search(rf"worker {name} finished after (\d+) trial runs", output).group(1))
        for name, output in zip(("tuner0", "tuner1"), outputs[1:], strict=True)
    ]
    trials = _trials(tmp_path / "shared")
    assert len(trials) == 4 and {t["status"] for t in trials} == {"COMPLETED"}
    assert sum(runs) == 4  # the workers trained every trial, none twice
    assert len({t["trial"] for t in trials}) == 4
    best = max(trials, key=lambda t: float(t["val_accuracy"]))
    config = load_config(tmp_path / "shared" / "best.toml")
    assert config.model["width"] == int(best["model.width"])
    assert config.optimizer.learning_rate == pytest.approx(float(best["optimizer.learning_rate"]))
