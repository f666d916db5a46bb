"""`digit-keras audit`: rows of train.csv whose label is likely wrong, found from out-of-fold
probabilities with cleanlab's confident learning (`cleanlab.filter.find_label_issues`).

Out-of-fold probabilities come from models that never trained on the row they judge, so a
confident disagreement with the given label says something about the label, not about a model
that memorised it. The members' mean is a better judge than any one of them. The list is ranked
by cleanlab's self-confidence score (the probability the models give the given label), worst
first, and written as CSV: `row` is the 0-based row of train.csv (the header not counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from digit_keras.atomic import write_text_atomic
from digit_keras.data import load_train
from digit_keras.ensemble.base_runs import load_base_runs
from digit_keras.ensemble.combine import mean_probabilities
from digit_keras.errors import UserError
from digit_keras.members import oof_probabilities

AUDIT_FILE = Path("label-audit.csv")
COLUMNS = ["row", "label", "suggested", "label_probability", "suggested_probability"]


def suspect_labels(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """The rows (positions in `labels`) whose label confident learning finds likely wrong,
    worst first, with the label the probabilities suggest instead."""
    from cleanlab.filter import find_label_issues

    ranked = find_label_issues(
        labels, probabilities, return_indices_ranked_by="self_confidence", n_jobs=1
    )
    suggested = probabilities[ranked].argmax(axis=1)
    return pd.DataFrame(
        {
            "row": ranked,
            "label": labels[ranked],
            "suggested": suggested,
            "label_probability": probabilities[ranked, labels[ranked]],
            "suggested_probability": probabilities[ranked, suggested],
        },
        columns=COLUMNS,
    )


@dataclass
class AuditResult:
    suspects: pd.DataFrame  # COLUMNS, worst first
    rows: int  # the rows judged: those every member predicted out of fold
    members: int
    path: Path


def audit(
    members: list[str],
    data_dir: str | Path | None = None,
    dataset: str | None = None,
    out: str | Path | None = None,
) -> AuditResult:
    """Audit the labels of the rows every member (cv run or member file) predicted out of fold,
    on the members' mean probabilities; write the list to `out` (default label-audit.csv)."""
    labels = cache(lambda: load_train(dataset or "kaggle", data_dir)[1])
    runs, rows = load_base_runs(members, labels, at_least=1)
    if not len(rows):
        raise UserError("the members share no out-of-fold rows; train them with one --split-seed")
    probabilities = mean_probabilities(oof_probabilities(runs, rows))
    suspects = suspect_labels(runs[0].labels[rows], probabilities)
    suspects["row"] = rows[suspects["row"]]
    path = Path(out) if out else AUDIT_FILE
    write_text_atomic(path, suspects.to_csv(index=False, float_format="%.4f"))
    return AuditResult(suspects, len(rows), len(runs), path)


def read_audit(path: str | Path) -> np.ndarray:
    """The rows an audit file lists (its `row` column), for training without them."""
    try:
        rows = pd.read_csv(path)["row"].to_numpy()
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as err:
        raise UserError(f"{path}: not a label audit (a CSV with a `row` column): {err}") from None
    if not np.issubdtype(rows.dtype, np.integer) or (rows < 0).any():
        raise UserError(f"{path}: its `row` column must hold row numbers (0 or more)")
    return rows
