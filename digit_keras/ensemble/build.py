"""`digit-keras ensemble`: score every method on the members' out-of-fold rows and write the
chosen one's submission, with the table beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from digit_keras.atomic import write_text_atomic
from digit_keras.data import load_train
from digit_keras.data.submission import SUBMISSIONS_DIR, write_submission
from digit_keras.ensemble.base_runs import load_base_runs
from digit_keras.ensemble.evaluate import evaluate, format_table
from digit_keras.errors import UserError


@dataclass
class EnsembleResult:
    table: str  # the printed table: every member and every method
    path: Path  # the submission of `method`
    method: str
    rows: int  # test rows in the submission
    methods: int  # rows of the table


def build_ensemble(
    members: list[str],
    method: str = "super",
    meta: str = "convex",
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    dataset: str | None = None,
    seed: int = 0,
    every_row: str | Path | None = None,
    left_out: np.ndarray | None = None,
) -> EnsembleResult:
    """Combine cv runs or member files; write `method`'s submission (default
    submissions/ensemble_<method>.csv) with its table as .txt and .json, and with `every_row`
    a submission per member and per method into that folder. With `left_out` rows of train.csv
    (a label audit's list) the table also scores each on the other out-of-fold rows."""
    labels = cache(lambda: load_train(dataset or "kaggle", data_dir)[1])
    runs, rows = load_base_runs(members, labels)
    if not len(rows):
        raise UserError("the runs share no out-of-fold rows; train them with the same --split-seed")
    if left_out is not None:
        left_out = np.intersect1d(rows, left_out)  # the out-of-fold rows the list names
    scored = evaluate(runs, rows, seed, left_out)
    chosen = f"super:{meta}" if method == "super" else method
    table = format_table(runs, rows, scored, left_out)
    path = Path(out) if out else SUBMISSIONS_DIR / f"ensemble_{chosen.replace(':', '-')}.csv"
    report = {
        "runs": [str(member) for member in members],
        "oof_rows": len(rows),
        "submission_method": chosen,
        "scores": [
            {"name": s.name, "accuracy": s.accuracy, "log_loss": s.log_loss, "weights": s.weights}
            for s in scored
        ],
    }
    if left_out is not None:
        report["left_out_rows"] = left_out.tolist()
        for entry, item in zip(report["scores"], scored, strict=True):
            entry["accuracy_without_left_out"] = item.accuracy_without_left_out
    write_text_atomic(path.with_suffix(".txt"), table)
    write_text_atomic(path.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    test_labels = next(s.test_labels for s in scored if s.name == chosen)
    write_submission(test_labels, path)
    if every_row:
        for item in scored:
            name = item.name.split(" (")[0].replace(":", "-")  # "run (arch)" -> "run"
            write_submission(item.test_labels, Path(every_row) / f"{name}.csv")
    return EnsembleResult(table, path, chosen, len(test_labels), len(scored))
