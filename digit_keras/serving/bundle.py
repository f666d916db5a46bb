"""Make the bundled default model from a finished, exported run (`make bundle` runs it).

    python -m digit_keras.serving.bundle RUN_DIR [TARGET_DIR]

Copies the run's model.onnx, and its model.keras without the optimizer state, into TARGET_DIR
(default saved_models/default) with manifest.json: architecture, holdout accuracy, training
date, the command and the commit.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from digit_keras.atomic import atomic_path
from digit_keras.errors import UserError
from digit_keras.export import ONNX_FILE
from digit_keras.inference import load_model
from digit_keras.serving import BUNDLED_MODEL_DIR
from digit_keras.training import runs

FILES = (runs.MODEL_FILE, ONNX_FILE)


def bundle(run_dir: Path, target: Path = BUNDLED_MODEL_DIR) -> dict:
    missing = [name for name in (*FILES, runs.METRICS_FILE) if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir}: missing {', '.join(missing)}; fit and export it first")
    metrics = json.loads((run_dir / runs.METRICS_FILE).read_text())
    trained = datetime.fromtimestamp((run_dir / runs.MODEL_FILE).stat().st_mtime, UTC)
    manifest = {
        "arch": metrics["arch"],
        "holdout_accuracy": metrics["holdout_accuracy"],
        "holdout_images": metrics["holdout_images"],
        "trained": trained.strftime("%Y-%m-%d"),
        "command": f"make bundle: {metrics['command']}, then export --format onnx",
        "commit": runs.git_commit(),
        "precision": metrics["precision"],
        "wall_time_s": metrics["wall_time_s"],
    }
    target.mkdir(parents=True, exist_ok=True)
    with atomic_path(target / ONNX_FILE) as tmp:
        shutil.copyfile(run_dir / ONNX_FILE, tmp)
    with atomic_path(target / runs.MODEL_FILE) as tmp:  # weights only: no optimizer state
        load_model(run_dir / runs.MODEL_FILE).save(tmp)
    runs.write_json(target / "manifest.json", manifest)
    return manifest


if __name__ == "__main__":
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else BUNDLED_MODEL_DIR
    print(json.dumps(bundle(Path(sys.argv[1]), target), indent=2))
