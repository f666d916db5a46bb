"""When an answer is "not sure": the top probability under a threshold chosen by measurement.

A scribble, a letter or a smudge is not a digit, and some 4s look like 9s; the model still puts
its probabilities on ten digits. benchmarks/bench_doubt.py measures, per threshold, the share of
held-out digits flagged and the share of non-digits flagged (letters, strokes, smudges);
docs/serving.md gives the figures behind SURE_PROBABILITY.
"""

from __future__ import annotations

import numpy as np

SURE_PROBABILITY = 0.9
TOP = 3  # labels an answer lists, most probable first


def is_sure(probabilities: np.ndarray) -> bool:
    """Sure when the most probable digit has at least SURE_PROBABILITY."""
    return bool(probabilities.max() >= SURE_PROBABILITY)


def top_labels(probabilities: np.ndarray) -> list[int]:
    """The TOP most probable digits, most probable first."""
    return [int(label) for label in np.argsort(-probabilities, kind="stable")[:TOP]]
