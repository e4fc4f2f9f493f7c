"""Reference models on the same split: what "good" means for this table before any deep learning.

Classification: a majority-class model (predicts the class priors) is the floor; a logistic regression
is the bar a neural network has to clear to earn its complexity. Regression: a mean predictor and a
linear regression. All are fitted on the train split only (a seeded sample of at most
`report.baseline_rows` rows: a linear model gains nothing from a million rows but minutes) and scored
on the test split, exactly like the model.

The splits hold the "encoded raw" matrix the exported model takes: category codes (-1 unknown) and NaN
for missing values. The model imputes and one-hot encodes inside itself; these scikit-learn models get
the same treatment here: the median (numbers) or the most frequent value (flags), and one-hot category
codes, an unseen code counting as none of the known ones.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def _proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all classes, even those absent from the train split."""
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _encoder(kinds: list[str] | None, n_features: int):
    """Imputation, scaling and one-hot by column type (`float|int|bool|category`; None: all numbers).

    A table without missing values or categories gets a plain StandardScaler, exactly as before."""
    kinds = kinds or ["float"] * n_features
    numbers = [i for i, k in enumerate(kinds) if k in ("float", "int")]
    flags = [i for i, k in enumerate(kinds) if k == "bool"]
    categories = [i for i, k in enumerate(kinds) if k == "category"]
    if not flags and not categories:
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    parts = [
        (
            "numbers",
            make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
            numbers,
        ),
        ("flags", SimpleImputer(strategy="most_frequent", keep_empty_features=True), flags),
        (
            "categories",
            make_pipeline(
                SimpleImputer(strategy="constant", fill_value=-2),  # missing: a code of its own
                OneHotEncoder(handle_unknown="ignore"),
            ),
            categories,
        ),
    ]
    return ColumnTransformer([p for p in parts if p[2]])


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def fit_baselines(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    n_classes: int,
    seed: int,
    kinds: list[str] | None = None,
    max_rows: int = 100_000,
) -> dict[str, np.ndarray]:
    """Test-split class probabilities of each baseline, by key of review_config.BASELINE_NAMES."""
    rows = _sample(len(x_train), max_rows, seed)
    x, y = x_train[rows], y_train[rows]
    logistic = make_pipeline(
        _encoder(kinds, x.shape[1]), LogisticRegression(max_iter=2000, random_state=seed)
    )
    majority = DummyClassifier(strategy="prior")
    return {
        "logistic_regression": _proba(logistic.fit(x, y), x_test, n_classes),
        "majority_class": _proba(majority.fit(x, y), x_test, n_classes),
    }


def fit_regression_baselines(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    seed: int,
    kinds: list[str] | None = None,
    max_rows: int = 100_000,
) -> dict[str, np.ndarray]:
    """Test-split predictions, shape [n, 1], by key of review_config.REGRESSION_BASELINE_NAMES."""
    rows = _sample(len(x_train), max_rows, seed)
    x, y = x_train[rows], np.asarray(y_train, dtype=np.float64)[rows]
    linear = make_pipeline(_encoder(kinds, x.shape[1]), LinearRegression())
    mean = DummyRegressor(strategy="mean")
    return {
        "linear_regression": linear.fit(x, y).predict(x_test)[:, None],
        "mean_predictor": mean.fit(x, y).predict(x_test)[:, None],
    }
