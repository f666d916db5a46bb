"""Fixed combinations of base models' probabilities: no fitting, so nothing to cross-validate."""

from __future__ import annotations

import numpy as np


def mean_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Unweighted average over base models: (models, N, classes) -> (N, classes)."""
    return probabilities.mean(axis=0)


def majority_vote(probabilities: np.ndarray) -> np.ndarray:
    """Each base model votes for its top class; the most votes win.

    Ties go to the tied class with the highest mean probability: the votes are whole numbers and
    half the mean probability is below 1, so adding it orders tied classes and nothing else.
    """
    _, rows, classes = probabilities.shape
    votes = np.zeros((rows, classes))
    np.add.at(votes, (np.arange(rows)[None, :], probabilities.argmax(axis=2)), 1)
    return np.argmax(votes + 0.5 * mean_probabilities(probabilities), axis=1)
