"""K-fold cross-validation, one fold of it, or a bag: the work behind `digit-keras cv`.

A cv run directory (layout.py lists its files) holds the resolved config and cv.json, the folds
and labels, a fit-style folder per model, the out-of-fold and test-set logits, the run as a
member file and, written last, metrics.json.

Holdout mode trains fold 0 only: a 1/K holdout that lines up with K-fold runs of the same seed.
Bag mode trains N members on fold 0's holdout, each on its own random share of the other rows
(`Scheme`); the run's out-of-fold logits on fold 0 are the log of the members' mean probability.
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

from digit_keras import layout
from digit_keras.atomic import save_npy_atomic, write_text_atomic
from digit_keras.config import TrainConfig, load_config, to_toml
from digit_keras.data import load_test, load_train
from digit_keras.data.split import bag_rows, stratified_folds
from digit_keras.errors import UserError
from digit_keras.keras_inference import load_model, predict_logits
from digit_keras.members import BaseRun, save_member
from digit_keras.scoring import logit_scores, mean_log_probabilities
from digit_keras.training import runs
from digit_keras.training.fit import train_run
from digit_keras.training.session import TrainingSession, start_training, training_data

PREDICT_BATCH = 1024
# What a cv run has to show for itself before a failure should leave it on disk.
PROGRESS = tuple(
    f"{unit}-*/{done}"
    for unit in layout.MODEL_UNITS
    for done in (layout.BACKUP_DIR, layout.MODEL_FILE)
)


@dataclass(frozen=True)
class Scheme:
    """Which models a cv run trains, and on which rows.

    kfold: one model per fold, held out of its fold. holdout: fold 0's model only. bag: `bag`
    members, each trained on its own stratified random `bag_fraction` of the rows outside fold 0
    (data/split.py says why without replacement) and all held out of fold 0, so the bag is scored
    on rows none of its members saw and lines up with the fold-0 rows of every other run.
    """

    folds: int = 5
    holdout: bool = False
    bag: int = 0
    bag_fraction: float = 0.9

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise UserError(f"--folds must be at least 2, got {self.folds}")
        if self.bag < 0:
            raise UserError(f"--bag must be a number of members (1 or more), got {self.bag}")
        if self.bag and self.holdout:
            raise UserError("--bag already holds out fold 0 only; drop --holdout")
        if self.bag and not 0 < self.bag_fraction < 1:
            raise UserError(f"--bag-fraction must be between 0 and 1, got {self.bag_fraction:g}")

    @property
    def mode(self) -> str:
        return "bag" if self.bag else "holdout" if self.holdout else "kfold"

    @property
    def models(self) -> int:
        return self.bag or (1 if self.holdout else self.folds)

    @property
    def unit(self) -> str:
        """What one model is called in metrics.json ("fold" or "member")."""
        return layout.model_unit(self.bag)

    @property
    def units(self) -> str:
        return f"{self.unit}s"

    def model_dir(self, run_dir: Path, index: int) -> Path:
        return layout.model_dir(run_dir, self.unit, index)

    def rows(
        self, index: int, labels: np.ndarray, assignment: np.ndarray, split_seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, held-out rows) of model `index`."""
        if not self.bag:
            return np.flatnonzero(assignment != index), np.flatnonzero(assignment == index)
        pool = np.flatnonzero(assignment != 0)
        return bag_rows(labels, pool, self.bag_fraction, split_seed, index), np.flatnonzero(
            assignment == 0
        )

    def settings(self) -> dict[str, Any]:
        """The scheme as cv.json records it."""
        bag = {"bag": self.bag, "bag_fraction": self.bag_fraction} if self.bag else {}
        return {"mode": self.mode, "folds": self.folds, "trained_folds": self.models, **bag}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Scheme:
        return cls(
            settings["folds"],
            settings["mode"] == "holdout",
            settings.get("bag", 0),
            settings.get("bag_fraction", cls.bag_fraction),
        )


@dataclass
class CvResult:
    run_dir: Path
    metrics: dict[str, Any]  # metrics.json; only `mode`, `folds`, `open_folds` while folds are open


