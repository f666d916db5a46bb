"""Export time and size per architecture, and `predict` speed per format (run by hand).

Part 1, every architecture at full size (untrained weights: time and size do not depend on
training): `digit-keras export` timed end to end in a subprocess, each format's write time and
size from export.json. Part 2, for the trained runs given with --run: `digit-keras predict` on
the test images (Kaggle's 28,000) from the Keras model, the SavedModel and the ONNX file, timed
from process start to submission written (median of --repeats).

    python benchmarks/bench_export.py --run saved_models/bench-basic [--archs basic vgg16 ...]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of a command, start-up included, and what it printed."""
    started = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, result.stdout


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "digit_keras", *args]


def export_table(archs: list[str], check_images: int) -> None:
    from digit_keras.config import default_config_path
    from digit_keras.runtime import import_tensorflow

    import_tensorflow()
    from digit_keras.models import build_model

    print(f"{'model':10s} {'export s':>9s} {'SavedModel MB':>14s} {'write s':>8s}", end="")
    print(f" {'ONNX MB':>8s} {'write s':>8s} {'max diff':>9s}")
    for name in archs:
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp)
            build_model(name).save(run / "model.keras")
            (run / "config.toml").write_text(default_config_path(name).read_text())
            seconds, _ = _timed(_cli("export", "--model", tmp, "--check-images", str(check_images)))
            report = json.loads((run / "export.json").read_text())
        saved, onnx = report["savedmodel"], report["onnx"]
        diff = max(saved["max_abs_diff"], onnx["max_abs_diff"])
        print(
            f"{name:10s} {seconds:9.1f} {saved['bytes'] / 1e6:14.1f} {saved['seconds']:8.1f}",
            end="",
        )
        print(f" {onnx['bytes'] / 1e6:8.1f} {onnx['seconds']:8.1f} {diff:9.1e}", flush=True)


def predict_table(run: Path, repeats: int) -> None:
    if not (run / "export.json").is_file():
        subprocess.run(_cli("export", "--model", str(run)), check=True)
    print(f"\n{run}: digit-keras predict on the test set, start-up included")
    print(f"{'format':12s} {'median s':>9s} {'images/s':>9s}  all runs (s)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in (
            ("Keras", run),
            ("SavedModel", run / "savedmodel"),
            ("ONNX", run / "model.onnx"),
        ):
            out = str(Path(tmp) / "submission.csv")
            results = [_timed(_cli("predict", "--model", str(model), "--out", out))
                       for _ in range(repeats)]  # fmt: skip
            times = [seconds for seconds, _ in results]
            images = int(re.search(r": (\d+) predictions", results[0][1]).group(1))
            median = statistics.median(times)
            runs = ", ".join(f"{t:.1f}" for t in times)
            print(f"{label:12s} {median:9.1f} {images / median:9.0f}  {runs}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], type=Path, help="trained run(s)")
    parser.add_argument("--archs", nargs="*", help="default: every registered architecture")
    parser.add_argument("--check-images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.archs is None:
        from digit_keras.runtime import import_tensorflow

        import_tensorflow()
        from digit_keras.models import list_models

        args.archs = list_models()
    export_table(args.archs, args.check_images)
    for run in args.run:
        predict_table(run, args.repeats)


if __name__ == "__main__":
    main()
