"""Reference models on the same split: what "good" means for this table before any deep learning.

Classification: a majority-class model (predicts the class priors) is the floor; a logistic regression
is the bar a neural network has to clear to earn its complexity; a gradient-boosted tree ensemble
(scikit-learn's HistGradientBoosting) is the strong tabular reference: on many real tables it matches
or beats a small MLP, and the report shows it so a user sees when the network is not worth it.
Regression: a mean predictor, a linear regression and the same boosted trees. All are fitted on the
train split only (a seeded sample of at most `report.baseline_rows` rows: a linear model gains nothing
from a million rows but minutes; the boosted trees are bounded further, below) and scored on the test
split, exactly like the model. The `baselines` DVC stage (`run`) fits them once per split and saves their
test predictions (mlops/report/baseline_store.py): a model change reuses them, and `evaluate` imports no
scikit-learn.

The splits hold the "encoded raw" matrix the exported model takes: category codes (-1 unknown) and NaN
for missing values. The model imputes and one-hot encodes inside itself; these scikit-learn models get
the same treatment here: the median (numbers) or the most frequent value (flags), and one-hot category
codes, an unseen code counting as none of the known ones. The boosted trees take the matrix as it is:
NaN is their missing value, and category codes are categorical splits.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits


def _proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all classes, even those absent from the train split."""
    return _spread(model, model.predict_proba(x), n_classes)


def _spread(model, proba: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(proba), n_classes))
    out[:, model.classes_] = proba
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


# Boosting is bounded, so evaluate stays fast on any table: at most BOOST_WORK tree-rows in all (a tree
# costs about its rows; a multi-class model grows one tree per class per iteration), so the iterations
# shrink first (100 down to 10), then the rows: the bundled table fits 100 iterations, 50,000 binary
# rows do, and 280 classes get 10 iterations on 1,785 rows. Early stopping holds out a tenth of them.
# One OpenMP thread: its threads wait for each other at every histogram, so with another job on one of
# two cores the bundled table took 25 s on two threads and 0.5 s on one (model/threads.py, the same story).
BOOST_ITERATIONS = (10, 100)
BOOST_WORK = 5_000_000
MAX_BINS = 255  # HistGradientBoosting's limit on a categorical column's codes


def _boost_plan(rows: int, trees_per_iteration: int) -> tuple[int, int]:
    """(iterations, rows) within BOOST_WORK."""
    least, most = BOOST_ITERATIONS
    per_iteration = max(trees_per_iteration, 1)
    iterations = int(min(most, max(least, BOOST_WORK // max(rows * per_iteration, 1))))
    return iterations, int(min(rows, max(1000, BOOST_WORK // (iterations * per_iteration))))


def _boosting_options(kinds: list[str] | None, x: np.ndarray, iterations: int, seed: int) -> dict:
    """Category codes are categorical splits when the codes fit the histogram (-1, unseen, and NaN count
    as missing); a wider vocabulary stays an ordinal code. Bool and dates are plain numbers."""
    kinds = kinds or ["float"] * x.shape[1]
    categorical = [False] * x.shape[1]
    for j, kind in enumerate(kinds):
        if kind == "category":
            codes = x[:, j]
            top = np.nanmax(codes) if np.isfinite(codes).any() else 0.0
            categorical[j] = bool(top < MAX_BINS)
    return {
        "max_iter": iterations,
        "early_stopping": len(x) >= 200,  # too few rows to hold a tenth out
        "validation_fraction": 0.1,
        "n_iter_no_change": 10,
        "categorical_features": categorical if any(categorical) else None,
        "random_state": seed,
    }


def _boosted(model, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, proba: bool) -> np.ndarray:
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(x, y)
        return model.predict_proba(x_test) if proba else model.predict(x_test)


def _boost(kinds, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int, classes: int | None):
    """The boosted model's test-split probabilities (classification) or predictions (regression)."""
    trees = 1 if classes is None else (len(np.unique(y)) if len(np.unique(y)) > 2 else 1)
    iterations, limit = _boost_plan(len(x), trees)
    rows = _sample(len(x), limit, seed)
    xb, yb = x[rows], y[rows]
    options = _boosting_options(kinds, xb, iterations, seed)
    if classes is None:
        model = HistGradientBoostingRegressor(**options)
        return _boosted(model, xb, yb, x_test, False)[:, None]
    model = HistGradientBoostingClassifier(**options)
    return _spread(model, _boosted(model, xb, yb, x_test, True), classes)


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
    """Test-split class probabilities of each baseline, by key of settings.BASELINE_NAMES."""
    rows = _sample(len(x_train), max_rows, seed)
    x, y = x_train[rows], y_train[rows]
    logistic = make_pipeline(
        _encoder(kinds, x.shape[1]), LogisticRegression(max_iter=2000, random_state=seed)
    )
    majority = DummyClassifier(strategy="prior")
    return {
        "logistic_regression": _proba(logistic.fit(x, y), x_test, n_classes),
        "majority_class": _proba(majority.fit(x, y), x_test, n_classes),
        "gradient_boosting": _boost(kinds, x, y, x_test, seed, n_classes),
    }


def fit_regression_baselines(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    seed: int,
    kinds: list[str] | None = None,
    max_rows: int = 100_000,
) -> dict[str, np.ndarray]:
    """Test-split predictions, shape [n, 1], by key of settings.REGRESSION_BASELINE_NAMES."""
    rows = _sample(len(x_train), max_rows, seed)
    x, y = x_train[rows], np.asarray(y_train, dtype=np.float64)[rows]
    linear = make_pipeline(_encoder(kinds, x.shape[1]), LinearRegression())
    mean = DummyRegressor(strategy="mean")
    return {
        "linear_regression": linear.fit(x, y).predict(x_test)[:, None],
        "mean_predictor": mean.fit(x, y).predict(x_test)[:, None],
        "gradient_boosting": _boost(kinds, x, y, x_test, seed, None),
    }


def fit(task: str, x_train, y_train, x_test, n_classes: int, seed: int, kinds, max_rows: int) -> dict:
    """Every baseline of `task`, fitted and scored on the test split (what `evaluate` reports)."""
    if task == "regression":
        return fit_regression_baselines(x_train, y_train, x_test, seed, kinds, max_rows)
    return fit_baselines(x_train, y_train, x_test, n_classes, seed, kinds, max_rows)


def run() -> None:
    """DVC stage `baselines`: fit on the train split, save the test predictions for `evaluate`."""
    import json

    import pandas as pd

    from mlops.config import paths
    from mlops.config.params import load_params
    from mlops.report import baseline_store
    from mlops.report.settings import report_settings, task_of

    params = load_params()
    task = task_of(params)
    features = params.data.feature_names
    types = {c["name"]: c["type"] for c in json.loads(paths.PREPROCESSING.read_text())["columns"]}
    kinds = [str(types.get(f, "float")) for f in features]
    limit = int(report_settings(params)["baseline_rows"])
    train = pd.read_parquet(paths.TRAIN_SPLIT, columns=[*features, "label"])
    test = pd.read_parquet(paths.TEST_SPLIT, columns=features)
    n_classes = 1 if task == "regression" else len(params.data.classes)
    fitted = fit(
        task,
        train[features].to_numpy(dtype=np.float64),
        train["label"].to_numpy(),
        test[features].to_numpy(dtype=np.float64),
        n_classes,
        params.seed,
        kinds,
        limit,
    )
    baseline_store.save(fitted, baseline_store.fingerprint(params, task, kinds, limit))
    print(f"baselines: {', '.join(fitted)} -> {paths.BASELINES_DIR}")
