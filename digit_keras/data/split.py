"""Which rows train and which are held out: scikit-learn's stratified splits, seeded.

`stratified_holdout` is the holdout of `fit` and `tune`; `stratified_folds` is the k-fold
assignment `cv` trains on, which `ensemble` requires its members to share. Both depend only on
the labels, the fraction or fold count and the seed, so runs of different architectures with the
same seed hold out the same rows and their predictions line up.
"""

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from digit_keras.errors import UserError


def stratified_holdout(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train_indices, holdout_indices); the same seed always gives the same split."""
    if val_fraction <= 0:
        return np.arange(len(labels)), np.array([], dtype=np.int64)
    try:
        train_idx, holdout_idx = train_test_split(
            np.arange(len(labels)), test_size=val_fraction, stratify=labels, random_state=seed
        )
    except ValueError as err:  # too few rows to hold out every class
        raise UserError(
            f"cannot hold out a stratified {val_fraction:g} of {len(labels)} rows: {err}"
        ) from None
    return np.sort(train_idx), np.sort(holdout_idx)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of every row: each class spread evenly, fold sizes within one."""
    if folds < 2:
        raise ValueError(f"need at least 2 folds, got {folds}")
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    assignment = np.empty(len(labels), dtype=np.int8)
    try:
        for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            assignment[held_out] = fold
    except ValueError as err:  # fewer rows than folds
        raise UserError(f"cannot split {len(labels)} rows into {folds} folds: {err}") from None
    return assignment
