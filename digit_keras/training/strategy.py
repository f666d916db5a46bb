"""Pick the data-parallel strategy that `--strategy` names, on either Keras backend.

TensorFlow gets a tf.distribute strategy. JAX gets a `keras.distribution.DataParallel` behind the
same two things training uses: `scope()` and `num_replicas_in_sync`.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass

from digit_keras.errors import UserError
from digit_keras.runtime import backend, import_keras, import_tensorflow


def make_strategy(name: str) -> tuple[str, object]:
    """Return the resolved strategy name (never "auto") and the strategy.

    auto: mirrored over GPUs when there are several, else the default (one-device) strategy.
    mirrored: all GPUs, or every CPU device when there is no GPU (useful for testing; on JAX set
    XLA_FLAGS=--xla_force_host_platform_device_count=N for N CPU devices).
    multi-worker: TensorFlow's MultiWorkerMirroredStrategy, which reads the cluster from TF_CONFIG.
    """
    if backend() != "tensorflow":
        return _jax_strategy(name)
    tf = import_tensorflow()
    if name == "multi-worker":  # first: collective ops must be set up before TF's context starts
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy multi-worker needs TF_CONFIG describing the cluster")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as err:
            raise UserError(f"TF_CONFIG is not valid JSON: {err}") from None
        return name, _multi_worker_strategy(tf)
    gpus = tf.config.list_logical_devices("GPU")
    name = _resolve_auto(name, len(gpus))
    if name == "default":
        return name, tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return name, tf.distribute.MirroredStrategy([d.name for d in devices])


def _multi_worker_strategy(tf):
    """MultiWorkerMirroredStrategy with a `reduce` that takes what Keras 3's `fit` gives it.

    Across several workers, `fit` fails in two `strategy.reduce` calls (keras-team/keras#20585):
    it reduces the first (images, labels) batch as one nested value, which this strategy's
    collective reduce cannot take ("Attempt to convert a value (PerReplica...) to a Tensor"),
    and it reduces each step's scalar metrics with `axis=0`, which a scalar does not have.
    This `reduce` goes leaf by leaf, as the other strategies do, and reduces scalars across
    replicas only. It is the one place the project works around Keras's distribution code.
    """

    class KerasReduceStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            reduce_one = super().reduce

            def reduce_leaf(leaf):
                rank = self.experimental_local_results(leaf)[0].shape.rank
                return reduce_one(reduce_op, leaf, axis if rank else None)

            return tf.nest.map_structure(reduce_leaf, value)

    return KerasReduceStrategy()


def _resolve_auto(name: str, accelerators: int) -> str:
    if name == "auto":
        return "mirrored" if accelerators > 1 else "default"
    if name not in ("default", "mirrored"):
        raise UserError(f"unknown strategy {name!r}")
    return name


@dataclass
class JaxStrategy:
    """A `keras.distribution` (or none, for one device) shaped like a tf.distribute strategy."""

    distribution: object | None
    num_replicas_in_sync: int = 1
    cluster_resolver = None  # one process: always the chief

    def scope(self):
        return self.distribution.scope() if self.distribution is not None else nullcontext()


def _jax_strategy(name: str) -> tuple[str, JaxStrategy]:
    """DataParallel over every local accelerator (mirrored), else over every CPU device."""
    if name == "multi-worker":
        raise UserError(
            "--strategy multi-worker is TensorFlow-only; on JAX, mirrored uses every local device"
        )
    import jax

    keras = import_keras()
    devices = keras.distribution.list_devices()  # the default backend's: all GPUs, else all CPUs
    name = _resolve_auto(name, 0 if jax.default_backend() == "cpu" else len(devices))
    if name == "default":
        return name, JaxStrategy(None)
    return name, JaxStrategy(keras.distribution.DataParallel(devices=devices), len(devices))


def is_chief(strategy_name: str) -> bool:
    """Whether this process owns the run directory: always, except the non-chief tasks of a
    multi-worker cluster (the chief is the "chief" task if TF_CONFIG has one, else worker 0)."""
    if strategy_name != "multi-worker":
        return True
    try:
        spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError:
        return True  # make_strategy reports the bad TF_CONFIG
    task = spec.get("task", {})
    if task.get("type") in (None, "chief"):
        return True
    return task["type"] == "worker" and task.get("index", 0) == 0 and "chief" not in spec["cluster"]
