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
