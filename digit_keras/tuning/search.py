"""Run a keras-tuner search: the work behind `digit-keras tune`.

Trials build through the model registry and train through the same input pipeline, strategy
and optimizer code as `fit`, and are scored as `fit` scores a run: holdout accuracy of the last
epoch's network with its BatchNorm statistics recomputed (never a best epoch), so the search
picks what `fit --config best.toml` delivers. The run directory
holds `config.toml` (the base config), `space.toml`, `tune.json` (tuner settings), the keras-tuner
project in `tuner/`, `tensorboard/<trial>/`, then `trials.csv`, `trials.txt` and `best.toml`.

`start_search` and `resume_search` are the command (run directory, resume, clean-up);
`run_search` searches in a directory it is given.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from digit_keras import runtime

runtime.import_keras()  # before keras_tuner imports Keras (and TF on it) with start-up noise
import keras  # noqa: E402
import keras_tuner  # noqa: E402

from digit_keras import layout  # noqa: E402
from digit_keras.atomic import write_text_atomic  # noqa: E402
from digit_keras.config import TrainConfig, apply_overrides, load_config, to_toml  # noqa: E402
from digit_keras.errors import UserError  # noqa: E402
from digit_keras.training import runs  # noqa: E402
from digit_keras.training.fit import load_holdout_split  # noqa: E402
from digit_keras.training.session import TrainingData, TrainingSession, start_training  # noqa: E402
from digit_keras.tuning.space import SearchSpace, load_space  # noqa: E402

OBJECTIVE = "val_accuracy"


@dataclass
class SearchSettings:
    tuner: str  # random | hyperband | bayesian
    epochs: int  # per trial; Hyperband's max_epochs
    max_trials: int  # random and bayesian only: Hyperband sizes its own brackets
    patience: int  # early stopping of random and bayesian trials; 0 = off


@dataclass
class SearchResult:
    rows: list[dict[str, Any]] | None  # the trial table; None on a worker (the chief writes it)
    trial_runs: int  # trainings this process ran (Hyperband continues some trials in new runs)


class DigitHyperModel(keras_tuner.HyperModel):
    """One trial: the base config with the trial's values, one training session as `fit` runs."""

    def __init__(
        self,
        base: TrainConfig,
        space: SearchSpace,
        trial_epochs: int,
        data: TrainingData,
        strategy_name: str,
        strategy,
    ):
        super().__init__(name=f"digit-keras-{base.arch}")
        self.base, self.space, self.trial_epochs, self.data = base, space, trial_epochs, data
        self.strategy_name, self.strategy = strategy_name, strategy
        self.trial_runs = 0

    def session(self, hp) -> TrainingSession:
        overrides = {"epochs": self.trial_epochs, **self.space.sample(hp)}
        config = apply_overrides(self.base, overrides, source=str(self.space.path))
        return TrainingSession(config, self.strategy_name, self.strategy, self.data)

    def build(self, hp) -> keras.Model:
        session = self.session(hp)
        runtime.configure(session.config.seed, session.config.precision)
        trainer, self.network = session.build()  # keras-tuner enters only tf.distribute scopes
        return trainer

    def fit(self, hp, model, *args, callbacks=(), epochs=None, initial_epoch=0, **kwargs):
        """Train on the tuning split; report the objective with the epochs and seconds it took."""
        session = self.session(hp)
        started = time.perf_counter()
        epochs = range(initial_epoch, epochs or session.config.epochs)
        history = session.train(model, epochs, callbacks, kwargs.get("verbose", "auto"))
        self.trial_runs += 1
        _, logits = session.finish(self.network)
        scores = session.score(logits)
        return {
            OBJECTIVE: scores["accuracy"],
            "val_loss": scores["log_loss"],
            "epochs": len(history[OBJECTIVE]),
            "seconds": round(time.perf_counter() - started, 1),
        }


