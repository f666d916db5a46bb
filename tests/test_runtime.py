"""Process setup and training defaults: precision by hardware, warm-up length, log format."""

from __future__ import annotations

import io

import pytest

from digit_keras import runtime
from digit_keras.config import OptimizerConfig
from digit_keras.training.callbacks import progress_verbosity
from digit_keras.training.optim import (
    MAX_EMA_START_SHARE,
    ema_momentum,
    make_optimizer,
    make_schedule,
    warmup_steps,
)


def _cpuinfo(tmp_path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\n")
    return str(path)


def test_bf16_is_detected_from_the_cpu_flags(tmp_path):
    assert runtime.cpu_has_bf16(_cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert runtime.cpu_has_bf16(_cpuinfo(tmp_path, "amx_bf16 amx_tile"))
    assert not runtime.cpu_has_bf16(_cpuinfo(tmp_path, "avx2 avx512f avx512_bf16x"))
    assert not runtime.cpu_has_bf16(str(tmp_path / "missing"))


@pytest.mark.parametrize(("bf16", "expected"), [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_precision_follows_the_hardware(monkeypatch, bf16, expected):
    monkeypatch.setattr(runtime, "has_accelerator", lambda: False)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: bf16)
    assert runtime.resolve_precision("auto") == expected
    assert runtime.resolve_precision("mixed_float16") == "mixed_float16"  # never overridden


def test_warmup_is_capped_at_a_tenth_of_short_runs():
    config = OptimizerConfig(learning_rate=0.01, warmup_epochs=1.0)
    assert warmup_steps(config, steps_per_epoch=10, epochs=20) == 10  # as configured
    assert warmup_steps(config, steps_per_epoch=10, epochs=1) == 1
    schedule = make_schedule(config, steps_per_epoch=10, epochs=1)
    assert float(schedule(1)) == pytest.approx(0.01)  # at the peak after one step


def test_sgd_weight_decay_is_the_papers_l2_coupled_to_the_gradient():
    """w gets the gradient of loss + wd/2 * w^2 before Nesterov momentum, not Keras's decay."""
    import keras
    import numpy as np

    rate, decay, momentum = 0.1, 0.01, 0.9
    config = OptimizerConfig(
        name="sgd", learning_rate=rate, weight_decay=decay, momentum=momentum, schedule="constant"
    )
    optimizer = make_optimizer(config, steps_per_epoch=1, epochs=1)
    weight = keras.Variable(np.array([2.0], dtype="float32"))
    loss_gradient = np.array([0.5], dtype="float32")
    w, velocity = 2.0, 0.0
    for _ in range(3):
        optimizer.apply([keras.ops.convert_to_tensor(loss_gradient)], [weight])
        gradient = 0.5 + decay * w
        velocity = momentum * velocity - rate * gradient
        w += momentum * velocity - rate * gradient
    assert float(weight.numpy()[0]) == pytest.approx(w, rel=1e-6)
    restored = type(optimizer).from_config(optimizer.get_config())
    assert restored.l2 == decay and restored.nesterov


def test_ema_momentum_leaves_the_weights_average_in_the_model_after_fit():
    """Four SGD steps of -0.1 take the weight to -0.4; fit ends with their moving average."""
    import keras
    import numpy as np

    config = OptimizerConfig(
        name="sgd", learning_rate=0.1, momentum=0.0, schedule="constant", ema_momentum=0.25
    )
    inputs = keras.Input((1,))
    dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer=make_optimizer(config, 4, 1), loss=lambda _, pred: keras.ops.mean(pred))
    ones = np.ones((4, 1), "float32")
    model.fit(ones, ones, batch_size=1, epochs=1, verbose=0)
    average = -0.1  # after step 1, then three quarters of the way towards each new weight
    for weight in (-0.2, -0.3, -0.4):
        average = 0.25 * average + 0.75 * weight
    assert float(dense.kernel.numpy()[0, 0]) == pytest.approx(average)  # -0.3734, not -0.4


def test_ema_momentum_is_lowered_only_for_runs_too_short_to_forget_their_start():
    config = OptimizerConfig(ema_momentum=0.999)
    assert ema_momentum(config, steps_per_epoch=263, epochs=20) == 0.999  # a 5-fold recipe
    short = ema_momentum(config, steps_per_epoch=21, epochs=1)
    assert short < 0.999 and short**21 == pytest.approx(MAX_EMA_START_SHARE)
    assert ema_momentum(OptimizerConfig(), 21, 1) == 0.0  # off stays off


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_the_loss_is_cross_entropy_against_smoothed_targets_over_weighted_rows(smoothing):
    """Targets (1 - s) * one_hot + s / K; the zero-weight row (padding) counts for nothing."""
    import numpy as np
    from scipy.special import log_softmax

    from digit_keras.training.losses import SparseCrossentropy

    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [9.0, -9.0, 0.0]], "float32")
    labels, weights = np.array([0, 2, 1]), np.array([1.0, 1.0, 0.0], "float32")
    targets = np.eye(3)[labels] * (1 - smoothing) + smoothing / 3
    expected = -(targets * log_softmax(logits, axis=1)).sum(axis=1)[:2].mean()
    loss = SparseCrossentropy(smoothing)(labels, logits, sample_weight=weights)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_the_configured_label_smoothing_is_the_trainers_loss():
    from digit_keras.config import TrainConfig, apply_overrides
    from digit_keras.training.session import build_and_compile

    config = apply_overrides(TrainConfig(), {"label_smoothing": 0.1}, "--set")
    trainer, _ = build_and_compile(config, steps_per_epoch=10)
    assert trainer.loss.label_smoothing == 0.1


