"""Pick the tf.distribute strategy that `--strategy` names."""

from __future__ import annotations

import json
import os

from digit_keras.errors import UserError
from digit_keras.runtime import import_tensorflow


def make_strategy(name: str) -> tuple[str, object]:
    """Return the resolved strategy name (never "auto") and the tf.distribute strategy.

    auto: mirrored over GPUs when there are several, else the default (one-device) strategy.

    mirrored: all GPUs, or every logical CPU device when there is no GPU (useful for testing).
    multi-worker: MultiWorkerMirroredStrategy, which reads the cluster from TF_CONFIG.
    """
    tf = import_tensorflow()
    if name == "multi-worker":  # first: collective ops must be set up before TF's context starts
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy multi-worker needs TF_CONFIG describing the cluster")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as err:
            raise UserError(f"TF_CONFIG is not valid JSON: {err}") from None
        return name, tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return name, tf.distribute.get_strategy()
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return name, tf.distribute.MirroredStrategy([d.name for d in devices])
    raise UserError(f"unknown strategy {name!r}")


def is_chief(strategy) -> bool:
    """Whether this process owns the run directory (always, except non-chief multi-worker tasks)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
