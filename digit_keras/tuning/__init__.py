"""Hyperparameter search with keras-tuner: search spaces from TOML, trials through `fit`'s parts."""

TUNERS = ("random", "hyperband", "bayesian")
