"""Probabilities and scores from logits, in float64 NumPy: shared by `cv` and `ensemble`."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, computed stably."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose highest score (logit or probability) is the true label."""
    return float(np.mean(np.argmax(scores, axis=-1) == labels))


def log_loss(probabilities: np.ndarray, labels: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the true labels; probabilities are clipped at `eps`."""
    true_class = np.asarray(probabilities)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(true_class, eps, 1.0))))
