"""Reference models on the same split: what "good" means for this table before any deep learning.

A majority-class model (predicts the class priors) is the floor; a logistic regression is the bar a
neural network has to clear to earn its complexity. Both are fitted on the train split only and scored
on the test split, exactly like the model.
"""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all classes, even those absent from the train split."""
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def fit_baselines(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int, seed: int
) -> dict[str, np.ndarray]:
    """Test-split class probabilities of each baseline, by key of review_config.BASELINE_NAMES."""
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    majority = DummyClassifier(strategy="prior")
    return {
        "logistic_regression": _proba(logistic.fit(x_train, y_train), x_test, n_classes),
        "majority_class": _proba(majority.fit(x_train, y_train), x_test, n_classes),
    }
