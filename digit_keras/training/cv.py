"""K-fold cross-validation, or one fold of it: the work behind `digit-keras cv`.

A cv run directory holds:
  config.toml, cv.json   the resolved config; folds, mode, seed, row counts, data sources
  folds.npy              fold number of every training row (int8, N): a function of labels and seed
  labels.npy             the training labels (int32, N), so `ensemble` needs no CSV
  fold-<k>/              a complete `fit`-style run per fold (model, history, TensorBoard, backup)
                         plus oof_logits.npy (its held-out rows) and test_logits.npy (the test set)
  oof_logits.npy         out-of-fold logits for every row (N x 10; NaN for rows never held out)
  test_logits.npy        test-set logits of each fold model (trained folds x T x 10)
  member.npz             the run as a small, shareable ensemble member (ensemble/base_runs.py)
  metrics.json           per-fold and overall out-of-fold accuracy and log-loss; written last

Holdout mode trains fold 0 only: a 1/K holdout that lines up with K-fold runs of the same seed.
`cv --seeds` trains one such run per seed (same folds) and `seed_statistics` says how much the
recipe's out-of-fold scores move with the seed alone.

`start_cv`, `resume_cv` and `cv_seeds` are the command (run directories, resume, clean-up);
`cross_validate` trains into a directory it is given.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digit_keras.atomic import save_npy_atomic, write_text_atomic
from digit_keras.config import TrainConfig, load_config, to_toml
from digit_keras.data import load_test, load_train
from digit_keras.data.split import stratified_folds
from digit_keras.errors import UserError
from digit_keras.scoring import logit_scores
from digit_keras.training import runs

CV_FILE = "cv.json"
SEEDS_FILE = "seeds.json"
FOLDS_FILE = "folds.npy"
LABELS_FILE = "labels.npy"
OOF_LOGITS_FILE = "oof_logits.npy"
TEST_LOGITS_FILE = "test_logits.npy"
PREDICT_BATCH = 1024
# What a cv run has to show for itself before a failure should leave it on disk.
PROGRESS = (f"fold-*/{runs.BACKUP_DIR}", f"fold-*/{runs.MODEL_FILE}")


@dataclass
class CvResult:
    run_dir: Path
    metrics: dict[str, Any]  # metrics.json; only `mode`, `folds`, `open_folds` while folds are open


def start_cv(
    config: TrainConfig,
    folds: int = 5,
    holdout: bool = False,
    data_dir: str | Path | None = None,
    tta: bool = False,
    out: str | Path | None = None,
    only_fold: int | None = None,
) -> CvResult:
    """`digit-keras cv`: a new cv run in `out` (default saved_models/cv-<arch>-<time>, or
    holdout-<arch>-<time>); it leaves nothing behind if it fails before a fold makes progress.

    With `only_fold`, `out` is required: the directory every fold's process shares.
    """
    if folds < 2:
        raise UserError(f"--folds must be at least 2, got {folds}")
    if only_fold is None:
        run_dir = runs.new_run_dir(f"{'holdout' if holdout else 'cv'}-{config.arch}", out)
    elif out is None:
        raise UserError("--fold needs --out DIR: the run directory every fold shares")
    else:  # shared with the processes training the other folds; made once the data is read
        run_dir = Path(out)
    runs.announce(run_dir)
    with runs.discarded_if_unstarted(run_dir, PROGRESS, enabled=only_fold is None):
        metrics = cross_validate(
            config, run_dir, folds, holdout, data_dir, tta, only_fold=only_fold
        )
    return CvResult(run_dir, metrics)


def resume_cv(path: str | Path, data_dir: str | Path | None = None) -> CvResult:
    """`digit-keras cv --resume`: continue an unfinished cv run at its first open fold."""
    run_dir, config, settings = resumable_cv_dir(path)
    runs.announce(run_dir)
    holdout, tta = settings["mode"] == "holdout", settings.get("tta", False)
    metrics = cross_validate(
        config, run_dir, settings["folds"], holdout, data_dir, tta, resuming=True
    )
    return CvResult(run_dir, metrics)


def cv_seeds(
    config: TrainConfig,
    seeds: list[int],
    folds: int = 5,
    holdout: bool = False,
    data_dir: str | Path | None = None,
    tta: bool = False,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """`digit-keras cv --seeds`: one cv run per seed in `out`/seed-<S> (same folds), then their
    seed statistics, saved as seeds.json and returned."""
    if len(set(seeds)) < 2 or len(set(seeds)) < len(seeds):
        raise UserError(f"--seeds: need two or more different seeds; got {seeds}")
    root = runs.new_run_dir(f"seeds-{config.arch}", out)
    run_dirs = []
    with runs.discarded_if_unstarted(root, ("seed-*",)):
        for seed in seeds:
            seeded = dataclasses.replace(config, seed=seed)
            run = start_cv(seeded, folds, holdout, data_dir, tta, out=root / f"seed-{seed}")
            run_dirs.append(run.run_dir)
    summary = seed_statistics(run_dirs)
    runs.write_json(root / SEEDS_FILE, summary)
    return summary


def fold_dir(run_dir: Path, fold: int) -> Path:
    return run_dir / f"fold-{fold}"


def resumable_cv_dir(path: str | Path) -> tuple[Path, TrainConfig, dict[str, Any]]:
    """Check that `path` holds an unfinished cv run; return it with its config and cv.json."""
    run_dir = runs.resumable_run_dir(path, CV_FILE, runs.METRICS_FILE, "cv run")
    settings = json.loads((run_dir / CV_FILE).read_text())
    return run_dir, load_config(run_dir / runs.CONFIG_FILE), settings


def cross_validate(
    config: TrainConfig,
    run_dir: Path,
    folds: int,
    holdout: bool = False,
    data_dir: str | Path | None = None,
    tta: bool = False,
    resuming: bool = False,
    verbose: str | int = "auto",
    only_fold: int | None = None,
) -> dict[str, Any]:
    """Train one model per fold (fold 0 only with `holdout`); return the metrics it saves.

    With `tta`, the saved out-of-fold and test logits are test-time augmented (inference.py).

    With `only_fold`, train that fold alone into `run_dir`, which other processes (other
    machines, on a shared filesystem) may fill with the other folds of the same config; whichever
    process finds every fold finished writes the merged results. Until then the returned dict
    has `open_folds` and no metrics are written.

    A resumed run skips folds whose logits exist, and continues a half-trained fold from its
    backup. Each fold's model is its last epoch's: the held-out rows never select anything.
    """
    started = time.perf_counter()
    made_by = runs.provenance()  # now: the checkout may change while the folds train
    from digit_keras.training.fit import TrainingData, start_training, train_split

    config, strategy_name, strategy = start_training(config)
    import keras

    from digit_keras.inference import load_model, predict_logits

    images, labels, source = load_train(config.data.dataset, data_dir, config.data.limit)
    test_images, test_source = load_test(config.data.dataset, data_dir)
    assignment = stratified_folds(labels, folds, config.data.split_seed)
    trained_folds = 1 if holdout else folds
    mode = "holdout" if holdout else "kfold"
    if only_fold is not None and not 0 <= only_fold < trained_folds:
        shape = "holdout" if holdout else f"{folds}-fold"
        raise UserError(f"--fold must be 0 to {trained_folds - 1} in a {shape} run")
    settings = {
        "mode": mode,
        "folds": folds,
        "trained_folds": trained_folds,
        "seed": config.seed,
        "split_seed": config.data.split_seed,
        "tta": tta,
        "arch": config.arch,
        "rows": len(labels),
        "data": source,
        "test_rows": len(test_images),
        "test_data": test_source,
    }
    joining = only_fold is not None and (run_dir / CV_FILE).is_file()
    if resuming or joining:
        _check_same_split(run_dir, labels, assignment)
    if joining:
        _check_same_run(run_dir, config, settings)
    elif not resuming:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / runs.CONFIG_FILE, to_toml(config))
        save_npy_atomic(run_dir / FOLDS_FILE, assignment)
        save_npy_atomic(run_dir / LABELS_FILE, labels)
        runs.write_json(run_dir / CV_FILE, settings)
        if only_fold is not None:  # two processes may have started the run at once
            _check_same_run(run_dir, config, settings)

    oof_logits = np.full((len(labels), 10), np.nan, dtype=np.float32)
    test_logits = {}
    fold_metrics = []
    open_folds = []
    # A process training one fold looks at the others only after its own is saved: of two
    # processes that finish together, the one that looks last then sees both and merges.
    order = sorted(range(trained_folds), key=lambda fold: fold != only_fold)
    for fold in order:
        directory = fold_dir(run_dir, fold)
        held_out = np.flatnonzero(assignment == fold)
        if only_fold not in (None, fold) and not (directory / TEST_LOGITS_FILE).is_file():
            open_folds.append(fold)  # another process's fold, not finished yet
            continue
        if not (directory / TEST_LOGITS_FILE).is_file():
            if (directory / runs.MODEL_FILE).is_file():
                model = load_model(directory / runs.MODEL_FILE)
            else:
                print(f"fold {fold + 1}/{folds}: training in {directory}", file=sys.stderr)
                keras.utils.set_random_seed(config.seed + fold)
                data = TrainingData(
                    images, labels, source, np.flatnonzero(assignment != fold), held_out
                )
                resume_fold = (directory / runs.CONFIG_FILE).is_file()
                model, _ = train_split(
                    config, strategy_name, strategy, data, directory, resume_fold, (), verbose
                )
            # One predict call for both sets: each call on a new model traces a new graph.
            logits = predict_logits(
                model, np.concatenate([images[held_out], test_images]), PREDICT_BATCH, tta
            )
            save_npy_atomic(directory / OOF_LOGITS_FILE, logits[: len(held_out)])
            save_npy_atomic(directory / TEST_LOGITS_FILE, logits[len(held_out) :])
        oof_logits[held_out] = np.load(directory / OOF_LOGITS_FILE)
        test_logits[fold] = np.load(directory / TEST_LOGITS_FILE)
        scores = logit_scores(oof_logits[held_out], labels[held_out])
        fold_metrics.append({"fold": fold, "rows": len(held_out), **scores})
        print(
            f"fold {fold + 1}/{folds}: out-of-fold accuracy {scores['accuracy']:.4%}, "
            f"log-loss {scores['log_loss']:.4f} on {len(held_out)} rows",
            file=sys.stderr,
        )

    fold_metrics.sort(key=lambda scores: scores["fold"])
    if open_folds:
        return {"mode": mode, "folds": fold_metrics, "open_folds": open_folds}

    from digit_keras.ensemble.base_runs import MEMBER_FILE, BaseRun, save_member

    fold_test_logits = np.stack([test_logits[fold] for fold in range(trained_folds)])
    member = BaseRun(run_dir.name, config.arch, labels, assignment, oof_logits, fold_test_logits)
    save_npy_atomic(run_dir / OOF_LOGITS_FILE, member.oof_logits)
    save_npy_atomic(run_dir / TEST_LOGITS_FILE, member.test_logits)
    save_member(member, run_dir / MEMBER_FILE)
    predicted = np.flatnonzero(~np.isnan(oof_logits[:, 0]))
    oof_scores = logit_scores(oof_logits[predicted], labels[predicted])
    metrics = {
        "arch": config.arch,
        "mode": mode,
        "tta": tta,
        "oof_rows": len(predicted),
        **{f"oof_{key}": value for key, value in oof_scores.items()},
        "folds": fold_metrics,
        "wall_time_s": round(time.perf_counter() - started, 1),
        **made_by,
    }
    runs.write_json(run_dir / runs.METRICS_FILE, metrics)
    return metrics


def _check_same_run(run_dir: Path, config: TrainConfig, settings: dict[str, Any]) -> None:
    """Refuse to add a fold to a run of another config: its folds would not be one model's."""
    saved = json.loads((run_dir / CV_FILE).read_text())
    differing = [key for key in settings if saved.get(key) != settings[key]]
    if load_config(run_dir / runs.CONFIG_FILE) != config:
        differing.append("config.toml")
    if differing:
        raise UserError(
            f"{run_dir} holds folds of another config (differs in {', '.join(differing)}); "
            "give every fold the same command, or another --out"
        )


