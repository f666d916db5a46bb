"""Seeded, stratified holdout split: every class keeps its share in train and holdout."""

import numpy as np


def stratified_holdout(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train_indices, holdout_indices); the same seed always gives the same split."""
    if val_fraction <= 0:
        return np.arange(len(labels)), np.array([], dtype=np.int64)
    rng = np.random.default_rng(seed)
    holdout = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        holdout.append(members[: round(len(members) * val_fraction)])
    holdout_idx = np.sort(np.concatenate(holdout))
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[holdout_idx] = False
    return np.flatnonzero(train_mask), holdout_idx


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of every row: each class spread evenly, fold sizes within one.

    Depends only on the labels, `folds` and `seed`, so runs of different architectures with the
    same seed hold out the same rows and their out-of-fold predictions line up.
    """
    if folds < 2:
        raise ValueError(f"need at least 2 folds, got {folds}")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int8)
    next_fold = 0
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        assignment[members] = (next_fold + np.arange(len(members))) % folds
        next_fold = (next_fold + len(members)) % folds
    return assignment