def start_cv(
    config: TrainConfig,
    scheme: Scheme = Scheme(),
    data_dir: str | Path | None = None,
    tta: bool = False,
    out: str | Path | None = None,
    only_fold: int | None = None,
) -> CvResult:
    """`digit-keras cv`: a new cv run in `out` (default saved_models/<mode>-<arch>-<time>, mode
    cv, holdout or bag); it leaves nothing behind if it fails before a model makes progress.

    With `only_fold`, `out` is required: the directory every fold's process shares.
    """
    if only_fold is None:
        prefix = {"kfold": "cv"}.get(scheme.mode, scheme.mode)
        run_dir = runs.new_run_dir(f"{prefix}-{config.arch}", out)
    elif out is None:
        raise UserError("--fold needs --out DIR: the run directory every fold shares")
    else:  # shared with the processes training the other folds; made once the data is read
        run_dir = Path(out)
    runs.announce(run_dir)
    with runs.discarded_if_unstarted(run_dir, PROGRESS, enabled=only_fold is None):
        metrics = cross_validate(config, run_dir, scheme, data_dir, tta, only_fold=only_fold)
    return CvResult(run_dir, metrics)


def resume_cv(path: str | Path, data_dir: str | Path | None = None) -> CvResult:
    """`digit-keras cv --resume`: continue an unfinished cv run at its first open model."""
    run_dir, config, settings = resumable_cv_dir(path)
    runs.announce(run_dir)
    scheme, tta = Scheme.from_settings(settings), settings.get("tta", False)
    metrics = cross_validate(config, run_dir, scheme, data_dir, tta, resuming=True)
    return CvResult(run_dir, metrics)


