"""Optimizer and per-step learning-rate schedule from an OptimizerConfig.

Schedules are per step and live inside the optimizer, so a resumed run (whose optimizer
iteration count is restored) continues the schedule exactly where it stopped.
"""

from __future__ import annotations

import keras

from digit_keras.config import OptimizerConfig

# The warm-up never takes more than this share of a run: a 1-epoch smoke run with the recipes'
# 1-epoch warm-up would otherwise spend all of its steps below the peak rate.
MAX_WARMUP_SHARE = 0.1


def warmup_steps(config: OptimizerConfig, steps_per_epoch: int, epochs: int) -> int:
    total = steps_per_epoch * epochs
    return min(round(config.warmup_epochs * steps_per_epoch), round(MAX_WARMUP_SHARE * total))


def make_schedule(config: OptimizerConfig, steps_per_epoch: int, epochs: int):
    warmup = warmup_steps(config, steps_per_epoch, epochs)
    total = steps_per_epoch * epochs
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else config.learning_rate,
            decay_steps=max(total - warmup, 1),
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if config.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=steps_per_epoch, decay_rate=config.decay_rate
        )
    return config.learning_rate


def make_optimizer(config: OptimizerConfig, steps_per_epoch: int, epochs: int):
    rate = make_schedule(config, steps_per_epoch, epochs)
    if config.name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if config.name == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=config.weight_decay)
    return keras.optimizers.SGD(
        learning_rate=rate,
        momentum=config.momentum,
        nesterov=True,
        weight_decay=config.weight_decay,
    )
