"""Process-wide Keras setup: a quiet import on either backend, seeds, determinism, precision.

Keras runs on TensorFlow (the default) or JAX, chosen by $KERAS_BACKEND before Keras is imported.
TensorFlow is imported only when a command needs it, so `digit-keras --help` stays instant and
the JAX path works where TensorFlow is not installed.
"""

import os
import sys
from contextlib import contextmanager, nullcontext
from types import ModuleType

from digit_keras.errors import UserError

JAX_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"


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


def _quietly():
    """Mute TensorFlow's start-up noise unless TF_CPP_MIN_LOG_LEVEL=0 or 1 asks for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return nullcontext() if os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1") else _stderr_muted()


def import_keras() -> ModuleType:
    """Import Keras on its configured backend; that imports TensorFlow only on TensorFlow."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    try:
        with _quietly():
            import keras
    except ImportError as err:  # the backend's own package is missing
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        raise UserError(
            f"Keras backend {backend!r} cannot start ({err}); install the package's tensorflow "
            "extra (pip install 'digit-keras[tensorflow]'), or its jax extra and set "
            "KERAS_BACKEND=jax"
        ) from None
    return keras


def backend() -> str:
    """The Keras backend of this process: "tensorflow" or "jax"."""
    return import_keras().backend.backend()


def import_tensorflow() -> ModuleType:
    """Import TensorFlow itself, for the tf.data pipeline and SavedModel/ONNX export.

    Set TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's own start-up messages again.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    import_keras()
    try:
        with _quietly():
            import tensorflow as tf
    except ImportError:
        raise UserError(
            "this needs TensorFlow, which is not installed; install the package's tensorflow "
            "extra (pip install 'digit-keras[tensorflow]')"
        ) from None
    return tf


def use_tensorflow_backend(purpose: str) -> None:
    """Run Keras on TensorFlow whatever $KERAS_BACKEND says: `purpose` is TensorFlow's own work
    (SavedModel, tf2onnx). Too late once Keras runs on another backend: that is an error."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "tensorflow"
    elif backend() != "tensorflow":
        raise UserError(f"{purpose} needs Keras on TensorFlow, not {backend()}")


def request_determinism() -> None:
    """Ask for deterministic kernels; on JAX this must happen before JAX starts its devices."""
    if backend() == "tensorflow":
        import_tensorflow().config.experimental.enable_op_determinism()
    elif JAX_DETERMINISM_FLAG not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {JAX_DETERMINISM_FLAG}"


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute in bfloat16


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU multiplies bfloat16 natively; elsewhere bf16 is emulated and slow."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def has_accelerator() -> bool:
    """True when Keras's backend runs on a GPU or TPU."""
    if backend() == "tensorflow":
        return bool(import_tensorflow().config.list_physical_devices("GPU"))
    import jax

    return jax.default_backend() != "cpu"


def resolve_precision(precision: str) -> str:
    """ "auto" is mixed_bfloat16 on accelerators and on CPUs with native bf16, else float32.

    On the reference CPU (AVX512_BF16) bf16 trains `basic` 1.2-1.3x faster than float32
    (benchmarks/bench_cpu_speed.py); a CPU without bf16 instructions would emulate it.
    """
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if has_accelerator() or cpu_has_bf16() else "float32"


def configure(seed: int, precision: str = "float32") -> str:
    """Seed every RNG Keras uses and set the dtype policy; returns the policy ("auto" resolved)."""
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    resolved = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(resolved)
    return resolved