def cv_seeds(
    config: TrainConfig,
    seeds: list[int],
    scheme: Scheme = Scheme(),
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
            run = start_cv(seeded, scheme, data_dir, tta, out=root / f"seed-{seed}")
            run_dirs.append(run.run_dir)
    summary = seed_statistics(run_dirs)
    runs.write_json(root / layout.SEEDS_FILE, summary)
    return summary


def resumable_cv_dir(path: str | Path) -> tuple[Path, TrainConfig, dict[str, Any]]:
    """Check that `path` holds an unfinished cv run; return it with its config and cv.json."""
    run_dir = runs.resumable_run_dir(path, layout.CV_FILE, layout.METRICS_FILE, "cv run")
    settings = json.loads((run_dir / layout.CV_FILE).read_text())
    return run_dir, load_config(run_dir / layout.CONFIG_FILE), settings


def cross_validate(
    config: TrainConfig,
    run_dir: Path,
    scheme: Scheme,
    data_dir: str | Path | None = None,
    tta: bool = False,
    resuming: bool = False,
    verbose: str | int = "auto",
    only_fold: int | None = None,
) -> dict[str, Any]:
    """Train the scheme's models (folds or bag members); return the metrics it saves.

    With `tta`, the saved out-of-fold and test logits are test-time augmented (keras_inference.py).

    With `only_fold`, train that model alone into `run_dir`, which other processes (other
    machines, on a shared filesystem) may fill with the others of the same config; whichever
    process finds every model finished writes the merged results. Until then the returned dict
    has `open_folds` and no metrics are written.

    A resumed run skips models whose logits exist, and continues a half-trained one from its
    backup. Each model is its last epoch's: the held-out rows never select anything.
    """
    started = time.perf_counter()
    made_by = runs.provenance()  # now: the checkout may change while the models train
    config, strategy_name, strategy = start_training(config)
    import keras

    images, labels, source = load_train(config.data.dataset, data_dir, config.data.limit)
    test_images, test_source = load_test(config.data.dataset, data_dir)
    assignment = stratified_folds(labels, scheme.folds, config.data.split_seed)
    if only_fold is not None and not 0 <= only_fold < scheme.models:
        shape = {"kfold": f"{scheme.folds}-fold", "bag": f"{scheme.bag}-member"}
        raise UserError(
            f"--fold must be 0 to {scheme.models - 1} in a "
            f"{shape.get(scheme.mode, scheme.mode)} run"
        )
    settings = {
        **scheme.settings(),
        "seed": config.seed,
        "split_seed": config.data.split_seed,
        "tta": tta,
        "arch": config.arch,
        "rows": len(labels),
        "data": source,
        "test_rows": len(test_images),
        "test_data": test_source,
    }
    joining = only_fold is not None and (run_dir / layout.CV_FILE).is_file()
    if resuming or joining:
        _check_same_split(run_dir, labels, assignment)
    if joining:
        _check_same_run(run_dir, config, settings)
    elif not resuming:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / layout.CONFIG_FILE, to_toml(config))
        save_npy_atomic(run_dir / layout.FOLDS_FILE, assignment)
        save_npy_atomic(run_dir / layout.LABELS_FILE, labels)
        runs.write_json(run_dir / layout.CV_FILE, settings)
        if only_fold is not None:  # two processes may have started the run at once
            _check_same_run(run_dir, config, settings)

    held_out_logits = {}
    test_logits = {}
    model_metrics = []
    open_models = []
    # A process training one model looks at the others only after its own is saved: of two
    # processes that finish together, the one that looks last then sees both and merges.
    order = sorted(range(scheme.models), key=lambda index: index != only_fold)
    for index in order:
        directory = scheme.model_dir(run_dir, index)
        name = f"{scheme.unit} {index + 1}/{scheme.models}"
        train_rows, held_out = scheme.rows(index, labels, assignment, config.data.split_seed)
        if only_fold not in (None, index) and not (directory / layout.TEST_LOGITS_FILE).is_file():
            open_models.append(index)  # another process's model, not finished yet
            continue
        if not (directory / layout.TEST_LOGITS_FILE).is_file():
            if (directory / layout.MODEL_FILE).is_file():
                model = load_model(directory / layout.MODEL_FILE)
            else:
                print(f"{name}: training in {directory}", file=sys.stderr)
                keras.utils.set_random_seed(config.seed + index)
                directory.mkdir(parents=True, exist_ok=True)
                data = training_data(
                    config, images, labels, source, train_rows, held_out, test_images
                )
                # train.csv's rows it learns, and the test images with their pseudo-labels
                rows_of = {layout.TRAIN_ROWS_FILE: data.train_idx[data.train_idx < len(labels)]}
                if config.data.pseudo_labels:
                    rows_of[layout.PSEUDO_LABELS_FILE] = data.pseudo_labels
                resume_model = (directory / layout.CONFIG_FILE).is_file()
                if resume_model:
                    _check_same_rows(directory, rows_of)
                for file, rows in rows_of.items():
                    save_npy_atomic(directory / file, rows.astype(np.int32))
                session = TrainingSession(config, strategy_name, strategy, data)
                model, _ = train_run(session, directory, resume_model, verbose=verbose)
            # One predict call for both sets: each call on a new model traces a new graph.
            logits = predict_logits(
                model, np.concatenate([images[held_out], test_images]), PREDICT_BATCH, tta
            )
            save_npy_atomic(directory / layout.OOF_LOGITS_FILE, logits[: len(held_out)])
            alone = np.full((len(labels), 10), np.nan, dtype=np.float32)
            alone[held_out] = logits[: len(held_out)]
            # The model alone as a member file: a bag's finished members can be kept and
            # combined (`ensemble --method mean`) before, or without, the whole bag.
            save_member(
                BaseRun(
                    f"{run_dir.name}-{directory.name}",
                    config.arch,
                    labels,
                    assignment,
                    alone,
                    logits[None, len(held_out) :],
                ),
                directory / layout.MEMBER_FILE,
            )
            save_npy_atomic(directory / layout.TEST_LOGITS_FILE, logits[len(held_out) :])
        held_out_logits[index] = (held_out, np.load(directory / layout.OOF_LOGITS_FILE))
        test_logits[index] = np.load(directory / layout.TEST_LOGITS_FILE)
        scores = logit_scores(held_out_logits[index][1], labels[held_out])
        model_metrics.append({scheme.unit: index, "rows": len(held_out), **scores})
        print(
            f"{name}: out-of-fold accuracy {scores['accuracy']:.4%}, "
            f"log-loss {scores['log_loss']:.4f} on {len(held_out)} rows",
            file=sys.stderr,
        )

    model_metrics.sort(key=lambda scores: scores[scheme.unit])
    if open_models:
        return {"mode": scheme.mode, scheme.units: model_metrics, "open_folds": open_models}

    oof_logits = np.full((len(labels), 10), np.nan, dtype=np.float32)
    for held_out, logits in held_out_logits.values():
        oof_logits[held_out] = logits
    if scheme.bag:  # every member holds out the same rows: the bag predicts their mean
        held_out = held_out_logits[0][0]
        members = [held_out_logits[index][1] for index in range(scheme.models)]
        oof_logits[held_out] = mean_log_probabilities(np.stack(members))
    member = BaseRun(
        run_dir.name,
        config.arch,
        labels,
        assignment,
        oof_logits,
        np.stack([test_logits[index] for index in range(scheme.models)]),
    )
    save_npy_atomic(run_dir / layout.OOF_LOGITS_FILE, member.oof_logits)
    save_npy_atomic(run_dir / layout.TEST_LOGITS_FILE, member.test_logits)
    save_member(member, run_dir / layout.MEMBER_FILE)
    predicted = np.flatnonzero(~np.isnan(oof_logits[:, 0]))
    oof_scores = logit_scores(oof_logits[predicted], labels[predicted])
    metrics = {
        "arch": config.arch,
        "mode": scheme.mode,
        "tta": tta,
        "oof_rows": len(predicted),
        **{f"oof_{key}": value for key, value in oof_scores.items()},
        scheme.units: model_metrics,
        **(bag_growth(members, labels[held_out]) if scheme.bag else {}),
        "wall_time_s": round(time.perf_counter() - started, 1),
        **made_by,
    }
    runs.write_json(run_dir / layout.METRICS_FILE, metrics)
    return metrics


