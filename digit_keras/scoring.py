"""Probabilities and scores from logits, shared by `fit`, `cv`, `tune` and `ensemble`.

Thin calls into scipy and scikit-learn, in float64, with one convention: scores first, then labels.
"""

from __future__ import annotations

import numpy as np

CLASSES = np.arange(10)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis."""
    from scipy.special import log_softmax as scipy_log_softmax

    return scipy_log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)


def softmax(logits: np.ndarray) -> np.ndarray:
    from scipy.special import softmax as scipy_softmax

    return scipy_softmax(np.asarray(logits, dtype=np.float64), axis=-1)


def mean_log_probabilities(logits: np.ndarray) -> np.ndarray:
    """Log of several models' mean probabilities, (models, ..., classes) -> (..., classes): how a
    bag and a run's fold models combine."""
    return np.log(softmax(logits).mean(axis=0))


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose highest score (logit or probability) is the true label."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, np.argmax(scores, axis=-1)))


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (scikit-learn clips zero probabilities)."""
    from sklearn.metrics import log_loss as sklearn_log_loss

    return float(sklearn_log_loss(labels, np.asarray(probabilities, np.float64), labels=CLASSES))


def logit_scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and log-loss of a model's logits: how `fit`, `cv` and `tune` score a model."""
    return {"accuracy": accuracy(logits, labels), "log_loss": log_loss(softmax(logits), labels)}
