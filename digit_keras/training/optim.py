"""Optimizer and per-step learning-rate schedule from an OptimizerConfig.

`weight_decay` means what the recipes' papers mean by it. For SGD it is an L2 penalty whose
gradient, `weight_decay * w`, joins the loss gradient before momentum (the ResNet, VGG and WRN
papers' Torch code). Keras's own SGD `weight_decay` is decoupled: it shrinks the weights by
`lr * weight_decay` per step, outside momentum, about 1 / (1 - momentum) = 10x weaker at momentum
0.9, so the papers' 1e-4 and 5e-4 would regularise far less than they did there. For AdamW it is
the decoupled decay of Loshchilov & Hutter; plain Adam takes none (the config refuses it).

Schedules are per step and live inside the optimizer, so a resumed run (whose optimizer
iteration count is restored) continues the schedule exactly where it stopped.
"""

from __future__ import annotations

import keras
from keras import ops

from digit_keras.config import OptimizerConfig

# The warm-up never takes more than this share of a run: a 1-epoch smoke run with the recipes'
# 1-epoch warm-up would otherwise spend all of its steps below the peak rate.
MAX_WARMUP_SHARE = 0.1
# The weight average keeps at most this share of the weights it started from (ema_momentum).
MAX_EMA_START_SHARE = 0.01


def warmup_steps(config: OptimizerConfig, steps_per_epoch: int, epochs: int) -> int:
    total = steps_per_epoch * epochs
    return min(round(config.warmup_epochs * steps_per_epoch), round(MAX_WARMUP_SHARE * total))


def ema_momentum(config: OptimizerConfig, steps_per_epoch: int, epochs: int) -> float:
    """The configured momentum, lowered for runs too short for it to forget where it started.

    Keras's average starts at the first step's weights with no warm-up, and they keep a share of
    momentum ** steps. At 0.999, a 21-step run (`fit --epochs 1 --limit 3000`) saved weights 98%
    from its first step: 11.7% holdout accuracy against 90.7% without the average. Capping that
    share at MAX_EMA_START_SHARE leaves 0.999 as it is from about 4,600 steps on (20 epochs of
    `basic` on 5-fold training rows are 5,260).
    """
    total = max(steps_per_epoch * epochs, 1)
    return min(config.ema_momentum, MAX_EMA_START_SHARE ** (1 / total))


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


@keras.saving.register_keras_serializable(package="digit_keras")
class L2SGD(keras.optimizers.SGD):
    """Nesterov SGD with the L2 penalty coupled to the gradient, as in the papers (see above).

    Every trainable variable is penalised, batch-norm scales and biases included, as in the
    papers' code.
    """

    def __init__(self, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        gradient = ops.cast(gradient, variable.dtype)
        super().update_step(
            ops.add(gradient, ops.multiply(variable, self.l2)), variable, learning_rate
        )

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def make_optimizer(config: OptimizerConfig, steps_per_epoch: int, epochs: int):
    """With `ema_momentum`, Keras's `fit` ends by writing the weights' moving average into the
    model (`finalize_variable_values`), before batch-norm statistics are recomputed for it."""
    common = {
        "learning_rate": make_schedule(config, steps_per_epoch, epochs),
        "use_ema": config.ema_momentum > 0,
        "ema_momentum": ema_momentum(config, steps_per_epoch, epochs) or 0.99,  # 0.99: unused
    }
    if config.name == "adam":
        return keras.optimizers.Adam(**common)
    if config.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=config.weight_decay, **common)
    return L2SGD(l2=config.weight_decay, momentum=config.momentum, nesterov=True, **common)