def bag_growth(members: list[np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """How a bag's accuracy grows with its size: the mean of the first n members for each n,
    and the members' own mean and sample standard deviation."""
    alone = [logit_scores(logits, labels)["accuracy"] for logits in members]
    return {
        "member_accuracy_mean": float(np.mean(alone)),
        "member_accuracy_std": float(np.std(alone, ddof=1)) if len(alone) > 1 else 0.0,
        "bag_accuracy_by_size": [
            logit_scores(mean_log_probabilities(np.stack(members[:size])), labels)["accuracy"]
            for size in range(1, len(members) + 1)
        ],
    }


def _check_same_run(run_dir: Path, config: TrainConfig, settings: dict[str, Any]) -> None:
    """Refuse to add a fold to a run of another config: its folds would not be one model's."""
    saved = json.loads((run_dir / layout.CV_FILE).read_text())
    differing = [key for key in settings if saved.get(key) != settings[key]]
    if load_config(run_dir / layout.CONFIG_FILE) != config:
        differing.append("config.toml")
    if differing:
        raise UserError(
            f"{run_dir} holds folds of another config (differs in {', '.join(differing)}); "
            "give every fold the same command, or another --out"
        )


def _check_same_split(run_dir: Path, labels: np.ndarray, assignment: np.ndarray) -> None:
    """Refuse to resume when the training data no longer gives the run's saved folds."""
    saved_labels = np.load(run_dir / layout.LABELS_FILE)
    saved_folds = np.load(run_dir / layout.FOLDS_FILE)
    if not (np.array_equal(saved_labels, labels) and np.array_equal(saved_folds, assignment)):
        raise UserError(
            f"{run_dir}: the training data differs from the data this run started on; "
            "resume with the same --data"
        )


def _check_same_rows(model_dir: Path, rows_of: dict[str, np.ndarray]) -> None:
    """Refuse to resume a model on other rows than those it started on (each file of `rows_of`
    that was saved), so a change in how rows are drawn, or in the teacher of its pseudo-labels,
    can never mix two trainings in one model."""
    for file, rows in rows_of.items():
        saved = model_dir / file
        if saved.is_file() and not np.array_equal(np.load(saved), rows):
            raise UserError(
                f"{model_dir}: this model started on other training rows than this version "
                f"draws ({saved.name}); resume it with the version and teacher that started it"
            )


def seed_statistics(run_dirs: list[Path]) -> dict[str, Any]:
    """Mean and sample standard deviation of finished cv runs' out-of-fold scores.

    The runs must be one recipe on one split that differ in `seed` only, else the spread would
    mix recipes; that is refused.
    """
    if len(run_dirs) < 2:
        raise UserError("seed statistics need at least two runs")
    configs = [load_config(run_dir / layout.CONFIG_FILE) for run_dir in run_dirs]
    recipe = dataclasses.replace(configs[0], seed=0)
    for run_dir, config in zip(run_dirs[1:], configs[1:], strict=True):
        if dataclasses.replace(config, seed=0) != recipe:
            raise UserError(f"{run_dir} and {run_dirs[0]} differ in more than their seed")
    if len({config.seed for config in configs}) < len(configs):
        raise UserError("two of the runs have the same seed")
    metrics = [json.loads((run_dir / layout.METRICS_FILE).read_text()) for run_dir in run_dirs]
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
