"""Distribution strategies, each in a fresh process: logical devices are set before TF starts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest

# Trains the same tiny model for one epoch under two strategies and prints both first-epoch losses.
_COMPARE = textwrap.dedent(
    """
    import json, sys
    from digit_keras.runtime import import_tensorflow
    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from digit_keras.config import TrainConfig, AugmentConfig
    from digit_keras.training.fit import fit
    from pathlib import Path
    losses = {}
    for strategy, per_replica in (("default", 64), ("mirrored", 32)):
        config = TrainConfig(
            epochs=1, batch_size=per_replica, seed=3, strategy=strategy,
            model={"width": 4, "dropout": 0.0}, augment=AugmentConfig(0, 0, 0),
        )
        result = fit(config, Path(sys.argv[2]) / strategy, data_dir=sys.argv[1], verbose=0)
        history = Path(sys.argv[2]) / strategy / "history.csv"
        losses[strategy] = float(history.read_text().splitlines()[1].split(",")[2])
        losses[strategy + "_replicas"] = result.metrics["replicas"]
    print(json.dumps(losses))
    """
)


def _python(code: str, *args: str, env_extra: dict | None = None) -> str:
    import os

    env = {**os.environ, **(env_extra or {})}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_mirrored_two_replicas_match_one_device(data_dir, tmp_path):
    """Same global batch, data and initial weights: the first-epoch loss must agree.

    The remaining gap comes from batch norm using per-replica batch statistics (32 vs 64 images);
    the Keras 3.7-3.9 MirroredStrategy regressions scaled the loss by the replica count (a 2x gap).
    """
    losses = json.loads(_python(_COMPARE, str(data_dir), str(tmp_path)))
    assert losses["default_replicas"] == 1 and losses["mirrored_replicas"] == 2
    assert losses["mirrored"] == pytest.approx(losses["default"], rel=0.02)


@pytest.mark.slow
def test_multi_worker_runs_as_a_one_worker_cluster(data_dir, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tf_config = {
        "cluster": {"worker": [f"127.0.0.1:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    argv = ["fit", "--strategy", "multi-worker", "--epochs", "1", "--batch-size", "32"]
    argv += ["--set", "model.width=4", "--data", str(data_dir), "--out", str(tmp_path / "mw")]
    code = f"import sys; from digit_keras.cli import main; sys.exit(main({argv!r}))"
    _python(code, env_extra={"TF_CONFIG": json.dumps(tf_config)})
    metrics = json.loads((tmp_path / "mw" / "metrics.json").read_text())
    assert metrics["strategy"] == "multi-worker" and metrics["replicas"] == 1


def test_multi_worker_without_tf_config_is_a_clear_error(data_dir, capsys, monkeypatch):
    from digit_keras.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(["fit", "--strategy", "multi-worker", "--data", str(data_dir)]) == 2
    assert "needs TF_CONFIG" in capsys.readouterr().err
