"""Where a run keeps each file: the one owner of the names in a run folder, and small readers.

Everything that writes runs (training, tuning, export, bundle) and everything that reads them
(ensemble, report, predict, serve) names files through this module, which imports nothing of the
project's but the config reader, so readers never import the trainers.

A fit run (`saved_models/<arch>-<time>/`):
  config.toml        the resolved config, every option
  model.keras        the trained model; metrics.json, written last, marks the run finished
  history.csv        one row per epoch; tensorboard/ the same for TensorBoard
  checkpoints/best.keras   the best epoch by validation accuracy (never used to score the run)
  backup/            the resume state while training (epoch-<k>-step-<s>.weights.h5 with the
                     optimizer's, and .random.npz: k epochs and s steps done); removed when finished
  holdout.npz        the holdout's rows of train.csv, their labels and the model's logits
  savedmodel/, model.onnx, export.json   after `digit-keras export`
A cv run (`saved_models/<cv|holdout|bag>-<arch>-<time>/`):
  config.toml, cv.json   the resolved config; folds, mode, seed, row counts, data sources
  folds.npy          fold number of every training row (int8, N): a function of labels and seed
  labels.npy         the training labels (int32, N), so `ensemble` needs no CSV
  fold-<k>/ (member-<m>/ in a bag)   a fit-style run per model, plus train_rows.npy (the rows it
                     trained on), oof_logits.npy (its held-out rows), test_logits.npy (the test
                     set) and member.npz (the model alone as an ensemble member)
  oof_logits.npy     out-of-fold logits for every row (N x 10; NaN for rows never held out)
  test_logits.npy    test-set logits of each model (models x T x 10)
  member.npz         the run as a small, shareable ensemble member (members.py)
  metrics.json       per-model and overall out-of-fold accuracy and log-loss; written last
A search (`saved_models/tune-<arch>-<time>/`): space.toml, tune.json, tuner/, trials.csv,
  trials.txt and best.toml, written last.
"""

from __future__ import annotations

import json
from pathlib import Path

from digit_keras.config import load_config
from digit_keras.errors import UserError

RUNS_ROOT = Path("saved_models")

CONFIG_FILE = "config.toml"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
TENSORBOARD_DIR = "tensorboard"
BEST_CHECKPOINT = "checkpoints/best.keras"
BACKUP_DIR = "backup"
BACKUP_WEIGHTS = "epoch-{epochs}-step-{steps}.weights.h5"  # Keras picks the format by suffix
BACKUP_RANDOM_STATE = "epoch-{epochs}-step-{steps}.random.npz"
HOLDOUT_FILE = "holdout.npz"

SAVEDMODEL_DIR = "savedmodel"
SAVEDMODEL_FILE = "saved_model.pb"  # what marks a folder as a TensorFlow SavedModel
ONNX_FILE = "model.onnx"
EXPORT_FILE = "export.json"
MANIFEST_FILE = "manifest.json"  # the bundled model's description (serving/bundle.py)

CV_FILE = "cv.json"
SEEDS_FILE = "seeds.json"
FOLDS_FILE = "folds.npy"
LABELS_FILE = "labels.npy"
OOF_LOGITS_FILE = "oof_logits.npy"
TRAIN_ROWS_FILE = "train_rows.npy"
PSEUDO_LABELS_FILE = "pseudo_labels.npy"  # (test-set row, label) of each pseudo-labelled image
TEST_LOGITS_FILE = "test_logits.npy"
MEMBER_FILE = "member.npz"

TUNER_DIR = "tuner"
SPACE_FILE = "space.toml"
TUNE_FILE = "tune.json"
TRIALS_CSV = "trials.csv"
TRIALS_TABLE = "trials.txt"
BEST_CONFIG = "best.toml"


MODEL_UNITS = ("fold", "member")  # what one model of a cv run is called: a bag has members


def model_unit(bag: int) -> str:
    """ "member" in a bag (`bag` members), else "fold"."""
    return MODEL_UNITS[bool(bag)]


def model_dir(run_dir: Path, unit: str, index: int) -> Path:
    """The folder of a cv run's model `index` (`unit`: see `model_unit`)."""
    return run_dir / f"{unit}-{index}"


def model_dirs(run_dir: Path) -> list[Path]:
    """The folders of a cv run's models (folds or bag members), in order, from its cv.json."""
    settings = json.loads((run_dir / CV_FILE).read_text())
    unit = model_unit(settings.get("bag", 0))
    return [model_dir(run_dir, unit, index) for index in range(settings["trained_folds"])]


def latest_run(root: Path = RUNS_ROOT) -> Path:
    """What `--model latest` means: the newest finished run with a model (by the model's time)."""
    finished = [
        p.parent for p in root.glob(f"*/{METRICS_FILE}") if (p.parent / MODEL_FILE).is_file()
    ]
    if not finished:
        raise UserError(f"no finished run in {root}/; train one with: digit-keras fit")
    return max(finished, key=lambda p: (p / MODEL_FILE).stat().st_mtime)


def latest_unfinished(
    prefix: str, started: str, finished: str, kind: str, root: Path = RUNS_ROOT
) -> Path:
    """What a bare `--resume` means: the newest `prefix-*` run that has its `started` marker
    and not its `finished` one."""
    unfinished = [
        p.parent for p in root.glob(f"{prefix}-*/{started}") if not (p.parent / finished).exists()
    ]
    if not unfinished:
        raise UserError(f"no unfinished {prefix}-* {kind} in {root}/ to resume")
    return max(unfinished, key=lambda p: p.stat().st_mtime)


def run_dataset(run_dir: Path) -> str:
    """The dataset a run trained on (its config says; "kaggle" without one), so predictions
    read the matching test set."""
    config_path = run_dir / CONFIG_FILE
    return load_config(config_path).data.dataset if config_path.is_file() else "kaggle"
