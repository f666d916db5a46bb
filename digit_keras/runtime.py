"""Process-wide TensorFlow/Keras setup: a quiet TF import, seeds, determinism, precision.

TensorFlow is imported here and only when a command needs it, so `digit-keras --help` stays instant.
"""

import os
import sys
from contextlib import contextmanager
from types import ModuleType


@contextmanager
def _stderr_muted():
    """Silence file descriptor 2: TF's C++ start-up lines bypass TF_CPP_MIN_LOG_LEVEL."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> ModuleType:
    """Import TensorFlow (and Keras on top of it) without TF's C++ log noise.

    Set TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's own start-up messages again.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1"):
        import keras
        import tensorflow as tf
    else:
        with _stderr_muted():
            import keras  # noqa: F401
            import tensorflow as tf
    return tf


def configure(seed: int, deterministic: bool = False, precision: str = "float32") -> None:
    """Seed every RNG Keras uses, optionally force deterministic TF ops, set the dtype policy."""
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(precision)
