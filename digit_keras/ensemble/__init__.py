"""Ensembles of cv runs: unweighted mean, majority vote and the Super Learner (stacking)."""
