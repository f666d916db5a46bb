"""Train the big networks on an accelerator and report what they achieved.

For each model: `digit-keras cv --holdout --arch NAME` with its config (fold 0 of 5, the holdout
that k-fold runs and ensembles line up with), or with `--all-folds` every fold (out-of-fold
predictions on all of train.csv, the rows the CPU members are scored on), then a table of
accuracy, seconds per epoch (steady state: the first epoch, which compiles, is left out when
there are more) and achieved training TFLOP/s (3 x forward FLOPs per image x training images/s;
batch norm, activations and the optimizer are not counted). Everything small enough to copy back
lands in OUT: summary.json and, per model, NAME.tar.gz with the run minus its weights (configs,
metrics, history, TensorBoard logs, folds, labels, out-of-fold and test-set logits), which
`ensemble` reads as it is.

    KERAS_BACKEND=jax python benchmarks/bench_accelerator.py --out DIR [--all-folds] \
        [--models wrn28_10 resnet50 vgg16 resnet164] [--data DIR] \
        [-- extra cv flags, e.g. --epochs 2]
"""

from __future__ import annotations

import argparse
import json
import tarfile
import time
from pathlib import Path

from digit_keras.runtime import backend

# The two never trained at full size on the CPU come first.
BIG_MODELS = ["wrn28_10", "resnet50", "vgg16", "resnet164"]
LEFT_BEHIND = ("model.keras", "checkpoints", "backup")  # weights: too big to bring back


def _pack(run_dir: Path, archive: Path) -> None:
    """Tar `run_dir` without its weights, so it fits through a small file-size limit."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(run_dir.rglob("*")):
            relative = path.relative_to(run_dir)
            if path.is_file() and not set(relative.parts) & set(LEFT_BEHIND):
                tar.add(path, arcname=str(Path(run_dir.name) / relative))


def _summary(name: str, run_dir: Path, seconds: float) -> dict:
    from digit_keras.config import load_config
    from digit_keras.models import build_model
    from digit_keras.models.stats import describe

    config = load_config(run_dir / "config.toml")
    fold = json.loads((run_dir / "fold-0" / "metrics.json").read_text())
    cv = json.loads((run_dir / "metrics.json").read_text())
    epochs = fold["epoch_seconds"]
    steady = epochs[1:] or epochs
    gflops = describe(build_model(config.arch, **config.model))["mflops"] / 1e3
    return {
        "arch": name,
        "backend": fold["backend"],
        "precision": fold["precision"],
        "epochs": len(epochs),
        "train_images": fold["train_images"],
        "scored_rows": cv["oof_rows"],
        "accuracy": cv["oof_accuracy"],
        "log_loss": cv["oof_log_loss"],
        "first_epoch_s": epochs[0],
        "epoch_s": sum(steady) / len(steady),
        "train_images_per_s": fold["train_images_per_s"],
        "forward_gflops_per_image": gflops,
        "train_tflops_per_s": 3 * gflops * fold["train_images_per_s"] / 1e3,
        "wall_s": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder (created)")
    parser.add_argument("--models", nargs="*", default=BIG_MODELS)
    parser.add_argument("--data", help="folder with train.csv and test.csv")
    parser.add_argument(
        "--all-folds", action="store_true", help="train every fold, not only the holdout (fold 0)"
    )
    parser.add_argument("cv_flags", nargs="*", help="after --: passed on to `digit-keras cv`")
    args = parser.parse_args()

    from digit_keras.cli import main as cli

    args.out.mkdir(parents=True, exist_ok=True)
    data = ["--data", args.data] if args.data else []
    scope, folds = ("cv", []) if args.all_folds else ("holdout", ["--holdout"])
    rows = []
    for name in args.models:
        run_dir = args.out / f"{scope}-{name}"
        started = time.perf_counter()
        argv = ["cv", "--arch", name, "--out", str(run_dir), *folds, *data, *args.cv_flags]
        if cli(argv) != 0:
            raise SystemExit(f"{name}: digit-keras cv failed")
        rows.append(_summary(name, run_dir, time.perf_counter() - started))
        _pack(run_dir, args.out / f"{name}.tar.gz")
        (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")

    scored = "every fold's held-out rows" if args.all_folds else "holdout = fold 0 of 5"
    print(f"backend {backend()}; accuracy on {scored} of train.csv")
    header = ("model", "accuracy", "rows", "epoch s", "img/s", "TFLOP/s")
    print("{:10s} {:>9s} {:>6s} {:>8s} {:>8s} {:>8s}".format(*header))
    for row in rows:
        print(
            f"{row['arch']:10s} {row['accuracy']:9.4%} {row['scored_rows']:6d} "
            f"{row['epoch_s']:8.1f} {row['train_images_per_s']:8.0f} "
            f"{row['train_tflops_per_s']:8.1f}"
        )


if __name__ == "__main__":
    main()
