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
from digit_keras.scoring import accuracy, log_loss


@dataclass
class Scored:
    """One base model or ensemble method: its out-of-fold scores and its test-set labels."""

    name: str
    accuracy: float
    log_loss: float | None  # None for the vote, which gives labels, not probabilities
    weights: list[float]  # per base model; empty for a base model itself
    oof_labels: np.ndarray  # its label for each out-of-fold row, to score on a subset of them
    test_labels: np.ndarray


def _stack_features(log_probabilities: np.ndarray) -> np.ndarray:
    """(models, N, 10) -> (N, models * 10): each row holds every model's log-probabilities."""
    return log_probabilities.transpose(1, 0, 2).reshape(log_probabilities.shape[1], -1)


def evaluate(members: list[BaseRun], rows: np.ndarray, seed: int = 0) -> list[Scored]:
    """Base models first, then mean, vote and one Super Learner per meta-learner.

    Mean and vote fit nothing, so their scores on the out-of-fold rows are honest as they are;
    each Super Learner is scored by `META_FOLDS`-fold cross-validation over those rows and then
    refitted on all of them to predict the test set.
    """
    labels = members[0].labels[rows]
    oof_log_probs = np.stack([run.oof_log_probabilities(rows) for run in members])
    test_log_probs = np.stack([run.test_log_probabilities() for run in members])
    oof_probs, test_probs = np.exp(oof_log_probs), np.exp(test_log_probs)
    equal = [1.0 / len(members)] * len(members)

    scored = []
    for index, run in enumerate(members):
        scored.append(
            Scored(
                f"{run.name} ({run.arch})",
                accuracy(oof_probs[index], labels),
                log_loss(oof_probs[index], labels),
                [],
                oof_probs[index].argmax(axis=1),
                test_probs[index].argmax(axis=1),
            )
        )
    mean = mean_probabilities(oof_probs)
    scored.append(
        Scored(
            "mean",
            accuracy(mean, labels),
            log_loss(mean, labels),
            equal,
            mean.argmax(axis=1),
            mean_probabilities(test_probs).argmax(axis=1),
        )
    )
    vote = majority_vote(oof_probs)
    scored.append(
        Scored("vote", float(np.mean(vote == labels)), None, equal, vote, majority_vote(test_probs))
    )
    features, test_features = _stack_features(oof_log_probs), _stack_features(test_log_probs)
    for meta_name in META_LEARNERS:
        meta = make_meta_learner(meta_name)
        held_out = cross_validated_probabilities(meta, features, labels, seed)
        fitted = meta.fit(features, labels)
        scored.append(
            Scored(
                f"super:{meta_name}",
                accuracy(held_out, labels),
                log_loss(held_out, labels),
                model_weights(fitted).tolist(),
                held_out.argmax(axis=1),
                fitted.predict(test_features),
            )
        )
    return scored


def accuracy_without(
    item: Scored, members: list[BaseRun], rows: np.ndarray, left_out: np.ndarray
) -> float:
    """`item`'s accuracy on the out-of-fold `rows` not in `left_out` (e.g. a label audit's list:
    rows whose label is likely wrong count against every model)."""
    kept = ~np.isin(rows, left_out)
    return float(np.mean(item.oof_labels[kept] == members[0].labels[rows[kept]]))


def format_table(
    members: list[BaseRun],
    rows: np.ndarray,
    scored: list[Scored],
    left_out: np.ndarray | None = None,
) -> str:
    """A plain-text table: base models' out-of-fold scores, then each method's; with `left_out`
    rows, also each one's accuracy on the other out-of-fold rows."""
    names = [run.name for run in members]
    width = max(len(s.name) for s in scored) + 2
    lines = [
        f"{len(rows)} out-of-fold rows; Super Learner scores are {META_FOLDS}-fold "
        "cross-validated over them. Weights in the order: " + ", ".join(names),
    ]
    header = f"{'model or method':{width}s}{'accuracy':>10s}{'log-loss':>10s}"
    if left_out is not None:
        others = len(rows) - int(np.isin(rows, left_out).sum())
        lines[0] += f"; 'on {others:,}': accuracy on those not in the list of rows left out"
        header += f"{f'on {others:,}':>12s}"
    lines.append(f"{header}  weights")
    for index, item in enumerate(scored):
        if index == len(members):
            lines.append("")
        loss = "-" if item.log_loss is None else f"{item.log_loss:.4f}"
        line = f"{item.name:{width}s}{item.accuracy:>10.4%}{loss:>10s}"
        if left_out is not None:
            line += f"{accuracy_without(item, members, rows, left_out):>12.4%}"
        lines.append(f"{line}  {' '.join(f'{w:.3f}' for w in item.weights)}")
    return "\n".join(lines) + "\n"
