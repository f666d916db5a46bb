"""Training speed of `basic` on this CPU: Keras against the same network in PyTorch, one run.

Every variant trains on one in-memory batch (no input pipeline), with Adam and the recipe's batch
size; variants are timed in interleaved rounds so machine noise hits them alike, and each figure
is the median of the rounds. PyTorch is an optional benchmark dependency (`pip install
torch==2.13.0`, the CPU build); without it only the Keras variants run.

    python benchmarks/bench_cpu_speed.py [--batch 256] [--steps 30] [--rounds 5]
        [--variants keras-fp32,keras-bf16,torch-fp32,torch-bf16,torchnchw-fp32,torchnchw-bf16]
        [--tf-autotune]

`kerasbn-fp32` and `kerasbn-bf16` are the Keras variants with Keras's own BatchNormalization
instead of the project's fused layer (digit_keras/models/fused_batch_norm.py). `torch` is PyTorch
in channels-last, `torchnchw` in its default layout; the race compares the best Keras variant with
the best PyTorch one, whichever layout that is.

The PyTorch net mirrors `digit_keras/models/basic.py` layer for layer (same trainable parameter
count, printed); PyTorch pads the stride-2 5x5 convs symmetrically where Keras pads 1 then 2.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from unittest import mock

import numpy as np

StepRunner = Callable[[int], float]  # steps -> seconds


def keras_runner(
    batch: int, precision: str, autotune: bool, keras_batch_norm: bool = False
) -> tuple[StepRunner, int]:
    """Time `fit` on a repeated in-memory batch, exactly as `digit-keras fit` compiles the model.

    The dataset gets the project's tf.data options; `autotune` turns tf.data's autotuner back on.
    `keras_batch_norm` builds the net with Keras's own BatchNormalization in place of the
    project's fused one, to show what the fused kernel gains.
    """
    from digit_keras.config import apply_overrides, default_config_path, load_config
    from digit_keras.data.pipeline import dataset_options
    from digit_keras.runtime import configure, import_keras, import_tensorflow
    from digit_keras.training.session import build_and_compile

    tf = import_tensorflow()
    config = load_config(default_config_path("basic"))
    # The network's own step, as PyTorch's below: no augmentation layer in front of it.
    overrides = {"batch_size": batch, "precision": precision, "augment.rotation": 0.0}
    overrides |= {"augment.zoom": 0.0, "augment.shift": 0.0}
    config = apply_overrides(config, overrides, "benchmark")
    configure(config.seed, config.precision)
    keras_layer = import_keras().layers.BatchNormalization
    in_blocks = "digit_keras.models.blocks.FusedBatchNormalization"
    with mock.patch(in_blocks, keras_layer) if keras_batch_norm else contextlib.nullcontext():
        model, _ = build_and_compile(config, steps_per_epoch=1000)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((batch, 28, 28, 1), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, batch), dtype=tf.int32)
    options = dataset_options()
    options.autotune.enabled = autotune
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat().with_options(options)
    configure(config.seed, "float32")  # the next builder starts from the default policy

    def run(steps: int) -> float:
        started = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        return time.perf_counter() - started

    return run, sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def torch_runner(
    batch: int, precision: str, autotune: bool, channels_last: bool = True
) -> tuple[StepRunner, int]:
    """The same network, optimiser and batch in PyTorch, in channels-last or its default NCHW
    layout: either has been the faster one here, depending on the round and precision."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, pad: int = 0):
        return [
            nn.Conv2d(cin, cout, kernel, stride, pad, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        ]

    width, dropout = 32, 0.4
    layers: list[nn.Module] = []
    cin = 1
    for filters in (width, 2 * width):
        layers += conv_bn_relu(cin, filters, 3) + conv_bn_relu(filters, filters, 3)
        layers += [*conv_bn_relu(filters, filters, 5, 2, 2), nn.Dropout(dropout)]
        cin = filters
    layers += [*conv_bn_relu(cin, 4 * width, 4), nn.Flatten(), nn.Dropout(dropout)]
    layers += [nn.Linear(4 * width, 10)]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = nn.Sequential(*layers).to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.rand(batch, 1, 28, 28).to(memory_format=layout)
    labels = torch.randint(0, 10, (batch,))
    bf16 = precision == "mixed_bfloat16"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        return time.perf_counter() - started

    return run, sum(p.numel() for p in model.parameters())


FRAMEWORKS = {
    "keras": keras_runner,
    "kerasbn": functools.partial(keras_runner, keras_batch_norm=True),
    "torch": torch_runner,  # channels-last
    "torchnchw": functools.partial(torch_runner, channels_last=False),
}
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--variants",
        default="keras-fp32,keras-bf16,torch-fp32,torch-bf16,torchnchw-fp32,torchnchw-bf16",
    )
    parser.add_argument(
        "--tf-autotune", action="store_true", help="Keras variants with tf.data's autotuner on"
    )
    args = parser.parse_args()

    runners: dict[str, StepRunner] = {}
    for variant in args.variants.split(","):
        framework, precision = variant.split("-")
        try:
            runners[variant], params = FRAMEWORKS[framework](
                args.batch, PRECISIONS[precision], args.tf_autotune
            )
        except ImportError as err:
            print(f"{variant}: skipped ({err})")
            continue
        runners[variant](5)  # warm-up: graph tracing, allocator, oneDNN kernel selection
        print(f"{variant}: {params:,} parameters")
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            rates[name].append(args.steps * args.batch / run(args.steps))

    print(f"\nbatch {args.batch}, {args.steps} steps x {args.rounds} rounds, images/s (median)")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        print(f"  {name:11s} {value:7.0f}   rounds: {[round(v) for v in rates[name]]}")
    keras_best = max((v for k, v in medians.items() if k.startswith("keras")), default=0)
    torch_best = max((v for k, v in medians.items() if k.startswith("torch")), default=0)
    if keras_best and torch_best:
        print(f"  best Keras / best PyTorch = {keras_best / torch_best:.2f}")


if __name__ == "__main__":
    main()