@pytest.mark.slow  # trains through the CLI
def test_a_short_run_with_a_weight_average_saves_a_model_as_good_as_without(data_dir, tmp_path):
    """Three steps: an average at 0.999 from the first step would save an untrained model."""
    from digit_keras.cli import main
    from tests.conftest import holdout_accuracy_of, three_step_fit_args

    args = three_step_fit_args(data_dir)
    assert main([*args, "--out", "plain"]) == 0
    assert main([*args, "--set", "optimizer.ema_momentum=0.999", "--out", "averaged"]) == 0
    plain = holdout_accuracy_of(tmp_path / "plain" / "model.keras")
    averaged = holdout_accuracy_of(tmp_path / "averaged" / "model.keras")
    assert plain >= 0.6, "the run did not learn: the check below would mean nothing"
    assert averaged >= plain - 0.1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_one_line_per_epoch_elsewhere(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Terminal())
    assert progress_verbosity("auto") == 1
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert progress_verbosity("auto") == 2
    assert progress_verbosity(0) == 0


def test_a_resumed_run_keeps_its_best_checkpoint_threshold(tmp_path):
    import keras

    from digit_keras.training.callbacks import (
        BestCheckpoint,
        ThroughputMeter,
        best_logged,
        make_callbacks,
    )

    (tmp_path / "history.csv").write_text("epoch,val_accuracy\n0,0.5\n1,0.8\n2,0.7\n")
    assert best_logged(tmp_path / "history.csv", "val_accuracy") == 0.8
    assert best_logged(tmp_path / "history.csv", "val_loss") is None
    assert best_logged(tmp_path / "missing.csv", "val_accuracy") is None
    (tmp_path / "stopped-in-epoch-1.csv").write_text("")
    assert best_logged(tmp_path / "stopped-in-epoch-1.csv", "val_accuracy") is None
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callbacks = make_callbacks(tmp_path, ThroughputMeter(1), network, True, start=(3, 0))
    checkpoint = next(c for c in callbacks if isinstance(c, BestCheckpoint))
    assert checkpoint.best == 0.8
    checkpoint.on_epoch_end(3, {"val_accuracy": 0.75})  # worse than before the resume: kept
    assert not (tmp_path / "checkpoints" / "best.keras").exists()
    checkpoint.on_epoch_end(4, {"val_accuracy": 0.9})
    assert keras.saving.load_model(tmp_path / "checkpoints" / "best.keras").count_params() == 3
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["best.keras"]  # no temp
