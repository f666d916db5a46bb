"""Which rows train and which are held out: scikit-learn's stratified splits, seeded.

`stratified_holdout` is the holdout of `fit` and `tune`; `stratified_folds` is the k-fold
assignment `cv` trains on, which `ensemble` requires its members to share; `bag_rows` is the
share of the rows outside fold 0 that one member of a `cv --bag` trains on. All depend only on
the labels, the fraction or fold count and the seeds, so runs of different architectures with the
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


def bag_rows(labels: np.ndarray, pool: np.ndarray, fraction: float, seed: int, member: int):
    """Sorted rows a bag member trains on: a stratified random `fraction` of `pool`, drawn
    without replacement, different for every (seed, member).

    Without replacement, as the published 15-network bag did (each net on its own random 90%):
    a bootstrap would show each member only about 63% of the distinct rows, and with augmentation
    a repeated row adds little, so members would lose accuracy for no gain in diversity.
    """
    state = int(np.random.SeedSequence([seed, member]).generate_state(1)[0])
    try:
        rows, _ = train_test_split(
            pool, train_size=fraction, stratify=labels[pool], random_state=state
        )
    except ValueError as err:  # too few rows to leave every class out
        raise UserError(
            f"cannot draw a stratified {fraction:g} of {len(pool)} rows: {err}"
        ) from None
    return np.sort(rows)
