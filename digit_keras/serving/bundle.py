"""Make the bundled default model from finished runs: `digit-keras bundle` (`make bundle`).

    digit-keras bundle RUN_DIR [RUN_DIR ...] [--out TARGET_DIR]

One run's model, or the mean of several runs' probabilities as one model
(`models.averaged`), goes into TARGET_DIR (default saved_models/default) as model.keras
(without optimizer state) and model.onnx (exported and checked against the Keras model on seeded
random pixels), with manifest.json: architecture, holdout accuracy, training date, the commands,
the commit and the ONNX check's largest probability difference. The
runs must hold out the same rows of train.csv, so the holdout accuracy of their mean is measured
on rows none of them trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from digit_keras import layout
from digit_keras.atomic import atomic_path
from digit_keras.errors import UserError
from digit_keras.serving import BUNDLED_MODEL_DIR
from digit_keras.training import runs

CHECK_IMAGES = 256  # seeded random pixels the ONNX export is checked on


def bundle(run_dirs: Sequence[Path], target: Path = BUNDLED_MODEL_DIR) -> dict:
    from digit_keras.ensemble.combine import mean_probabilities
    from digit_keras.export import export, random_images
    from digit_keras.keras_inference import load_model, with_dtype
    from digit_keras.models.averaged import average_models
    from digit_keras.scoring import accuracy, softmax

    needed = (layout.MODEL_FILE, layout.METRICS_FILE, layout.HOLDOUT_FILE)
    for run_dir in run_dirs:
        missing = [name for name in needed if not (run_dir / name).is_file()]
        if missing:
            raise UserError(f"{run_dir}: missing {', '.join(missing)}; not a finished fit run")
    metrics = [json.loads((run_dir / layout.METRICS_FILE).read_text()) for run_dir in run_dirs]
    holdouts = [_holdout(run_dir) for run_dir in run_dirs]
    for run_dir, holdout in zip(run_dirs[1:], holdouts[1:], strict=True):
        if not np.array_equal(holdout["rows"], holdouts[0]["rows"]):
            raise UserError(
                f"{run_dir}: holds out other rows than {run_dirs[0]}; bundle runs trained with "
                "the same data and --split-seed"
            )
    labels = holdouts[0]["labels"]
    probabilities = mean_probabilities(np.stack([softmax(h["logits"]) for h in holdouts]))

    models = [load_model(run_dir / layout.MODEL_FILE) for run_dir in run_dirs]
    model = average_models(models) if len(models) > 1 else models[0]
    model = with_dtype(model, "float32")  # the saved model answers as its ONNX graph does
    target.mkdir(parents=True, exist_ok=True)
    # export refuses a graph that disagrees; its check goes into the manifest
    check = dict(export(model, target, ("onnx",), random_images(CHECK_IMAGES)))["onnx"]
    with atomic_path(target / layout.MODEL_FILE) as tmp:  # weights only: no optimizer state
        model.save(tmp)
    trained = max((run_dir / layout.MODEL_FILE).stat().st_mtime for run_dir in run_dirs)
    manifest = {
        "arch": " + ".join(sorted({m["arch"] for m in metrics})),
        "models": len(run_dirs),
        "holdout_accuracy": accuracy(probabilities, labels),
        "holdout_images": len(labels),
        "member_holdout_accuracy": [m["holdout_accuracy"] for m in metrics],
        "trained": datetime.fromtimestamp(trained, UTC).strftime("%Y-%m-%d"),
        "command": "make bundle: "
        + "; ".join(m["command"] for m in metrics)
        + ("; their mean" if len(run_dirs) > 1 else ""),
        "commit": runs.git_commit(),
        "precision": metrics[0]["precision"],
        "onnx_max_abs_diff": check["max_abs_diff"],
        "wall_time_s": round(sum(m["wall_time_s"] for m in metrics), 1),
    }
    runs.write_json(target / layout.MANIFEST_FILE, manifest)
    return manifest


def _holdout(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's holdout rows, labels and logits (`holdout.npz`), read and closed."""
    with np.load(run_dir / layout.HOLDOUT_FILE) as saved:
        return dict(saved)
