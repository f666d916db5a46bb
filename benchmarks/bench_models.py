"""Size, cost and CPU speed of every registered architecture at full size (run by hand).

For each model: parameters, forward MFLOPs per image, training images/s (Adam step on one
in-memory batch, after a warm-up step) and inference images/s (the batch-norm-folded model that
`predict` uses), and the process's peak resident memory so far (run one model per process,
`--models NAME`, for that model's own peak). Each timing loop runs for about --seconds seconds.

    python benchmarks/bench_models.py [--seconds S] [--models basic mobilenet ...]
        [--precision float32|mixed_bfloat16] [--batch N]   # default batch 128, 32 over 1 GFLOP
        [--set KEY=VALUE ...]    # builder options for every model, e.g. --set stem=imagenet
"""

from __future__ import annotations

import argparse
import resource
import time

from digit_keras.runtime import configure, import_tensorflow

TRAIN_IMAGES = 37_800  # train.csv less the 10% holdout


def _rate(step, inputs: tuple, batch: int, seconds: float) -> float:
    """Images/s of `step(*inputs)` repeated for about `seconds`, after an untimed warm-up call."""
    step(*inputs)
    count, started = 0, time.perf_counter()
    while count < 2 or time.perf_counter() - started < seconds:
        step(*inputs)
        count += 1
    return count * batch / (time.perf_counter() - started)


def main() -> None:
    tf = import_tensorflow()
    import keras

    from digit_keras.config import parse_assignment
    from digit_keras.keras_inference import fold_batch_norm
    from digit_keras.models import build_model, list_models
    from digit_keras.models.stats import describe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--models", nargs="*", default=list_models())
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--precision", default="float32", help="dtype policy (default float32)")
    parser.add_argument("--batch", type=int, help="training batch (default 128; 32 over 1 GFLOP)")
    args = parser.parse_args()
    options = dict(parse_assignment(text) for text in args.set)
    print(f"precision {configure(0, args.precision)}")

    header = f"{'model':10s} {'params':>11s} {'MFLOPs':>8s} {'train img/s':>12s}"
    header += f" {'infer img/s':>12s} {'epoch (est.)':>13s} {'train GFLOP/s':>14s}"
    print(f"{header} {'batch':>6s} {'peak RSS':>9s}")
    for name in args.models:
        model = build_model(name, **options)
        stats = describe(model)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        batch = args.batch or (128 if stats["mflops"] < 1000 else 32)
        x = tf.random.uniform((batch, 28, 28, 1))
        y = tf.random.uniform((batch,), maxval=10, dtype=tf.int32)
        train = _rate(model.train_on_batch, (x, y), batch, args.seconds)
        infer = _rate(fold_batch_norm(model).predict_on_batch, (x,), batch, args.seconds / 2)
        epoch_min = TRAIN_IMAGES / train / 60
        flops = 3 * stats["mflops"] * train / 1e3  # forward + backward ~ 3x forward
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        print(
            f"{name:10s} {stats['params']:11,d} {stats['mflops']:8.1f} {train:12.1f} "
            f"{infer:12.1f} {epoch_min:10.1f} min {flops:14.1f} {batch:6d} {peak_gib:6.1f} GiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
