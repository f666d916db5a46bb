"""Score every ensemble method on the runs' out-of-fold rows and predict the test set with each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digit_keras.ensemble.base_runs import BaseRun
from digit_keras.ensemble.combine import majority_vote, mean_probabilities
from digit_keras.ensemble.super_learner import (
    META_FOLDS,
    META_LEARNERS,
    cross_validated_probabilities,
    make_meta_learner,
    model_weights,
)
from digit_keras.errors import UserError
from digit_keras.scoring import log_loss


@dataclass
class Scored:
    """One base model or ensemble method: its out-of-fold scores and its test-set labels."""

    name: str
    accuracy: float
    log_loss: float | None  # None for the vote, which gives labels, not probabilities
    weights: list[float]  # per base model; empty for a base model itself
    test_labels: np.ndarray
    accuracy_without_left_out: float | None = None  # on the out-of-fold rows not left out


def _stack_features(log_probabilities: np.ndarray) -> np.ndarray:
    """(models, N, 10) -> (N, models * 10): each row holds every model's log-probabilities."""
    return log_probabilities.transpose(1, 0, 2).reshape(log_probabilities.shape[1], -1)


def evaluate(
    members: list[BaseRun], rows: np.ndarray, seed: int = 0, left_out: np.ndarray | None = None
) -> list[Scored]:
    """Base models first, then mean, vote and one Super Learner per meta-learner.

    Mean and vote fit nothing, so their scores on the out-of-fold rows are honest as they are;
    each Super Learner is scored by `META_FOLDS`-fold cross-validation over those rows and then
    refitted on all of them to predict the test set. With `left_out` rows of train.csv (a label
    audit's list: rows whose label is likely wrong count against every model) each is also
    scored on the other out-of-fold rows.
    """
    labels = members[0].labels[rows]
    kept = None if left_out is None else ~np.isin(rows, left_out)
    if kept is not None and not kept.any():
        raise UserError("the list of rows left out names every out-of-fold row: nothing to score")
    oof_log_probs = np.stack([run.oof_log_probabilities(rows) for run in members])
    test_log_probs = np.stack([run.test_log_probabilities() for run in members])
    oof_probs, test_probs = np.exp(oof_log_probs), np.exp(test_log_probs)
    equal = [1.0 / len(members)] * len(members)

    def score(
        name: str,
        oof: np.ndarray,
        test_labels: np.ndarray,
        weights: list[float],
        probabilities: np.ndarray | None = None,
    ) -> Scored:
        """`oof`: the out-of-fold labels; `probabilities`: theirs, where there are some."""
        loss = None if probabilities is None else log_loss(probabilities, labels)
        without = None if kept is None else float(np.mean(oof[kept] == labels[kept]))
        return Scored(name, float(np.mean(oof == labels)), loss, weights, test_labels, without)

    scored = [
        score(f"{run.name} ({run.arch})", oof_probs[i].argmax(axis=1),
              test_probs[i].argmax(axis=1), [], oof_probs[i])
        for i, run in enumerate(members)
    ]  # fmt: skip
    mean = mean_probabilities(oof_probs)
    test_mean = mean_probabilities(test_probs)
    scored.append(score("mean", mean.argmax(axis=1), test_mean.argmax(axis=1), equal, mean))
    scored.append(score("vote", majority_vote(oof_probs), majority_vote(test_probs), equal))
    features, test_features = _stack_features(oof_log_probs), _stack_features(test_log_probs)
    for meta_name in META_LEARNERS:
        meta = make_meta_learner(meta_name)
        held_out = cross_validated_probabilities(meta, features, labels, seed)
        fitted = meta.fit(features, labels)
        scored.append(
            score(f"super:{meta_name}", held_out.argmax(axis=1), fitted.predict(test_features),
                  model_weights(fitted).tolist(), held_out)
        )  # fmt: skip
    return scored


def format_table(
    members: list[BaseRun],
    rows: np.ndarray,
    scored: list[Scored],
    left_out: np.ndarray | None = None,
) -> str:
    """A plain-text table: base models' out-of-fold scores, then each method's; with `left_out`
    (the out-of-fold rows `scored` was evaluated without), also each one's accuracy on the
    others."""
    names = [run.name for run in members]
    width = max(len(s.name) for s in scored) + 2
    lines = [
        f"{len(rows)} out-of-fold rows; Super Learner scores are {META_FOLDS}-fold "
        "cross-validated over them. Weights in the order: " + ", ".join(names),
    ]
    header = f"{'model or method':{width}s}{'accuracy':>10s}{'log-loss':>10s}"
    if left_out is not None:
        others = len(rows) - len(left_out)
        lines[0] += f"; 'on {others:,}': accuracy on those not in the list of rows left out"
        header += f"{f'on {others:,}':>12s}"
    lines.append(f"{header}  weights")
    for index, item in enumerate(scored):
        if index == len(members):
            lines.append("")
        loss = "-" if item.log_loss is None else f"{item.log_loss:.4f}"
        line = f"{item.name:{width}s}{item.accuracy:>10.4%}{loss:>10s}"
        if left_out is not None:
            line += f"{item.accuracy_without_left_out:>12.4%}"
        lines.append(f"{line}  {' '.join(f'{w:.3f}' for w in item.weights)}")
    return "\n".join(lines) + "\n"
