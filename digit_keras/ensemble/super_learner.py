"""The Super Learner: a meta-learner fitted on out-of-fold predictions (van der Laan et al. 2007).

Features are the base models' stacked log-probabilities, (N, models * 10). Each meta-learner is a
scikit-learn classifier, so `cross_validated_probabilities` can refit it per fold: the reported
accuracy of a meta-learner always comes from rows it was not fitted on.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from digit_keras.scoring import log_loss

CLASSES = 10
META_FOLDS = 5


def _per_model_probabilities(features: np.ndarray) -> np.ndarray:
    """(N, models * 10) log-probabilities -> (N, models, 10) probabilities."""
    return np.exp(features.reshape(len(features), -1, CLASSES))


class ConvexWeights(ClassifierMixin, BaseEstimator):
    """Mixture of the base models' probabilities with non-negative weights summing to 1.

    The weights maximise the log-likelihood of the labels, a concave problem on the simplex;
    EM for mixture weights climbs it monotonically without step sizes or bounds.
    """

    def __init__(self, max_iter: int = 1000, tol: float = 1e-10):
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, features: np.ndarray, labels: np.ndarray) -> ConvexWeights:
        probabilities = _per_model_probabilities(features)
        true_class = probabilities[np.arange(len(labels)), :, labels]  # (N, models)
        weights = np.full(true_class.shape[1], 1.0 / true_class.shape[1])
        previous = np.inf
        for _ in range(self.max_iter):
            mixture = np.maximum(true_class @ weights, 1e-300)
            loss = -np.mean(np.log(mixture))
            weights = weights * np.mean(true_class / mixture[:, None], axis=0)
            weights /= weights.sum()
            if previous - loss < self.tol:
                break
            previous = loss
        self.weights_ = weights
        self.classes_ = np.arange(CLASSES)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.einsum("nmc,m->nc", _per_model_probabilities(features), self.weights_)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(axis=1)


class DiscreteSuperLearner(ClassifierMixin, BaseEstimator):
    """The single base model with the lowest log-loss on the rows it is fitted on."""

    def fit(self, features: np.ndarray, labels: np.ndarray) -> DiscreteSuperLearner:
        probabilities = _per_model_probabilities(features)
        losses = [log_loss(probabilities[:, m], labels) for m in range(probabilities.shape[1])]
        self.weights_ = np.eye(probabilities.shape[1])[int(np.argmin(losses))]
        self.classes_ = np.arange(CLASSES)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        chosen = int(np.argmax(self.weights_))
        return _per_model_probabilities(features)[:, chosen]

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(axis=1)


# Inverse regularisation strengths the logistic meta-learner chooses from, by log-loss in an inner
# 3-fold cross-validation on the rows it is fitted on (so the outer estimate stays honest). A fixed
# C=1 fitted 10 x 10 coefficients per model and overfitted: below the best member on fold 0.
LOGISTIC_CS = np.logspace(-4, 2, 7)
INNER_FOLDS = 3


def logistic_meta_learner() -> LogisticRegressionCV:
    return LogisticRegressionCV(
        Cs=LOGISTIC_CS,
        cv=INNER_FOLDS,
        scoring="neg_log_loss",
        max_iter=2000,
        l1_ratios=(0.0,),  # plain L2, as before
        use_legacy_attributes=False,
    )


META_LEARNERS = {
    "logistic": logistic_meta_learner,
    "convex": ConvexWeights,
    "discrete": DiscreteSuperLearner,
}


def make_meta_learner(name: str) -> BaseEstimator:
    return META_LEARNERS[name]()


def model_weights(meta: BaseEstimator, models: int) -> np.ndarray:
    """Each base model's share of a fitted meta-learner: its weights, or for logistic
    regression its share of the absolute coefficients."""
    if hasattr(meta, "weights_"):
        return meta.weights_
    magnitude = np.abs(meta.coef_).reshape(meta.coef_.shape[0], models, CLASSES).sum(axis=(0, 2))
    return magnitude / magnitude.sum()


def probabilities_10(meta: BaseEstimator, features: np.ndarray) -> np.ndarray:
    """predict_proba with one column per digit, even if a class was absent when fitting."""
    out = np.zeros((len(features), CLASSES))
    out[:, meta.classes_] = meta.predict_proba(features)
    return out


def cross_validated_probabilities(
    meta: BaseEstimator, features: np.ndarray, labels: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Every row's probabilities from a copy of `meta` fitted on the other folds only."""
    out = np.zeros((len(features), CLASSES))
    splitter = StratifiedKFold(META_FOLDS, shuffle=True, random_state=seed)
    for fit_rows, score_rows in splitter.split(features, labels):
        fitted = clone(meta).fit(features[fit_rows], labels[fit_rows])
        out[score_rows] = probabilities_10(fitted, features[score_rows])
    return out
