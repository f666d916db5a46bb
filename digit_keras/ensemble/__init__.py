"""Ensembles of cv runs: unweighted mean, majority vote and the Super Learner (stacking).

The names live here, free of heavy imports, so the CLI can offer them without loading sklearn.
"""

METHODS = ("mean", "vote", "super")
META_LEARNER_NAMES = ("logistic", "convex", "discrete")
