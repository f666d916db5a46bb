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
            mean_probabilities(test_probs).argmax(axis=1),
        )
    )
    scored.append(
        Scored(
            "vote",
            float(np.mean(majority_vote(oof_probs) == labels)),
            None,
            equal,
            majority_vote(test_probs),
        )
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
                fitted.predict(test_features),
            )
        )
    return scored


def format_table(members: list[BaseRun], rows: np.ndarray, scored: list[Scored]) -> str:
    """A plain-text table: base models' out-of-fold scores, then each method's."""
    names = [run.name for run in members]
    width = max(len(s.name) for s in scored) + 2
    lines = [
        f"{len(rows)} out-of-fold rows; Super Learner scores are {META_FOLDS}-fold "
        "cross-validated over them. Weights in the order: " + ", ".join(names),
        f"{'model or method':{width}s}{'accuracy':>10s}{'log-loss':>10s}  weights",
    ]
    for index, item in enumerate(scored):
        if index == len(members):
            lines.append("")
        loss = "-" if item.log_loss is None else f"{item.log_loss:.4f}"
        weights = " ".join(f"{w:.3f}" for w in item.weights)
        lines.append(f"{item.name:{width}s}{item.accuracy:>10.4%}{loss:>10s}  {weights}")
    return "\n".join(lines) + "\n"
