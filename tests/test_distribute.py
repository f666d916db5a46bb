"""Distribution strategies, each in a fresh process: logical devices are set before TF starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from digit_keras.training.runs import backup_position
from tests.conftest import write_kaggle_data
from tests.processes import free_ports

# Splits the CPU into two logical devices before TensorFlow starts: two replicas on one machine.
_TWO_CPU_DEVICES = textwrap.dedent(
    """
    from digit_keras.runtime import import_tensorflow
    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    """
)
MIRRORED_32 = ("--strategy", "mirrored", "--batch-size", "32")


def _python(code: str) -> str:
    """Run `code` in a fresh Python; its last line of output."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def _fit_argv(data_dir, out, *extra: str, epochs: int = 2) -> list[str]:
    argv = ["fit", "--data", str(data_dir), "--out", str(out), "--epochs", str(epochs)]
    argv += ["--seed", "3", "--set", "model.width=4", "--set", "model.dropout=0.0"]
    # float32 whatever the CPU: "auto" picks bf16 where the CPU has it, and its rounding would
    # blur the replica comparisons below.
    argv += ["--set", "precision=float32"]
    return [*argv, *NO_AUGMENTATION, *extra]


def _process(argv: list[str]) -> list[str]:
    """The command line that runs `digit-keras ARGV` in a fresh Python."""
    code = f"import sys; from digit_keras.cli import main; sys.exit(main({argv!r}))"
    return [sys.executable, "-c", code]


NO_AUGMENTATION = [
    "--set",
    "augment.rotation=0",
    "--set",
    "augment.zoom=0",
    "--set",
    "augment.shift=0",
]


def _start_workers(commands: list[list[str]], env: dict | None = None) -> list[subprocess.Popen]:
    """One process per command, as the workers of one TF_CONFIG cluster on 127.0.0.1."""
    ports = free_ports(len(commands))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index, command in enumerate(commands):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        worker_env = {**os.environ, **(env or {}), "TF_CONFIG": json.dumps(tf_config)}
        processes.append(
            subprocess.Popen(
                command, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    return processes


def _finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    """Wait for every process; kill them all if one fails or they run past `timeout`."""
    try:
        outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    return outputs


def _epoch_losses(run_dir) -> list[float]:
    lines = (run_dir / "history.csv").read_text().splitlines()
    column = lines[0].split(",").index("loss")
    return [float(line.split(",")[column]) for line in lines[1:]]


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory) -> Path:
    """The same tiny fit on one device (batches of 64) and on two replicas of 32 (`root/one`,
    `root/two`), in one process whose CPU is split into two logical devices; data in root/data."""
    root = tmp_path_factory.mktemp("one-machine")
    data = write_kaggle_data(root / "data")
    one = _fit_argv(data, root / "one", "--strategy", "default", "--batch-size", "64")
    two = _fit_argv(data, root / "two", *MIRRORED_32)
    code = (
        _TWO_CPU_DEVICES + f"from digit_keras.cli import main\nprint(main({one!r}), main({two!r}))"
    )
    assert _python(code) == "0 0"
    return root


def _replicas(run_dir: Path) -> int:
    return json.loads((run_dir / "metrics.json").read_text())["replicas"]


@pytest.mark.slow
def test_mirrored_two_replicas_match_one_device(one_machine):
    """Same global batch, data and initial weights: the first-epoch loss must agree.

    The remaining gap comes from batch norm using per-replica batch statistics (32 vs 64 images);
    the Keras 3.7-3.9 MirroredStrategy regressions scaled the loss by the replica count (a 2x gap).
    """
    one, two = one_machine / "one", one_machine / "two"
    assert (_replicas(one), _replicas(two)) == (1, 2)
    assert _epoch_losses(two)[0] == pytest.approx(_epoch_losses(one)[0], rel=0.02)


@pytest.mark.slow
def test_two_workers_train_like_two_replicas_on_one_machine_and_only_the_chief_writes(
    one_machine, tmp_path
):
    """Two worker processes of 32 images each train as one process with two replicas of 32: the
    same halves of each global batch of 64, the same per-replica batch-norm statistics. (Against
    one device with batches of 64, batch norm's statistics over 32 rows instead of 64 leave gaps
    of 0.1-4% in these runs, depending on the seed.)"""
    data, worker_out = one_machine / "data", tmp_path / "worker-out"
    commands = [
        _process(_fit_argv(data, out, "--strategy", "multi-worker", "--batch-size", "32"))
        for out in (tmp_path / "mw", worker_out)
    ]
    outputs = _finish(_start_workers(commands))
    assert "the chief writes the run" in outputs[1]
    metrics = json.loads((tmp_path / "mw" / "metrics.json").read_text())
    assert metrics["strategy"] == "multi-worker" and metrics["replicas"] == 2
    assert metrics["global_batch_size"] == 64
    two_replicas = _epoch_losses(one_machine / "two")
    assert _epoch_losses(tmp_path / "mw") == pytest.approx(two_replicas, rel=1e-4)
    assert not worker_out.exists()  # the non-chief worker left nothing behind


def _kill_after_backup(processes, victim: int, run_dir, epochs: int, timeout: float = 180) -> None:
    """Kill process `victim` by pid once `run_dir` holds a backup of `epochs` epochs; the
    surviving worker then fails on its own (its collective ops lose their peer)."""
    import time

    deadline = time.monotonic() + timeout
    while backup_position(run_dir)[0] < epochs:
        assert time.monotonic() < deadline, "no backup appeared"
        if any(process.poll() is not None for process in processes):
            outputs = [process.communicate()[0][:1500] for process in processes]
            raise AssertionError(
                f"a worker stopped before {epochs} epochs:\n" + "\n---\n".join(outputs)
            )
        time.sleep(0.2)
    os.kill(processes[victim].pid, signal.SIGKILL)
    survivor = processes[1 - victim]
    survivor.communicate(timeout=120)
    assert survivor.returncode != 0


@pytest.mark.slow
def test_a_killed_worker_or_chief_resumes_from_the_last_backup(data_dir, tmp_path):
    """Kill worker 1, restart both with --resume; kill the chief, restart both; no epoch lost."""
    run = tmp_path / "mw"
    argv = _fit_argv(data_dir, run, "--strategy", "multi-worker", "--batch-size", "32", epochs=6)
    start = _process(argv)
    resume = _process(["fit", "--resume", str(run), "--data", str(data_dir)])
    processes = _start_workers([start, start])
    _kill_after_backup(processes, victim=1, run_dir=run, epochs=2)
    processes = _start_workers([resume, resume])
    _kill_after_backup(processes, victim=0, run_dir=run, epochs=4)
    outputs = _finish(_start_workers([resume, resume]))
    assert "resuming" in outputs[0] and "resuming" in outputs[1]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 6 and metrics["resumed_after_epoch"] >= 4
    lines = (run / "history.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in lines] == list(range(6))  # each epoch once
    assert not (run / "backup").exists()


def test_multi_worker_without_tf_config_is_a_clear_error(data_dir, capsys, monkeypatch):
    from digit_keras.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(["fit", "--strategy", "multi-worker", "--data", str(data_dir)]) == 2
    assert "needs TF_CONFIG" in capsys.readouterr().err
