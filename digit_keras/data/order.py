"""The order in which training rows are visited: the one fact both input pipelines share."""

from __future__ import annotations

import numpy as np


def epoch_order(rows: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """The rows one training epoch visits, in order: a permutation seeded by (seed, epoch), cut
    to whole batches (every step has the same global batch across replicas)."""
    order = np.random.default_rng([seed, epoch]).permutation(rows)
    return order[: rows // batch_size * batch_size]
