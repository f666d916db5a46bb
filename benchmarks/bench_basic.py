"""Benchmark the default `basic` model on the real train.csv/test.csv (run by hand, not in tests).

Prints three measured things:
  1. input pipeline and augmentation: `fit` images/s of the model as `fit` trains it (behind its
     augmentation layer) through the real tf.data pipeline, against the network's bare training
     step on one pre-batched in-memory batch;
  2. a full `digit-keras fit --arch basic` run: holdout accuracy, epochs, wall time, images/s;
  3. `digit-keras predict` on the 28,000 test images, end to end (process start-up included).

    python benchmarks/bench_basic.py [--data DIR] [--run RUN_DIR] [--steps N] [--repeats N]

--run skips the full training and reuses a finished run directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from digit_keras.config import apply_overrides, default_config_path, load_config
from digit_keras.runtime import configure, import_tensorflow

CLI = [sys.executable, "-m", "digit_keras"]


def _timed_epoch_rate(model, dataset, steps: int, batch: int) -> float:
    """Images/s of one fit epoch of `steps` steps, after a warm-up epoch that traces the graph."""
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - started)


def bench_pipeline(data_dir: str | None, steps: int, repeats: int) -> None:
    tf = import_tensorflow()
    from digit_keras.data import load_train
    from digit_keras.data.pipeline import dataset_options, make_dataset
    from digit_keras.training.session import build_and_compile

    config = load_config(default_config_path("basic"))
    configure(config.seed, config.precision)
    images, labels, _ = load_train("kaggle", data_dir)
    batch = config.batch_size
    pipeline = make_dataset(images, labels, batch, True, config.seed).repeat()
    x, y = next(iter(make_dataset(images, labels, batch)))
    bare = tf.data.Dataset.from_tensors((x, y)).repeat()  # one in-memory batch, no input work
    bare = bare.with_options(dataset_options())
    trainer, _ = build_and_compile(config, steps)
    no_augmentation = {f"augment.{knob}": 0.0 for knob in ("rotation", "zoom", "shift")}
    network, _ = build_and_compile(apply_overrides(config, no_augmentation, "benchmark"), steps)
    rates: dict[str, list[float]] = {"bare step": [], "tf.data + augmentation": []}
    for _ in range(repeats):  # interleaved, so machine noise hits both alike
        rates["bare step"].append(_timed_epoch_rate(network, bare, steps, batch))
        rates["tf.data + augmentation"].append(_timed_epoch_rate(trainer, pipeline, steps, batch))
    print(f"\n1. input pipeline ({steps} steps of {batch}, median of {repeats})")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        print(f"   {name:24s} {value:7.0f} images/s   runs: {[round(v) for v in rates[name]]}")
    ratio = medians["tf.data + augmentation"] / medians["bare step"]
    print(f"   pipeline / bare = {ratio:.3f} (target >= 0.90)")


def bench_fit(data_dir: str | None) -> Path:
    command = [*CLI, "fit", "--arch", "basic"] + (["--data", data_dir] if data_dir else [])
    print(f"\n2. full training: digit-keras {' '.join(command[3:])}", flush=True)
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - started
    run_dir = Path(output.splitlines()[0].removeprefix("run dir: "))
    print(f"   command wall time {wall:.0f} s")
    return run_dir


def report_run(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(f"\n2. full training run {run_dir}")
    print(
        f"   holdout accuracy {metrics['holdout_accuracy']:.4%} on {metrics['holdout_images']} "
        f"images, {metrics['epochs']} epochs, {metrics['wall_time_s'] / 60:.1f} min in fit, "
        f"{metrics['train_images_per_s']:.0f} training images/s"
    )


def bench_predict(run_dir: Path, data_dir: str | None, repeats: int) -> None:
    command = [*CLI, "predict", "--model", str(run_dir), "--out", str(run_dir / "bench_sub.csv")]
    command += ["--data", data_dir] if data_dir else []
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    print(f"\n3. predict on test.csv, end to end: digit-keras {' '.join(command[3:])}")
    print(f"   wall seconds {[round(w, 1) for w in walls]}, median {statistics.median(walls):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with train.csv/test.csv (default as the CLI)")
    parser.add_argument("--run", type=Path, help="reuse this finished run instead of training")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed pipeline epoch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_pipeline(args.data, args.steps, args.repeats)
    run_dir = args.run or bench_fit(args.data)
    report_run(run_dir)
    bench_predict(run_dir, args.data, args.repeats)


if __name__ == "__main__":
    main()