def start_search(
    base: TrainConfig,
    space: SearchSpace,
    settings: SearchSettings,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> tuple[Path, SearchResult]:
    """`digit-keras tune`: a new search in `out` (default saved_models/tune-<arch>-<time>); it
    leaves nothing behind if it fails before a trial starts.

    A distributed search (KERASTUNER_TUNER_ID set) needs `out`: chief and workers share it.
    """
    distributed = bool(os.environ.get("KERASTUNER_TUNER_ID"))
    if not distributed:
        run_dir = runs.new_run_dir(f"tune-{base.arch}", out)
    elif out is None:
        raise UserError("a distributed search needs the same --out DIR on every process")
    else:
        run_dir = Path(out)
        run_dir.mkdir(parents=True, exist_ok=True)
    runs.announce(run_dir)
    with runs.discarded_if_unstarted(
        run_dir, (f"{layout.TUNER_DIR}/trial_*",), enabled=not distributed
    ):
        return run_dir, run_search(base, space, settings, run_dir, data_dir)


def resume_search(
    path: str | Path, arch: str = "basic", data_dir: str | Path | None = None
) -> tuple[Path, SearchResult]:
    """`digit-keras tune --resume`: continue an unfinished search with its saved config, space
    and settings; `path` "latest" is the newest unfinished search of `arch`."""
    if str(path) == "latest":
        run_dir = layout.latest_unfinished(
            f"tune-{arch}", layout.TUNE_FILE, layout.BEST_CONFIG, "search"
        )
    else:
        run_dir = runs.resumable_run_dir(path, layout.TUNE_FILE, layout.BEST_CONFIG, "search")
    runs.announce(run_dir)
    base = load_config(run_dir / layout.CONFIG_FILE)
    space = load_space(run_dir / layout.SPACE_FILE, base)
    settings = load_settings(run_dir)
    return run_dir, run_search(base, space, settings, run_dir, data_dir, resuming=True)


def run_search(
    base: TrainConfig,
    space: SearchSpace,
    settings: SearchSettings,
    run_dir: Path,
    data_dir: str | Path | None = None,
    resuming: bool = False,
    extra_callbacks: Sequence = (),
    verbose: str | int = "auto",
) -> SearchResult:
    """Search, then write the trial table and best.toml.

    A keras-tuner worker (KERASTUNER_TUNER_ID not 'chief' with an oracle address set) only runs
    the trials the chief hands out, and returns no rows: the chief writes the results.
    """
    base, strategy_name, strategy = start_training(base)
    data = load_holdout_split(base, data_dir)
    if not len(data.holdout_idx):
        raise UserError("tuning needs a holdout to score trials: set data.val_fraction above 0")
    hypermodel = DigitHyperModel(base, space, settings.epochs, data, strategy_name, strategy)
    worker = is_worker()
    if not resuming and not worker:
        write_text_atomic(run_dir / layout.CONFIG_FILE, to_toml(base))
        write_text_atomic(run_dir / layout.SPACE_FILE, space.path.read_text(encoding="utf-8"))
        runs.write_json(run_dir / layout.TUNE_FILE, asdict(settings))

    tuner = _make_tuner(hypermodel, settings, run_dir, base.seed, strategy)
    callbacks = []  # keras-tuner gives each trial its own TensorBoard folder on TensorFlow only
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / layout.TENSORBOARD_DIR)))
    if settings.tuner != "hyperband" and settings.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(OBJECTIVE, patience=settings.patience, mode="max")
        )
    tuner.search(callbacks=[*callbacks, *extra_callbacks], verbose=verbose)
    if worker:
        return SearchResult(None, hypermodel.trial_runs)

    rows = trial_rows(tuner, space)
    completed = [row for row in rows if row["status"] == "COMPLETED"]
    if not completed:
        raise UserError(f"{run_dir}: no trial completed; see {layout.TUNER_DIR}/trial_*/trial.json")
    write_text_atomic(run_dir / layout.TRIALS_CSV, _as_csv(rows))
    write_text_atomic(run_dir / layout.TRIALS_TABLE, format_trials(rows))
    best = tuner.oracle.get_best_trials(1)[0]
    overrides = {"epochs": settings.epochs, **space.overrides(best.hyperparameters.values)}
    best_config = apply_overrides(base, overrides, source="best trial")
    header = (
        f"# Best of {len(completed)} trials ({settings.tuner} search, {run_dir}): trial "
        f"{best.trial_id}, holdout accuracy {best.score:.4%} after {settings.epochs} epochs, "
        "scored as `fit` scores a run.\n"
        "# The epochs are the trial's, so `fit --config` repeats it; the score picked this\n"
        "# config, so it is optimistic. Longer runs: `fit --config this --epochs N`.\n"
    )
    write_text_atomic(run_dir / layout.BEST_CONFIG, header + to_toml(best_config))
    return SearchResult(rows, hypermodel.trial_runs)


def is_worker() -> bool:
    """Whether this process is a keras-tuner worker that takes trials from a chief oracle.

    keras-tuner's documented contract: KERASTUNER_ORACLE_IP names the chief's address, and
    KERASTUNER_TUNER_ID is "chief" on the chief and any other name on each worker.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return False
    return "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def _make_tuner(hypermodel, settings, run_dir, seed, strategy):
    """A tuner on `run_dir`; a project already there (an interrupted search) is reloaded."""
    common = {
        "objective": keras_tuner.Objective(OBJECTIVE, "max"),
        "directory": str(run_dir),
        "project_name": layout.TUNER_DIR,
        "overwrite": False,
        "seed": seed,
        # keras-tuner knows tf.distribute strategies only (its multi-worker reporting reads them)
        "distribution_strategy": strategy if keras.backend.backend() == "tensorflow" else None,
    }
    if settings.tuner == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=settings.epochs, factor=3, **common)
    tuner_class = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
    }[settings.tuner]
    return tuner_class(hypermodel, max_trials=settings.max_trials, **common)


def trial_rows(tuner, space: SearchSpace) -> list[dict[str, Any]]:
    """One row per trial in the order they were created: its values, score, epochs and time."""
    rows = []
    for trial in tuner.oracle.trials.values():
        values = trial.hyperparameters.values
        metrics = trial.metrics

        def last(name: str, metrics=metrics) -> Any:
            return metrics.get_last_value(name) if metrics.exists(name) else None

        rows.append(
            {
                "trial": trial.trial_id,
                "status": trial.status,
                OBJECTIVE: trial.score,
                "epochs": None if last("epochs") is None else int(last("epochs")),
                "seconds": last("seconds"),
                **{h.key: values.get(h.key) for h in space.hyperparameters},
            }
        )
    return rows


def _as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_trials(rows: list[dict[str, Any]]) -> str:
    """The trial table as aligned plain text, best score first."""
    ordered = sorted(rows, key=lambda row: -(row[OBJECTIVE] or -1.0))
    header = list(rows[0])
    cells = [header, *([_cell(row[key]) for key in header] for row in ordered)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) + "\n"
                   for line in cells)  # fmt: skip


def load_settings(run_dir: Path) -> SearchSettings:
    return SearchSettings(**json.loads((run_dir / layout.TUNE_FILE).read_text()))