def _check_same_split(run_dir: Path, labels: np.ndarray, assignment: np.ndarray) -> None:
    """Refuse to resume when the training data no longer gives the run's saved folds."""
    saved_labels = np.load(run_dir / LABELS_FILE)
    saved_folds = np.load(run_dir / FOLDS_FILE)
    if not (np.array_equal(saved_labels, labels) and np.array_equal(saved_folds, assignment)):
        raise UserError(
            f"{run_dir}: the training data differs from the data this run started on; "
            "resume with the same --data"
        )


def seed_statistics(run_dirs: list[Path]) -> dict[str, Any]:
    """Mean and sample standard deviation of finished cv runs' out-of-fold scores.

    The runs must be one recipe on one split that differ in `seed` only, else the spread would
    mix recipes; that is refused.
    """
    if len(run_dirs) < 2:
        raise UserError("seed statistics need at least two runs")
    configs = [load_config(run_dir / runs.CONFIG_FILE) for run_dir in run_dirs]
    recipe = dataclasses.replace(configs[0], seed=0)
    for run_dir, config in zip(run_dirs[1:], configs[1:], strict=True):
        if dataclasses.replace(config, seed=0) != recipe:
            raise UserError(f"{run_dir} and {run_dirs[0]} differ in more than their seed")
    if len({config.seed for config in configs}) < len(configs):
        raise UserError("two of the runs have the same seed")
    metrics = [json.loads((run_dir / runs.METRICS_FILE).read_text()) for run_dir in run_dirs]
    summary: dict[str, Any] = {
        "runs": [str(run_dir) for run_dir in run_dirs],
        "seeds": [config.seed for config in configs],
    }
    for key in ("oof_accuracy", "oof_log_loss"):
        values = np.array([m[key] for m in metrics])
        summary[key] = {"mean": values.mean(), "std": values.std(ddof=1), "values": values.tolist()}
    return summary


def format_seed_statistics(summary: dict[str, Any]) -> str:
    accuracy_, loss = summary["oof_accuracy"], summary["oof_log_loss"]
    return (
        f"over seeds {', '.join(map(str, summary['seeds']))}: out-of-fold accuracy "
        f"{accuracy_['mean']:.4%} +- {accuracy_['std']:.4%}, "
        f"log-loss {loss['mean']:.4f} +- {loss['std']:.4f} (mean +- sample std)"
    )
